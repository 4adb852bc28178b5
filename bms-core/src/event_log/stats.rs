//! Lifetime statistics: [`LifetimeStats`] (what is persisted) and [`Stats`] (the tracker
//! that updates it from [`Telemetry`] and says when to persist).

use crate::protect::{Fault, FaultSet};
use crate::telemetry::Telemetry;
use crate::time::{Duration, Instant};
use crate::units::{DeciCelsius, MilliAmpHours, MilliAmpMillis, MilliVolts};

use super::params::{DecodeError, EncodeError, Persist};

/// Counters and extremes over the life of the pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LifetimeStats {
    /// Equivalent full cycles: discharged charge over the full capacity.
    pub cycles: u32,
    /// Charge into the pack.
    pub charged: MilliAmpHours,
    /// Charge out of the pack.
    pub discharged: MilliAmpHours,
    /// Discharge since the last whole cycle was counted (toward the next one).
    pub cycle_progress: MilliAmpHours,
    /// Trips per fault, indexed by [`Fault::index`].
    pub trips: [u32; Fault::COUNT],
    /// Highest cell voltage ever seen (`None` before the first measurement).
    pub max_cell: Option<MilliVolts>,
    /// Lowest cell voltage ever seen.
    pub min_cell: Option<MilliVolts>,
    /// Highest cell temperature (NTC) ever seen.
    pub max_temp: Option<DeciCelsius>,
    /// Lowest cell temperature ever seen.
    pub min_temp: Option<DeciCelsius>,
}

impl Default for LifetimeStats {
    fn default() -> Self {
        Self::NEW
    }
}

/// Stored value of an absent voltage or temperature.
const NONE_U32: u32 = u32::MAX;
const NONE_I16: i16 = i16::MIN;

impl LifetimeStats {
    /// A new pack: all counters zero, no extremes.
    pub const NEW: LifetimeStats = LifetimeStats {
        cycles: 0,
        charged: MilliAmpHours::from_mah(0),
        discharged: MilliAmpHours::from_mah(0),
        cycle_progress: MilliAmpHours::from_mah(0),
        trips: [0; Fault::COUNT],
        max_cell: None,
        min_cell: None,
        max_temp: None,
        min_temp: None,
    };

    /// Encoded length.
    pub const LEN: usize = 4 * 4 + 4 * Fault::COUNT + 4 * 2 + 2 * 2;

    /// Trips of `fault`.
    pub fn trips_of(&self, fault: Fault) -> u32 {
        self.trips.get(fault.index()).copied().unwrap_or(0)
    }
}

impl Persist for LifetimeStats {
    const VERSION: u16 = 1;
    const MAX_LEN: usize = Self::LEN;

    fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let buf = buf
            .get_mut(..Self::LEN)
            .ok_or(EncodeError::BufferTooSmall)?;
        for (b, w) in buf.chunks_exact_mut(4).zip(self.words()) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        Ok(Self::LEN)
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        if buf.len() != Self::LEN {
            return Err(DecodeError::Truncated);
        }
        let mut w = [0u32; WORDS];
        for (w, b) in w.iter_mut().zip(buf.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        let mv = |v: u32| (v != NONE_U32).then(|| MilliVolts::from_mv(v));
        let dc = |v: u32| (v as i16 != NONE_I16).then(|| DeciCelsius::from_deci(v as i16));
        let mut trips = [0u32; Fault::COUNT];
        trips.copy_from_slice(&w[4..4 + Fault::COUNT]);
        Ok(LifetimeStats {
            cycles: w[0],
            charged: MilliAmpHours::from_mah(w[1]),
            discharged: MilliAmpHours::from_mah(w[2]),
            cycle_progress: MilliAmpHours::from_mah(w[3]),
            trips,
            max_cell: mv(w[WORDS - 3]),
            min_cell: mv(w[WORDS - 2]),
            max_temp: dc(w[WORDS - 1]),
            min_temp: dc(w[WORDS - 1] >> 16),
        })
    }
}

/// The encoding as little-endian 32-bit words: cycles, charged, discharged, cycle progress,
/// the trips, the highest and lowest cell, then the two temperatures (highest in the low
/// half).
const WORDS: usize = LifetimeStats::LEN / 4;
const _: () = assert!(WORDS * 4 == LifetimeStats::LEN && WORDS == 7 + Fault::COUNT);

