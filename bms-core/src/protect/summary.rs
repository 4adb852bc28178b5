//! One pass over a [`Measurements`] snapshot: extremes, sums and plausibility.
//!
//! Everything after it (protection, SOC, balancing, telemetry) reads this summary, so the
//! cell array is walked once per step.

use crate::config::PlausibilityConfig;
use crate::measure::Measurements;
use crate::units::{DeciCelsius, MilliAmps, MilliVolts};

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
            let (lo, hi) = (p.cell_min.as_mv(), p.cell_max.as_mv());
            let (mut min, mut max) = ((u32::MAX, 0u8), (0u32, 0u8));
            let mut sum = 0u32;
            let mut implausible = false;
            for (i, c) in m.cells().iter().enumerate() {
                let v = c.as_mv();
                sum = sum.saturating_add(v);
                if v < lo || v > hi {
                    implausible = true;
                    continue;
                }
                // Strict comparisons keep the lowest index on ties.
                if v < min.0 {
                    min = (v, i as u8);
                }
                if v > max.0 {
                    max = (v, i as u8);
                }
            }
            if implausible {
                s.causes.insert(SensorCauses::CELL_RANGE);
            }
            if min.0 != u32::MAX {
                s.min_cell = Some((MilliVolts::from_mv(min.0), min.1));
                s.max_cell = Some((MilliVolts::from_mv(max.0), max.1));
            }
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
        if !m.afe_ok {
            self.since = None;
            return false;
        }
        // An order-sensitive fingerprint plus the sum: equal only if (practically) every
        // reading is equal, at one multiply-add per cell instead of keeping a copy.
        let (mut sum, mut fp) = (0u32, 0u32);
        for c in m.cells() {
            sum = sum.wrapping_add(c.as_mv());
            fp = fp.wrapping_mul(31).wrapping_add(c.as_mv());
        }
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
