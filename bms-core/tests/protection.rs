//! Protection behaviour per fault: trips after its delay and not before, releases with
//! hysteresis after its release delay, latches as configured.

#![allow(clippy::unwrap_used)] // Test helpers panic on broken fixtures by design.

use bms_core::config::{Chemistry, PackConfig, Variant};
use bms_core::protect::{Action, Direction, Fault, Latch};
use bms_core::{Bms, DeciCelsius, Instant, Measurements, MilliAmps, MilliVolts};

const STEP_MS: u64 = 100;
const NOMINAL_MV: u32 = 3_300;

fn config(chem: Chemistry) -> PackConfig {
    let v: Variant = "ANT16S-300A-C".parse().unwrap();
    PackConfig::preset(v, chem)
}

fn base(t: u64) -> Measurements {
    Measurements::uniform(16, MilliVolts::from_mv(NOMINAL_MV), Instant::from_millis(t))
}

/// Sets the measured quantity of `fault` to `value` (in the fault's unit).
fn set(m: &mut Measurements, fault: Fault, value: i32) {
    let n = m.cell_count as u32;
    match fault {
        Fault::CellOv | Fault::CellUv => m.cells[4] = MilliVolts::from_mv(value as u32),
        Fault::PackOv | Fault::PackUv => {
            let cell = value as u32 / n;
            m.cells = [MilliVolts::from_mv(cell); 20];
            m.pack = Some(MilliVolts::from_mv(value as u32));
            m.load = m.pack;
        }
        Fault::ChgOc => m.current = Some(MilliAmps::from_ma(-value)),
        Fault::DsgOc1 | Fault::DsgOc2 | Fault::Sc => m.current = Some(MilliAmps::from_ma(value)),
        Fault::ChgOt | Fault::ChgUt | Fault::DsgOt | Fault::DsgUt => {
            m.cell_temps = [Some(DeciCelsius::from_deci(value as i16)); 2]
        }
        Fault::MosOt => m.mos_temp = Some(DeciCelsius::from_deci(value as i16)),
        Fault::CellImbalance => m.cells[0] = MilliVolts::from_mv(NOMINAL_MV - value as u32),
        Fault::OpenWire => m.open_wire = if value > 0 { 1 << 6 } else { 0 },
        Fault::AfeComm => m.afe_ok = value == 0,
        Fault::SensorFault => {
            m.cells[3] = MilliVolts::from_mv(if value > 0 { 0 } else { NOMINAL_MV })
        }
        Fault::PrechargeFail => unreachable!("driven by the pre-charge sequence"),
    }
    // One millivolt of measurement noise, as every real AFE has: readings that never
    // change under current are judged stuck.
    let noise = (m.timestamp.as_millis() / STEP_MS % 2) as u32;
    m.cells[15] = MilliVolts::from_mv(m.cells[15].as_mv() - noise);
    if matches!(fault, Fault::CellOv | Fault::CellUv | Fault::CellImbalance) {
        m.pack = Some(m.cell_sum());
        m.load = m.pack;
    }
}

struct Run {
    bms: Bms,
    t: u64,
}

impl Run {
    fn new(cfg: PackConfig) -> Self {
        let mut bms = Bms::new(cfg).unwrap();
        bms.step(&base(0));
        Run { bms, t: 0 }
    }
    /// Steps with `fault`'s quantity at `value` for `ms`; returns the time of the first
    /// step at which `fault`'s active state differs from the start, if any.
    fn hold(&mut self, fault: Fault, value: i32, ms: u64) -> Option<u64> {
        let start = self.bms.telemetry().faults.contains(fault);
        let mut flipped = None;
        let end = self.t + ms;
        while self.t < end {
            self.t += STEP_MS;
            let mut m = base(self.t);
            set(&mut m, fault, value);
            self.bms.step(&m);
            if flipped.is_none() && self.bms.telemetry().faults.contains(fault) != start {
                flipped = Some(self.t);
            }
        }
        flipped
    }
    fn active(&self, f: Fault) -> bool {
        self.bms.telemetry().faults.contains(f)
    }
}