impl LifetimeStats {
    // Encoded as words through one loop: smaller than a store sequence per field.
    fn words(&self) -> [u32; WORDS] {
        let mut w = [0u32; WORDS];
        w[0] = self.cycles;
        w[1] = self.charged.as_mah();
        w[2] = self.discharged.as_mah();
        w[3] = self.cycle_progress.as_mah();
        w[4..4 + Fault::COUNT].copy_from_slice(&self.trips);
        let temp = |t: Option<DeciCelsius>| t.map_or(NONE_I16, |t| t.as_deci()) as u16 as u32;
        w[WORDS - 3] = self.max_cell.map_or(NONE_U32, |v| v.as_mv());
        w[WORDS - 2] = self.min_cell.map_or(NONE_U32, |v| v.as_mv());
        w[WORDS - 1] = temp(self.max_temp) | temp(self.min_temp) << 16;
        w
    }
}

/// Updates [`LifetimeStats`] from each step's [`Telemetry`] and says when to persist them.
///
/// Charge is integrated from the measured current in milliamp-milliseconds (no rounding
/// drift); the time step is the difference of two `Telemetry::now`, capped at
/// [`MAX_STEP`](Self::MAX_STEP) so a long sleep or a clock jump does not count a
/// stale current. Trips are counted on the rising edge of each fault. A whole cycle is
/// counted for each full capacity discharged (`full_capacity`, else `nominal_capacity`).
///
/// Persisting is periodic, never every step: [`persist_due`](Self::persist_due) is true
/// once the statistics changed and `interval` has passed since the last persist.
///
/// # Examples
/// ```
/// use bms_core::event_log::{LifetimeStats, Stats};
/// use bms_core::time::{Duration, Instant};
/// use bms_core::{Fault, FaultSet, MilliAmps, MilliAmpHours, Telemetry};
///
/// let mut stats = Stats::new(LifetimeStats::NEW, Instant::ZERO, Duration::from_mins(60));
/// let mut t = Telemetry::empty(16);
/// t.full_capacity = MilliAmpHours::from_mah(100_000);
/// t.current = MilliAmps::from_amps(10); // discharge
/// for s in 0..=3_600 {
///     t.now = Instant::from_millis(s * 1_000);
///     t.faults = if s == 5 { FaultSet::from_iter([Fault::DsgOt]) } else { FaultSet::EMPTY };
///     stats.update(&t);
/// }
/// assert_eq!(stats.lifetime().discharged, MilliAmpHours::from_mah(10_000));
/// assert_eq!(stats.lifetime().trips_of(Fault::DsgOt), 1);
/// assert!(stats.persist_due(t.now));
/// stats.mark_persisted(t.now);
/// assert!(!stats.persist_due(t.now));
/// ```
#[derive(Clone, Debug)]
pub struct Stats {
    lifetime: LifetimeStats,
    charge_acc: MilliAmpMillis,
    discharge_acc: MilliAmpMillis,
    last: Option<Instant>,
    last_faults: FaultSet,
    last_persist: Instant,
    interval: Duration,
    dirty: bool,
}

impl Stats {
    /// Longest time step integrated at once.
    pub const MAX_STEP: Duration = Duration::from_secs(10);
    /// Default time between two persists.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_mins(60);

    /// A tracker starting from `loaded` (from the [`ParamStore`](super::ParamStore), or
    /// [`LifetimeStats::NEW`]), at `now`, persisting every `interval` at most.
    pub fn new(loaded: LifetimeStats, now: Instant, interval: Duration) -> Self {
        Stats {
            lifetime: loaded,
            charge_acc: MilliAmpMillis::from_raw(0),
            discharge_acc: MilliAmpMillis::from_raw(0),
            last: None,
            last_faults: FaultSet::EMPTY,
            last_persist: now,
            interval,
            dirty: false,
        }
    }

    /// The statistics so far.
    pub fn lifetime(&self) -> &LifetimeStats {
        &self.lifetime
    }

