//! One pass over a [`Measurements`] snapshot: extremes, sums and plausibility.
//!
//! Everything after it (protection, SOC, balancing, telemetry) reads this summary, so the
//! cell array is walked once per step.

use crate::config::PlausibilityConfig;
use crate::measure::{Measurements, MAX_CELLS};
use crate::units::{DeciCelsius, MilliAmps, MilliVolts};

/// Readings up to this bound sum exactly in a `u32` over [`MAX_CELLS`] cells.
const MAX_FAST_MV: u32 = u32::MAX / MAX_CELLS as u32;

/// Why readings were judged implausible (a bit set, see the associated constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SensorCauses(u8);

impl SensorCauses {
    /// A cell reading outside the plausible range (e.g. 0 mV or above 5 V).
    pub const CELL_RANGE: SensorCauses = SensorCauses(1 << 0);
    /// An NTC unreadable or outside -40..125 °C.
    pub const TEMPERATURE: SensorCauses = SensorCauses(1 << 1);
    /// Pack voltage disagrees with the sum of the cells.
    pub const PACK_MISMATCH: SensorCauses = SensorCauses(1 << 2);
    /// Cell readings frozen while current flows.
    pub const STUCK: SensorCauses = SensorCauses(1 << 3);
    /// The current sensor gave no reading.
    pub const CURRENT: SensorCauses = SensorCauses(1 << 4);
    /// The pack voltage divider gave no reading.
    pub const PACK: SensorCauses = SensorCauses(1 << 5);
    /// The MOSFET temperature sensor gave no reading or an implausible one.
    pub const MOS_TEMPERATURE: SensorCauses = SensorCauses(1 << 6);

    /// No cause.
    pub const NONE: SensorCauses = SensorCauses(0);

    /// Every cause, lowest bit first.
    pub const ALL: [SensorCauses; 7] = [
        SensorCauses::CELL_RANGE,
        SensorCauses::TEMPERATURE,
        SensorCauses::PACK_MISMATCH,
        SensorCauses::STUCK,
        SensorCauses::CURRENT,
        SensorCauses::PACK,
        SensorCauses::MOS_TEMPERATURE,
    ];

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// `true` with no cause.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// `true` if every bit of `other` is set.
    pub const fn contains(self, other: SensorCauses) -> bool {
        self.0 & other.0 == other.0
    }
    /// Adds `other`.
    pub fn insert(&mut self, other: SensorCauses) {
        self.0 |= other.0;
    }
}

/// Extremes and sums of one snapshot, over plausible readings only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Summary {
    /// Highest plausible cell (`None` without a plausible cell).
    pub max_cell: Option<MilliVolts>,
    /// Lowest plausible cell.
    pub min_cell: Option<MilliVolts>,
    /// Sum of all cells (plausible or not).
    pub cell_sum: MilliVolts,
    /// Pack voltage: the divider if it read, else the cell sum if the AFE answered.
    pub pack: Option<MilliVolts>,
    /// Hottest plausible NTC.
    pub max_temp: Option<DeciCelsius>,
    /// Coldest plausible NTC.
    pub min_temp: Option<DeciCelsius>,
    /// Plausible MOSFET temperature.
    pub mos_temp: Option<DeciCelsius>,
    /// Current (positive = discharge), zero if the sensor did not read.
    pub current: MilliAmps,
    /// Open sense wires among the configured cells.
    pub open_wires: u8,
    /// Every cell reads exactly as in the previous snapshot the AFE answered, with at
    /// least `stuck_min_current` flowing (`false` when less flows or the AFE did not answer
    /// now, where the [`StuckDetector`] it feeds does not look at it).
    pub cells_unchanged: bool,
    /// Implausible readings found in this snapshot (without the stuck check, which needs
    /// history; see [`StuckDetector`]).
    pub causes: SensorCauses,
}