/// A value on the fault side of `trip`, and one in the hysteresis band.
fn sides(fault: Fault, cfg: &PackConfig) -> (i32, i32, i32) {
    let r = cfg.protection.get(fault);
    let mid = (r.trip + r.release) / 2;
    (r.trip, mid, r.release)
}

fn check_fault(chem: Chemistry, fault: Fault) {
    let mut cfg = config(chem);
    // Isolate the rule's own latch policy from the retry budget.
    cfg.protection.get_mut(fault).retries = 0;
    let rule = *cfg.protection.get(fault);
    let (trip, band, release) = sides(fault, &cfg);
    let mut run = Run::new(cfg);
    assert!(!run.active(fault), "{fault} active at start");

    // Trips exactly when the value has been at the threshold for the delay.
    let t0 = run.t;
    let flipped = run.hold(fault, trip, rule.delay.as_millis() as u64 + 5 * STEP_MS);
    let expect = t0 + STEP_MS + rule.delay.as_millis() as u64;
    assert_eq!(flipped, Some(expect), "{chem} {fault}: trip time");

    // MOSFET action: the blocked direction is open.
    let tel = run.bms.telemetry();
    match fault.action() {
        Action::OpenCharge => assert!(
            !tel.charge_fet && tel.discharge_fet,
            "{fault} opens charge only"
        ),
        Action::OpenDischarge => {
            assert!(
                !tel.discharge_fet && !tel.precharge_fet,
                "{fault} opens discharge"
            );
            // (A discharge temperature limit lies beyond its charge twin, which trips too.)
            if !tel.faults.iter().any(|f| f.action().blocks_charge()) {
                assert!(tel.charge_fet, "{fault} keeps charge closed");
            }
        }
        Action::OpenAll => assert!(!tel.charge_fet && !tel.discharge_fet, "{fault} opens both"),
    }

    // Inside the hysteresis band it never releases.
    if band != trip && band != release {
        assert_eq!(
            run.hold(
                fault,
                band,
                rule.release_delay.as_millis() as u64 * 3 + 1_000
            ),
            None,
            "{fault} released in band"
        );
    }

    // At the release threshold it releases after the release delay (auto policies).
    let t1 = run.t;
    let flipped = run.hold(
        fault,
        release,
        rule.release_delay.as_millis() as u64 + 5 * STEP_MS,
    );
    match rule.latch {
        Latch::Reset => assert_eq!(flipped, None, "{fault} latched"),
        _ => assert_eq!(
            flipped,
            Some(t1 + STEP_MS + rule.release_delay.as_millis() as u64),
            "{chem} {fault}: release time"
        ),
    }
}

#[test]
fn every_fault_trips_releases_and_opens_its_mosfets() {
    for chem in [Chemistry::Lfp, Chemistry::Nmc] {
        for fault in Fault::ALL {
            if fault != Fault::PrechargeFail {
                check_fault(chem, fault);
            }
        }
    }
}

#[test]
fn not_tripped_one_step_before_delay() {
    let cfg = config(Chemistry::Lfp);
    let rule = *cfg.protection.get(Fault::CellOv);
    let mut run = Run::new(cfg);
    assert_eq!(
        run.hold(Fault::CellOv, rule.trip, rule.delay.as_millis() as u64),
        None
    );
    assert!(run.hold(Fault::CellOv, rule.trip, STEP_MS).is_some());
}

#[test]
fn a_short_excursion_restarts_the_delay() {
    let cfg = config(Chemistry::Nmc);
    let rule = *cfg.protection.get(Fault::CellUv);
    let mut run = Run::new(cfg);
    let half = rule.delay.as_millis() as u64 / 2;
    assert_eq!(run.hold(Fault::CellUv, rule.trip, half + STEP_MS), None);
    assert_eq!(run.hold(Fault::CellUv, rule.trip + 1, STEP_MS), None);
    assert_eq!(run.hold(Fault::CellUv, rule.trip, half + STEP_MS), None);
}

