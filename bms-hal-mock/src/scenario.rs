//! The `bms-sim run` scenarios: a pack, its configuration, a profile and injected faults.

use bms_core::config::{Chemistry as CoreChemistry, PackConfig};
use bms_core::{DeciCelsius, Duration, Instant};

use crate::faults::{Injection, Sensor};
use crate::pack::{Charger, Chemistry, PackParams};
use crate::ports::SensorConfig;
use crate::profile::{Profile, Segment, Until};

/// A named scenario of `bms-sim run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScenarioKind {
    /// CC-CV charge, rest, drive-cycle discharge, rest, partial charge.
    Cycle,
    /// A spread pack (3 % capacity, 5 % SOC) through repeated cycles: balancing at work.
    Imbalance,
    /// A sequence of injected hardware faults, each tripping and releasing.
    Faults,
    /// Long idle at low charge: sleep, under-voltage, deep sleep, manual wake.
    Storage,
}

impl ScenarioKind {
    /// Every scenario.
    pub const ALL: [ScenarioKind; 4] = [
        ScenarioKind::Cycle,
        ScenarioKind::Imbalance,
        ScenarioKind::Faults,
        ScenarioKind::Storage,
    ];

    /// The command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            ScenarioKind::Cycle => "cycle",
            ScenarioKind::Imbalance => "imbalance",
            ScenarioKind::Faults => "faults",
            ScenarioKind::Storage => "storage",
        }
    }
}

/// Charge/discharge cycles of the imbalance scenario.
pub const IMBALANCE_CYCLES: usize = 10;

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Which scenario.
    pub kind: ScenarioKind,
    /// The core's configuration.
    pub config: PackConfig,
    /// The simulated pack.
    pub pack: PackParams,
    /// How the board sees it.
    pub sensors: SensorConfig,
    /// The external world over time.
    pub profile: Profile,
    /// Hardware faults: (start, injection, duration).
    pub injections: Vec<(Instant, Injection, Duration)>,
    /// Per-cell initial SOC and capacity (Ah) overriding the pack's random spread.
    pub cells: Option<Vec<(f64, f64)>>,
}

fn sim_chemistry(c: CoreChemistry) -> Chemistry {
    match c {
        CoreChemistry::Nmc => Chemistry::NMC,
        _ => Chemistry::LFP,
    }
}

fn pack_params(cfg: &PackConfig) -> PackParams {
    let n = cfg.cells as usize;
    let mut p = match cfg.chemistry {
        CoreChemistry::Nmc => PackParams::nmc(n),
        _ => PackParams::lfp(n),
    };
    p.chemistry = sim_chemistry(cfg.chemistry);
    p
}

fn charger(cfg: &PackConfig, amps: f64) -> Charger {
    Charger {
        current_limit_a: amps,
        voltage_limit_v: f64::from(cfg.cells) * f64::from(cfg.limits.charge_voltage.as_mv())
            / 1000.0,
    }
}

fn h(hours: u32) -> Duration {
    Duration::from_mins(hours * 60)
}

/// Builds `kind` on the preset `config` (its part number and chemistry).
pub fn build(kind: ScenarioKind, mut config: PackConfig, seed: u64) -> Scenario {
    let mut pack = pack_params(&config);
    pack.seed = seed;
    // The user configures the OCV curve of the cells they fit, as with a real pack.
    config.soc.ocv_mv = pack.chemistry.ocv_mv;
    // The board's balancing resistors are what the configuration says they are.
    pack.balance_resistor_ohm = f64::from(config.balance.resistor.as_mohm()) / 1000.0;
    let sensors = SensorConfig::default().with_seed(seed);
    let mut injections = Vec::new();
    let mut cells = None;
    let min = Duration::from_mins;
    let profile = match kind {
        ScenarioKind::Cycle => {
            pack.initial_soc = 0.3;
            config.capacity_mah =
                bms_core::MilliAmpHours::from_mah((pack.capacity_ah * 1000.0) as u32);
            let c = charger(&config, pack.capacity_ah / 2.0);
            Profile::new(25.0)
                .then(Segment::rest(min(10)))
                .then(Segment::charge(h(4), c).until(Until::CurrentBelow(pack.capacity_ah / 50.0)))
                .then(Segment::rest(min(30)))
                .then(
                    Segment::drive_cycle(h(4), pack.capacity_ah * 1.5).until(Until::SocBelow(0.15)),
                )
                .then(Segment::rest(min(60)))
                .then(Segment::charge(h(2), c).until(Until::SocAbove(0.7)))
                .then(Segment::rest(min(30)))
        }
        ScenarioKind::Imbalance => {
            // 10 Ah cells keep the balancing work, and the simulated time, short; the
            // spreads are the scenario's: 3 % capacity, 5 % SOC.
            pack.capacity_ah = 10.0;
            pack.initial_soc = 0.5;
            // Spreads as ranges: SOC evenly over 47.5..52.5 %, capacity over 9.85..10.15 Ah,
            // in unrelated orders.
            let n = pack.cells;
            let frac = |k: usize| {
                if n > 1 {
                    k as f64 / (n - 1) as f64 - 0.5
                } else {
                    0.0
                }
            };
            cells = Some(
                (0..n)
                    .map(|i| {
                        (
                            0.5 + 0.05 * frac(i),
                            pack.capacity_ah * (1.0 + 0.03 * frac((i * 7 + 3) % n)),
                        )
                    })
                    .collect(),
            );
            config.capacity_mah = bms_core::MilliAmpHours::from_mah(10_000);
            let c = charger(&config, 5.0);
            let mut p = Profile::new(25.0);
            for _ in 0..IMBALANCE_CYCLES {
                p = p
                    .then(Segment::charge(h(4), c).until(Until::CurrentBelow(0.2)))
                    .then(Segment::rest(h(2)))
                    .then(Segment::discharge(h(3), 5.0).until(Until::SocBelow(0.3)))
                    .then(Segment::rest(min(30)));
            }
            p
        }
        ScenarioKind::Faults => {
            pack.initial_soc = 0.6;
            let m = |x: u32| Instant::from_millis(u64::from(x) * 60_000);
            let s = Duration::from_secs;
            injections = vec![
                (m(2), Injection::CellReading { cell: 4, mv: 4_900 }, s(20)),
                (m(4), Injection::OpenWire { cell: 7 }, s(15)),
                (m(6), Injection::AfeError { probability: 1.0 }, s(10)),
                (m(8), Injection::NtcOpen { channel: 1 }, s(20)),
                (m(10), Injection::LoadShort { amps: 2_000.0 }, s(1)),
                (
                    m(13),
                    Injection::SensorError {
                        sensor: Sensor::Current,
                    },
                    s(5),
                ),
                (
                    m(15),
                    Injection::NtcReading {
                        channel: 0,
                        temp: DeciCelsius::from_celsius(70),
                    },
                    s(30),
                ),
            ];
            Profile::new(25.0)
                .then(Segment::discharge(min(10), 40.0))
                .then(Segment::rest(min(2)))
                .then(Segment::discharge(min(8), 30.0))
        }
        ScenarioKind::Storage => {
            pack.initial_soc = 0.012;
            config.power.sleep_after = min(20);
            config.power.deep_sleep_after = min(30);
            // A parasitic 0.3 A load (below the idle threshold) drains the pack.
            Profile::new(20.0)
                .then(Segment::discharge(h(5), 0.3))
                .then(Segment::rest(min(10)).with_acc(true))
                .then(Segment::rest(min(10)))
        }
    };
    Scenario {
        kind,
        config,
        pack,
        sensors,
        profile,
        injections,
        cells,
    }
}
