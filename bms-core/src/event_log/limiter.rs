//! [`RateLimiter`]: coalesces repeats of the same event so a flapping fault cannot wear out
//! the flash.

use crate::time::{Duration, Instant};

use super::record::EventRecord;

/// One tracked event kind: its latest occurrence and when a record of it was last written.
///
/// The record's `repeats` holds the occurrences held back since `last_written`, and the
/// record is a held-back one exactly when that count is not 0 (every offer counts at least
/// one); its kind is the entry's key. The count and the key live in the record, not beside
/// it: 72 bytes an entry instead of 80.
#[derive(Clone, Copy, Debug)]
struct Entry {
    last_written: Instant,
    /// The latest occurrence (its time and snapshot are what gets written).
    record: EventRecord,
}

impl Entry {
    /// Occurrences held back since `last_written`.
    // Always inlined: a field read is smaller than a call.
    #[inline(always)]
    fn held(&self) -> u16 {
        self.record.repeats
    }
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
    pub fn offer(&mut self, mut record: EventRecord) -> Option<EventRecord> {
        let now = record.time;
        let key = record.kind.to_raw();
        let window = self.window;
        let repeats = record.repeats.max(1);
        record.repeats = repeats;
        if let Some(e) = self
            .entries
            .iter_mut()
            .flatten()
            .find(|e| e.record.kind.to_raw() == key)
        {
            let held = e.held();
            if now.duration_since(e.last_written) < window {
                e.record = record;
                e.record.repeats = held.saturating_add(repeats);
                return None;
            }
            // Nothing held any more; the kept record still carries the key (no copy).
            e.record.repeats = 0;
            e.last_written = now;
            record.repeats = repeats.saturating_add(held);
            return Some(record);
        }
        // A new kind: take a free entry, or one that is idle (nothing held, window over).
        let slot = self.entries.iter_mut().find(|e| match e {
            None => true,
            Some(e) => e.held() == 0 && now.duration_since(e.last_written) >= window,
        });
        if let Some(slot) = slot {
            let e = slot.insert(Entry {
                last_written: now,
                record,
            });
            e.record.repeats = 0;
        }
        Some(record)
    }

    /// A held-back summary whose window is over at `now`, if any. Call after each step and
    /// append what it returns, until it returns `None`.
    #[must_use]
    pub fn poll(&mut self, now: Instant) -> Option<EventRecord> {
        self.release(Some(now))
    }

    /// Hands out every held-back summary now, whatever the window (before a shutdown or a
    /// deep sleep). Call until it returns `None`.
    #[must_use]
    pub fn flush(&mut self) -> Option<EventRecord> {
        self.release(None)
    }

    /// Takes out the first held-back summary whose window is over at `now` (any, for
    /// `None`, leaving `last_written` as it is).
    // Out of line: one copy serves `poll` and `flush`.
    #[inline(never)]
    fn release(&mut self, now: Option<Instant>) -> Option<EventRecord> {
        let window = self.window;
        let e = self.entries.iter_mut().flatten().find(|e| {
            e.held() != 0 && now.is_none_or(|now| now.duration_since(e.last_written) >= window)
        })?;
        let out = e.record;
        e.record.repeats = 0;
        if let Some(now) = now {
            e.last_written = now;
        }
        Some(out)
    }

    /// The earliest time at which [`poll`](Self::poll) has something, if anything is held.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .iter()
            .flatten()
            .filter(|e| e.held() != 0)
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

    /// Key bytes, last written, count held, the held-back record.
    type RefEntry = (u8, u8, Instant, u16, Option<EventRecord>);

    /// The limiter as first written: key, count and an optional held-back record per entry.
    struct Reference<const N: usize> {
        window: Duration,
        entries: [Option<RefEntry>; N],
    }

    impl<const N: usize> Reference<N> {
        fn offer(&mut self, record: EventRecord) -> Option<EventRecord> {
            let now = record.time;
            let key = record.kind.to_raw();
            let repeats = record.repeats.max(1);
            for (k0, k1, last, held, pending) in self.entries.iter_mut().flatten() {
                if (*k0, *k1) != key {
                    continue;
                }
                if now.duration_since(*last) < self.window {
                    *held = held.saturating_add(repeats);
                    *pending = Some(record);
                    return None;
                }
                let mut out = record;
                out.repeats = repeats.saturating_add(*held);
                *held = 0;
                *pending = None;
                *last = now;
                return Some(out);
            }
            for e in self.entries.iter_mut() {
                let free = match e {
                    None => true,
                    Some((_, _, last, _, pending)) => {
                        pending.is_none() && now.duration_since(*last) >= self.window
                    }
                };
                if free {
                    *e = Some((key.0, key.1, now, 0, None));
                    break;
                }
            }
            let mut out = record;
            out.repeats = repeats;
            Some(out)
        }

        fn take(&mut self, now: Option<Instant>) -> Option<EventRecord> {
            for (_, _, last, held, pending) in self.entries.iter_mut().flatten() {
                let due = now.is_none_or(|now| now.duration_since(*last) >= self.window);
                if pending.is_some() && due {
                    let mut out = pending.take().unwrap();
                    out.repeats = (*held).max(1);
                    *held = 0;
                    if let Some(now) = now {
                        *last = now;
                    }
                    return Some(out);
                }
            }
            None
        }

        fn poll_timeout(&self) -> Option<Instant> {
            self.entries
                .iter()
                .flatten()
                .filter(|e| e.4.is_some())
                .map(|e| e.2 + self.window)
                .min()
        }
    }

    proptest::proptest! {
        /// The same records come out, in the same order, as from the reference, for random
        /// offers (few kinds, so they collide; repeats counts as given), polls and flushes.
        #[test]
        fn equals_the_reference(
            ops in proptest::collection::vec(
                (0u8..4, 0u8..6, 0u64..90_000, 0u16..4, proptest::prelude::any::<u32>()),
                1..120,
            ),
        ) {
            let window = Duration::from_secs(60);
            let mut l: RateLimiter<3> = RateLimiter::new(window);
            let mut r: Reference<3> = Reference { window, entries: [None; 3] };
            let mut now = 0u64;
            for (what, kind, dt, repeats, value) in ops {
                now += dt;
                let t = Instant::from_millis(now);
                match what {
                    0 | 1 => {
                        let k = EventKind::from_raw(1 + kind % 3, kind);
                        let mut rec = super::super::EventRecord::from_telemetry(k, &{
                            let mut tel = Telemetry::empty(4);
                            tel.now = t;
                            tel
                        })
                        .with_value(value);
                        rec.repeats = repeats;
                        proptest::prop_assert_eq!(l.offer(rec), r.offer(rec));
                    }
                    2 => loop {
                        let (a, b) = (l.poll(t), r.take(Some(t)));
                        proptest::prop_assert_eq!(a, b);
                        if a.is_none() {
                            break;
                        }
                    },
                    _ => {
                        proptest::prop_assert_eq!(l.flush(), r.take(None));
                    }
                }
                proptest::prop_assert_eq!(l.poll_timeout(), r.poll_timeout());
            }
        }
    }

    #[test]
    fn an_entry_takes_72_bytes() {
        assert_eq!(core::mem::size_of::<Option<Entry>>(), 72);
        assert_eq!(core::mem::size_of::<RateLimiter<16>>(), 16 * 72 + 8);
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
