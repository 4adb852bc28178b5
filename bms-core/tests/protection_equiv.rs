//! The protection stage against its reference (`protection_reference`, the implementation
//! before its cost was cut, written plainly): over random configurations, table changes,
//! resets and sequences of snapshots and summaries (quiet stretches, long idle stretches for
//! the power-mode timers, readings put exactly at, just before and just beyond every
//! threshold, missing readings, pre-charge timeouts), every step gives the same decision,
//! the same transitions in the same order, the same faults, warnings, latches and
//! pre-charge state, and the same limits.

#![allow(clippy::unwrap_used)] // Test helpers panic on broken fixtures by design.

mod protection_reference;

use bms_core::config::{Chemistry, OutputFunction, PackConfig, Port, Variant};
use bms_core::protect::limits::LimitsPlan;
use bms_core::protect::{Fault, Latch, Protection, SensorCauses, Summary, Transition};
use bms_core::units::{Permille, Soc};
use bms_core::{DeciCelsius, Duration, Instant, Measurements, MilliAmps, MilliVolts};
use proptest::prelude::*;
use protection_reference as reference;

/// Sets one reading to `which` threshold of `fault` plus `delta`.
#[derive(Clone, Copy, Debug)]
struct Poke {
    fault: usize,
    /// 0: trip, 1: warn (trip without one), 2: release.
    which: u8,
    delta: i32,
}

/// The base of a run of steps.
#[derive(Clone, Debug)]
struct Base {
    /// The lowest cell in permille of the way from the `cell_uv` to the `cell_ov` first
    /// threshold (`Some`: inside the quiet envelope when `spread` is small), or `cell_mv`.
    cell_pos: Option<u16>,
    cell_mv: u32,
    spread: u32,
    pack_delta: i32,
    current: Option<i32>,
    t_hi: Option<i16>,
    t_lo: Option<i16>,
    t_mos: Option<i16>,
    open_wires: u8,
    afe_ok: bool,
    causes: u8,
    cells_unchanged: bool,
    charger: bool,
    acc: bool,
    /// Load voltage in permille of the pack (`None`: not read).
    load: Option<u16>,
    /// Cells missing (`max_cell`/`min_cell` `None`), pack missing.
    no_cells: bool,
    no_pack: bool,
}

#[derive(Clone, Debug)]
enum Op {
    /// `repeat` steps `dt_ms` apart from `base` with `pokes` applied (and, with `noise`,
    /// a few mV and mA of noise per step).
    Steps {
        repeat: u16,
        dt_ms: u32,
        base: Base,
        pokes: Vec<Poke>,
        noise: bool,
    },
    /// An explicit fault reset.
    Reset,
    /// A changed protection table (taken into use with `set_table`).
    Table(Vec<RuleChange>),
    /// Changed power, pre-charge, body-diode, plausibility and output settings.
    Config(Settings),
}

#[derive(Clone, Debug)]
struct RuleChange {
    fault: usize,
    shift: i32,
    warn: Option<i32>,
    delay_ms: u32,
    release_delay_ms: u32,
    latch: u8,
    retries: u8,
    enabled: bool,
}

#[derive(Clone, Debug)]
struct Settings {
    idle_ma: i32,
    sleep_s: u32,
    wake_ma: i32,
    deep_s: u32,
    precharge: bool,
    target: u16,
    timeout_ms: u32,
    load_removed: u16,
    body_diode_ma: i32,
    stuck_ms: u32,
    stuck_ma: i32,
    outputs: [u8; 3],
    temps: [(i16, i16); 3],
}