#[test]
fn latch_reset_holds_until_reset_and_reset_never_releases_a_present_fault() {
    let mut cfg = config(Chemistry::Lfp);
    cfg.protection.get_mut(Fault::CellOv).latch = Latch::Reset;
    let rule = *cfg.protection.get(Fault::CellOv);
    let mut run = Run::new(cfg);
    run.hold(Fault::CellOv, rule.trip, 2_000);
    assert!(run.active(Fault::CellOv));
    // Still over-voltage: a reset does not release it.
    run.bms.reset_faults(Instant::from_millis(run.t));
    assert!(run.bms.protection().faults().contains(Fault::CellOv));
    // Back to normal, latched: stays.
    assert_eq!(run.hold(Fault::CellOv, rule.release, 60_000), None);
    run.bms.reset_faults(Instant::from_millis(run.t));
    assert!(!run.bms.protection().faults().contains(Fault::CellOv));
}

#[test]
fn load_removed_latch_waits_for_load_detect() {
    let cfg = config(Chemistry::Lfp);
    let rule = *cfg.protection.get(Fault::DsgOc2);
    assert_eq!(rule.latch, Latch::LoadRemoved);
    let mut bms = Bms::new(cfg).unwrap();
    let mut t = 0;
    let mut step = |bms: &mut Bms, ma: i32, load_mv: u32| {
        t += STEP_MS;
        let mut m = base(t);
        m.current = Some(MilliAmps::from_ma(ma));
        m.load = Some(MilliVolts::from_mv(load_mv));
        bms.step(&m);
    };
    for _ in 0..110 {
        step(&mut bms, rule.trip, 52_800);
    }
    assert!(bms.telemetry().faults.contains(Fault::DsgOc2));
    // Load still connected: the load pulls the output low; no release however long.
    for _ in 0..600 {
        step(&mut bms, 0, 1_000);
    }
    assert!(bms.telemetry().faults.contains(Fault::DsgOc2));
    // Load removed: the load-detect bias rises; release after the release delay.
    for _ in 0..(rule.release_delay.as_millis() / 100 + 1) {
        step(&mut bms, 0, 52_000);
    }
    assert!(!bms.telemetry().faults.contains(Fault::DsgOc2));
}

#[test]
fn repeated_short_circuits_latch_after_the_retry_budget() {
    let cfg = config(Chemistry::Nmc);
    let rule = *cfg.protection.get(Fault::Sc);
    assert!(rule.retries > 0);
    let mut run = Run::new(cfg);
    for k in 0..=rule.retries {
        assert!(
            run.hold(Fault::Sc, rule.trip, STEP_MS).is_some(),
            "short {k} trips"
        );
        let released = run.hold(Fault::Sc, 0, rule.release_delay.as_millis() as u64 + 500);
        if k < rule.retries {
            assert!(released.is_some(), "short {k} releases");
        } else {
            assert_eq!(released, None, "latched after {} shorts", k + 1);
        }
    }
    assert!(run.bms.protection().latched().contains(Fault::Sc));
}

#[test]
fn afe_silence_opens_both_and_holds_cell_faults() {
    let cfg = config(Chemistry::Lfp);
    let mut run = Run::new(cfg);
    run.hold(Fault::CellUv, cfg.protection.get(Fault::CellUv).trip, 2_000);
    assert!(run.active(Fault::CellUv));
    run.hold(Fault::AfeComm, 1, 1_000);
    let tel = run.bms.telemetry();
    assert!(tel.faults.contains(Fault::AfeComm) && tel.faults.contains(Fault::CellUv));
    assert!(!tel.charge_fet && !tel.discharge_fet);
}