    /// Folds one step's telemetry in.
    // Out of line: compiled on its own it is smaller than inlined into a large caller.
    #[inline(never)]
    pub fn update(&mut self, t: &Telemetry) {
        let s = &mut self.lifetime;
        // Charge.
        if let Some(last) = self.last {
            let dt = t.now.duration_since(last).min(Self::MAX_STEP);
            let q = t.current.times(dt).as_raw();
            let per_mah = MilliAmpMillis::from_mah(1).as_raw();
            let acc = if q > 0 {
                &mut self.discharge_acc
            } else {
                &mut self.charge_acc
            };
            *acc = MilliAmpMillis::from_raw(acc.as_raw() + q.abs());
            let whole = acc.as_raw() / per_mah;
            if whole > 0 {
                *acc = MilliAmpMillis::from_raw(acc.as_raw() - whole * per_mah);
                let whole = whole.min(u32::MAX as i64) as u32;
                if q > 0 {
                    s.discharged =
                        MilliAmpHours::from_mah(s.discharged.as_mah().saturating_add(whole));
                    let cap = if t.full_capacity.as_mah() > 0 {
                        t.full_capacity.as_mah()
                    } else {
                        t.nominal_capacity.as_mah()
                    };
                    let mut p = s.cycle_progress.as_mah().saturating_add(whole);
                    if let (Some(n), Some(rest)) = (p.checked_div(cap), p.checked_rem(cap)) {
                        s.cycles = s.cycles.saturating_add(n);
                        p = rest;
                    }
                    s.cycle_progress = MilliAmpHours::from_mah(p);
                } else {
                    s.charged = MilliAmpHours::from_mah(s.charged.as_mah().saturating_add(whole));
                }
                self.dirty = true;
            }
        }
        self.last = Some(t.now);

        // Trips on rising edges. Bit `i` of a fault set is the fault with index `i`: a bit
        // test per counter instead of filtering `Fault::ALL`.
        let rising = t.faults.difference(self.last_faults).bits();
        for (i, c) in s.trips.iter_mut().enumerate() {
            if rising & (1 << i) != 0 {
                *c = c.saturating_add(1);
                self.dirty = true;
            }
        }
        self.last_faults = t.faults;

        // Extremes.
        if t.cell_count > 0 {
            let [(hi, _), (lo, _)] = super::cell_extremes(t);
            if s.max_cell.is_none_or(|m| hi > m) {
                s.max_cell = Some(hi);
                self.dirty = true;
            }
            if s.min_cell.is_none_or(|m| lo < m) {
                s.min_cell = Some(lo);
                self.dirty = true;
            }
        }
        if let Some((hi, lo)) = t.temp_range() {
            if s.max_temp.is_none_or(|m| hi > m) {
                s.max_temp = Some(hi);
                self.dirty = true;
            }
            if s.min_temp.is_none_or(|m| lo < m) {
                s.min_temp = Some(lo);
                self.dirty = true;
            }
        }
    }

    /// `true` when the statistics changed and `interval` has passed since the last persist.
    #[must_use]
    pub fn persist_due(&self, now: Instant) -> bool {
        self.dirty && now.duration_since(self.last_persist) >= self.interval
    }

    /// Call after storing [`lifetime`](Self::lifetime) successfully.
    pub fn mark_persisted(&mut self, now: Instant) {
        self.dirty = false;
        self.last_persist = now;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;
    use crate::units::MilliAmps;

    #[test]
    fn round_trip() {
        let mut s = LifetimeStats::NEW;
        s.cycles = 7;
        s.trips[3] = 9;
        s.max_cell = Some(MilliVolts::from_mv(3_650));
        s.min_temp = Some(DeciCelsius::from_deci(-200));
        let mut buf = [0u8; LifetimeStats::LEN];
        assert_eq!(s.encode(&mut buf), Ok(LifetimeStats::LEN));
        assert_eq!(LifetimeStats::decode(&buf), Ok(s));
        assert_eq!(
            LifetimeStats::decode(&buf[..10]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(s.encode(&mut [0u8; 10]), Err(EncodeError::BufferTooSmall));
    }

    /// The field-by-field encoding the word encoder replaced.
    fn encode_ref(s: &LifetimeStats) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [
            s.cycles,
            s.charged.as_mah(),
            s.discharged.as_mah(),
            s.cycle_progress.as_mah(),
        ] {
            b.extend(v.to_le_bytes());
        }
        for t in s.trips {
            b.extend(t.to_le_bytes());
        }
        b.extend(s.max_cell.map_or(u32::MAX, |v| v.as_mv()).to_le_bytes());
        b.extend(s.min_cell.map_or(u32::MAX, |v| v.as_mv()).to_le_bytes());
        b.extend(s.max_temp.map_or(i16::MIN, |t| t.as_deci()).to_le_bytes());
        b.extend(s.min_temp.map_or(i16::MIN, |t| t.as_deci()).to_le_bytes());
        b
    }

    fn arb_stats() -> impl proptest::strategy::Strategy<Value = LifetimeStats> {
        use proptest::prelude::*;
        (
            prop::array::uniform4(any::<u32>()),
            prop::collection::vec(any::<u32>(), Fault::COUNT),
            prop::array::uniform2(prop::option::of(any::<u32>())),
            prop::array::uniform2(prop::option::of(i16::MIN + 1..=i16::MAX)),
        )
            .prop_map(|(c, trips, cells, temps)| {
                let mut s = LifetimeStats::NEW;
                s.cycles = c[0];
                s.charged = MilliAmpHours::from_mah(c[1]);
                s.discharged = MilliAmpHours::from_mah(c[2]);
                s.cycle_progress = MilliAmpHours::from_mah(c[3]);
                s.trips.copy_from_slice(&trips);
                // u32::MAX mV is the stored "none".
                let mv = |v: Option<u32>| v.map(|v| MilliVolts::from_mv(v.min(u32::MAX - 1)));
                s.max_cell = mv(cells[0]);
                s.min_cell = mv(cells[1]);
                s.max_temp = temps[0].map(DeciCelsius::from_deci);
                s.min_temp = temps[1].map(DeciCelsius::from_deci);
                s
            })
    }

    proptest::proptest! {
        #[test]
        fn encoding_equals_the_field_by_field_reference(s in arb_stats()) {
            let mut buf = [0u8; LifetimeStats::LEN];
            proptest::prop_assert_eq!(s.encode(&mut buf), Ok(LifetimeStats::LEN));
            proptest::prop_assert_eq!(&buf[..], &encode_ref(&s)[..]);
            proptest::prop_assert_eq!(LifetimeStats::decode(&buf), Ok(s));
        }

        #[test]
        fn any_bytes_decode_to_what_they_encode_from(
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), LifetimeStats::LEN)
        ) {
            let s = LifetimeStats::decode(&b).unwrap();
            proptest::prop_assert_eq!(encode_ref(&s), b);
        }
    }

