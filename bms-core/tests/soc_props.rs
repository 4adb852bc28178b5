//! Invariants of the SOC estimator over arbitrary input sequences.

use bms_core::soc::{SocConfig, SocEstimator, SocInput, StoredSoc};
use bms_core::{DeciCelsius, Instant, MilliAmpHours, MilliAmps, MilliVolts, Soc};
use proptest::prelude::*;

const CAP_MAH: u32 = 100_000;

fn stored(permille: u16) -> StoredSoc {
    StoredSoc {
        soc: Soc::from_permille_clamped(permille.into()),
        full_capacity: MilliAmpHours::from_mah(CAP_MAH),
        cycles: 0,
        current_offset: MilliAmps::ZERO,
    }
}

/// SOC (permille, fractional) of an OCV reading, computed independently of the crate.
fn table_soc(table: &[u16; 21], mv: u32) -> f64 {
    let mv = f64::from(mv);
    if mv <= f64::from(table[0]) {
        return 0.0;
    }
    for i in 0..20 {
        let (lo, hi) = (f64::from(table[i]), f64::from(table[i + 1]));
        if mv <= hi && hi > lo {
            return (i as f64 + (mv - lo) / (hi - lo)) * 50.0;
        }
    }
    1000.0
}

#[derive(Clone, Debug)]
struct Step {
    dt_ms: u32,
    ma: i32,
    cells: Vec<u32>,
    temp: Option<i16>,
    open: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![0u32..120_000, Just(u32::MAX)],
        prop_oneof![-400_000i32..400_000, any::<i32>()],
        prop::collection::vec(0u32..5_000, 0..24),
        prop::option::of(any::<i16>()),
        any::<bool>(),
    )
        .prop_map(|(dt_ms, ma, cells, temp, open)| Step {
            dt_ms,
            ma,
            cells,
            temp,
            open,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever comes in, the outputs stay within their bounds and nothing panics.
    #[test]
    fn outputs_stay_bounded(
        chem in 0usize..3,
        st in prop::option::of(0u16..=1000),
        cap in prop_oneof![1u32..2_000_000, Just(u32::MAX)],
        uncapped in any::<bool>(),
        steps in prop::collection::vec(step(), 1..300),
    ) {
        let mut cfg = [SocConfig::lfp(), SocConfig::nmc(), SocConfig::lto()][chem];
        if uncapped {
            cfg.max_step_ms = bms_core::time::Duration::MAX;
        }
        let mut est = SocEstimator::new(cfg, MilliAmpHours::from_mah(cap), st.map(stored));
        let mut t = 0u64;
        for s in &steps {
            t += u64::from(s.dt_ms);
            let cells: Vec<MilliVolts> = s.cells.iter().map(|&v| MilliVolts::from_mv(v)).collect();
            let out = est.update(&SocInput {
                now: Instant::from_millis(t),
                current: MilliAmps::from_ma(s.ma),
                cells: &cells,
                temperature: s.temp.map(DeciCelsius::from_deci),
                current_path_open: s.open,
            });
            while est.poll_event().is_some() {}
            prop_assert!(out.soc.as_permille() <= 1000);
            prop_assert!(est.remaining() <= est.full_capacity());
            let (lo, mean, hi) = est.cell_soc_range();
            prop_assert!(lo <= mean && mean <= hi);
            prop_assert!(est.uncertainty().as_permille() <= 1000);
            prop_assert!(est.soh().as_permille() <= 1100);
        }
    }

    /// Without calibrations, the remaining charge changes by exactly the charge that
    /// flowed (clamped at empty and full), and SOC is that charge over the capacity.
    #[test]
    fn charge_in_equals_soc_change(
        start in 0u16..=1000,
        steps in prop::collection::vec((1u32..5_000, 3_000i32..300_000, any::<bool>()), 1..500),
    ) {
        let mut est = SocEstimator::new(SocConfig::nmc(), MilliAmpHours::from_mah(CAP_MAH), Some(stored(start)));
        // Mid-table voltages under load: no rest, no full, no empty calibration.
        let cells = [MilliVolts::from_mv(3_700); 16];
        let mut t = 0u64;
        est.update(&SocInput::new(Instant::ZERO, MilliAmps::from_amps(50), &cells));
        let full = i64::from(CAP_MAH) * 3_600_000;
        let mut q = est.remaining_charge().as_raw();
        prop_assert_eq!(q, i64::from(start) * full / 1000);
        for (dt, ma, charge) in steps {
            t += u64::from(dt);
            let i = if charge { -ma } else { ma };
            est.update(&SocInput::new(Instant::from_millis(t), MilliAmps::from_ma(i), &cells));
            q = (q - i64::from(i) * i64::from(dt)).clamp(0, full);
            prop_assert_eq!(est.remaining_charge().as_raw(), q);
            let expect = (q * 2_000 / full + 1) / 2;
            prop_assert_eq!(i64::from(est.soc().as_permille()), expect);
        }
    }

    /// A rest calibration only ever moves the SOC toward the value the cells imply, even
    /// while they relax and the weight of the reading changes.
    #[test]
    fn rest_calibration_moves_toward_the_ocv(
        lfp in any::<bool>(),
        start in 0u16..=1000,
        levels in prop::collection::vec((0u32..=1000, 1u32..40), 1..6),
    ) {
        let cfg = if lfp { SocConfig::lfp() } else { SocConfig::nmc() };
        let table = cfg.ocv_mv;
        let (lo, hi) = (u32::from(table[0]), u32::from(table[20]));
        let mut est = SocEstimator::new(cfg, MilliAmpHours::from_mah(CAP_MAH), Some(stored(start)));
        let boot = [MilliVolts::from_mv((lo + hi) / 2); 16];
        // Boot under load takes the stored SOC; then a long rest with wandering voltages.
        est.update(&SocInput::new(Instant::ZERO, MilliAmps::from_amps(50), &boot));
        let mut prev = i32::from(est.soc().as_permille());
        let mut k = 0u64;
        let mut calibrated = false;
        for (frac, minutes) in levels {
            let cells = [MilliVolts::from_mv(lo + (hi - lo) * frac / 1000); 16];
            for _ in 0..(minutes * 6) {
                k += 1;
                let now = Instant::from_millis(k * 10_000);
                est.update(&SocInput::new(now, MilliAmps::ZERO, &cells));
                let s = i32::from(est.soc().as_permille());
                if let Some(o) = est.ocv_soc() {
                    calibrated = true;
                    let o = i32::from(o.as_permille());
                    prop_assert!((s - o).abs() <= (prev - o).abs() + 1,
                        "moved away: {} -> {} (cells say {})", prev, s, o);
                } else {
                    prop_assert_eq!(s, prev, "moved before any rest calibration");
                }
                prev = s;
            }
        }
        // The rest lasted past the 30-minute rest time: a calibration must have happened.
        prop_assert!(calibrated || k <= 30 * 6);
    }

    /// After a full rest the SOC sits between where it was and what a steady voltage says.
    #[test]
    fn rest_calibration_lands_between_count_and_ocv(
        lfp in any::<bool>(),
        start in 0u16..=1000,
        frac in 0u32..=1000,
    ) {
        let cfg = if lfp { SocConfig::lfp() } else { SocConfig::nmc() };
        let table = cfg.ocv_mv;
        let (lo, hi) = (u32::from(table[0]), u32::from(table[20]));
        let mv = lo + (hi - lo) * frac / 1000;
        let target = table_soc(&table, mv);
        let mut est = SocEstimator::new(cfg, MilliAmpHours::from_mah(CAP_MAH), Some(stored(start)));
        let cells = [MilliVolts::from_mv(mv); 16];
        est.update(&SocInput::new(Instant::ZERO, MilliAmps::from_amps(50), &cells));
        let first = f64::from(start);
        est.update(&SocInput::new(Instant::from_millis(1_000), MilliAmps::ZERO, &cells));
        est.update(&SocInput::new(Instant::from_millis(3_600_000), MilliAmps::ZERO, &cells));
        let s = f64::from(est.soc().as_permille());
        prop_assert!(s >= first.min(target) - 1.0 && s <= first.max(target) + 1.0,
            "{} not between {} and {}", s, first, target);
        prop_assert!((s - target).abs() <= (first - target).abs());
    }
}
