//! Fixed 20S workloads for counting the instructions of one `Balancer::update`.
//!
//! Each scenario runs 1000 updates 100 ms apart through the non-inlined `step_update`, and
//! checks the masks, so the test also guards the behaviour it measures. To count:
//!
//! ```text
//! cargo test --release -p bms-core --test balance_cost --no-run   # prints the binary path
//! BALANCE_COST=imbalanced valgrind --tool=callgrind --toggle-collect='*step_update*' <binary>
//! ```
//! and divide "Collected" by 1000. `BALANCE_COST` picks one scenario (`discharge`, `balanced`,
//! `imbalanced`, `reselect`), with `_range` appended to pass the caller's cell range; unset,
//! all run.

use bms_core::balance::{BalanceConfig, BalanceInput, Balancer};
use bms_core::time::{Duration, Instant};
use bms_core::units::{DeciCelsius, MilliAmps, MilliVolts};
use std::hint::black_box;

const STEPS: u64 = 1_000;

#[inline(never)]
fn step_update(b: &mut Balancer, i: &BalanceInput<'_>) -> u32 {
    b.update(black_box(i))
}

/// Runs the scenario; returns the union and the last of the masks.
fn run(cfg: BalanceConfig, cells: &[MilliVolts], current_ma: i32, range: bool) -> (u32, u32) {
    let mut b = Balancer::new(cfg);
    let lo = cells.iter().min().copied().unwrap_or(MilliVolts::ZERO);
    let hi = cells.iter().max().copied().unwrap_or(MilliVolts::ZERO);
    let (mut union, mut last) = (0, 0);
    for t in 0..STEPS {
        let input = BalanceInput {
            now: Instant::from_millis(t * 100),
            cells,
            current: Some(MilliAmps::from_ma(current_ma)),
            faults_present: false,
            uv_warning: MilliVolts::from_mv(3_000),
            board_temp: Some(DeciCelsius::from_celsius(30)),
            cell_soc: None,
            cell_range: if range { Some((lo, hi)) } else { None },
        };
        last = step_update(&mut b, &input);
        union |= last;
    }
    (union, last)
}

#[test]
fn cost_scenarios() {
    let only = std::env::var("BALANCE_COST").ok();
    let flat = [MilliVolts::from_mv(4_050); 20];
    // 4050 + 0/7/14/21/28 mV repeating: 12 cells at least 14 mV above the lowest.
    let stair: Vec<MilliVolts> = (0..20u32)
        .map(|k| MilliVolts::from_mv(4_050 + (k % 5) * 7))
        .collect();
    let stair_mask = (0..20).filter(|k| k % 5 >= 2).fold(0u32, |m, k| m | 1 << k);
    let contended = BalanceConfig {
        no_adjacent: true,
        reselect_interval: Duration::from_millis(1),
        ..BalanceConfig::nmc()
    };
    for range in [false, true] {
        let name = |s: &str| {
            if range {
                format!("{s}_range")
            } else {
                s.to_owned()
            }
        };
        let want = |s: &str| only.as_deref().is_none_or(|o| o == name(s));
        if want("discharge") {
            assert_eq!(run(BalanceConfig::nmc(), &stair, 20_000, range), (0, 0));
        }
        if want("balanced") {
            assert_eq!(run(BalanceConfig::nmc(), &flat, -5_000, range), (0, 0));
        }
        if want("imbalanced") {
            let r = run(BalanceConfig::nmc(), &stair, -5_000, range);
            assert_eq!(r, (stair_mask, stair_mask));
        }
        if want("reselect") {
            let (union, last) = run(contended, &stair, -5_000, range);
            assert_eq!(union, last);
            assert_eq!(last & (last >> 1), 0);
            // Greedy highest first: the 28 mV cells (k % 5 == 4), then the 14 mV ones
            // (k % 5 == 2) that are not their neighbours.
            let want_mask = (0..20)
                .filter(|k| k % 5 == 4 || k % 5 == 2)
                .fold(0u32, |m, k| m | 1 << k);
            assert_eq!(last, want_mask);
        }
    }
}