impl Summary {
    /// Summarises `m` against the plausibility limits.
    ///
    /// `last` holds the cell readings of the previous snapshot the AFE answered (as
    /// [`Telemetry::cells`](crate::telemetry::Telemetry::cells) does). When the AFE
    /// answered now, they are compared with this snapshot's ([`Summary::cells_unchanged`])
    /// and replaced by all of `m.cells` (entries past the cell count are meaningless in
    /// both).
    ///
    /// ```
    /// use bms_core::{Instant, Measurements, MilliAmps, MilliVolts, MAX_CELLS};
    /// use bms_core::config::{Chemistry, PackConfig};
    /// use bms_core::protect::Summary;
    ///
    /// let cfg = PackConfig::preset("ANT16S-80A-T".parse()?, Chemistry::Lfp);
    /// let mut m = Measurements::uniform(16, MilliVolts::from_mv(3_300), Instant::ZERO);
    /// m.cells[3] = MilliVolts::from_mv(3_310);
    /// m.current = Some(MilliAmps::from_amps(10));
    /// let mut last = [MilliVolts::ZERO; MAX_CELLS];
    /// let s = Summary::of(&m, &cfg.plausibility, &mut last);
    /// assert_eq!(s.max_cell, Some(MilliVolts::from_mv(3_310)));
    /// assert_eq!(s.cell_spread(), Some(MilliVolts::from_mv(10)));
    /// assert!(!s.cells_unchanged);
    /// assert_eq!(&last[..16], m.cells());
    /// assert!(Summary::of(&m, &cfg.plausibility, &mut last).cells_unchanged);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn of(
        m: &Measurements,
        p: &PlausibilityConfig,
        last: &mut [MilliVolts; MAX_CELLS],
    ) -> Summary {
        Summary::remembered(m, p, last, &mut CellMemo::default()).0
    }

    /// [`Summary::of`], with the cell part of the last summary of the readings in `last`
    /// in `memo`: readings equal to those are not walked again (nor copied: the entries of
    /// `last` past the cell count keep what they held). `memo` must be reset
    /// ([`CellMemo::default`]) whenever `last` is changed by anything but this function.
    ///
    /// Also returns whether the memo served: the AFE answered, and the cell count and every
    /// reading of `m` are those of the last snapshot given here with the AFE answering
    /// (since `memo` was last reset).
    // Always inlined: its one caller is `Bms::step`, which then keeps the summary in its
    // own frame instead of receiving it through a call.
    #[inline(always)]
    pub(crate) fn remembered(
        m: &Measurements,
        p: &PlausibilityConfig,
        last: &mut [MilliVolts; MAX_CELLS],
        memo: &mut CellMemo,
    ) -> (Summary, bool) {
        let mut repeat = false;
        let mut s = Summary {
            current: m.current.unwrap_or_default(),
            ..Summary::default()
        };
        if m.current.is_none() {
            s.causes.insert(SensorCauses::CURRENT);
        }
        if m.afe_ok {
            let (lo, hi) = (p.cell_min.as_mv(), p.cell_max.as_mv());
            let cells = m.cells();
            let same = unchanged(cells.len(), &m.cells, last);
            s.cells_unchanged = same && flowing(m, p);
            let n = cells.len() as u8;
            let (min, max, sum) = match memo.0 {
                // Nothing moved: the extremes and the sum are those of the last pass (a
                // pack at rest reads the same for many steps).
                Some((count, parts)) if same && count == n => {
                    repeat = true;
                    parts
                }
                _ => {
                    let parts = cell_pass(cells);
                    copy_cells(&m.cells, last);
                    *memo = CellMemo(Some((n, parts)));
                    parts
                }
            };
            let (min, max) = if !cells.is_empty() && (min < lo || max > hi) {
                s.causes.insert(SensorCauses::CELL_RANGE);
                plausible_extremes(cells, lo, hi)
            } else {
                (min, max)
            };
            if min <= max {
                s.min_cell = Some(MilliVolts::from_mv(min));
                s.max_cell = Some(MilliVolts::from_mv(max));
            }
            s.cell_sum = MilliVolts::from_mv(sum);
            // Masked and counted only when a bit is set (the usual mask is zero): a Cortex-M
            // has no population-count instruction.
            if m.open_wire != 0 {
                let open = m.open_wire & ((1u32 << m.cell_count.min(31)) - 1);
                s.open_wires = open.count_ones() as u8;
            }
        }
        s.pack = match m.pack {
            Some(p) => Some(p),
            None => {
                s.causes.insert(SensorCauses::PACK);
                m.afe_ok.then_some(s.cell_sum)
            }
        };
        if let (Some(pack), true) = (m.pack, m.afe_ok) {
            if pack.abs_diff(s.cell_sum) > p.pack_tolerance {
                s.causes.insert(SensorCauses::PACK_MISMATCH);
            }
        }
        let plausible = |t: DeciCelsius| t >= p.temp_min && t <= p.temp_max;
        // The two NTCs as a pair, not a loop over `Option`s: one compare orders them.
        const _: () = assert!(crate::measure::NTC_COUNT == 2);
        let [t1, t2] = m.cell_temps;
        match (t1.filter(|&t| plausible(t)), t2.filter(|&t| plausible(t))) {
            (Some(a), Some(b)) => {
                s.max_temp = Some(a.max(b));
                s.min_temp = Some(a.min(b));
            }
            (Some(t), None) | (None, Some(t)) => {
                s.causes.insert(SensorCauses::TEMPERATURE);
                s.max_temp = Some(t);
                s.min_temp = Some(t);
            }
            (None, None) => s.causes.insert(SensorCauses::TEMPERATURE),
        }
        match m.mos_temp {
            Some(t) if plausible(t) => s.mos_temp = Some(t),
            _ => s.causes.insert(SensorCauses::MOS_TEMPERATURE),
        }
        (s, repeat)
    }

    /// Lowest and highest cell when every reading was plausible (then they are the extremes
    /// over all cells, which is what the SOC windows and the balancer may take for their own
    /// scan); `None` otherwise.
    pub fn exact_cell_range(&self) -> Option<(MilliVolts, MilliVolts)> {
        self.min_cell
            .zip(self.max_cell)
            .filter(|_| !self.causes.contains(SensorCauses::CELL_RANGE))
    }

    /// Highest minus lowest plausible cell.
    pub fn cell_spread(&self) -> Option<MilliVolts> {
        match (self.max_cell, self.min_cell) {
            (Some(hi), Some(lo)) => Some(hi - lo),
            _ => None,
        }
    }
}

