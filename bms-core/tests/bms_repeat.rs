//! `Bms::step` tells its SOC estimator when a snapshot's cells are those of the last one
//! (its summary compared them already), and the estimator's settled rest then skips its own
//! comparison. Here an estimator stepped beside the `Bms` without that hint (the public
//! `update_with_range` over `SocInput::from_measurements`, or `hold`, with the same current
//! path and cell range) must be in exactly the same state after every step, over runs at
//! rest that repeat, nudge and revert readings, lose the AFE (with other readings in the
//! snapshot), the current reading or the step length, change the cell count, and override
//! the SOC: a hint that is wrong once lets the `Bms`'s estimator take a quick step with
//! readings its filters have not seen, which the plain one does not.

#![allow(clippy::unwrap_used)] // Test helpers panic on broken fixtures by design.

use bms_core::config::{Chemistry, PackConfig, Variant};
use bms_core::protect::Summary;
use bms_core::soc::{SocEstimator, SocInput};
use bms_core::units::Soc;
use bms_core::{Bms, Instant, Measurements, MilliAmpHours, MilliAmps, MilliVolts, MAX_CELLS};
use proptest::prelude::*;

/// What one step does to the readings, or what happens instead of a step.
#[derive(Clone, Debug)]
enum Op {
    /// A snapshot: `cells` says what its readings are, then the rest of it.
    Step {
        cells: Cells,
        afe_ok: bool,
        current: Option<i32>,
        dt_ms: u64,
        count: u8,
    },
    /// The SOC set by hand.
    SetSoc(u16),
    /// A new configuration with this many cells.
    Reconfigure(u8),
}

#[derive(Clone, Debug)]
enum Cells {
    /// The readings of the last snapshot.
    Same,
    /// One cell moved by a few millivolts.
    Nudge(usize, i32),
    /// The readings of the snapshot before the last.
    Revert,
    /// Every cell at one reading.
    Uniform(u32),
}

fn op() -> impl Strategy<Value = Op> {
    let cells = prop_oneof![
        6 => Just(Cells::Same),
        2 => (0..MAX_CELLS, -3i32..=3).prop_map(|(i, d)| Cells::Nudge(i, d)),
        2 => Just(Cells::Revert),
        1 => (3_295u32..3_305).prop_map(Cells::Uniform),
    ];
    let step = (
        cells,
        proptest::bool::weighted(0.9),
        prop_oneof![
            8 => Just(Some(0)),
            2 => (-300i32..300).prop_map(Some),
            1 => (-20_000i32..20_000).prop_map(Some),
            1 => Just(None),
        ],
        prop_oneof![8 => Just(100u64), 1 => 0u64..2_000],
        prop_oneof![8 => Just(16u8), 1 => 0u8..=21],
    )
        .prop_map(|(cells, afe_ok, current, dt_ms, count)| Op::Step {
            cells,
            afe_ok,
            current,
            dt_ms,
            count,
        });
    prop_oneof![
        40 => step,
        1 => (0u16..=1_000).prop_map(Op::SetSoc),
        1 => prop_oneof![Just(16u8), Just(20u8), 8u8..=20].prop_map(Op::Reconfigure),
    ]
}

fn config(cells: u8) -> PackConfig {
    let v: Variant = format!("ANT{cells}S-300A-C").parse().unwrap();
    let mut cfg = PackConfig::preset(v, Chemistry::Lfp);
    // The same estimator configuration for every cell count: the `Bms` keeps its estimator.
    cfg.capacity_mah = MilliAmpHours::from_mah(100_000);
    cfg
}

/// The estimator's whole state (its fields, through `Debug`).
fn state(e: &SocEstimator) -> String {
    format!("{e:?}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_repeat_hint_changes_no_soc_state(
        ops in proptest::collection::vec(op(), 1..300),
        start in 3_296u32..3_304,
    ) {
        let mut cfg = config(16);
        let mut bms = Bms::new(cfg).unwrap();
        let mut plain = bms.soc().clone();
        let mut m = Measurements::uniform(16, MilliVolts::from_mv(start), Instant::ZERO);
        m.current = Some(MilliAmps::ZERO);
        // The readings of every snapshot so far.
        let mut history = vec![m.cells];
        let mut t = 0u64;
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Step { cells, afe_ok, current, dt_ms, count } => {
                    match cells {
                        Cells::Same => {}
                        Cells::Nudge(c, d) => {
                            m.cells[c] = MilliVolts::from_mv(m.cells[c].as_mv().saturating_add_signed(d));
                        }
                        Cells::Revert => m.cells = history[history.len().saturating_sub(2)],
                        Cells::Uniform(mv) => m.cells = [MilliVolts::from_mv(mv); MAX_CELLS],
                    }
                    history.push(m.cells);
                    t += dt_ms;
                    m.timestamp = Instant::from_millis(t);
                    m.afe_ok = afe_ok;
                    m.current = current.map(MilliAmps::from_ma);
                    m.cell_count = count;
                    // What `Bms::step` gives its estimator, without the hint.
                    let fets = bms.outputs().fets;
                    let path_open = !(fets.charge || fets.discharge || fets.precharge);
                    let range = Summary::of(&m, &cfg.plausibility, &mut [MilliVolts::ZERO; MAX_CELLS])
                        .exact_cell_range();
                    match SocInput::from_measurements(&m, path_open) {
                        Some(input) => {
                            plain.update_with_range(&input, range);
                        }
                        None => plain.hold(m.timestamp),
                    }
                    while plain.poll_event().is_some() {}
                    bms.step(&m);
                    while bms.poll_event().is_some() {}
                }
                Op::SetSoc(p) => {
                    let soc = Soc::from_permille_clamped(i32::from(p));
                    bms.set_soc(soc);
                    plain.set_soc(soc);
                }
                Op::Reconfigure(n) => {
                    let next = config(n);
                    assert_eq!(next.soc, cfg.soc);
                    cfg = next;
                    bms.set_config(Instant::from_millis(t), cfg).unwrap();
                }
            }
            prop_assert_eq!(state(bms.soc()), state(&plain), "after op {}", i);
        }
    }
}