fn base() -> impl Strategy<Value = Base> {
    let quiet = (
        (50u16..950).prop_map(Some),
        Just(0u32),
        0u32..30,
        -500i32..500,
        -20_000i32..20_000,
    );
    let wide = (
        Just(None),
        1_000u32..4_800,
        0u32..2_000,
        -5_000i32..5_000,
        -400_000i32..400_000,
    );
    (
        prop_oneof![4 => quiet, 1 => wide],
        (
            prop_oneof![8 => Just(true), 1 => Just(false)],
            prop_oneof![6 => (100i16..400).prop_map(Some), 1 => (-400i16..900).prop_map(Some), 1 => Just(None)],
            prop_oneof![6 => (0i16..300).prop_map(Some), 1 => (-400i16..900).prop_map(Some), 1 => Just(None)],
            prop_oneof![6 => (100i16..500).prop_map(Some), 1 => (-400i16..1_200).prop_map(Some), 1 => Just(None)],
        ),
        (
            prop_oneof![8 => Just(0u8), 1 => 0u8..4],
            prop_oneof![8 => Just(true), 1 => Just(false)],
            prop_oneof![6 => Just(0u8), 1 => any::<u8>()],
            any::<bool>(),
            prop_oneof![6 => Just(false), 1 => Just(true)],
            prop_oneof![6 => Just(false), 1 => Just(true)],
        ),
        (
            prop_oneof![6 => Just(Some(1_000u16)), 2 => (0u16..1_100).prop_map(Some), 1 => Just(None)],
            prop_oneof![10 => Just(false), 1 => Just(true)],
            prop_oneof![10 => Just(false), 1 => Just(true)],
        ),
    )
        .prop_map(
            |(
                (cell_pos, cell_mv, spread, pack_delta, ma),
                (current_ok, t_hi, t_lo, t_mos),
                (open_wires, afe_ok, causes, cells_unchanged, charger, acc),
                (load, no_cells, no_pack),
            )| Base {
                cell_pos,
                cell_mv,
                spread,
                pack_delta,
                current: current_ok.then_some(ma),
                t_hi,
                t_lo,
                t_mos,
                open_wires,
                afe_ok,
                causes: causes & 0x7f,
                cells_unchanged,
                charger,
                acc,
                load,
                no_cells,
                no_pack,
            },
        )
}

fn poke() -> impl Strategy<Value = Poke> {
    (
        0..Fault::COUNT,
        0u8..3,
        prop_oneof![Just(0i32), -3i32..=3, -300i32..300],
    )
        .prop_map(|(fault, which, delta)| Poke {
            fault,
            which,
            delta,
        })
}

fn rule_change() -> impl Strategy<Value = RuleChange> {
    (
        0..Fault::COUNT,
        prop_oneof![Just(0i32), -200i32..200],
        proptest::option::of(1i32..300),
        prop_oneof![Just(0u32), 50u32..5_000],
        prop_oneof![Just(0u32), 50u32..5_000],
        0u8..4,
        0u8..3,
        prop_oneof![6 => Just(true), 1 => Just(false)],
    )
        .prop_map(
            |(fault, shift, warn, delay_ms, release_delay_ms, latch, retries, enabled)| {
                RuleChange {
                    fault,
                    shift,
                    warn,
                    delay_ms,
                    release_delay_ms,
                    latch,
                    retries,
                    enabled,
                }
            },
        )
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        (0i32..3_000, 1u32..120, 0i32..4_000, 1u32..400),
        (any::<bool>(), 0u16..1_100, 50u32..3_000, 0u16..1_100),
        (
            prop_oneof![Just(0i32), 1i32..10_000, Just(2_000)],
            100u32..5_000,
            0i32..10_000,
        ),
        (
            proptest::array::uniform3(0u8..7),
            proptest::array::uniform3((-100i16..600, -100i16..600)),
        ),
    )
        .prop_map(
            |(
                (idle_ma, sleep_s, wake_ma, deep_s),
                (precharge, target, timeout_ms, load_removed),
                (body_diode_ma, stuck_ms, stuck_ma),
                (outputs, temps),
            )| Settings {
                idle_ma,
                sleep_s,
                wake_ma,
                deep_s,
                precharge,
                target,
                timeout_ms,
                load_removed,
                body_diode_ma,
                stuck_ms,
                stuck_ma,
                outputs,
                temps,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (
            prop_oneof![3 => 1u16..30, 1 => 30u16..200],
            prop_oneof![6 => Just(100u32), 2 => 1u32..3_000, 1 => 10_000u32..600_000, 1 => Just(0)],
            base(),
            proptest::collection::vec(poke(), 0..3),
            any::<bool>(),
        )
            .prop_map(|(repeat, dt_ms, base, pokes, noise)| Op::Steps { repeat, dt_ms, base, pokes, noise }),
        1 => Just(Op::Reset),
        1 => proptest::collection::vec(rule_change(), 1..6).prop_map(Op::Table),
        1 => settings().prop_map(Op::Config),
    ]
}

