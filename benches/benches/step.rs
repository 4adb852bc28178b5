//! Wall-clock cost of one control step and of its parts (criterion).
//!
//! `cargo bench -p bms-benches --bench step`; instruction counts that do not depend on the
//! machine come from `benches/callgrind-step.sh`.
// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bms_core::protect::{limits, Summary};
use bms_core::soc::SocInput;
use bms_core::Bms;
use bms_hal_mock::bench::{State, Workload};
use criterion::{criterion_group, criterion_main, Criterion};

/// Measured snapshots per workload; the bench cycles through them.
const SNAPSHOTS: usize = 1_000;

fn warmed(cells: u8, state: State) -> (Workload, Bms) {
    let w = Workload::new(cells, state, SNAPSHOTS).expect("workload");
    let mut bms = w.bms().expect("bms");
    w.warm_up(&mut bms, None);
    (w, bms)
}

/// Times `iters` calls of `step` on `state`'s clones: each clone (made outside the timed
/// part) takes up to [`SNAPSHOTS`] consecutive snapshots in order, so the time moves
/// forward from one call to the next as in a running BMS.
fn consecutive<S: Clone>(
    iters: u64,
    state: &S,
    snapshots: &[bms_core::Measurements],
    mut step: impl FnMut(&mut S, &bms_core::Measurements),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(snapshots.len() as u64);
        let mut s = state.clone();
        let start = Instant::now();
        for m in &snapshots[..n as usize] {
            step(&mut s, black_box(m));
        }
        total += start.elapsed();
        left -= n;
    }
    total
}

/// `Bms::step` over consecutive snapshots (time advances 100 ms per step).
fn full_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("step");
    for (name, cells, state) in [
        ("8S steady", 8, State::Steady),
        ("16S steady", 16, State::Steady),
        ("20S steady", 20, State::Steady),
        ("20S faults", 20, State::Faults),
        ("20S still", 20, State::Still),
        ("20S rest", 20, State::Rest),
    ] {
        let (w, bms) = warmed(cells, state);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                consecutive(iters, &bms, w.measured(), |bms, m| {
                    black_box(bms.step(m));
                })
            });
        });
    }
    g.finish();
}

/// Each part on its own, 20S steady state.
fn parts(c: &mut Criterion) {
    let (w, bms) = warmed(20, State::Steady);
    let cfg = *bms.config();
    let m = &w.measured()[0];
    let mut g = c.benchmark_group("part 20S");
    let mut last = bms.telemetry().cells;
    g.bench_function("Summary::of", |b| {
        b.iter(|| Summary::of(black_box(m), black_box(&cfg.plausibility), &mut last))
    });
    let s = Summary::of(m, &cfg.plausibility, &mut last);
    g.bench_function("Protection::step", |b| {
        b.iter_custom(|iters| {
            consecutive(iters, bms.protection(), w.measured(), |p, m| {
                black_box(p.step(&cfg, m, black_box(&s), &mut |t| {
                    black_box(t);
                }));
            })
        })
    });
    g.bench_function("SocEstimator::update", |b| {
        b.iter_custom(|iters| {
            consecutive(iters, bms.soc(), w.measured(), |soc, m| {
                let input = SocInput::from_measurements(m, false).expect("current");
                black_box(soc.update(&input));
            })
        })
    });
    let soc = bms.telemetry().soc;
    g.bench_function("limits", |b| {
        b.iter(|| limits::limits(black_box(&cfg), black_box(&s), soc, true, true))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = full_step, parts
}
criterion_main!(benches);
