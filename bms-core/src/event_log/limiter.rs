//! [`RateLimiter`]: coalesces repeats of the same event so a flapping fault cannot wear out
//! the flash.

use crate::time::{Duration, Instant};

use super::record::EventRecord;

/// One tracked event kind.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: (u8, u8),
    last_written: Instant,
    /// Occurrences held back since `last_written`.
    held: u16,
    /// The latest held-back occurrence (its time and snapshot are what gets written).
    pending: Option<EventRecord>,
}

/// Lets at most one record per event kind (kind and detail, e.g. "trip of `cell_ov`")
/// through per `window`; repeats inside the window are counted and written later as one
/// record whose [`repeats`](EventRecord::repeats) says how many occurrences it stands for.
///
/// Sans-I/O: [`offer`](Self::offer) says whether to write a record now, and
/// [`poll`](Self::poll) hands out the summaries that fall due. Time comes from the records
/// and from the caller. `N` kinds are tracked at once; when all `N` are busy inside their
/// window, a new kind passes unlimited (it is never dropped).
///
/// The write rate is bounded by `N / window` records (plus untracked kinds): with the default
/// 5 min window, a fault flapping every step writes at most 2 records (trip, release) per
/// 5 minutes.
///
/// # Examples
/// ```
/// use bms_core::event_log::{EventKind, EventRecord, RateLimiter};
/// use bms_core::time::{Duration, Instant};
/// use bms_core::{Fault, Telemetry};
///
/// let mut limiter: RateLimiter<8> = RateLimiter::new(Duration::from_secs(60));
/// let mut t = Telemetry::empty(16);
/// let trip = |t: &Telemetry| EventRecord::from_telemetry(EventKind::FaultTrip(Fault::ChgOt), t);
///
/// assert!(limiter.offer(trip(&t)).is_some()); // first one is written at once
/// for s in 1..=10 {
///     t.now = Instant::from_millis(s * 1_000);
///     assert!(limiter.offer(trip(&t)).is_none()); // repeats are held back
/// }
/// assert!(limiter.poll(Instant::from_millis(30_000)).is_none());
/// let summary = limiter.poll(Instant::from_millis(60_000)).unwrap();
/// assert_eq!(summary.repeats, 10);
/// assert_eq!(summary.time, Instant::from_millis(10_000)); // the last occurrence
/// ```
#[derive(Clone, Debug)]
pub struct RateLimiter<const N: usize> {
    window: Duration,
    entries: [Option<Entry>; N],
}

impl<const N: usize> RateLimiter<N> {
    /// Default coalescing window.
    pub const DEFAULT_WINDOW: Duration = Duration::from_mins(5);

    /// A limiter with `window` between two records of the same kind.
    pub const fn new(window: Duration) -> Self {
        const { assert!(N > 0) };
        RateLimiter {
            window,
            entries: [None; N],
        }
    }

    /// Offers one occurrence. Returns the record to append now (with the count of the
    /// occurrences held back before it added to its `repeats`), or `None` when it is held
    /// back and will come out of [`poll`](Self::poll).
    // Out of line: compiled on its own it is smaller than inlined into a large caller.
    #[inline(never)]
    #[must_use]
    pub fn offer(&mut self, record: EventRecord) -> Option<EventRecord> {
        let now = record.time;
        let key = record.kind.to_raw();
        let window = self.window;
        let repeats = record.repeats.max(1);
        if let Some(e) = self.entries.iter_mut().flatten().find(|e| e.key == key) {
            if now.duration_since(e.last_written) < window {
                e.held = e.held.saturating_add(repeats);
                e.pending = Some(record);
                return None;
            }
            let mut out = record;
            out.repeats = repeats.saturating_add(e.held);
            e.held = 0;
            e.pending = None;
            e.last_written = now;
            return Some(out);
        }
        // A new kind: take a free entry, or one that is idle (nothing held, window over).
        let slot = self.entries.iter_mut().find(|e| match e {
            None => true,
            Some(e) => e.pending.is_none() && now.duration_since(e.last_written) >= window,
        });
        if let Some(slot) = slot {
            *slot = Some(Entry {
                key,
                last_written: now,
                held: 0,
                pending: None,
            });
        }
        let mut out = record;
        out.repeats = repeats;
        Some(out)
    }

