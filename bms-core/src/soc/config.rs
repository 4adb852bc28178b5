//! [`SocConfig`]: the `[soc]` section of the pack configuration, and chemistry presets.
//!
//! Only `ocv_mv` is required in TOML; every other key falls back to a value derived from
//! physics that holds for any Li-ion chemistry (rest detection relative to capacity,
//! sensor uncertainty, relaxation). Current thresholds are given per ampere-hour of
//! capacity (`mA/Ah`, i.e. thousandths of C) so the same section fits any pack size.

use core::fmt;

use crate::time::Duration;
use crate::units::MilliVolts;

/// Number of points of an OCV table: 0, 5, ..., 100 % SOC.
pub const OCV_POINTS: usize = 21;

/// Configuration of the SOC / SOH estimator.
///
/// # Examples
/// ```
/// use bms_core::soc::SocConfig;
/// let lfp = SocConfig::lfp();
/// assert!(lfp.validate().is_ok());
/// assert_eq!(lfp.ocv_mv.len(), 21);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct SocConfig {
    /// Open-circuit voltage of one cell at 25 °C at 0, 5, ..., 100 % SOC (non-decreasing).
    pub ocv_mv: [u16; OCV_POINTS],
    /// The pack is at rest while `|I|` stays below this (mA per Ah of capacity).
    pub rest_current_ma_per_ah: u16,
    /// Currents below this magnitude (mA per Ah) are not integrated: the current sensor's
    /// offset is of this order and would otherwise drift the SOC during idle hours.
    pub deadband_ma_per_ah: u16,
    /// Floor of the dead band in mA, whatever the capacity: the current sensor's own
    /// offset (set it from the board's front end; the rest threshold is at least 1.5x it).
    pub deadband_min_ma: u32,
    /// Rest time after which the cell voltage is taken as the open-circuit voltage.
    pub rest_time_ms: Duration,
    /// Uncertainty of a relaxed OCV reading per cell (table error, hysteresis), mV (1 sigma).
    pub ocv_sigma_mv: u16,
    /// Extra uncertainty of an unrelaxed reading at the start of a rest, mV; it decays as
    /// `relax_tau / (relax_tau + rest time)`.
    pub relax_sigma_mv: u16,
    /// Time constant of that decay.
    pub relax_tau_ms: Duration,
    /// Reversible (entropic) OCV temperature coefficient, µV/K, applied relative to 25 °C.
    pub ocv_temp_coeff_uv_per_k: i16,
    /// Extra OCV uncertainty per kelvin away from 25 °C, µV/K (the table is for 25 °C).
    pub ocv_temp_sigma_uv_per_k: u16,
    /// Uncertainty of the integrated charge, permille of the charge moved (sensor gain and
    /// capacity error).
    pub gain_sigma_permille: u16,
    /// Uncertainty of a stored SOC at boot (self-discharge while off), permille of SOC.
    pub stored_sigma_permille: u16,
    /// Effective cell resistance times capacity, mΩ·Ah: used to compensate the IR drop when
    /// the pack boots under load with no stored SOC.
    pub resistance_mohm_ah: u16,
    /// Full calibration: the highest cell must be at or above this while charging.
    /// `None` = the 95 % point of `ocv_mv`.
    pub full_cell_mv: Option<MilliVolts>,
    /// Full calibration: the charge current has tapered below this (mA per Ah).
    pub tail_current_ma_per_ah: u16,
    /// Empty calibration: the lowest cell is at or below this while discharging.
    /// `None` = one eighth of the way from the 0 % to the 5 % point of `ocv_mv`.
    pub empty_cell_mv: Option<MilliVolts>,
    /// Empty calibration only counts while the discharge current is at most this (mA per Ah):
    /// at higher currents the voltage sag says little about the charge left.
    pub empty_current_ma_per_ah: u16,
    /// How long the full or empty condition must hold.
    pub calibration_hold_ms: Duration,
    /// Largest step accepted from the caller's clock; longer gaps are integrated as this.
    pub max_step_ms: Duration,
}

impl Default for SocConfig {
    /// The NMC preset.
    fn default() -> Self {
        SocConfig::nmc()
    }
}

const fn base(ocv_mv: [u16; OCV_POINTS]) -> SocConfig {
    SocConfig {
        ocv_mv,
        // C/33: polarisation below this relaxes to within a few mV of the OCV.
        rest_current_ma_per_ah: 30,
        // C/50: larger than the offset of a typical hall or shunt front end on a pack this
        // size, far below any real load.
        deadband_ma_per_ah: 20,
        // 0.17 % of a 300 A range: a calibrated shunt front end.
        deadband_min_ma: 500,
        rest_time_ms: Duration::from_mins(30),
        ocv_sigma_mv: 5,
        relax_sigma_mv: 30,
        relax_tau_ms: Duration::from_mins(5),
        ocv_temp_coeff_uv_per_k: 0,
        ocv_temp_sigma_uv_per_k: 200,
        gain_sigma_permille: 15,
        stored_sigma_permille: 50,
        // Typical 10 s DC resistance of an energy-type NMC cell: 30-40 mΩ at 5 Ah.
        resistance_mohm_ah: 200,
        full_cell_mv: None,
        tail_current_ma_per_ah: 50,
        empty_cell_mv: None,
        empty_current_ma_per_ah: 200,
        calibration_hold_ms: Duration::from_secs(10),
        max_step_ms: Duration::from_secs(60),
    }
}

