//! OCV table arithmetic and the weighting of a voltage-derived SOC against the counted one.
//!
//! SOC is handled here in parts per million (`1_000_000` = 100 %) and voltages in 1/16 mV,
//! so that averaged and filtered readings keep their sub-millivolt resolution.

use super::config::OCV_POINTS;

/// 100 % in parts per million.
pub(crate) const PPM_FULL: i64 = 1_000_000;
/// SOC between two table points, ppm.
const STEP_PPM: i64 = PPM_FULL / (OCV_POINTS as i64 - 1);

/// SOC (ppm) of a cell whose open-circuit voltage is `mv16` (1/16 mV), by linear
/// interpolation; clamped to the table's ends. On a flat run of equal points the middle of
/// the run is returned.
#[inline(always)]
pub(crate) fn soc_from_ocv(table: &[u16; OCV_POINTS], mv16: i32) -> i64 {
    soc_and_segment(table, mv16).0
}

/// [`soc_from_ocv`] and the segment `i` (`1..OCV_POINTS`) whose interpolation gave it, with
/// the reading strictly between points `i - 1` and `i`; segment 0 for every other case (an
/// end of the table, a point, a flat run).
// Out of line: one copy of the search for every caller.
#[inline(never)]
pub(crate) fn soc_and_segment(table: &[u16; OCV_POINTS], mv16: i32) -> (i64, u8) {
    let at = |i: usize| i32::from(table[i]) * 16;
    if mv16 <= at(0) {
        return (0, 0);
    }
    if mv16 >= at(OCV_POINTS - 1) {
        return (PPM_FULL, 0);
    }
    // First point at or above the reading; exists because the last point is above it.
    // Binary search (5 probes instead of up to 19) over the interior points.
    let i = 1 + table[1..OCV_POINTS - 1].partition_point(|&p| i32::from(p) * 16 < mv16);
    if at(i) == mv16 {
        // On a point, possibly the start of a flat run: take the middle of the run.
        let mut j = i;
        while j + 1 < OCV_POINTS && at(j + 1) == mv16 {
            j += 1;
        }
        return ((i as i64 + j as i64) * STEP_PPM / 2, 0);
    }
    let (lo, hi) = (at(i - 1), at(i));
    if hi <= lo {
        // Only a non-monotonic table gets here.
        return (i as i64 * STEP_PPM, 0);
    }
    let span = (hi - lo) as u32;
    let frac = step_fraction((mv16 - lo).clamp(0, hi - lo) as u32, span);
    // Strictly inside the segment only if the reading is above its lower point (not so in
    // a non-monotonic table).
    let seg = if mv16 > lo { i as u8 } else { 0 };
    ((i as i64 - 1) * STEP_PPM + i64::from(frac), seg)
}

/// [`soc_from_ocv`] for a reading strictly between points `seg - 1` and `seg` of a
/// **non-decreasing** table, without the search; `None` when it is not (or `seg` is 0).
///
/// Exact: in a non-decreasing table every interior point before `seg` is at most point
/// `seg - 1`, below the reading, and every one from `seg` on at least point `seg`, above
/// it, so the search of `soc_from_ocv` finds `seg`, which is not equal to the reading.
// Inline: the loop of `read_cells` calls it for every cell.
#[inline(always)]
pub(crate) fn soc_in_segment(table: &[u16; OCV_POINTS], mv16: i32, seg: u8) -> Option<i64> {
    let i = usize::from(seg);
    let (lo, hi) = match (table.get(i.wrapping_sub(1)), table.get(i)) {
        (Some(&lo), Some(&hi)) => (i32::from(lo) * 16, i32::from(hi) * 16),
        _ => return None,
    };
    if mv16 <= lo || mv16 >= hi {
        return None;
    }
    let frac = step_fraction((mv16 - lo) as u32, (hi - lo) as u32);
    Some((i as i64 - 1) * STEP_PPM + i64::from(frac))
}

