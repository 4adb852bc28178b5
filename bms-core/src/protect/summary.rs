//! One pass over a [`Measurements`] snapshot: extremes, sums and plausibility.
//!
//! Everything after it (protection, SOC, balancing, telemetry) reads this summary, so the
//! cell array is walked once per step.

use crate::config::PlausibilityConfig;
use crate::measure::Measurements;
use crate::units::{DeciCelsius, MilliAmps, MilliVolts};

/// Bits of a cell index in a min/max key (`MAX_CELLS` <= 32).
const KEY_BITS: u32 = 5;
const KEY_MASK: u32 = (1 << KEY_BITS) - 1;
/// Largest reading that fits a key; above it a cell is implausible (134 V).
const MAX_KEY_MV: u32 = u32::MAX >> KEY_BITS;
const _: () = assert!(crate::measure::MAX_CELLS <= 1 << KEY_BITS);

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
    /// Highest plausible cell and its 0-based index (`None` without a plausible cell).
    pub max_cell: Option<(MilliVolts, u8)>,
    /// Lowest plausible cell and its 0-based index.
    pub min_cell: Option<(MilliVolts, u8)>,
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
    /// Order-sensitive fingerprint of the cell readings (for [`StuckDetector`]), `0` when
    /// the AFE did not answer.
    pub fingerprint: u32,
    /// Implausible readings found in this snapshot (without the stuck check, which needs
    /// history; see [`StuckDetector`]).
    pub causes: SensorCauses,
}

impl Summary {
    /// Summarises `m` against the plausibility limits.
    pub fn of(m: &Measurements, p: &PlausibilityConfig) -> Summary {
        let mut s = Summary {
            current: m.current.unwrap_or_default(),
            ..Summary::default()
        };
        if m.current.is_none() {
            s.causes.insert(SensorCauses::CURRENT);
        }
        if m.afe_ok {
            // Readings above MAX_KEY_MV count as implausible, whatever the configuration.
            let (lo, hi) = (p.cell_min.as_mv(), p.cell_max.as_mv().min(MAX_KEY_MV));
            let cells = m.cells();
            // Fast pass over every cell: value in the high bits and the index in the low 5
            // bits, so one min/max finds both; the max key holds 31 - index so that ties
            // keep the lowest index, as the min key does.
            let (mut kmin, mut kmax) = (u32::MAX, 0u32);
            let mut sum = 0u64;
            let mut fp = 0u32;
            for (i, c) in cells.iter().enumerate() {
                let v = c.as_mv();
                sum += u64::from(v);
                fp = fp.wrapping_mul(31).wrapping_add(v);
                // Wraps for readings above MAX_KEY_MV: the range check below catches them.
                let key = v.wrapping_shl(KEY_BITS) | i as u32;
                kmin = kmin.min(key);
                kmax = kmax.max(key ^ KEY_MASK);
            }
            let mut implausible = false;
            let all_plausible = |kmin: u32, kmax: u32| {
                kmin >> KEY_BITS >= lo && kmax >> KEY_BITS <= hi && sum <= u64::from(MAX_KEY_MV)
            };
            if !cells.is_empty() && !all_plausible(kmin, kmax) {
                // Rare: some reading is implausible (or too large for a key); redo the pass
                // over the plausible cells only.
                (kmin, kmax) = (u32::MAX, 0);
                for (i, c) in cells.iter().enumerate() {
                    let v = c.as_mv();
                    if v < lo || v > hi {
                        implausible = true;
                        continue;
                    }
                    let key = (v << KEY_BITS) | i as u32;
                    kmin = kmin.min(key);
                    kmax = kmax.max(key ^ KEY_MASK);
                }
            }
            if implausible {
                s.causes.insert(SensorCauses::CELL_RANGE);
            }
            if kmin != u32::MAX {
                let unkey = |k: u32, i: u32| (MilliVolts::from_mv(k >> KEY_BITS), i as u8);
                s.min_cell = Some(unkey(kmin, kmin & KEY_MASK));
                s.max_cell = Some(unkey(kmax, (kmax & KEY_MASK) ^ KEY_MASK));
            }
            s.fingerprint = fp;
            let sum = sum.min(u64::from(u32::MAX)) as u32;
            s.cell_sum = MilliVolts::from_mv(sum);
            let mask = (1u32 << m.cell_count.min(31)) - 1;
            s.open_wires = (m.open_wire & mask).count_ones() as u8;
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
        for t in m.cell_temps {
            match t {
                Some(t) if plausible(t) => {
                    s.max_temp = Some(s.max_temp.map_or(t, |x| x.max(t)));
                    s.min_temp = Some(s.min_temp.map_or(t, |x| x.min(t)));
                }
                _ => s.causes.insert(SensorCauses::TEMPERATURE),
            }
        }
        match m.mos_temp {
            Some(t) if plausible(t) => s.mos_temp = Some(t),
            _ => s.causes.insert(SensorCauses::MOS_TEMPERATURE),
        }
        s
    }

    /// Highest minus lowest plausible cell.
    pub fn cell_spread(&self) -> Option<MilliVolts> {
        match (self.max_cell, self.min_cell) {
            (Some((hi, _)), Some((lo, _))) => Some(hi - lo),
            _ => None,
        }
    }
}

/// Detects cell readings that stop changing while current flows (a frozen AFE register).
#[derive(Clone, Debug, Default)]
pub struct StuckDetector {
    last_sum: u32,
    last_fingerprint: u32,
    since: Option<crate::time::Instant>,
}

impl StuckDetector {
    /// Feeds one snapshot; `true` when the cells have been frozen for `p.stuck_after`
    /// with at least `p.stuck_min_current` flowing the whole time.
    pub fn update(&mut self, m: &Measurements, p: &PlausibilityConfig) -> bool {
        self.update_summarised(m, &Summary::of(m, p), p)
    }