    #[test]
    fn charge_cycles_and_extremes() {
        let mut st = Stats::new(LifetimeStats::NEW, Instant::ZERO, Duration::from_mins(60));
        let mut t = Telemetry::empty(4);
        t.full_capacity = MilliAmpHours::from_mah(1_000);
        t.cells[..4].copy_from_slice(&[3_300, 3_310, 3_290, 3_305].map(MilliVolts::from_mv));
        t.cell_temps = [
            Some(DeciCelsius::from_deci(250)),
            Some(DeciCelsius::from_deci(-30)),
        ];
        // 2.5 A discharge for 1 h = 2500 mAh = 2.5 cycles, 100 ms steps.
        t.current = MilliAmps::from_ma(2_500);
        for s in 0..=36_000u64 {
            t.now = Instant::from_millis(s * 100);
            st.update(&t);
        }
        // 1 A charge for 30 min, with a 1 h gap first (capped at 10 s).
        t.current = MilliAmps::from_ma(-1_000);
        t.now = Instant::from_millis(3_600_000 + 3_600_000);
        st.update(&t);
        for s in 1..=18_000u64 {
            t.now = Instant::from_millis(7_200_000 + s * 100);
            st.update(&t);
        }
        let l = st.lifetime();
        assert_eq!(l.discharged.as_mah(), 2_500);
        assert_eq!(l.cycles, 2);
        assert_eq!(l.cycle_progress.as_mah(), 500);
        // 500 mAh + 10 s at 1 A (2.77 mAh, whole 2).
        assert_eq!(l.charged.as_mah(), 502);
        assert_eq!(l.max_cell, Some(MilliVolts::from_mv(3_310)));
        assert_eq!(l.min_cell, Some(MilliVolts::from_mv(3_290)));
        assert_eq!(l.max_temp, Some(DeciCelsius::from_deci(250)));
        assert_eq!(l.min_temp, Some(DeciCelsius::from_deci(-30)));
    }

    #[test]
    fn trips_count_rising_edges_only() {
        let mut st = Stats::new(LifetimeStats::NEW, Instant::ZERO, Duration::from_secs(1));
        let mut t = Telemetry::empty(0);
        let on = FaultSet::from_iter([Fault::Sc, Fault::CellOv]);
        for (i, f) in [on, on, FaultSet::EMPTY, on].into_iter().enumerate() {
            t.now = Instant::from_millis(i as u64);
            t.faults = f;
            st.update(&t);
        }
        assert_eq!(st.lifetime().trips_of(Fault::Sc), 2);
        assert_eq!(st.lifetime().trips_of(Fault::CellOv), 2);
        assert_eq!(st.lifetime().trips_of(Fault::ChgOt), 0);
        assert!(!st.persist_due(Instant::from_millis(999)));
        assert!(st.persist_due(Instant::from_millis(1_000)));
    }
}
