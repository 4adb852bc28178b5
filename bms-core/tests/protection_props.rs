//! Property tests of the protection state machine over random measurement sequences and
//! configurations.

#![allow(clippy::unwrap_used)] // Test helpers panic on broken fixtures by design.

use bms_core::config::{Chemistry, PackConfig, Variant};
use bms_core::protect::{Action, Direction, Fault};
use bms_core::{
    Bms, DeciCelsius, Instant, Measurements, MilliAmps, MilliVolts, Outputs, PowerMode,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Sample {
    dt_ms: u32,
    cell_mv: u32,
    spread: [i16; 20],
    current_ma: i32,
    temp_dc: i16,
    mos_dc: i16,
}

fn sample(lo: u32, hi: u32) -> impl Strategy<Value = Sample> {
    (
        prop_oneof![Just(100u32), 1u32..2_000],
        lo..hi,
        proptest::array::uniform20(-30i16..30),
        prop_oneof![-150_000i32..150_000, -400_000i32..400_000, Just(0)],
        -300i16..900,
        0i16..1_100,
    )
        .prop_map(
            |(dt_ms, cell_mv, spread, current_ma, temp_dc, mos_dc)| Sample {
                dt_ms,
                cell_mv,
                spread,
                current_ma,
                temp_dc,
                mos_dc,
            },
        )
}

/// Runs of repeated samples, so that conditions persist long enough to trip.
fn sequence(lo: u32, hi: u32) -> impl Strategy<Value = Vec<Sample>> {
    proptest::collection::vec((sample(lo, hi), 1usize..40), 1..12).prop_map(|runs| {
        let mut out = Vec::new();
        for (s, n) in runs {
            for k in 0..n {
                let mut s = s.clone();
                // One millivolt of noise keeps the readings plausible (not stuck).
                s.spread[0] += (k % 2) as i16;
                out.push(s);
            }
        }
        out
    })
}

fn measurements(cells: u8, t: u64, s: &Sample) -> Measurements {
    let mut m = Measurements::uniform(
        cells,
        MilliVolts::from_mv(s.cell_mv),
        Instant::from_millis(t),
    );
    for (c, d) in m.cells.iter_mut().zip(s.spread) {
        *c = MilliVolts::from_mv((s.cell_mv as i32 + d as i32) as u32);
    }
    m.pack = Some(m.cell_sum());
    m.load = m.pack;
    m.current = Some(MilliAmps::from_ma(s.current_ma));
    m.cell_temps = [Some(DeciCelsius::from_deci(s.temp_dc)); 2];
    m.mos_temp = Some(DeciCelsius::from_deci(s.mos_dc));
    m
}

fn chemistry() -> impl Strategy<Value = (Chemistry, u8, u16)> {
    (
        prop_oneof![
            Just(Chemistry::Lfp),
            Just(Chemistry::Nmc),
            Just(Chemistry::Lto)
        ],
        8u8..=20,
        prop_oneof![Just(80u16), Just(300u16)],
    )
}

fn config(chem: Chemistry, cells: u8, amps: u16) -> PackConfig {
    let v = Variant::new(cells, amps, bms_core::config::Port::Can).unwrap();
    PackConfig::preset(v, chem)
}

/// The reference model's value of a fault (`None`: not modelled here).
fn reference_value(f: Fault, m: &Measurements) -> Option<i32> {
    let cells = m.cells();
    let hi = cells.iter().max()?.as_mv() as i32;
    let lo = cells.iter().min()?.as_mv() as i32;
    let i = m.current?.as_ma();
    let t = m.cell_temps[0]?.as_deci() as i32;
    Some(match f {
        Fault::CellOv => hi,
        Fault::CellUv => lo,
        Fault::ChgOc => (-i).max(0),
        Fault::DsgOc1 | Fault::DsgOc2 | Fault::Sc => i.max(0),
        Fault::ChgOt | Fault::ChgUt | Fault::DsgOt | Fault::DsgUt => t,
        Fault::MosOt => m.mos_temp?.as_deci() as i32,
        _ => return None,
    })
}

fn beyond(f: Fault, v: i32, trip: i32) -> bool {
    match f.direction() {
        Direction::Above => v >= trip,
        Direction::Below => v <= trip,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// A MOSFET never stays closed in a direction whose fault condition has held longer
    /// than its trip delay (checked one step later at most), except under the body-diode
    /// rule, which re-closes it only while current flows the other way.
    #[test]
    fn blocked_direction_opens_after_trip_delay((chem, cells, amps) in chemistry(), seq in sequence(1_000, 4_600)) {
        let cfg = config(chem, cells, amps);
        let mut bms = Bms::new(cfg).unwrap();
        let mut since: [Option<u64>; Fault::COUNT] = [None; Fault::COUNT];
        let bd = cfg.limits.body_diode_current.as_ma();
        let mut t = 0u64;
        for s in &seq {
            t += s.dt_ms as u64;
            let m = measurements(cells, t, s);
            let out = bms.step(&m);
            let tel = bms.telemetry();
            let open_all = tel.faults.iter().any(|f| f.action() == Action::OpenAll);
            for f in Fault::ALL {
                let rule = cfg.protection.get(f);
                let Some(v) = reference_value(f, &m) else { continue };
                if !beyond(f, v, rule.trip) {
                    since[f.index()] = None;
                    continue;
                }
                let t0 = *since[f.index()].get_or_insert(t);
                if t - t0 < rule.delay.as_millis() as u64 {
                    continue;
                }
                prop_assert!(tel.faults.contains(f), "{f} not active at {t} ms");
                let i = s.current_ma;
                if f.action().blocks_charge() && (open_all || i < bd) {
                    prop_assert!(!out.fets.charge, "{f}: charge closed at {t} ms");
                }
                if f.action().blocks_discharge() && (open_all || i > -bd) {
                    prop_assert!(!out.fets.discharge && !out.fets.precharge, "{f}: discharge closed at {t} ms");
                }
            }
        }
    }

    /// No fault blocks its own remedy: with only discharge-blocking faults active, charging
    /// stays allowed; with only charge-blocking faults, discharging stays allowed.
    #[test]
    fn no_fault_blocks_its_remedy((chem, cells, amps) in chemistry(), seq in sequence(500, 5_000)) {
        let cfg = config(chem, cells, amps);
        let mut bms = Bms::new(cfg).unwrap();
        let mut t = 0u64;
        for s in &seq {
            t += s.dt_ms as u64;
            let out = bms.step(&measurements(cells, t, s));
            let tel = bms.telemetry();
            if tel.faults.is_empty() || out.mode == PowerMode::DeepSleep {
                continue;
            }
            if tel.faults.iter().all(|f| f.action() == Action::OpenDischarge) {
                prop_assert!(out.fets.charge, "charge blocked by {}", tel.faults);
            }
            if tel.faults.iter().all(|f| f.action() == Action::OpenCharge) {
                // Discharge is closed, or being pre-charged.
                prop_assert!(out.fets.discharge || out.fets.precharge, "discharge blocked by {}", tel.faults);
            }
        }
    }

    /// Outputs, telemetry and events are a deterministic function of the inputs.
    #[test]
    fn replay_is_deterministic((chem, cells, amps) in chemistry(), seq in sequence(500, 5_000)) {
        let run = || {
            let mut bms = Bms::new(config(chem, cells, amps)).unwrap();
            let mut t = 0u64;
            let mut trace: Vec<(Outputs, String, Vec<bms_core::TimedEvent>)> = Vec::new();
            for s in &seq {
                t += s.dt_ms as u64;
                let out = bms.step(&measurements(cells, t, s));
                let events = std::iter::from_fn(|| bms.poll_event()).collect();
                trace.push((out, format!("{:?}", bms.telemetry()), events));
            }
            trace
        };
        prop_assert_eq!(run(), run());
    }

    /// The step never panics, whatever the snapshot holds (any count, value or time).
    #[test]
    fn step_never_panics(
        (chem, cells, amps) in chemistry(),
        raw in proptest::collection::vec((
            any::<u64>(), any::<u8>(), proptest::array::uniform20(any::<u32>()), any::<bool>(),
            any::<u32>(), proptest::array::uniform2(any::<Option<i16>>()), any::<Option<i16>>(),
            any::<Option<u32>>(), any::<Option<u32>>(), any::<Option<i32>>(), any::<bool>(), any::<bool>(),
        ), 1..60),
    ) {
        let mut bms = Bms::new(config(chem, cells, amps)).unwrap();
        for (t, n, c, afe, ow, temps, mos, pack, load, i, acc, chg) in raw {
            let m = Measurements {
                timestamp: Instant::from_millis(t),
                cell_count: n,
                cells: c.map(MilliVolts::from_mv),
                afe_ok: afe,
                open_wire: ow,
                cell_temps: temps.map(|x| x.map(DeciCelsius::from_deci)),
                mos_temp: mos.map(DeciCelsius::from_deci),
                balance_temp: None,
                pack: pack.map(MilliVolts::from_mv),
                load: load.map(MilliVolts::from_mv),
                current: i.map(MilliAmps::from_ma),
                acc,
                charger_present: chg,
            };
            let out = bms.step(&m);
            // Whatever happened, a deep sleep means everything is open.
            if out.mode == PowerMode::DeepSleep {
                prop_assert!(!out.fets.charge && !out.fets.discharge && !out.fets.precharge);
            }
            while bms.poll_event().is_some() {}
        }
    }

    /// Unknown input opens both MOSFETs: a silent cell monitor for longer than the
    /// `afe_comm` delay leaves nothing closed, whatever came before.
    #[test]
    fn afe_silence_always_opens_both((chem, cells, amps) in chemistry(), seq in sequence(500, 5_000)) {
        let cfg = config(chem, cells, amps);
        let delay = cfg.protection.get(Fault::AfeComm).delay.as_millis() as u64;
        let mut bms = Bms::new(cfg).unwrap();
        let mut t = 0u64;
        for s in &seq {
            t += s.dt_ms as u64;
            bms.step(&measurements(cells, t, s));
        }
        let last = seq.last().unwrap();
        let end = t + delay + 100;
        while t <= end {
            t += 100;
            let mut m = measurements(cells, t, last);
            m.afe_ok = false;
            let out = bms.step(&m);
            if t > end - 100 {
                prop_assert!(!out.fets.charge && !out.fets.discharge && !out.fets.precharge);
            }
        }
    }
}
