//! Time as an argument: [`Instant`] and [`Duration`] in milliseconds.
//!
//! The core never reads a clock. Every function that depends on time takes `now: Instant`
//! from the caller, which makes each decision a pure function of configuration,
//! measurements and time, and makes every test and replay deterministic.
//!
//! # Examples
//! ```
//! use bms_core::time::{Duration, Instant};
//! let t0 = Instant::from_millis(1_000);
//! let t1 = t0 + Duration::from_secs(2);
//! assert_eq!(t1.duration_since(t0), Duration::from_millis(2_000));
//! assert_eq!(t0.duration_since(t1), Duration::ZERO); // saturates, never wraps
//! ```

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A point in monotonic time, milliseconds since an arbitrary epoch (usually boot).
///
/// 64 bits so that it never wraps in the life of a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant {
    millis: u64,
}

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant { millis: 0 };

    /// An instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Instant { millis }
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later (never wraps).
    pub const fn duration_since(self, earlier: Instant) -> Duration {
        let d = self.millis.saturating_sub(earlier.millis);
        Duration::from_millis(if d > u32::MAX as u64 {
            u32::MAX
        } else {
            d as u32
        })
    }

    /// `self + d`, saturating at the end of time.
    pub const fn saturating_add(self, d: Duration) -> Instant {
        Instant::from_millis(self.millis.saturating_add(d.as_millis() as u64))
    }
}

/// An `Option<Instant>` in 8 bytes instead of 16: a timer's start or a last event's time.
///
/// "None" is the last representable millisecond, so that instant itself reads as none (it
/// is 584 million years after the epoch, where a saturated clock would stand still; a timer
/// that cannot advance there has nothing to time either). A BMS keeps dozens of these
/// (every debounce timer), which makes the saving worth a type.
///
/// ```
/// use bms_core::time::{Instant, OptInstant};
/// let mut t = OptInstant::NONE;
/// assert_eq!(t.get(), None);
/// assert_eq!(t.get_or_insert(Instant::from_millis(5)), Instant::from_millis(5));
/// assert_eq!(t.get_or_insert(Instant::from_millis(9)), Instant::from_millis(5));
/// assert_eq!(core::mem::size_of::<OptInstant>(), 8);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OptInstant {
    millis: u64,
}

impl OptInstant {
    /// No instant.
    pub const NONE: OptInstant = OptInstant { millis: u64::MAX };

    /// `Some(t)` (none for the last representable millisecond).
    pub const fn some(t: Instant) -> Self {
        OptInstant { millis: t.millis }
    }

    /// The instant, if any.
    pub const fn get(self) -> Option<Instant> {
        if self.millis == u64::MAX {
            None
        } else {
            Some(Instant::from_millis(self.millis))
        }
    }

    /// `true` when it holds an instant.
    pub const fn is_some(self) -> bool {
        self.millis != u64::MAX
    }

    /// The held instant, after storing `now` if there was none.
    pub fn get_or_insert(&mut self, now: Instant) -> Instant {
        if !self.is_some() {
            self.millis = now.millis;
        }
        Instant::from_millis(self.millis)
    }
}

impl Default for OptInstant {
    fn default() -> Self {
        OptInstant::NONE
    }
}

impl From<Option<Instant>> for OptInstant {
    fn from(t: Option<Instant>) -> Self {
        t.map_or(OptInstant::NONE, OptInstant::some)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        self.saturating_add(rhs)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.duration_since(rhs)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.millis / 1000, self.millis % 1000)
    }
}

/// A span of time in milliseconds, at most about 49.7 days (`u32`).
///
/// Delays of protection rules, rest times and message periods are all `Duration`s:
/// a unit mistake such as seconds for milliseconds cannot compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Duration {
    millis: u32,
}

impl Duration {
    /// No time.
    pub const ZERO: Duration = Duration { millis: 0 };
    /// The longest representable span.
    pub const MAX: Duration = Duration { millis: u32::MAX };

    /// A span of `millis` milliseconds.
    pub const fn from_millis(millis: u32) -> Self {
        Duration { millis }
    }