impl SocConfig {
    /// Lithium iron phosphate (graphite / LiFePO₄), 25 °C.
    ///
    /// The plateau between 30 and 90 % spans about 60 mV, so a rest reading there carries
    /// little weight; hysteresis of about 10-20 mV is why `ocv_sigma_mv` is larger.
    pub const fn lfp() -> Self {
        let mut c = base([
            2_500, 3_000, 3_150, 3_200, 3_225, 3_245, 3_258, 3_268, 3_278, 3_284, 3_289, 3_292,
            3_295, 3_299, 3_304, 3_314, 3_324, 3_329, 3_334, 3_345, 3_450,
        ]);
        c.ocv_sigma_mv = 8;
        c.ocv_temp_coeff_uv_per_k = -50;
        // LFP cells: 10-20 mΩ at 2.5 Ah, 0.3-0.5 mΩ at 100 Ah.
        c.resistance_mohm_ah = 50;
        c
    }

    /// Nickel manganese cobalt oxide against graphite, 25 °C.
    pub const fn nmc() -> Self {
        let mut c = base([
            3_000, 3_420, 3_530, 3_580, 3_620, 3_645, 3_665, 3_685, 3_705, 3_728, 3_755, 3_788,
            3_825, 3_865, 3_905, 3_945, 3_985, 4_025, 4_068, 4_115, 4_180,
        ]);
        c.ocv_temp_coeff_uv_per_k = -100;
        c
    }

    /// Lithium titanate (LTO anode against NMC), 25 °C.
    pub const fn lto() -> Self {
        let mut c = base([
            1_800, 2_050, 2_130, 2_170, 2_200, 2_215, 2_230, 2_240, 2_250, 2_260, 2_270, 2_280,
            2_290, 2_300, 2_315, 2_330, 2_350, 2_375, 2_410, 2_470, 2_650,
        ]);
        c.ocv_temp_coeff_uv_per_k = -50;
        // LTO cells: about 0.5-1 mΩ at 20-40 Ah.
        c.resistance_mohm_ah = 30;
        c
    }

    /// The full-calibration threshold in effect.
    pub fn full_threshold(&self) -> MilliVolts {
        self.full_cell_mv
            .unwrap_or(MilliVolts::from_mv(u32::from(self.ocv_mv[OCV_POINTS - 2])))
    }

    /// The empty-calibration threshold in effect.
    pub fn empty_threshold(&self) -> MilliVolts {
        self.empty_cell_mv.unwrap_or_else(|| {
            let lo = u32::from(self.ocv_mv[0]);
            let next = u32::from(self.ocv_mv[1]);
            MilliVolts::from_mv(lo + next.saturating_sub(lo) / 8)
        })
    }

    /// Checks the table and the thresholds.
    ///
    /// # Errors
    /// [`SocConfigError`] naming the first problem found.
    pub fn validate(&self) -> Result<(), SocConfigError> {
        if self.ocv_mv.windows(2).any(|w| w[1] < w[0]) {
            return Err(SocConfigError::OcvNotMonotonic);
        }
        if self.ocv_mv[OCV_POINTS - 1] <= self.ocv_mv[0] || self.ocv_mv[0] == 0 {
            return Err(SocConfigError::OcvFlat);
        }
        if self.deadband_ma_per_ah > self.rest_current_ma_per_ah {
            return Err(SocConfigError::DeadbandAboveRest);
        }
        if self.tail_current_ma_per_ah <= self.deadband_ma_per_ah {
            return Err(SocConfigError::TailBelowDeadband);
        }
        if self.rest_time_ms == Duration::ZERO || self.max_step_ms == Duration::ZERO {
            return Err(SocConfigError::ZeroTime);
        }
        Ok(())
    }
}

/// What is wrong with a [`SocConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SocConfigError {
    /// `ocv_mv` decreases somewhere.
    OcvNotMonotonic,
    /// `ocv_mv` does not rise from 0 to 100 %, or starts at 0 mV.
    OcvFlat,
    /// The dead band is wider than the rest threshold.
    DeadbandAboveRest,
    /// The tail current does not exceed the dead band.
    TailBelowDeadband,
    /// A rest time or step cap of zero.
    ZeroTime,
}

impl fmt::Display for SocConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocConfigError::OcvNotMonotonic => "soc.ocv_mv must be non-decreasing",
            SocConfigError::OcvFlat => "soc.ocv_mv must rise from 0 to 100 %",
            SocConfigError::DeadbandAboveRest => {
                "soc.deadband_ma_per_ah must not exceed soc.rest_current_ma_per_ah"
            }
            SocConfigError::TailBelowDeadband => {
                "soc.tail_current_ma_per_ah must exceed soc.deadband_ma_per_ah"
            }
            SocConfigError::ZeroTime => "soc.rest_time_ms and soc.max_step_ms must be positive",
        })
    }
}

impl core::error::Error for SocConfigError {}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for c in [SocConfig::lfp(), SocConfig::nmc(), SocConfig::lto()] {
            assert_eq!(c.validate(), Ok(()));
            assert!(c.empty_threshold() < c.full_threshold());
        }
    }

    #[test]
    fn validate_rejects_bad_tables() {
        let mut c = SocConfig::nmc();
        c.ocv_mv[10] = 3_000;
        assert_eq!(c.validate(), Err(SocConfigError::OcvNotMonotonic));
        let mut c = SocConfig::nmc();
        c.ocv_mv = [3_300; OCV_POINTS];
        assert_eq!(c.validate(), Err(SocConfigError::OcvFlat));
        let mut c = SocConfig::nmc();
        c.deadband_ma_per_ah = 100;
        assert_eq!(c.validate(), Err(SocConfigError::DeadbandAboveRest));
    }

    #[test]
    fn derived_thresholds_follow_the_table() {
        let c = SocConfig::lfp();
        assert_eq!(c.full_threshold().as_mv(), 3_345);
        assert_eq!(c.empty_threshold().as_mv(), 2_500 + 500 / 8);
    }
}