/// `d * STEP_PPM / span` (floor) for `d <= span < 2^20` (table points are `u16` mV, so
/// spans in 1/16 mV are below 2^20), in two 32-bit divisions: a 64-bit division is a long
/// library routine on a Cortex-M. With `STEP_PPM = HI * 256 + LO`, `d * STEP_PPM =
/// (q * span + r) * 256 + d * LO` where `q, r` divide `d * HI` by `span`.
fn step_fraction(d: u32, span: u32) -> u32 {
    const HI: u32 = (STEP_PPM >> 8) as u32;
    const LO: u32 = (STEP_PPM & 0xFF) as u32;
    // Every intermediate fits in 32 bits for d, span < 2^20.
    const _: () = assert!(HI < 1 << 12 && LO < 1 << 8);
    let x = d * HI;
    let (q, r) = (x / span, x % span);
    (q << 8) + ((r << 8) + d * LO) / span
}

/// OCV (1/16 mV) at `ppm`, by linear interpolation.
pub(crate) fn ocv_at(table: &[u16; OCV_POINTS], ppm: i64) -> i32 {
    let ppm = ppm.clamp(0, PPM_FULL);
    let i = ((ppm / STEP_PPM) as usize).min(OCV_POINTS - 2);
    let lo = i32::from(table[i]) * 16;
    let hi = i32::from(table[i + 1]) * 16;
    // Within 0..=STEP_PPM (the last segment takes 100 % too).
    let frac = (ppm - i as i64 * STEP_PPM) as u32;
    // `(hi - lo) * frac / STEP_PPM` (toward zero) in 32-bit steps, exact: the product needs
    // 37 bits, and a 64-bit division is a library routine on 32-bit targets. With
    // `|hi - lo| = a * STEP_PPM + b`, it is `a * frac + b * frac / STEP_PPM`, `b * frac`
    // below 2^32.
    let span = hi.abs_diff(lo);
    let (a, b) = (span / STEP_PPM as u32, span % STEP_PPM as u32);
    let part = (a * frac + b * frac / STEP_PPM as u32) as i32;
    if hi >= lo {
        lo + part
    } else {
        lo - part
    }
}

/// `sigma_uv` µV in 1/16 mV, at least 1: the argument of [`soc_sigma`].
pub(crate) fn sigma16(sigma_uv: u32) -> i32 {
    // `sigma_uv * 16 / 1_000 = sigma_uv * 2 / 125` in 32 bits (a 64-bit division is a
    // library routine on 32-bit targets): with `sigma_uv = 125 q + r` it is
    // `2 q + 2 r / 125`, at most 68_719_476 (so never above `i32::MAX / 4`).
    let (q, r) = (sigma_uv / 125, sigma_uv % 125);
    (2 * q + 2 * r / 125).max(1) as i32
}

/// One-sigma SOC uncertainty (ppm) of reading the SOC off the table from a voltage `mv16`
/// known to `s16` (1/16 mV, see [`sigma16`]): half the SOC span of `mv16 ± s16`. This is
/// `sigma_v / (dV/dSOC)` where the table is straight, and honest where it bends: near LFP's
/// plateau a few millivolts of doubt reach far into it.
// Out of line: one copy for the boot and the rest calibrations.
#[inline(never)]
pub(crate) fn soc_sigma(table: &[u16; OCV_POINTS], mv16: i32, s16: i32) -> u32 {
    let hi = soc_from_ocv(table, mv16.saturating_add(s16));
    let lo = soc_from_ocv(table, mv16.saturating_sub(s16));
    ((hi - lo) / 2).clamp(1, PPM_FULL) as u32
}

/// Integer square root (floor).
pub(crate) fn isqrt(v: u64) -> u64 {
    if v < 2 {
        return v;
    }
    let mut x = 1u64 << (((64 - v.leading_zeros()) / 2) + 1);
    loop {
        let y = (x + v / x) / 2;
        if y >= x {
            return x;
        }
        x = y;
    }
}

/// `x * gain / PPM_FULL` (toward zero) for `|x|, gain <= PPM_FULL`, in 32-bit steps (a
/// 64-bit division is a library routine on 32-bit targets): with `gain = 1000 h + l` and
/// `|x| h = 1000 q + r` (below 2^30), `|x| gain / 10^6 = q + (1000 r + |x| l) / 10^6`,
/// whose numerator stays below 2^30 too.
pub(crate) fn scale_ppm(x: i64, gain: u32) -> i64 {
    let u = x.unsigned_abs() as u32;
    let (h, l) = (gain / 1_000, gain % 1_000);
    let (q, r) = (u * h / 1_000, u * h % 1_000);
    let m = i64::from(q + (r * 1_000 + u * l) / 1_000_000);
    if x < 0 {
        -m
    } else {
        m
    }
}

