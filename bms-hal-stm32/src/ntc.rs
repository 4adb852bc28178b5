//! NTC thermistor conversion: resistance or ADC counts to [`DeciCelsius`], integer only.
//!
//! The part is a **10 kΩ at 25 °C, B25/85 = 3435 K** NTC, the usual battery-pack sensor
//! (for example SEMITEC 103AT-2). The table holds its resistance every 5 °C from −40 °C
//! to 125 °C, generated from the B-parameter equation
//! `R(T) = 10 kΩ · exp(3435 K · (1/T − 1/298.15 K))`. A real part follows its own R-T
//! table, which departs from this model towards the ends of the range (most at the cold
//! end); replace [`TABLE_OHMS`] with the vendor table when that matters.
//!
//! Readings outside −40..=125 °C, and the ADC end codes, mean an open or shorted sensor
//! and convert to `None`, which the core turns into a sensor fault.
//!
//! # Examples
//! ```
//! use bms_hal_stm32::ntc::{celsius_from_ohms, Divider};
//! assert_eq!(celsius_from_ohms(10_000).map(|t| t.as_deci()), Some(250));
//! // 10 kΩ pull-up to the ADC reference, NTC to ground, 12-bit ADC: half scale = 25 °C.
//! let d = Divider::new(10_000, 4_095);
//! assert_eq!(d.celsius_from_counts(2_048).map(|t| t.as_deci()), Some(250));
//! assert_eq!(d.celsius_from_counts(4_095), None); // open
//! assert_eq!(d.celsius_from_counts(0), None); // short
//! ```

use bms_core::units::DeciCelsius;

/// Temperature of the first table entry, in tenths of °C.
pub const TABLE_START_DECI: i16 = -400;
/// Table step, in tenths of °C.
pub const TABLE_STEP_DECI: i16 = 50;

/// Resistance in ohms at −40, −35, ..., 125 °C (34 entries, strictly falling).
pub const TABLE_OHMS: [u32; 34] = [
    248_277, 182_221, 135_452, 101_898, 77_523, 59_606, 46_290, 36_290, 28_704, 22_897, 18_410,
    14_916, 12_171, 10_000, 8_269, 6_881, 5_759, 4_847, 4_101, 3_488, 2_981, 2_559, 2_207, 1_912,
    1_662, 1_451, 1_272, 1_118, 987, 874, 776, 692, 618, 554,
];

/// Converts an NTC resistance to a temperature, interpolating linearly between table
/// points; `None` outside −40..=125 °C (open or shorted sensor).
pub fn celsius_from_ohms(ohms: u32) -> Option<DeciCelsius> {
    let first = *TABLE_OHMS.first()?;
    let last = *TABLE_OHMS.last()?;
    if ohms > first || ohms < last {
        return None;
    }
    // First entry at or below `ohms`: the segment is [i-1, i].
    let i = TABLE_OHMS.iter().position(|r| *r <= ohms)?;
    if i == 0 {
        return Some(DeciCelsius::from_deci(TABLE_START_DECI));
    }
    let hi_r = *TABLE_OHMS.get(i - 1)?;
    let lo_r = *TABLE_OHMS.get(i)?;
    let span = hi_r - lo_r;
    let frac = u64::from(hi_r - ohms) * u64::from(TABLE_STEP_DECI as u16);
    // Rounded to the nearest tenth.
    let step = ((frac + u64::from(span) / 2) / u64::from(span.max(1))) as i16;
    let base = TABLE_START_DECI + TABLE_STEP_DECI * (i as i16 - 1);
    Some(DeciCelsius::from_deci(base + step))
}

/// A voltage divider: pull-up resistor from the ADC reference to the input, NTC from the
/// input to ground, ADC reference = divider supply (ratiometric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Divider {
    pullup_ohms: u32,
    full_scale: u16,
}

impl Divider {
    /// A divider with a `pullup_ohms` pull-up read by an ADC whose largest code is
    /// `full_scale` (4095 for 12 bits).
    pub const fn new(pullup_ohms: u32, full_scale: u16) -> Self {
        Divider {
            pullup_ohms,
            full_scale,
        }
    }

    /// NTC resistance for an ADC reading; `None` at the end codes (open or short).
    pub fn ohms_from_counts(&self, counts: u16) -> Option<u32> {
        if counts == 0 || counts >= self.full_scale {
            return None;
        }
        let r =
            u64::from(self.pullup_ohms) * u64::from(counts) / u64::from(self.full_scale - counts);
        u32::try_from(r).ok()
    }

    /// Temperature for an ADC reading; `None` for an open or shorted NTC.
    pub fn celsius_from_counts(&self, counts: u16) -> Option<DeciCelsius> {
        self.ohms_from_counts(counts).and_then(celsius_from_ohms)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn table_points_are_exact() {
        for (i, r) in TABLE_OHMS.iter().enumerate() {
            let t = celsius_from_ohms(*r).map(|t| t.as_deci());
            assert_eq!(t, Some(-400 + 50 * i as i16), "entry {i}");
        }
    }

    #[test]
    fn table_falls_strictly() {
        assert!(TABLE_OHMS.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn beta_model_anchor_points() {
        // Independent of the table: R(T) from the B equation at 0, 50 and 100 °C.
        for (c, deci) in [(0.0f64, 0i16), (50.0, 500), (100.0, 1000)] {
            let t = c + 273.15;
            let r = 10_000.0 * (3435.0 * (1.0 / t - 1.0 / 298.15)).exp();
            let got = celsius_from_ohms(r.round() as u32).map(|t| t.as_deci());
            assert_eq!(got, Some(deci));
        }
    }

    #[test]
    fn interpolates_between_points() {
        // Midway between 20 °C (12171 Ω) and 25 °C (10000 Ω).
        let mid = (12_171 + 10_000) / 2;
        assert_eq!(celsius_from_ohms(mid).map(|t| t.as_deci()), Some(225));
        // Monotonic: more ohms, colder.
        let mut prev = i16::MIN;
        for r in (554..=248_277).rev().step_by(97) {
            let t = celsius_from_ohms(r)
                .map(|t| t.as_deci())
                .unwrap_or(i16::MAX);
            assert!(t >= prev, "{r} Ω");
            prev = t;
        }
    }

    #[test]
    fn out_of_range_is_none() {
        assert_eq!(celsius_from_ohms(248_278), None);
        assert_eq!(celsius_from_ohms(553), None);
        assert_eq!(celsius_from_ohms(0), None);
        assert_eq!(celsius_from_ohms(u32::MAX), None);
    }

    #[test]
    fn divider_end_codes_and_middle() {
        let d = Divider::new(10_000, 4_095);
        assert_eq!(d.ohms_from_counts(0), None);
        assert_eq!(d.ohms_from_counts(4_095), None);
        assert_eq!(d.ohms_from_counts(u16::MAX), None);
        // 10k pull-up: 1/3 of full scale is 5 kΩ.
        assert_eq!(d.ohms_from_counts(1_365), Some(5_000));
        // A nearly open NTC (counts close to full scale) is below -40 °C: None.
        assert_eq!(d.celsius_from_counts(4_094), None);
        // A nearly shorted one is above 125 °C: None.
        assert_eq!(d.celsius_from_counts(1), None);
    }
}
