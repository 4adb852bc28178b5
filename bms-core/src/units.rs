//! Unit newtypes: every physical quantity in the core carries its unit in its type.
//!
//! All are integers with a fixed resolution, so the control path needs no FPU. Each has
//! `const fn` constructors named after the unit and accessors of the same name; arithmetic
//! is only defined where the result has the same unit (adding two voltages), and anything
//! else goes through a named method that says what it does (`MilliAmps::times`).
//!
//! Sign convention: [`MilliAmps`] is **positive for discharge, negative for charge**
//! (the product specification's -150..300 A range). Protocols convert at their edge.
//!
//! # Examples
//! ```
//! use bms_core::units::{MilliAmps, MilliVolts, DeciCelsius, Soc};
//! let cell = MilliVolts::from_mv(3_312);
//! assert_eq!(cell.as_mv(), 3_312);
//! let charge = MilliAmps::from_amps(-50);
//! assert!(charge.is_charge());
//! assert_eq!(DeciCelsius::from_celsius(25).as_deci(), 250);
//! assert!(Soc::try_from_permille(1_001).is_err());
//! ```

use core::fmt;
use core::ops::{Add, AddAssign, Neg, Sub, SubAssign};

use crate::time::Duration;

macro_rules! unit_ops {
    ($t:ident, $inner:ty) => {
        impl Add for $t {
            type Output = $t;
            fn add(self, rhs: $t) -> $t {
                $t(self.0.saturating_add(rhs.0))
            }
        }
        impl Sub for $t {
            type Output = $t;
            fn sub(self, rhs: $t) -> $t {
                $t(self.0.saturating_sub(rhs.0))
            }
        }
        impl AddAssign for $t {
            fn add_assign(&mut self, rhs: $t) {
                *self = *self + rhs;
            }
        }
        impl SubAssign for $t {
            fn sub_assign(&mut self, rhs: $t) {
                *self = *self - rhs;
            }
        }
    };
}

/// Voltage with 1 mV resolution (cells 0..5 V, packs up to 100 V).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct MilliVolts(u32);

impl MilliVolts {
    /// Zero volts.
    pub const ZERO: MilliVolts = MilliVolts(0);
    /// A voltage of `mv` millivolts.
    pub const fn from_mv(mv: u32) -> Self {
        MilliVolts(mv)
    }
    /// A voltage of `v` whole volts.
    pub const fn from_volts(v: u32) -> Self {
        MilliVolts(v.saturating_mul(1000))
    }
    /// Millivolts.
    pub const fn as_mv(self) -> u32 {
        self.0
    }
    /// `|self - other|`.
    pub const fn abs_diff(self, other: MilliVolts) -> MilliVolts {
        MilliVolts(self.0.abs_diff(other.0))
    }
    /// `self - other` or zero.
    pub const fn saturating_sub(self, other: MilliVolts) -> MilliVolts {
        MilliVolts(self.0.saturating_sub(other.0))
    }
}
unit_ops!(MilliVolts, u32);

impl fmt::Display for MilliVolts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} mV", self.0)
    }
}

/// Current with 1 mA resolution. **Positive = discharge, negative = charge.**
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct MilliAmps(i32);

impl MilliAmps {
    /// No current.
    pub const ZERO: MilliAmps = MilliAmps(0);
    /// A current of `ma` milliamps (positive = discharge).
    pub const fn from_ma(ma: i32) -> Self {
        MilliAmps(ma)
    }
    /// A current of `a` whole amps (positive = discharge), saturating.
    pub const fn from_amps(a: i32) -> Self {
        MilliAmps(a.saturating_mul(1000))
    }
    /// Milliamps (positive = discharge).
    pub const fn as_ma(self) -> i32 {
        self.0
    }
    /// Magnitude in milliamps.
    pub const fn unsigned_abs(self) -> u32 {
        self.0.unsigned_abs()
    }
    /// `true` when current flows out of the pack.
    pub const fn is_discharge(self) -> bool {
        self.0 > 0
    }
    /// `true` when current flows into the pack.
    pub const fn is_charge(self) -> bool {
        self.0 < 0
    }
    /// Charge moved by this current over `dt` (positive = discharged).
    pub const fn times(self, dt: Duration) -> MilliAmpMillis {
        MilliAmpMillis::from_raw(self.0 as i64 * dt.as_millis() as i64)
    }
}
unit_ops!(MilliAmps, i32);

impl Neg for MilliAmps {
    type Output = MilliAmps;
    fn neg(self) -> MilliAmps {
        MilliAmps(self.0.saturating_neg())
    }
}