/// The cell count, lowest and highest reading and saturated sum of the readings last
/// copied into `last` by [`Summary::remembered`] (`None`: nothing remembered), so that a
/// snapshot whose readings did not move is not walked again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CellMemo(Option<(u8, (u32, u32, u32))>);

/// `true` when the first `n` readings of `cells` and `last` are equal, four cells per
/// round, ending at the first block with a cell that moved. Indexed over the whole arrays:
/// no iterator adapters to unwind (`zip` of slices cost a Cortex-M a third more).
#[inline(always)]
fn unchanged(n: usize, cells: &[MilliVolts; MAX_CELLS], last: &[MilliVolts; MAX_CELLS]) -> bool {
    let n = n.min(MAX_CELLS);
    let x = |i: usize| cells[i].as_mv() ^ last[i].as_mv();
    let mut i = 0;
    while i + 4 <= n {
        if x(i) | x(i + 1) | x(i + 2) | x(i + 3) != 0 {
            return false;
        }
        i += 4;
    }
    while i < n {
        if x(i) != 0 {
            return false;
        }
        i += 1;
    }
    true
}

/// Lowest and highest reading and the saturated sum of `cells`, in one pass.
#[inline(always)]
fn cell_pass(cells: &[MilliVolts]) -> (u32, u32, u32) {
    let (mut min, mut max, mut sum) = (u32::MAX, 0u32, 0u32);
    // Four cells per round, extremes within the block first: two double-word loads,
    // pairwise compares and one loop test per four cells on a Cortex-M (9.5
    // instructions a cell instead of 10); 8, 12, 16 and 20 cells leave no remainder.
    let mut blocks = cells.chunks_exact(4);
    for b in &mut blocks {
        if let [a, b, c, d] = *b {
            let (a, b, c, d) = (a.as_mv(), b.as_mv(), c.as_mv(), d.as_mv());
            sum = sum.wrapping_add(a.wrapping_add(b).wrapping_add(c.wrapping_add(d)));
            min = min.min(a.min(b).min(c.min(d)));
            max = max.max(a.max(b).max(c.max(d)));
        }
    }
    for c in blocks.remainder() {
        let v = c.as_mv();
        sum = sum.wrapping_add(v);
        min = min.min(v);
        max = max.max(v);
    }
    if max > MAX_FAST_MV {
        // Rare: absurd readings; the u32 sum may have wrapped, so sum again, saturating.
        let wide: u64 = cells.iter().map(|c| u64::from(c.as_mv())).sum();
        sum = wide.min(u64::from(u32::MAX)) as u32;
    }
    (min, max, sum)
}