    /// As [`update`](Self::update), with the fingerprint and sum the [`Summary`] of `m`
    /// already computed (no second pass over the cells).
    pub fn update_summarised(
        &mut self,
        m: &Measurements,
        s: &Summary,
        p: &PlausibilityConfig,
    ) -> bool {
        if !m.afe_ok {
            self.since = None;
            return false;
        }
        // An order-sensitive fingerprint plus the sum: equal only if (practically) every
        // reading is equal, at one multiply-add per cell instead of keeping a copy.
        let (sum, fp) = (s.cell_sum.as_mv(), s.fingerprint);
        let same = sum == self.last_sum && fp == self.last_fingerprint;
        self.last_sum = sum;
        self.last_fingerprint = fp;
        let flowing = m
            .current
            .is_some_and(|i| i.unsigned_abs() >= p.stuck_min_current.unsigned_abs());
        if !(same && flowing) {
            self.since = None;
            return false;
        }
        let since = *self.since.get_or_insert(m.timestamp);
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

    /// A cell reading and its index.
    type Cell = Option<(u32, u8)>;

    /// The plain definition: extremes over plausible cells, lowest index on ties.
    fn reference(cells: &[u32], lo: u32, hi: u32) -> (Cell, Cell, bool) {
        let mut min: Cell = None;
        let mut max: Cell = None;
        let mut bad = false;
        for (i, &v) in cells.iter().enumerate() {
            if v < lo || v > hi {
                bad = true;
                continue;
            }
            if min.is_none_or(|(m, _)| v < m) {
                min = Some((v, i as u8));
            }
            if max.is_none_or(|(m, _)| v > m) {
                max = Some((v, i as u8));
            }
        }
        (min, max, bad)
    }

    proptest! {
        #[test]
        fn extremes_match_the_plain_definition(
            cells in proptest::collection::vec(
                prop_oneof![0u32..6_000, 3_290u32..3_300, Just(u32::MAX), (1u32 << 27)..(1 << 28)],
                0..=20,
            ),
            lo in 0u32..3_000,
            hi in 2_000u32..200_000_000,
        ) {
            let mut m = Measurements::uniform(cells.len() as u8, MilliVolts::ZERO, Instant::ZERO);
            for (c, &v) in m.cells.iter_mut().zip(&cells) {
                *c = MilliVolts::from_mv(v);
            }
            let s = Summary::of(&m, &plaus(lo, hi));
            // Readings above MAX_KEY_MV are implausible whatever `hi` says.
            let (min, max, bad) = reference(&cells, lo, hi.min(MAX_KEY_MV));
            prop_assert_eq!(s.min_cell.map(|(v, i)| (v.as_mv(), i)), min);
            prop_assert_eq!(s.max_cell.map(|(v, i)| (v.as_mv(), i)), max);
            prop_assert_eq!(s.causes.contains(SensorCauses::CELL_RANGE), bad);
            let sum = cells.iter().map(|&v| u64::from(v)).sum::<u64>().min(u64::from(u32::MAX));
            prop_assert_eq!(u64::from(s.cell_sum.as_mv()), sum);
        }
    }
}