/// The result of weighing a measurement against a prior.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fused {
    /// Posterior SOC, ppm.
    pub soc: i64,
    /// Posterior uncertainty, ppm (1 sigma).
    pub sigma: u32,
    /// Weight given to the measurement, ppm.
    pub gain: u32,
}

/// From this prior sigma (ppm) on, the prior is as good as unknown: with `p >= 2^62`
/// against `r <= 10^12` the gain is exactly 999_999 ppm and the posterior sigma exactly
/// `meas_sigma - 1`. Below it the variances stay within 62 bits.
const PRIOR_SIGMA_CAP: u32 = 1 << 31;

/// Weighs a measured SOC (`meas`, `meas_sigma`) against the prior (`prior`, `prior_sigma`)
/// with the scalar Kalman gain `P / (P + R)`.
///
/// When the two disagree by more than three combined sigmas the prior is evidently wrong
/// (a bad stored value, a missed charge), so its variance is raised to the disagreement:
/// a steep part of the OCV curve then pulls the SOC almost all the way, a flat part still
/// barely moves it.
///
/// SOCs are within `0..=PPM_FULL` and `meas_sigma` within `1..=PPM_FULL` (what the callers
/// pass; values outside are clamped), so that everything but `P * R` fits 64 bits.
// Out of line: one copy for the boot and the rest calibrations.
#[inline(never)]
pub(crate) fn fuse(prior: i64, prior_sigma: u32, meas: i64, meas_sigma: u32) -> Fused {
    let prior = prior.clamp(0, PPM_FULL);
    let innov = meas.clamp(0, PPM_FULL) - prior;
    let ms = u64::from(meas_sigma.clamp(1, PPM_FULL as u32));
    let full = PPM_FULL as u64;
    let (gain, sigma) = if prior_sigma >= PRIOR_SIGMA_CAP {
        // Nothing known (a boot without a stored SOC): see PRIOR_SIGMA_CAP.
        (full - 1, ms - 1)
    } else {
        let ps = u64::from(prior_sigma);
        // p < 2^62, r and innov2 <= 10^12 < 2^40.
        let (p, r) = (ps * ps, ms * ms);
        let innov2 = innov.unsigned_abs() * innov.unsigned_abs();
        // Saturating: beyond 2^64 the bound is above any innov2 anyway.
        let p = if innov2 > (p + r).saturating_mul(9) {
            p.max(innov2)
        } else {
            p
        };
        let sum = p + r;
        // floor(p * 10^6 / sum) written as 10^6 - ceil(r * 10^6 / sum): r * 10^6 < 2^60.
        let gain = full - (r * full).div_ceil(sum);
        // floor(p * r / sum) is m - ceil(m^2 / sum) for m either of p and r: with the
        // smaller one, 64 bits do unless both sigmas exceed 65_535 ppm.
        let m = p.min(r);
        let post_var = match m.checked_mul(m) {
            Some(mm) => m - mm.div_ceil(sum),
            None => super::mul_div(p as i64, r as i64, sum as i64) as u64,
        };
        (gain, isqrt(post_var).min(full))
    };
    Fused {
        soc: (prior + scale_ppm(innov, gain as u32)).clamp(0, PPM_FULL),
        sigma: sigma as u32,
        gain: gain as u32,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::soc::SocConfig;

    /// The Kalman step in 128-bit arithmetic, straight from the formulas: the reference.
    fn fuse_wide(prior: i64, prior_sigma: u32, meas: i64, meas_sigma: u32) -> Fused {
        let p = u128::from(prior_sigma) * u128::from(prior_sigma);
        let r = u128::from(meas_sigma.max(1)) * u128::from(meas_sigma.max(1));
        let innov = meas - prior;
        let innov2 = u128::from(innov.unsigned_abs()) * u128::from(innov.unsigned_abs());
        let p = if innov2 > 9 * (p + r) {
            p.max(innov2)
        } else {
            p
        };
        let gain = (p * PPM_FULL as u128 / (p + r)) as i64;
        let soc = prior + (i128::from(innov) * i128::from(gain) / i128::from(PPM_FULL)) as i64;
        let post_var = p * r / (p + r);
        Fused {
            soc: soc.clamp(0, PPM_FULL),
            sigma: isqrt(post_var.min(u128::from(u64::MAX)) as u64).min(PPM_FULL as u64) as u32,
            gain: gain as u32,
        }
    }

    proptest::proptest! {
        /// The 32-bit forms are the 64-bit formulas they replace.
        #[test]
        fn narrow_forms_are_the_wide_formulas(
            sigma_uv in proptest::prop_oneof![0u32..100_000, proptest::arbitrary::any::<u32>()],
            table in proptest::collection::vec(proptest::arbitrary::any::<u16>(), OCV_POINTS),
            ppm in proptest::prop_oneof![
                -10i64..PPM_FULL + 10,
                proptest::arbitrary::any::<i64>(),
                proptest::strategy::Just(PPM_FULL),
            ],
        ) {
            let wide = (i64::from(sigma_uv) * 16 / 1_000).clamp(1, i64::from(i32::MAX / 4)) as i32;
            proptest::prop_assert_eq!(sigma16(sigma_uv), wide);
            let t: [u16; OCV_POINTS] = table.try_into().expect("21 points");
            let p = ppm.clamp(0, PPM_FULL);
            let i = ((p / STEP_PPM) as usize).min(OCV_POINTS - 2);
            let (lo, hi) = (i64::from(t[i]) * 16, i64::from(t[i + 1]) * 16);
            let wide = (lo + (hi - lo) * (p - i as i64 * STEP_PPM) / STEP_PPM) as i32;
            proptest::prop_assert_eq!(ocv_at(&t, ppm), wide);
        }

        /// On a non-decreasing table (with flat runs), a reading strictly inside a segment
        /// gives the searched SOC from the segment alone, and the search names the segment
        /// of every reading strictly inside one.
        #[test]
        fn segment_lookup_is_the_search(
            steps in proptest::collection::vec(
                proptest::prop_oneof![proptest::strategy::Just(0u16), 0u16..400, 0u16..3_000],
                OCV_POINTS,
            ),
            base in 0u16..10_000,
            at in 0usize..OCV_POINTS,
            off in -40i32..40,
            seg in 0u8..=OCV_POINTS as u8 + 1,
        ) {
            let mut t = [0u16; OCV_POINTS];
            let mut v = base;
            for (p, s) in t.iter_mut().zip(&steps) {
                v = v.saturating_add(*s);
                *p = v;
            }
            let mv16 = i32::from(t[at]) * 16 + off;
            let (p, found) = soc_and_segment(&t, mv16);
            proptest::prop_assert_eq!(p, soc_from_ocv(&t, mv16));
            if let Some(q) = soc_in_segment(&t, mv16, seg) {
                proptest::prop_assert_eq!(q, p);
            }
            if found != 0 {
                let i = usize::from(found);
                proptest::prop_assert!(i32::from(t[i - 1]) * 16 < mv16 && mv16 < i32::from(t[i]) * 16);
                proptest::prop_assert_eq!(soc_in_segment(&t, mv16, found), Some(p));
            }
        }

        #[test]
        fn step_fraction_is_the_wide_quotient(span in 1u32..1 << 20, d in 0u32..1 << 20) {
            let d = d % (span + 1);
            let wide = i64::from(d) * STEP_PPM / i64::from(span);
            proptest::prop_assert_eq!(i64::from(step_fraction(d, span)), wide);
        }

        /// Over the inputs the callers pass (SOCs within 0..=100 %, the measurement's
        /// sigma from `soc_sigma`, any prior sigma) the 64-bit form is exact.
        #[test]
        fn fuse_equals_the_wide_form(
            prior in 0i64..=PPM_FULL,
            meas in 0i64..=PPM_FULL,
            ps in proptest::prop_oneof![
                0u32..1_100_000,
                1_100_000u32..,
                proptest::strategy::Just(PRIOR_SIGMA_CAP - 1),
                proptest::strategy::Just(PRIOR_SIGMA_CAP),
                proptest::strategy::Just(u32::MAX),
            ],
            ms in proptest::prop_oneof![1u32..=1_000_000, proptest::strategy::Just(1_000_000)],
        ) {
            proptest::prop_assert_eq!(fuse(prior, ps, meas, ms), fuse_wide(prior, ps, meas, ms));
        }

        /// The 32-bit steps are the 64-bit formula over their whole domain.
        #[test]
        fn scale_ppm_is_the_64_bit_formula(
            x in proptest::prop_oneof![-PPM_FULL..=PPM_FULL, -1_000i64..1_000],
            gain in proptest::prop_oneof![0u32..=1_000_000, 999_000u32..=1_000_000],
        ) {
            proptest::prop_assert_eq!(scale_ppm(x, gain), x * i64::from(gain) / PPM_FULL);
        }
    }

    #[test]
    fn scale_ppm_is_exact_at_the_extremes() {
        for x in [
            -PPM_FULL, -999_999, -1_001, -1, 0, 1, 999, 1_000, 999_999, PPM_FULL,
        ] {
            for gain in [0, 1, 999, 1_000, 1_001, 999_999, 1_000_000] {
                assert_eq!(
                    scale_ppm(x, gain),
                    x * i64::from(gain) / PPM_FULL,
                    "{x} {gain}"
                );
            }
        }
    }

    #[test]
    fn fuse_is_exact_at_the_extremes() {
        for prior in [0, 1, 500_000, PPM_FULL] {
            for meas in [0, 1, 999_999, PPM_FULL] {
                for ps in [
                    0,
                    1,
                    999_999,
                    1_000_000,
                    65_535_000,
                    PRIOR_SIGMA_CAP,
                    u32::MAX,
                ] {
                    for ms in [1, 2, 3, 1_000, 999_999, 1_000_000] {
                        assert_eq!(
                            fuse(prior, ps, meas, ms),
                            fuse_wide(prior, ps, meas, ms),
                            "{prior} {ps} {meas} {ms}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn lookup_round_trips_on_table_points() {
        let t = SocConfig::nmc().ocv_mv;
        for (i, mv) in t.iter().enumerate() {
            assert_eq!(soc_from_ocv(&t, i32::from(*mv) * 16), i as i64 * STEP_PPM);
            assert_eq!(ocv_at(&t, i as i64 * STEP_PPM), i32::from(*mv) * 16);
        }
        // Half way between 50 % (3755) and 55 % (3788).
        let mid = (3_755 * 16 + 3_788 * 16) / 2;
        assert_eq!(soc_from_ocv(&t, mid), 525_000);
    }

    #[test]
    fn lookup_clamps_and_handles_flat_runs() {
        let mut t = SocConfig::lfp().ocv_mv;
        assert_eq!(soc_from_ocv(&t, 0), 0);
        assert_eq!(soc_from_ocv(&t, 5_000 * 16), PPM_FULL);
        t[10] = 3_290;
        t[11] = 3_290;
        t[12] = 3_290;
        t[9] = 3_290;
        // Points 9..=12 are equal: the middle of the run is 10.5 steps.
        assert_eq!(soc_from_ocv(&t, 3_290 * 16), 525_000);
    }

    #[test]
    fn sigma_is_large_on_plateau_and_small_on_slopes() {
        let t = SocConfig::lfp().ocv_mv;
        let plateau = soc_sigma(&t, ocv_at(&t, 600_000), sigma16(5_000));
        let knee = soc_sigma(&t, ocv_at(&t, 50_000), sigma16(5_000));
        assert!(plateau > 50_000, "{plateau}");
        assert!(knee < 5_000, "{knee}");
    }

    #[test]
    fn isqrt_is_floor() {
        for v in [0u64, 1, 2, 3, 4, 15, 16, 17, 1 << 40, u64::MAX] {
            let r = isqrt(v);
            assert!(u128::from(r) * u128::from(r) <= u128::from(v));
            assert!(u128::from(r + 1) * u128::from(r + 1) > u128::from(v));
        }
    }

    #[test]
    fn fuse_weights_by_variance_and_gates_outliers() {
        let f = fuse(500_000, 10_000, 520_000, 10_000);
        assert_eq!(f.gain, 500_000);
        assert_eq!(f.soc, 510_000);
        // Precise measurement, vague prior: nearly all the way.
        let f = fuse(500_000, 50_000, 520_000, 1_000);
        assert!(f.soc > 519_000);
        // Far outside both sigmas: the prior is distrusted.
        let f = fuse(200_000, 5_000, 500_000, 4_000);
        assert!(f.soc > 495_000, "{}", f.soc);
        // A vague measurement hardly moves a good prior.
        let f = fuse(500_000, 10_000, 700_000, 200_000);
        assert!(f.soc < 501_000, "{}", f.soc);
    }
}