/// Rare: some reading is implausible; the extremes over the others (`(u32::MAX, 0)`
/// without any).
#[cold]
#[inline(never)]
fn plausible_extremes(cells: &[MilliVolts], lo: u32, hi: u32) -> (u32, u32) {
    let plausible = || {
        cells
            .iter()
            .map(|c| c.as_mv())
            .filter(|v| (lo..=hi).contains(v))
    };
    (
        plausible().min().unwrap_or(u32::MAX),
        plausible().max().unwrap_or(0),
    )
}

/// Copies every cell reading, four at a time and unrolled: each 16-byte block is copied
/// inline (a load-multiple and a store-multiple on a Cortex-M, two vector moves on x86),
/// where one 80-byte copy is a library call that moves a word per loop on a Cortex-M.
fn copy_cells(from: &[MilliVolts; MAX_CELLS], to: &mut [MilliVolts; MAX_CELLS]) {
    const _: () = assert!(MAX_CELLS == 20);
    to[0..4].copy_from_slice(&from[0..4]);
    to[4..8].copy_from_slice(&from[4..8]);
    to[8..12].copy_from_slice(&from[8..12]);
    to[12..16].copy_from_slice(&from[12..16]);
    to[16..20].copy_from_slice(&from[16..20]);
}

/// At least `stuck_min_current` flows (the only time frozen readings count as a fault).
fn flowing(m: &Measurements, p: &PlausibilityConfig) -> bool {
    m.current
        .is_some_and(|i| i.unsigned_abs() >= p.stuck_min_current.unsigned_abs())
}

/// Detects cell readings that stop changing while current flows (a frozen AFE register).
#[derive(Clone, Debug, Default)]
pub struct StuckDetector {
    since: crate::time::OptInstant,
}

