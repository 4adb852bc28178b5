//! Fixed 20S workloads for counting the instructions of the SOC part of one control step.
//!
//! `step_soc` does what `Bms::step` does with the estimator: `update_measurements` (here
//! without the cell range), drain `poll_event`, then read `soc`, `soh`, `remaining`,
//! `full_capacity` and `cycles` for the telemetry. Each scenario steps 100 warm-up snapshots
//! (boot) outside of it, then 1000 snapshots 100 ms apart through it, and checks the
//! results, so the test also guards the behaviour it measures. To count:
//!
//! ```text
//! cargo test --release -p bms-core --test soc_cost --no-run   # prints the binary path
//! SOC_COST=steady valgrind --tool=callgrind --toggle-collect='*step_soc*' <binary>
//! ```
//! and divide "Collected" by 1000. `SOC_COST` picks one scenario (`steady`: 10 A discharge
//! with ±50 mA of noise and cells at 3298..=3302 mV changing every step; `still`: no
//! current, cells constant; `charging`: 20 A charge with noise, cells below the full
//! threshold); unset, all run.

use bms_core::measure::{Measurements, MAX_CELLS};
use bms_core::soc::{SocConfig, SocEstimator};
use bms_core::units::{MilliAmpHours, MilliAmps, MilliVolts, Permille, Soc};
use bms_core::Instant;
use std::hint::black_box;

const WARM_UP: u64 = 100;
const STEPS: u64 = 1_000;
const PERIOD_MS: u64 = 100;
const CAP_MAH: u32 = 100_000;
const MAMS_PER_MAH: i64 = 3_600_000;

/// What the telemetry takes from the estimator in one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reading {
    soc: Soc,
    soh: Permille,
    remaining: MilliAmpHours,
    full: MilliAmpHours,
    cycles: u32,
    events: u32,
}

#[inline(always)]
fn soc_part(est: &mut SocEstimator, m: &Measurements, path_open: bool) -> Reading {
    est.update_measurements(m, path_open, None);
    let mut events = 0;
    while let Some(e) = est.poll_event() {
        black_box(e);
        events += 1;
    }
    Reading {
        soc: est.soc(),
        soh: est.soh(),
        remaining: est.remaining(),
        full: est.full_capacity(),
        cycles: est.cycles(),
        events,
    }
}

#[inline(never)]
fn step_soc(est: &mut SocEstimator, m: &Measurements) -> Reading {
    soc_part(est, black_box(m), false)
}

/// xorshift64: the noise of the workloads.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `WARM_UP + STEPS` snapshots of 20 cells: `ma` ± `noise_ma` and cells at `mv` plus
/// `0..=spread_mv`, drawn anew every step.
fn snapshots(ma: i32, noise_ma: i32, mv: u32, spread_mv: u32) -> Vec<Measurements> {
    let mut rng = Noise(0x5eed_0020);
    (0..WARM_UP + STEPS)
        .map(|k| {
            let now = Instant::from_millis(k * PERIOD_MS);
            let mut m = Measurements::uniform(20, MilliVolts::from_mv(mv), now);
            for c in &mut m.cells[..MAX_CELLS] {
                *c = MilliVolts::from_mv(mv + (rng.next() % u64::from(spread_mv + 1)) as u32);
            }
            let n = (rng.next() % (2 * noise_ma as u64 + 1)) as i32 - noise_ma;
            m.current = Some(MilliAmps::from_ma(ma + n));
            m
        })
        .collect()
}

/// Boots on the warm-up snapshots, then runs the measured ones; returns every reading and
/// the remaining charge (mA·ms) before and after the measured steps.
fn run(snaps: &[Measurements]) -> (Vec<Reading>, i64, i64, SocEstimator) {
    let mut est = SocEstimator::new(SocConfig::lfp(), MilliAmpHours::from_mah(CAP_MAH), None);
    let (warm, measured) = snaps.split_at(WARM_UP as usize);
    for m in warm {
        soc_part(&mut est, m, false);
    }
    let before = est.remaining_charge().as_raw();
    let readings = measured.iter().map(|m| step_soc(&mut est, m)).collect();
    let after = est.remaining_charge().as_raw();
    (readings, before, after, est)
}

/// The charge the measured snapshots move (mA·ms, positive = out), counting every reading
/// as it stands (no offset is learned with the path closed, the dead band is 2 A).
fn counted(snaps: &[Measurements]) -> i64 {
    snaps[WARM_UP as usize..]
        .iter()
        .map(|m| i64::from(m.current.map_or(0, MilliAmps::as_ma)) * PERIOD_MS as i64)
        .sum()
}

/// Every reading agrees with the direct formulas on the final charge.
fn check_last(r: &Reading, est: &SocEstimator) {
    let q = est.remaining_charge().as_raw();
    let full = i64::from(CAP_MAH) * MAMS_PER_MAH;
    assert_eq!(i64::from(r.soc.as_permille()), (q * 2_000 / full + 1) / 2);
    assert_eq!(i64::from(r.remaining.as_mah()), q / MAMS_PER_MAH);
    assert_eq!(r.full.as_mah(), CAP_MAH);
    assert_eq!(r.soh.as_permille(), 1_000);
    assert_eq!(r.cycles, 0);
}

#[test]
fn cost_scenarios() {
    let only = std::env::var("SOC_COST").ok();
    let want = |s: &str| only.as_deref().is_none_or(|o| o == s);
    if want("steady") {
        let snaps = snapshots(10_000, 50, 3_298, 4);
        let (readings, before, after, est) = run(&snaps);
        assert_eq!(before - after, counted(&snaps));
        assert!(readings.iter().all(|r| r.events == 0));
        assert!(readings.windows(2).all(|w| w[1].soc <= w[0].soc));
        check_last(readings.last().expect("steps"), &est);
    }
    if want("still") {
        let snaps = snapshots(0, 0, 3_300, 0);
        let (readings, before, after, est) = run(&snaps);
        assert_eq!(before, after);
        // LFP 3300 mV: a fifth of the way from 65 % (3299 mV) to 70 % (3304 mV).
        assert!(readings
            .iter()
            .all(|r| r.soc.as_permille() == 660 && r.events == 0));
        assert_eq!(est.ocv_soc(), Some(Soc::from_permille_clamped(660)));
        check_last(readings.last().expect("steps"), &est);
    }
    if want("charging") {
        let snaps = snapshots(-20_000, 50, 3_320, 4);
        let (readings, before, after, est) = run(&snaps);
        assert_eq!(before - after, counted(&snaps));
        assert!(readings.iter().all(|r| r.events == 0));
        assert!(readings.windows(2).all(|w| w[1].soc >= w[0].soc));
        assert!(readings.last().expect("steps").soc > readings[0].soc);
        check_last(readings.last().expect("steps"), &est);
    }
}