impl fmt::Display for MilliAmps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} mA", self.0)
    }
}

/// Temperature in tenths of a degree Celsius (`-400` = -40.0 °C).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct DeciCelsius(i16);

impl DeciCelsius {
    /// A temperature of `deci` tenths of a degree Celsius.
    pub const fn from_deci(deci: i16) -> Self {
        DeciCelsius(deci)
    }
    /// A temperature of `c` whole degrees Celsius, saturating.
    pub const fn from_celsius(c: i16) -> Self {
        DeciCelsius(c.saturating_mul(10))
    }
    /// Converts from tenths of a kelvin (the BQ769x2 native unit), saturating.
    pub const fn from_deci_kelvin(dk: u16) -> Self {
        let d = dk as i32 - 2_732;
        DeciCelsius(if d > i16::MAX as i32 {
            i16::MAX
        } else {
            d as i16
        })
    }
    /// Tenths of a degree Celsius.
    pub const fn as_deci(self) -> i16 {
        self.0
    }
    /// Whole degrees Celsius, rounded toward zero.
    pub const fn as_celsius(self) -> i16 {
        self.0 / 10
    }
}
unit_ops!(DeciCelsius, i16);

impl fmt::Display for DeciCelsius {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{}{}.{} °C", sign, a / 10, a % 10)
    }
}

/// Charge in milliamp-milliseconds, the lossless accumulator unit (positive = discharged).
///
/// A 100 ms step at 300 A is 3·10⁷ mA·ms; an `i64` holds 29 000 years of that. Keeping the
/// integral in this unit and converting only when reading avoids the rounding drift of
/// converting every step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MilliAmpMillis(i64);

impl MilliAmpMillis {
    /// No charge.
    pub const ZERO: MilliAmpMillis = MilliAmpMillis(0);
    /// From raw milliamp-milliseconds.
    pub const fn from_raw(v: i64) -> Self {
        MilliAmpMillis(v)
    }
    /// Raw milliamp-milliseconds.
    pub const fn as_raw(self) -> i64 {
        self.0
    }
    /// From milliamp-hours.
    pub const fn from_mah(mah: i64) -> Self {
        MilliAmpMillis(mah.saturating_mul(3_600_000))
    }
    /// Whole milliamp-seconds (truncated toward zero).
    pub const fn as_mas(self) -> i64 {
        self.0 / 1000
    }
    /// Whole milliamp-hours (truncated toward zero).
    pub const fn as_mah(self) -> i64 {
        self.0 / 3_600_000
    }
}
unit_ops!(MilliAmpMillis, i64);

impl Neg for MilliAmpMillis {
    type Output = MilliAmpMillis;
    fn neg(self) -> MilliAmpMillis {
        MilliAmpMillis(self.0.saturating_neg())
    }
}

/// Charge in milliamp-seconds (positive = discharged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct MilliAmpSeconds(i64);

impl MilliAmpSeconds {
    /// From milliamp-seconds.
    pub const fn from_mas(mas: i64) -> Self {
        MilliAmpSeconds(mas)
    }
    /// Milliamp-seconds.
    pub const fn as_mas(self) -> i64 {
        self.0
    }
    /// Whole milliamp-hours (truncated toward zero).
    pub const fn as_mah(self) -> i64 {
        self.0 / 3_600
    }
}
unit_ops!(MilliAmpSeconds, i64);

/// A capacity in milliamp-hours (always non-negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct MilliAmpHours(u32);

impl MilliAmpHours {
    /// From milliamp-hours.
    pub const fn from_mah(mah: u32) -> Self {
        MilliAmpHours(mah)
    }
    /// Milliamp-hours.
    pub const fn as_mah(self) -> u32 {
        self.0
    }
    /// The same charge in the accumulator unit.
    pub const fn to_mams(self) -> MilliAmpMillis {
        MilliAmpMillis::from_raw(self.0 as i64 * 3_600_000)
    }
}
unit_ops!(MilliAmpHours, u32);

/// Resistance in milliohms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct MilliOhms(u32);

impl MilliOhms {
    /// From milliohms.
    pub const fn from_mohm(mohm: u32) -> Self {
        MilliOhms(mohm)
    }
    /// From ohms, saturating.
    pub const fn from_ohms(ohm: u32) -> Self {
        MilliOhms(ohm.saturating_mul(1000))
    }
    /// Milliohms.
    pub const fn as_mohm(self) -> u32 {
        self.0
    }
}

/// A ratio in parts per thousand, 0..=1000 is the usual range but not enforced here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Permille(u16);