    /// A held-back summary whose window is over at `now`, if any. Call after each step and
    /// append what it returns, until it returns `None`.
    // Out of line: compiled on its own it is smaller than inlined into a large caller.
    #[inline(never)]
    #[must_use]
    pub fn poll(&mut self, now: Instant) -> Option<EventRecord> {
        let window = self.window;
        let e = self
            .entries
            .iter_mut()
            .flatten()
            .find(|e| e.pending.is_some() && now.duration_since(e.last_written) >= window)?;
        let mut out = e.pending.take()?;
        out.repeats = e.held.max(1);
        e.held = 0;
        e.last_written = now;
        Some(out)
    }

    /// Hands out every held-back summary now, whatever the window (before a shutdown or a
    /// deep sleep). Call until it returns `None`.
    #[must_use]
    pub fn flush(&mut self) -> Option<EventRecord> {
        let e = self
            .entries
            .iter_mut()
            .flatten()
            .find(|e| e.pending.is_some())?;
        let mut out = e.pending.take()?;
        out.repeats = e.held.max(1);
        e.held = 0;
        Some(out)
    }

    /// The earliest time at which [`poll`](Self::poll) has something, if anything is held.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .iter()
            .flatten()
            .filter(|e| e.pending.is_some())
            .map(|e| e.last_written + self.window)
            .min()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;
    use crate::event_log::EventKind;
    use crate::protect::Fault;
    use crate::telemetry::Telemetry;

    fn rec(kind: EventKind, ms: u64) -> EventRecord {
        let mut t = Telemetry::empty(8);
        t.now = Instant::from_millis(ms);
        EventRecord::from_telemetry(kind, &t)
    }

    /// A fault flapping every 100 ms for an hour: occurrences are all accounted for, and the
    /// number of records is bounded by the window.
    #[test]
    fn flapping_is_bounded_and_counted() {
        let mut l: RateLimiter<4> = RateLimiter::new(Duration::from_mins(5));
        let (trip, rel) = (
            EventKind::FaultTrip(Fault::CellOv),
            EventKind::FaultRelease(Fault::CellOv),
        );
        let mut written = 0u32;
        let mut counted = 0u32;
        let mut offered = 0u32;
        for step in 0..36_000u64 {
            let kind = if step % 2 == 0 { trip } else { rel };
            offered += 1;
            if let Some(r) = l.offer(rec(kind, step * 100)) {
                written += 1;
                counted += r.repeats as u32;
            }
            while let Some(r) = l.poll(Instant::from_millis(step * 100)) {
                written += 1;
                counted += r.repeats as u32;
            }
        }
        while let Some(r) = l.flush() {
            written += 1;
            counted += r.repeats as u32;
        }
        assert_eq!(counted, offered);
        // 12 windows in an hour, two kinds: at most 2 per window plus the first ones.
        assert!(written <= 2 * 13, "{written}");
        assert!(written >= 2 * 12, "{written}");
    }

    #[test]
    fn different_kinds_are_independent() {
        let mut l: RateLimiter<2> = RateLimiter::new(Duration::from_secs(60));
        assert!(l.offer(rec(EventKind::FaultTrip(Fault::Sc), 0)).is_some());
        assert!(l
            .offer(rec(EventKind::FaultTrip(Fault::ChgOc), 0))
            .is_some());
        assert!(l.offer(rec(EventKind::FaultTrip(Fault::Sc), 1)).is_none());
        // Table full and busy: a third kind passes unlimited.
        assert!(l
            .offer(rec(EventKind::FaultTrip(Fault::MosOt), 2))
            .is_some());
        assert!(l
            .offer(rec(EventKind::FaultTrip(Fault::MosOt), 3))
            .is_some());
        assert_eq!(l.poll_timeout(), Some(Instant::from_millis(60_000)));
        assert!(l.poll(Instant::from_millis(59_999)).is_none());
        let r = l.poll(Instant::from_millis(60_000)).unwrap();
        assert_eq!((r.kind, r.repeats), (EventKind::FaultTrip(Fault::Sc), 1));
        assert!(l.poll(Instant::from_millis(60_000)).is_none());
    }

    #[test]
    fn after_the_window_the_held_count_rides_on_the_next_record() {
        let mut l: RateLimiter<2> = RateLimiter::new(Duration::from_secs(10));
        let k = EventKind::Warning(Fault::CellUv);
        assert_eq!(l.offer(rec(k, 0)).map(|r| r.repeats), Some(1));
        assert!(l.offer(rec(k, 1_000)).is_none());
        assert!(l.offer(rec(k, 2_000)).is_none());
        assert_eq!(l.offer(rec(k, 10_000)).map(|r| r.repeats), Some(3));
        assert!(l.poll(Instant::from_millis(100_000)).is_none());
    }
}
