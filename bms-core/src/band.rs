//! [`Band`]: a range of `i32` values tested with one subtract and one unsigned compare.

/// The values `lo..lo + len` (wrapping past `i32::MAX`): `v` is in the band when
/// `(v - lo) as u32 < len`, so one subtract and one unsigned compare test both ends (a
/// value below `lo` wraps to a large offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Band {
    lo: i32,
    len: u32,
}

impl Band {
    /// No value.
    pub(crate) const EMPTY: Band = Band { lo: 0, len: 0 };

    /// The values `lo..=hi` (none when `hi < lo`), at most `u32::MAX` of them from `lo`.
    /// Wide bounds, so that callers need not saturate; `lo` must be an `i32` unless the
    /// band is empty.
    pub(crate) const fn inclusive(lo: i64, hi: i64) -> Band {
        if hi < lo {
            return Band::EMPTY;
        }
        let len = hi - lo + 1;
        Band {
            lo: lo as i32,
            len: if len > u32::MAX as i64 {
                u32::MAX
            } else {
                len as u32
            },
        }
    }

    /// The lowest value, and the number of values (`0`: empty).
    pub(crate) const fn parts(self) -> (i32, u32) {
        (self.lo, self.len)
    }

    /// Whether `v` is in the band.
    #[inline(always)]
    pub(crate) const fn contains(self, v: i32) -> bool {
        (v.wrapping_sub(self.lo) as u32) < self.len
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Within `i32` a band holds exactly the values of its inclusive range, but for the
        /// whole range, whose last value is one past `u32::MAX` values.
        #[test]
        fn contains_the_inclusive_range(
            lo in prop_oneof![any::<i32>(), Just(i32::MIN), Just(i32::MAX)],
            hi in prop_oneof![any::<i32>(), Just(i32::MIN), Just(i32::MAX)],
            near in -3i32..3,
            v in any::<i32>(),
        ) {
            let hi = if near == 0 { hi } else { lo.saturating_add(near) };
            let b = Band::inclusive(i64::from(lo), i64::from(hi));
            let whole = lo == i32::MIN && hi == i32::MAX;
            prop_assert_eq!(b.contains(v), (lo..=hi).contains(&v) && !(whole && v == i32::MAX));
            prop_assert_eq!(b.contains(lo), lo <= hi);
        }
    }

    #[test]
    fn empty_holds_nothing() {
        assert!(!Band::EMPTY.contains(0));
        assert_eq!(Band::inclusive(5, 4), Band::EMPTY);
        assert!(Band::inclusive(-1, -1).contains(-1));
        assert!(!Band::inclusive(-1, -1).contains(0));
    }
}
