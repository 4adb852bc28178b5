//! `Bms::set_config` takes effect in every part, the SOC estimator included.

#![allow(clippy::unwrap_used)] // Test helpers panic on broken fixtures by design.

use bms_core::config::{Chemistry, PackConfig, Variant};
use bms_core::{Bms, Instant, Measurements, MilliAmpHours, MilliAmps, MilliVolts};

const STEP_MS: u64 = 100;

fn config() -> PackConfig {
    let v: Variant = "ANT16S-300A-C".parse().unwrap();
    let mut cfg = PackConfig::preset(v, Chemistry::Lfp);
    cfg.capacity_mah = MilliAmpHours::from_mah(100_000);
    cfg
}

/// Steps `bms` from `*t` for `ms` with `current` flowing (positive = discharge) and a
/// millivolt of noise on one cell, as a real AFE reads.
fn run(bms: &mut Bms, t: &mut u64, ms: u64, current_ma: i32) {
    let end = *t + ms;
    while *t < end {
        *t += STEP_MS;
        let mut m = Measurements::uniform(16, MilliVolts::from_mv(3_300), Instant::from_millis(*t));
        m.cells[15] = MilliVolts::from_mv(3_300 - (*t / STEP_MS % 2) as u32);
        m.current = Some(MilliAmps::from_ma(current_ma));
        bms.step(&m);
    }
}

/// SOC drop, in permille, over one hour at 10 A (10 Ah).
fn drop_over_10_ah(bms: &mut Bms, t: &mut u64) -> i32 {
    let before = i32::from(bms.telemetry().soc.as_permille());
    run(bms, t, 3_600_000, 10_000);
    before - i32::from(bms.telemetry().soc.as_permille())
}

#[test]
fn a_new_capacity_reaches_the_soc_estimator() {
    let mut bms = Bms::new(config()).unwrap();
    let mut t = 0;
    run(&mut bms, &mut t, 10_000, 0);
    // 10 Ah of 100 Ah.
    let d = drop_over_10_ah(&mut bms, &mut t);
    assert!((95..=105).contains(&d), "drop {d} permille of 100 Ah");

    let mut bigger = config();
    bigger.capacity_mah = MilliAmpHours::from_mah(200_000);
    let soc = bms.telemetry().soc.as_permille();
    bms.set_config(Instant::from_millis(t), bigger).unwrap();
    run(&mut bms, &mut t, 1_000, 10_000);
    assert_eq!(
        bms.telemetry().full_capacity,
        MilliAmpHours::from_mah(200_000)
    );
    assert_eq!(
        bms.telemetry().nominal_capacity,
        MilliAmpHours::from_mah(200_000)
    );
    // The SOC carries over (under load the estimator resumes from what it stored).
    let now = bms.telemetry().soc.as_permille();
    assert!(now.abs_diff(soc) <= 2, "SOC {soc} -> {now} permille");
    // 10 Ah of 200 Ah.
    let d = drop_over_10_ah(&mut bms, &mut t);
    assert!((45..=55).contains(&d), "drop {d} permille of 200 Ah");
}

#[test]
fn an_unrelated_change_keeps_the_estimator() {
    let mut bms = Bms::new(config()).unwrap();
    let mut t = 0;
    run(&mut bms, &mut t, 600_000, 10_000);
    let before = bms.soc().clone();
    let mut other = config();
    other.balance.start_delta = MilliVolts::from_mv(other.balance.start_delta.as_mv() + 5);
    bms.set_config(Instant::from_millis(t), other).unwrap();
    assert_eq!(format!("{:?}", bms.soc()), format!("{before:?}"));
}