#[test]
fn implausible_pack_and_stuck_readings_are_sensor_faults() {
    let cfg = config(Chemistry::Lfp);
    let mut bms = Bms::new(cfg).unwrap();
    let mut t = 0;
    // Pack divider disagrees with the cell sum by 5 V.
    for _ in 0..10 {
        t += STEP_MS;
        let mut m = base(t);
        m.pack = Some(MilliVolts::from_mv(47_800));
        bms.step(&m);
    }
    assert!(bms.telemetry().faults.contains(Fault::SensorFault));
    let cfg = config(Chemistry::Lfp);
    let stuck_after = u64::from(cfg.plausibility.stuck_after.as_millis());
    let mut bms = Bms::new(cfg).unwrap();
    // Frozen readings under 20 A: stuck once they held for `stuck_after`, not before.
    let start = t + STEP_MS;
    let mut first = None;
    for _ in 0..=310 {
        t += STEP_MS;
        let mut m = base(t);
        m.current = Some(MilliAmps::from_amps(20));
        bms.step(&m);
        if bms.telemetry().faults.contains(Fault::SensorFault) {
            first.get_or_insert(t);
        }
    }
    let first = first.expect("frozen readings never judged stuck");
    assert!(
        first - start >= stuck_after,
        "stuck after {} ms",
        first - start
    );
    assert!(bms.telemetry().faults.contains(Fault::SensorFault));
    assert!(!bms.telemetry().charge_fet && !bms.telemetry().discharge_fet);
}

#[test]
fn precharge_timeout_is_a_fault_and_retries() {
    let cfg = config(Chemistry::Lfp);
    let timeout = cfg.precharge.timeout.as_millis() as u64;
    let mut bms = Bms::new(cfg).unwrap();
    let mut t = 0;
    let mut saw_precharge = false;
    // The load never charges (a short on the output).
    while t < timeout + 500 {
        let mut m = base(t);
        m.load = Some(MilliVolts::from_mv(0));
        let o = bms.step(&m);
        saw_precharge |= o.fets.precharge;
        assert!(!o.fets.discharge, "discharge closed onto an uncharged load");
        t += STEP_MS;
    }
    assert!(saw_precharge);
    let tel = bms.telemetry();
    assert!(tel.faults.contains(Fault::PrechargeFail));
    assert!(!tel.discharge_fet && !tel.precharge_fet && tel.charge_fet);
}

#[test]
fn body_diode_rule_recloses_charge_during_discharge() {
    let cfg = config(Chemistry::Lfp);
    let rule = *cfg.protection.get(Fault::CellOv);
    let mut run = Run::new(cfg);
    run.hold(Fault::CellOv, rule.trip, 2_000);
    assert!(!run.bms.telemetry().charge_fet);
    // A discharge of 10 A through the charge FET's body diode closes it...
    run.t += STEP_MS;
    let mut m = base(run.t);
    set(&mut m, Fault::CellOv, rule.trip);
    m.current = Some(MilliAmps::from_amps(10));
    let o = run.bms.step(&m);
    assert!(o.fets.charge && run.bms.telemetry().faults.contains(Fault::CellOv));
    // ...and a charge current opens it again at once.
    run.t += STEP_MS;
    m.timestamp = Instant::from_millis(run.t);
    m.current = Some(MilliAmps::from_amps(-1));
    assert!(!run.bms.step(&m).fets.charge);
}

#[test]
fn warnings_come_before_faults_and_are_separate() {
    let cfg = config(Chemistry::Nmc);
    let rule = *cfg.protection.get(Fault::CellOv);
    let warn = rule.warn.unwrap();
    let mut run = Run::new(cfg);
    run.hold(Fault::CellOv, warn, 2_000);
    let tel = run.bms.telemetry();
    assert!(tel.warnings.contains(Fault::CellOv));
    assert!(!tel.faults.contains(Fault::CellOv));
    assert!(tel.charge_fet);
}

#[test]
fn direction_table_never_blocks_the_remedy() {
    for f in Fault::ALL {
        let a = f.action();
        match f {
            // Under-voltage and discharge faults must allow charging.
            Fault::CellUv | Fault::PackUv | Fault::DsgOc1 | Fault::DsgOc2 | Fault::Sc => {
                assert!(!a.blocks_charge(), "{f}")
            }
            // Over-voltage and charge faults must allow discharging.
            Fault::CellOv | Fault::PackOv | Fault::ChgOc => assert!(!a.blocks_discharge(), "{f}"),
            _ => {}
        }
        if f.direction() == Direction::Below {
            assert!(matches!(
                f,
                Fault::CellUv | Fault::PackUv | Fault::ChgUt | Fault::DsgUt
            ));
        }
    }
}