    /// A span of `secs` seconds, saturating.
    pub const fn from_secs(secs: u32) -> Self {
        Duration {
            millis: secs.saturating_mul(1000),
        }
    }

    /// A span of `mins` minutes, saturating.
    pub const fn from_mins(mins: u32) -> Self {
        Duration {
            millis: mins.saturating_mul(60_000),
        }
    }

    /// Whole milliseconds.
    pub const fn as_millis(self) -> u32 {
        self.millis
    }

    /// Whole seconds (truncated).
    pub const fn as_secs(self) -> u32 {
        self.millis / 1000
    }

    /// `self + rhs`, saturating.
    pub const fn saturating_add(self, rhs: Duration) -> Duration {
        Duration {
            millis: self.millis.saturating_add(rhs.millis),
        }
    }

    /// `self - rhs`, or zero.
    pub const fn saturating_sub(self, rhs: Duration) -> Duration {
        Duration {
            millis: self.millis.saturating_sub(rhs.millis),
        }
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, rhs: Duration) -> Duration {
        self.saturating_add(rhs)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.millis)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn opt_instant_holds_what_option_holds(t in any::<Option<u64>>()) {
            let t = t.map(Instant::from_millis);
            let o = OptInstant::from(t);
            let end = Some(Instant::from_millis(u64::MAX));
            prop_assert_eq!(o.get(), t.filter(|_| t != end));
            prop_assert_eq!(o.is_some(), t.is_some() && t != end);
        }

        /// The arithmetic saturates and never wraps: an interval longer than `Duration`
        /// holds (about 49.7 days) reads as the longest one, not as its low 32 bits.
        #[test]
        fn arithmetic_saturates(
            a in prop_oneof![any::<u64>(), 0u64..1 << 33, Just(u64::MAX)],
            b in prop_oneof![any::<u64>(), 0u64..1 << 33],
            d in prop_oneof![any::<u32>(), Just(u32::MAX)],
            e in any::<u32>(),
        ) {
            let (ta, tb, dd) = (Instant::from_millis(a), Instant::from_millis(b), Duration::from_millis(d));
            let since = a.saturating_sub(b).min(u64::from(u32::MAX)) as u32;
            prop_assert_eq!(ta.duration_since(tb).as_millis(), since);
            prop_assert_eq!((ta - tb).as_millis(), since);
            let later = Instant::from_millis(a.saturating_add(u64::from(d)));
            prop_assert_eq!(ta + dd, later);
            let mut t = ta;
            t += dd;
            prop_assert_eq!(t, later);
            prop_assert_eq!((dd + Duration::from_millis(e)).as_millis(), d.saturating_add(e));
        }
    }

    #[test]
    fn intervals_at_the_end_of_a_duration() {
        let t = Instant::from_millis(1 << 40);
        let max = u64::from(u32::MAX);
        for (back, want) in [
            (max - 1, u32::MAX - 1),
            (max, u32::MAX),
            (max + 1, u32::MAX),
        ] {
            let earlier = Instant::from_millis((1 << 40) - back);
            assert_eq!(
                t.duration_since(earlier).as_millis(),
                want,
                "{back} ms back"
            );
        }
        // A later "earlier" gives zero.
        assert_eq!(Instant::ZERO.duration_since(t), Duration::ZERO);
    }

    #[test]
    fn display_shows_the_unit() {
        assert_eq!(Instant::from_millis(61_005).to_string(), "61.005s");
        assert_eq!(Duration::from_millis(250).to_string(), "250 ms");
    }

    #[test]
    fn opt_instant_starts_empty_and_keeps_the_first_insert() {
        let mut o = OptInstant::default();
        assert!(!o.is_some());
        assert_eq!(
            o.get_or_insert(Instant::from_millis(3)),
            Instant::from_millis(3)
        );
        assert_eq!(
            o.get_or_insert(Instant::from_millis(4)),
            Instant::from_millis(3)
        );
        assert_eq!(o.get(), Some(Instant::from_millis(3)));
    }
}