impl StuckDetector {
    /// Feeds one snapshot and its [`Summary`]; `true` when the cells have read the same
    /// for `p.stuck_after` with at least `p.stuck_min_current` flowing the whole time (both
    /// are in [`Summary::cells_unchanged`], which is also `false` while the AFE is silent).
    pub fn update(&mut self, m: &Measurements, s: &Summary, p: &PlausibilityConfig) -> bool {
        if !s.cells_unchanged {
            self.since = crate::time::OptInstant::NONE;
            return false;
        }
        let since = self.since.get_or_insert(m.timestamp);
        m.timestamp.duration_since(since) >= p.stuck_after
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::time::{Duration, Instant};
    use proptest::prelude::*;

    fn plaus(lo: u32, hi: u32) -> PlausibilityConfig {
        PlausibilityConfig {
            cell_min: MilliVolts::from_mv(lo),
            cell_max: MilliVolts::from_mv(hi),
            temp_min: DeciCelsius::from_deci(-400),
            temp_max: DeciCelsius::from_deci(1_250),
            pack_tolerance: MilliVolts::from_mv(1_000),
            stuck_after: Duration::from_secs(10),
            stuck_min_current: MilliAmps::from_ma(1_000),
        }
    }

    /// The plain definition: extremes over plausible cells.
    fn reference(cells: &[u32], lo: u32, hi: u32) -> (Option<u32>, Option<u32>, bool) {
        let plausible = || cells.iter().copied().filter(|v| (lo..=hi).contains(v));
        let bad = cells.iter().any(|v| !(lo..=hi).contains(v));
        (plausible().min(), plausible().max(), bad)
    }

    proptest! {
        #[test]
        fn extremes_match_the_plain_definition(
            cells in proptest::collection::vec(
                (
                    prop_oneof![0u32..6_000, 3_290u32..3_300, Just(u32::MAX), (1u32 << 27)..(1 << 28)],
                    0u8..10, // 1..=4: the value is at or just beyond a bound instead
                ),
                0..=20,
            ),
            lo in 0u32..3_000,
            hi in 2_000u32..200_000_000,
            current in proptest::option::of(-3_000i32..3_000),
        ) {
            let cells: Vec<u32> = cells
                .iter()
                .map(|&(v, edge)| match edge {
                    1 => lo.saturating_sub(1),
                    2 => lo,
                    3 => hi,
                    4 => hi + 1,
                    _ => v,
                })
                .collect();
            let mut m = Measurements::uniform(cells.len() as u8, MilliVolts::ZERO, Instant::ZERO);
            for (c, &v) in m.cells.iter_mut().zip(&cells) {
                *c = MilliVolts::from_mv(v);
            }
            m.current = current.map(MilliAmps::from_ma);
            let mut last = [MilliVolts::from_mv(7); MAX_CELLS];
            let s = Summary::of(&m, &plaus(lo, hi), &mut last);
            prop_assert_eq!(last, m.cells);
            // `plaus` asks for 1 A to call readings stuck.
            let flowing = current.is_some_and(|i| i.unsigned_abs() >= 1_000);
            prop_assert_eq!(s.cells_unchanged, flowing && cells.iter().all(|&v| v == 7));
            let (min, max, bad) = reference(&cells, lo, hi);
            prop_assert_eq!(s.min_cell.map(|v| v.as_mv()), min);
            prop_assert_eq!(s.max_cell.map(|v| v.as_mv()), max);
            prop_assert_eq!(s.causes.contains(SensorCauses::CELL_RANGE), bad);
            let sum = cells.iter().map(|&v| u64::from(v)).sum::<u64>().min(u64::from(u32::MAX));
            prop_assert_eq!(u64::from(s.cell_sum.as_mv()), sum);
        }

        /// Over a run of snapshots that often repeat their readings or move a run of cells
        /// (one, two, up to all) by the same 1 mV (with dropouts, cell count and plausibility changes), the remembered
        /// summary is the fresh one, `last` holds the readings of the last snapshot the AFE
        /// answered, and a repeat (and, under current, "unchanged") is reported exactly when
        /// the AFE answered with those again.
        #[test]
        fn remembered_is_the_fresh_summary(
            steps in proptest::collection::vec(
                (
                    // 0: repeat, 1: `len` cells from `at` move by 1 mV, else new readings
                    (
                        0u8..4,
                        0usize..MAX_CELLS,
                        prop_oneof![Just(1usize), Just(2), 1usize..=MAX_CELLS],
                        any::<bool>(),
                    ),
                    proptest::collection::vec(
                        prop_oneof![3_290u32..3_300, 0u32..6_000, Just(u32::MAX)],
                        MAX_CELLS,
                    ),
                    prop_oneof![Just(16u8), Just(20u8), 0u8..=20],
                    proptest::bool::weighted(0.9),           // AFE answered
                    prop_oneof![Just(2_000u32), 0u32..4_000], // cell_min
                    proptest::option::of(-3_000i32..3_000),
                ),
                1..40,
            ),
        ) {
            let mut memo = CellMemo::default();
            let mut last = [MilliVolts::from_mv(7); MAX_CELLS];
            let mut m = Measurements::uniform(16, MilliVolts::from_mv(3_295), Instant::ZERO);
            // The cells of the last snapshot the AFE answered.
            let mut answered: Option<Vec<MilliVolts>> = None;
            for ((kind, at, len, up), cells, count, afe_ok, lo, current) in steps {
                match kind {
                    0 => {}
                    1 => {
                        for c in &mut m.cells[at..(at + len).min(MAX_CELLS)] {
                            let v = c.as_mv();
                            let v = if up { v.saturating_add(1) } else { v.saturating_sub(1) };
                            *c = MilliVolts::from_mv(v);
                        }
                    }
                    _ => {
                        for (c, v) in m.cells.iter_mut().zip(cells) {
                            *c = MilliVolts::from_mv(v);
                        }
                        m.cell_count = count;
                    }
                }
                m.afe_ok = afe_ok;
                m.current = current.map(MilliAmps::from_ma);
                let p = plaus(lo, 4_000);
                let before = last;
                let mut fresh_last = last;
                let fresh = Summary::of(&m, &p, &mut fresh_last);
                let (s, repeat) = Summary::remembered(&m, &p, &mut last, &mut memo);
                prop_assert_eq!(s, fresh);
                // A repeat: the AFE answered with the cells it gave last time it answered.
                prop_assert_eq!(repeat, m.afe_ok && answered.as_deref() == Some(m.cells()));
                // "Unchanged" (for the stuck check): the readings are those in `last`, and
                // current flows (`plaus` asks for 1 A).
                let flowing = current.is_some_and(|i| i.unsigned_abs() >= 1_000);
                let same = m.cells() == &before[..m.cells().len()];
                prop_assert_eq!(s.cells_unchanged, m.afe_ok && flowing && same);
                if m.afe_ok {
                    answered = Some(m.cells().to_vec());
                }
                let n = m.cells().len();
                prop_assert_eq!(&last[..n], &fresh_last[..n]);
            }
        }

        #[test]
        fn temperatures_match_the_plain_definition(
            temps in proptest::array::uniform2(proptest::option::of(-600i16..1_400)),
            mos in proptest::option::of(-600i16..1_400),
        ) {
            let mut m = Measurements::uniform(4, MilliVolts::from_mv(3_300), Instant::ZERO);
            m.cell_temps = temps.map(|t| t.map(DeciCelsius::from_deci));
            m.mos_temp = mos.map(DeciCelsius::from_deci);
            let p = plaus(2_000, 4_000);
            let s = Summary::of(&m, &p, &mut [MilliVolts::ZERO; MAX_CELLS]);
            let ok = |t: &i16| (-400..=1_250).contains(t);
            let plausible = || temps.iter().flatten().copied().filter(ok);
            prop_assert_eq!(s.max_temp.map(|t| t.as_deci()), plausible().max());
            prop_assert_eq!(s.min_temp.map(|t| t.as_deci()), plausible().min());
            prop_assert_eq!(
                s.causes.contains(SensorCauses::TEMPERATURE),
                temps.iter().any(|t| !t.as_ref().is_some_and(ok))
            );
            prop_assert_eq!(s.mos_temp.map(|t| t.as_deci()), mos.filter(ok));
            prop_assert_eq!(s.causes.contains(SensorCauses::MOS_TEMPERATURE), !mos.is_some_and(|t| ok(&t)));
        }
    }

    /// Readings are stuck once they held still under current for `stuck_after`, not
    /// before; a move or a pause of the current starts the count again.
    #[test]
    fn stuck_after_the_configured_time() {
        let p = plaus(2_000, 4_000); // stuck after 10 s at 1 A or more
        let mut m = Measurements::uniform(16, MilliVolts::from_mv(3_300), Instant::ZERO);
        m.current = Some(MilliAmps::from_amps(2));
        let mut last = [MilliVolts::ZERO; MAX_CELLS];
        let mut d = StuckDetector::default();
        let mut at = |m: &mut Measurements, ms: u64, d: &mut StuckDetector| {
            m.timestamp = Instant::from_millis(ms);
            let s = Summary::of(m, &p, &mut last);
            d.update(m, &s, &p)
        };
        assert!(!at(&mut m, 0, &mut d)); // the first reading only fills `last`
        assert!(!at(&mut m, 100, &mut d)); // unchanged from here
        assert!(!at(&mut m, 10_099, &mut d));
        assert!(at(&mut m, 10_100, &mut d));
        m.current = Some(MilliAmps::from_ma(999));
        assert!(!at(&mut m, 10_200, &mut d));
        m.current = Some(MilliAmps::from_amps(2));
        assert!(!at(&mut m, 10_300, &mut d));
        assert!(!at(&mut m, 20_299, &mut d));
        assert!(at(&mut m, 20_300, &mut d));
    }

    #[test]
    fn causes_are_distinct_bits() {
        let mut seen = 0u8;
        for (n, c) in SensorCauses::ALL.into_iter().enumerate() {
            assert_eq!(c.bits(), 1 << n, "{c:?}");
            assert_eq!(c.bits().count_ones(), 1, "{c:?}");
            assert_eq!(seen & c.bits(), 0, "{c:?}");
            seen |= c.bits();
        }
        assert_eq!(SensorCauses::NONE.bits(), 0);
    }

    /// Open wires are counted over the cells in use only.
    #[test]
    fn open_wires_beyond_the_cell_count_do_not_count() {
        let mut m = Measurements::uniform(16, MilliVolts::from_mv(3_300), Instant::ZERO);
        m.open_wire = 0b110 | 1 << 16 | 1 << 20;
        let s = Summary::of(&m, &plaus(2_000, 4_000), &mut [MilliVolts::ZERO; MAX_CELLS]);
        assert_eq!(s.open_wires, 2);
        m.open_wire = 0;
        let s = Summary::of(&m, &plaus(2_000, 4_000), &mut [MilliVolts::ZERO; MAX_CELLS]);
        assert_eq!(s.open_wires, 0);
    }

    /// The pack reading may differ from the cell sum by up to the tolerance; a missing
    /// current or pack reading is a cause of its own (the cell sum stands in for the pack).
    #[test]
    fn pack_and_current_causes() {
        let p = plaus(2_000, 4_000); // tolerance 1000 mV
        let mut m = Measurements::uniform(16, MilliVolts::from_mv(3_300), Instant::ZERO);
        let sum = 16 * 3_300;
        for (pack, bad) in [
            (sum + 1_000, false),
            (sum + 1_001, true),
            (sum - 1_000, false),
            (sum - 1_001, true),
        ] {
            m.pack = Some(MilliVolts::from_mv(pack));
            let s = Summary::of(&m, &p, &mut [MilliVolts::ZERO; MAX_CELLS]);
            assert_eq!(
                s.causes.contains(SensorCauses::PACK_MISMATCH),
                bad,
                "pack {pack}"
            );
            assert!(!s.causes.contains(SensorCauses::PACK));
            assert_eq!(s.pack, Some(MilliVolts::from_mv(pack)));
        }
        m.pack = None;
        m.current = None;
        let s = Summary::of(&m, &p, &mut [MilliVolts::ZERO; MAX_CELLS]);
        assert!(s.causes.contains(SensorCauses::PACK));
        assert!(s.causes.contains(SensorCauses::CURRENT));
        assert!(!s.causes.contains(SensorCauses::PACK_MISMATCH));
        assert_eq!(s.pack, Some(MilliVolts::from_mv(sum)));
    }

    /// The exact range is the extremes when every reading was plausible, else unknown.
    #[test]
    fn exact_cell_range_only_when_every_reading_is_plausible() {
        let p = plaus(2_000, 4_000);
        let mut m = Measurements::uniform(16, MilliVolts::from_mv(3_300), Instant::ZERO);
        m.cells[3] = MilliVolts::from_mv(3_310);
        m.cells[7] = MilliVolts::from_mv(3_290);
        let s = Summary::of(&m, &p, &mut [MilliVolts::ZERO; MAX_CELLS]);
        let range = (MilliVolts::from_mv(3_290), MilliVolts::from_mv(3_310));
        assert_eq!(s.exact_cell_range(), Some(range));
        m.cells[9] = MilliVolts::from_mv(4_001);
        let s = Summary::of(&m, &p, &mut [MilliVolts::ZERO; MAX_CELLS]);
        assert_eq!((s.min_cell, s.max_cell), (Some(range.0), Some(range.1)));
        assert_eq!(s.exact_cell_range(), None);
    }
}