impl Permille {
    /// 100 %.
    pub const FULL: Permille = Permille(1000);
    /// From parts per thousand.
    pub const fn from_permille(p: u16) -> Self {
        Permille(p)
    }
    /// Parts per thousand.
    pub const fn as_permille(self) -> u16 {
        self.0
    }
    /// `value * self / 1000` without overflow, rounded down.
    pub const fn of(self, value: u32) -> u32 {
        mul_div_u32(value, self.0 as u32, 1000)
    }
}

/// A state of charge in permille, always within `0..=1000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Soc(u16);

/// A value outside the bounds of a bounded quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OutOfRange;

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("value out of range")
    }
}

impl core::error::Error for OutOfRange {}

impl Soc {
    /// Empty.
    pub const EMPTY: Soc = Soc(0);
    /// Full.
    pub const FULL: Soc = Soc(1000);
    /// A SOC of `p` permille.
    ///
    /// # Errors
    /// [`OutOfRange`] when `p > 1000`.
    pub const fn try_from_permille(p: u16) -> Result<Self, OutOfRange> {
        if p <= 1000 {
            Ok(Soc(p))
        } else {
            Err(OutOfRange)
        }
    }
    /// A SOC of `p` permille, clamped to `0..=1000`.
    pub const fn from_permille_clamped(p: i32) -> Self {
        Soc(if p < 0 {
            0
        } else if p > 1000 {
            1000
        } else {
            p as u16
        })
    }
    /// Permille, `0..=1000`.
    pub const fn as_permille(self) -> u16 {
        self.0
    }
    /// Whole percent, rounded to nearest.
    pub const fn as_percent(self) -> u8 {
        ((self.0 + 5) / 10) as u8
    }
}

impl TryFrom<u16> for Soc {
    type Error = OutOfRange;
    fn try_from(p: u16) -> Result<Self, OutOfRange> {
        Soc::try_from_permille(p)
    }
}

impl fmt::Display for Soc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} %", self.0 / 10, self.0 % 10)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Soc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.0)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Soc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = u16::deserialize(d)?;
        Soc::try_from_permille(p).map_err(|_| serde::de::Error::custom("SOC above 1000 permille"))
    }
}

/// `a * b / d` rounded down, exact for every input (`d` must not be zero; the result must
/// fit in a `u32`).
///
/// Divides in 32 bits whenever the product fits, which is every real case on the control
/// path: a 64-bit division is a library call of about a hundred cycles on a Cortex-M.
pub(crate) const fn mul_div_u32(a: u32, b: u32, d: u32) -> u32 {
    match a.checked_mul(b) {
        Some(p) => p / d,
        None => (a as u64 * b as u64 / d as u64) as u32,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn mul_div_u32_is_the_wide_quotient(
            a in prop_oneof![0u32..5_000_000, any::<u32>()],
            b in prop_oneof![0u32..=1_000, any::<u32>()],
            d in 1u32..=u32::MAX,
        ) {
            let wide = u64::from(a) * u64::from(b) / u64::from(d);
            prop_assume!(wide <= u64::from(u32::MAX));
            prop_assert_eq!(u64::from(mul_div_u32(a, b, d)), wide);
        }
    }

    #[test]
    fn current_times_duration_keeps_sign_and_scale() {
        let q = MilliAmps::from_amps(300).times(Duration::from_millis(100));
        assert_eq!(q.as_raw(), 30_000_000);
        assert_eq!(q.as_mas(), 30_000);
        let c = MilliAmps::from_ma(-1).times(Duration::from_secs(3600));
        assert_eq!(c.as_mah(), -1);
    }

    #[test]
    fn deci_kelvin_converts() {
        assert_eq!(DeciCelsius::from_deci_kelvin(2_982).as_deci(), 250);
        assert_eq!(DeciCelsius::from_deci_kelvin(0).as_deci(), -2_732);
    }

    #[test]
    fn soc_bounds() {
        assert_eq!(Soc::from_permille_clamped(-5), Soc::EMPTY);
        assert_eq!(Soc::from_permille_clamped(1_500), Soc::FULL);
        assert_eq!(Soc::try_from(1000u16), Ok(Soc::FULL));
        assert_eq!(Soc::try_from(1001u16), Err(OutOfRange));
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(
            MilliVolts::from_mv(1) - MilliVolts::from_mv(2),
            MilliVolts::ZERO
        );
        assert_eq!(-MilliAmps::from_ma(i32::MIN), MilliAmps::from_ma(i32::MAX));
    }
}
