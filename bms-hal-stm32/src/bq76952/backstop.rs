//! The BQ76952's own protections derived from a [`PackConfig`]: a hardware backstop just
//! beyond the core's software thresholds, so the core decides first and the AFE acts
//! alone only when the MCU or the core does not.

use bms_core::config::PackConfig;
use bms_core::units::{MilliAmps, MilliVolts};
use bms_core::Fault;

use super::types::{HwProtection, ScdThreshold, ShuntResistance};

impl HwProtection {
    /// The backstop for `cfg` with sense resistor `shunt`:
    /// - short circuit at the smallest SCD step at or above 1.5 × the `sc` trip, 60 µs;
    /// - OCD1 at the `sc` trip (the pulse rating), 20 ms;
    /// - OCC at 1.5 × the `chg_oc` trip, 20 ms;
    /// - COV 100 mV above the `cell_ov` trip, CUV 200 mV below the `cell_uv` trip, 2 s.
    ///
    /// Values that the device cannot represent are reported by
    /// [`HwProtection::registers`] (and by `set_hw_protection`) as `InvalidInputData`;
    /// an SCD beyond the 500 mV step is clamped to 500 mV.
    ///
    /// # Examples
    /// ```
    /// use bms_core::config::{Chemistry, PackConfig, Port, Variant};
    /// use bms_hal_stm32::bq76952::{HwProtection, ScdThreshold, ShuntResistance};
    /// let cfg = PackConfig::preset(Variant::new(16, 300, Port::Can).unwrap(), Chemistry::Lfp);
    /// let hw = HwProtection::backstop(&cfg, ShuntResistance::from_micro_ohms(250));
    /// // sc trips at 300 A in software; the hardware at 500 A (125 mV across 250 µΩ).
    /// assert_eq!(hw.scd_threshold, ScdThreshold::Mv125);
    /// assert_eq!(hw.cov.as_mv(), 3_750);
    /// ```
    pub fn backstop(cfg: &PackConfig, shunt: ShuntResistance) -> Self {
        let trip = |f: Fault| cfg.protection.get(f).trip;
        let amps = |ma: i32| MilliAmps::from_ma(ma.saturating_abs());
        let cell = |mv: i32| MilliVolts::from_mv(mv.max(0) as u32);
        let sc = amps(trip(Fault::Sc).saturating_mul(3) / 2);
        HwProtection {
            shunt,
            scd_threshold: ScdThreshold::at_or_above(sc, shunt).unwrap_or(ScdThreshold::Mv500),
            scd_delay_us: 60,
            ocd: amps(trip(Fault::Sc)),
            ocd_delay_ms: 20,
            occ: amps(trip(Fault::ChgOc).saturating_mul(3) / 2),
            occ_delay_ms: 20,
            cov: cell(trip(Fault::CellOv).saturating_add(100)),
            cuv: cell(trip(Fault::CellUv).saturating_sub(200)),
            cell_delay_ms: 2_000,
        }
    }
}