fn preset() -> impl Strategy<Value = PackConfig> {
    (
        prop_oneof![
            Just(Chemistry::Lfp),
            Just(Chemistry::Nmc),
            Just(Chemistry::Lto)
        ],
        8u8..=20,
    )
        .prop_map(|(chem, cells)| {
            PackConfig::preset(Variant::new(cells, 300, Port::Can).unwrap(), chem)
        })
}

fn apply_rule(cfg: &mut PackConfig, c: &RuleChange) {
    let f = Fault::ALL[c.fault];
    let r = cfg.protection.get_mut(f);
    r.trip += c.shift;
    r.release += c.shift;
    let dir = f.direction();
    // The warning on the safe side of trip (as validation would require) or anywhere.
    r.warn = c.warn.map(|d| match dir {
        bms_core::protect::Direction::Above => r.trip - d,
        bms_core::protect::Direction::Below => r.trip + d,
    });
    r.delay = Duration::from_millis(c.delay_ms);
    r.release_delay = Duration::from_millis(c.release_delay_ms);
    r.latch = [
        Latch::Auto,
        Latch::LoadRemoved,
        Latch::ChargerRemoved,
        Latch::Reset,
    ][usize::from(c.latch)];
    r.retries = c.retries;
    r.enabled = c.enabled;
}

fn apply_settings(cfg: &mut PackConfig, s: &Settings) {
    cfg.power.idle_current = MilliAmps::from_ma(s.idle_ma);
    cfg.power.sleep_after = Duration::from_secs(s.sleep_s);
    cfg.power.wake_current = MilliAmps::from_ma(s.wake_ma);
    cfg.power.deep_sleep_after = Duration::from_secs(s.deep_s);
    cfg.precharge.enabled = s.precharge;
    cfg.precharge.target_permille = Permille::from_permille(s.target);
    cfg.precharge.timeout = Duration::from_millis(s.timeout_ms);
    cfg.precharge.load_removed_permille = Permille::from_permille(s.load_removed);
    cfg.limits.body_diode_current = MilliAmps::from_ma(s.body_diode_ma);
    cfg.plausibility.stuck_after = Duration::from_millis(s.stuck_ms);
    cfg.plausibility.stuck_min_current = MilliAmps::from_ma(s.stuck_ma);
    let functions = s
        .outputs
        .map(|k| k)
        .into_iter()
        .zip(s.temps)
        .map(|(k, (a, b))| {
            let (a, b) = (DeciCelsius::from_deci(a), DeciCelsius::from_deci(b));
            match k {
                0 => OutputFunction::Off,
                1 => OutputFunction::Alarm,
                2 => OutputFunction::Fault,
                3 => OutputFunction::ChargerEnable,
                4 => OutputFunction::LoadEnable,
                5 => OutputFunction::Heater {
                    on_below_dc: a,
                    off_above_dc: b,
                },
                _ => OutputFunction::Fan {
                    on_above_dc: a,
                    off_below_dc: b,
                },
            }
        });
    let [do1, do2, do3]: [OutputFunction; 3] = functions.collect::<Vec<_>>().try_into().unwrap();
    cfg.outputs.do1 = do1;
    cfg.outputs.do2 = do2;
    cfg.outputs.do3 = do3;
}

/// The snapshot and summary of one step.
fn inputs(
    cfg: &PackConfig,
    t: u64,
    b: &Base,
    pokes: &[Poke],
    k: u32,
    noise: bool,
) -> (Measurements, Summary) {
    let n = u32::from(cfg.cells);
    let wiggle = if noise {
        (k.wrapping_mul(2_654_435_761) >> 28) as i32 - 8
    } else {
        0
    };
    let first = |f: Fault| {
        let r = cfg.protection.get(f);
        match f.direction() {
            bms_core::protect::Direction::Above => r.warn.map_or(r.trip, |w| w.min(r.trip)),
            bms_core::protect::Direction::Below => r.warn.map_or(r.trip, |w| w.max(r.trip)),
        }
    };
    let (ov, uv) = (first(Fault::CellOv), first(Fault::CellUv));
    let cell = match b.cell_pos {
        Some(pos) => uv + (ov - uv) * i32::from(pos) / 1_000,
        None => b.cell_mv as i32,
    };
    let lo = (cell + wiggle / 4).max(0) as u32;
    let mut s = Summary {
        max_cell: Some(MilliVolts::from_mv(lo + b.spread)),
        min_cell: Some(MilliVolts::from_mv(lo)),
        cell_sum: MilliVolts::from_mv(lo * n),
        pack: Some(MilliVolts::from_mv(
            (lo as i32 * n as i32 + b.pack_delta).max(0) as u32,
        )),
        max_temp: b.t_hi.map(DeciCelsius::from_deci),
        min_temp: b.t_lo.map(DeciCelsius::from_deci),
        mos_temp: b.t_mos.map(DeciCelsius::from_deci),
        current: MilliAmps::ZERO,
        open_wires: b.open_wires,
        cells_unchanged: b.cells_unchanged,
        causes: SensorCauses::NONE,
    };
    let mut m = Measurements::uniform(cfg.cells, MilliVolts::from_mv(lo), Instant::from_millis(t));
    m.current = b.current.map(|i| MilliAmps::from_ma(i + wiggle * 10));
    m.afe_ok = b.afe_ok;
    m.charger_present = b.charger;
    m.acc = b.acc;
    let mut causes = b.causes;
    for p in pokes {
        let f = Fault::ALL[p.fault];
        let r = cfg.protection.get(f);
        let v = match p.which {
            0 => r.trip,
            1 => r.warn.unwrap_or(r.trip),
            _ => r.release,
        } + p.delta;
        let mvv = MilliVolts::from_mv(v.max(0) as u32);
        let dc = DeciCelsius::from_deci(v.clamp(-32_768, 32_767) as i16);
        match f {
            Fault::CellOv => s.max_cell = Some(mvv),
            Fault::CellUv => s.min_cell = Some(mvv),
            Fault::PackOv | Fault::PackUv => s.pack = Some(mvv),
            Fault::ChgOc => m.current = Some(MilliAmps::from_ma(-v)),
            Fault::DsgOc1 | Fault::DsgOc2 | Fault::Sc => m.current = Some(MilliAmps::from_ma(v)),
            Fault::ChgOt | Fault::DsgOt => s.max_temp = Some(dc),
            Fault::ChgUt | Fault::DsgUt => s.min_temp = Some(dc),
            Fault::MosOt => s.mos_temp = Some(dc),
            Fault::CellImbalance => {
                // Both cells inside their own envelopes where the spread allows it.
                let top = (ov - 1 - (k % 3) as i32).max(0) as u32;
                s.max_cell = Some(MilliVolts::from_mv(top));
                s.min_cell = Some(MilliVolts::from_mv(top.saturating_sub(v.max(0) as u32)));
            }
            Fault::OpenWire => s.open_wires = v.clamp(0, 255) as u8,
            Fault::AfeComm => m.afe_ok = v < 1,
            Fault::SensorFault => causes |= u8::from(v >= 1),
            Fault::PrechargeFail => {}
        }
    }
    if b.no_cells {
        s.max_cell = None;
        s.min_cell = None;
    }
    if b.no_pack {
        s.pack = None;
    }
    if !m.afe_ok {
        s.open_wires = 0;
    }
    if m.current.is_none() {
        causes |= SensorCauses::CURRENT.bits();
    }
    s.current = m.current.unwrap_or_default();
    s.causes = (0..8)
        .filter(|b| causes & 1 << b != 0)
        .fold(SensorCauses::NONE, |mut c, b| {
            c.insert(causes_bit(b));
            c
        });
    m.load = match (b.load, s.pack) {
        (Some(p), Some(pack)) => Some(MilliVolts::from_mv(pack.as_mv() * u32::from(p) / 1_000)),
        (Some(p), None) => Some(MilliVolts::from_mv(u32::from(p) * 50)),
        (None, _) => None,
    };
    (m, s)
}

fn causes_bit(b: u32) -> SensorCauses {
    SensorCauses::ALL
        .get(b as usize)
        .copied()
        .unwrap_or(SensorCauses::NONE)
}

/// Runs `ops` on both implementations, comparing every output after every step.
fn run(mut cfg: PackConfig, settings0: Option<Settings>, ops: &[Op]) -> Result<(), TestCaseError> {
    if let Some(s) = settings0 {
        apply_settings(&mut cfg, &s);
    }
    let mut fast = Protection::new(&cfg.protection);
    let mut plain = reference::Protection::new();
    let mut plan = LimitsPlan::of(&cfg);
    let mut t = 0u64;
    let mut k = 0u32;
    for op in ops {
        match op {
            Op::Steps {
                repeat,
                dt_ms,
                base,
                pokes,
                noise,
            } => {
                for _ in 0..*repeat {
                    t += u64::from(*dt_ms);
                    k = k.wrapping_add(1);
                    let (m, s) = inputs(&cfg, t, base, pokes, k, *noise);
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    let da = fast.step(&cfg, &m, &s, &mut |tr: Transition| a.push(tr));
                    let db = plain.step(&cfg, &m, &s, &mut b);
                    prop_assert_eq!(da, db, "decision at {} ms", t);
                    prop_assert_eq!(&a, &b, "transitions at {} ms", t);
                    prop_assert_eq!(*fast.decision(), plain.decision());
                    prop_assert_eq!(fast.faults(), plain.faults(), "faults at {} ms", t);
                    prop_assert_eq!(fast.warnings(), plain.warnings(), "warnings at {} ms", t);
                    prop_assert_eq!(fast.latched(), plain.latched(), "latched at {} ms", t);
                    prop_assert_eq!(
                        fast.precharge(),
                        plain.precharge(),
                        "pre-charge at {} ms",
                        t
                    );
                    let soc = Soc::from_permille_clamped((k.wrapping_mul(7_919) % 1_001) as i32);
                    for (c, d) in [
                        (da.charge_allowed, da.discharge_allowed),
                        (true, true),
                        (k % 2 == 0, true),
                    ] {
                        prop_assert_eq!(
                            plan.limits(&s, soc, c, d),
                            reference::limits(&cfg, &s, soc, c, d),
                            "limits at {} ms",
                            t
                        );
                    }
                }
            }
            Op::Reset => {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                fast.reset(Instant::from_millis(t), &cfg, &mut |tr: Transition| {
                    a.push(tr)
                });
                plain.reset(Instant::from_millis(t), &cfg, &mut b);
                prop_assert_eq!(&a, &b, "reset at {} ms", t);
                prop_assert_eq!(fast.faults(), plain.faults());
                prop_assert_eq!(fast.latched(), plain.latched());
            }
            Op::Table(changes) => {
                for c in changes {
                    apply_rule(&mut cfg, c);
                }
                fast.set_table(&cfg.protection);
                plan = LimitsPlan::of(&cfg);
            }
            Op::Config(s) => {
                apply_settings(&mut cfg, s);
                plan = LimitsPlan::of(&cfg);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, .. ProptestConfig::default() })]

    /// Identical decisions, transitions, fault sets, pre-charge states and limits.
    #[test]
    fn protection_equals_the_reference(
        cfg in preset(),
        settings0 in proptest::option::of(settings()),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        run(cfg, settings0, &ops)?;
    }
}

/// A long quiet stretch, then idle long enough to sleep, a wake, an under-voltage long
/// enough for deep sleep, and a manual wake: every power-mode timer fires.
#[test]
fn power_mode_timers_match() {
    let cfg = PackConfig::preset(Variant::new(16, 300, Port::Can).unwrap(), Chemistry::Lfp);
    let quiet = Base {
        cell_pos: None,
        cell_mv: 3_300,
        spread: 5,
        pack_delta: 0,
        current: Some(10_000),
        t_hi: Some(250),
        t_lo: Some(240),
        t_mos: Some(300),
        open_wires: 0,
        afe_ok: true,
        causes: 0,
        cells_unchanged: false,
        charger: false,
        acc: false,
        load: Some(1_000),
        no_cells: false,
        no_pack: false,
    };
    let steps = |repeat, dt_ms, base: &Base, pokes: Vec<Poke>| Op::Steps {
        repeat,
        dt_ms,
        base: base.clone(),
        pokes,
        noise: true,
    };
    let idle = Base {
        current: Some(0),
        ..quiet.clone()
    };
    let uv = Poke {
        fault: Fault::CellUv.index(),
        which: 0,
        delta: -1,
    };
    let ops = [
        steps(100, 100, &quiet, vec![]),
        steps(40, 60_000, &idle, vec![]),
        steps(5, 100, &quiet, vec![]),
        steps(80, 60_000, &idle, vec![uv]),
        steps(
            5,
            100,
            &Base {
                acc: true,
                ..quiet.clone()
            },
            vec![],
        ),
        steps(5, 100, &quiet, vec![]),
    ];
    run(cfg, None, &ops).unwrap();
}
