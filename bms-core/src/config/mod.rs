//! Configuration: [`PackConfig`], chemistry presets, product variants and validation.
//!
//! One core serves every product: the 80 A and 300 A variants, LFP/NMC/LTO and 8..20
//! cells in series are configuration, never forks of code. A configuration is built from a
//! preset ([`PackConfig::preset`]), optionally edited (or read from TOML by the host tools
//! with the `serde` feature), and must pass [`PackConfig::validate`] before use.
//!
//! # Examples
//! ```
//! use bms_core::config::{Chemistry, PackConfig, Variant};
//! let variant: Variant = "ANT16S-80A-T".parse()?;
//! let mut cfg = PackConfig::preset(variant, Chemistry::Lfp);
//! assert!(cfg.validate().is_ok());
//! cfg.cells = 21;
//! assert!(cfg.validate().is_err());
//! # Ok::<(), bms_core::config::PartNumberError>(())
//! ```

mod chemistry;
mod variant;

use core::fmt;

pub use chemistry::{Chemistry, ChemistryLimits, UnknownChemistry};
pub use variant::{PartNumberError, Port, Variant};

use crate::balance::{BalanceConfig, BalanceConfigError};
use crate::measure::{MAX_CELLS, MIN_CELLS};
use crate::protect::rules::{Latch, ProtectionRule, ProtectionTable, RuleError};
use crate::protect::Fault;
use crate::soc::{SocConfig, SocConfigError};
use crate::time::Duration;
use crate::units::{DeciCelsius, MilliAmpHours, MilliAmps, MilliVolts, Permille};

/// Pre-charge of the load capacitance before the discharge MOSFET closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct PrechargeConfig {
    /// Pre-charge before closing discharge (`false`: close discharge directly).
    pub enabled: bool,
    /// Load voltage that completes the pre-charge, as a fraction of pack voltage.
    pub target_permille: Permille,
    /// Time allowed to reach the target before `precharge_fail`.
    #[cfg_attr(feature = "serde", serde(rename = "timeout_ms"))]
    pub timeout: Duration,
    /// With discharge open, a load-side voltage at or above this fraction of the pack
    /// voltage means no load is connected (the load-detect bias is not pulled down).
    pub load_removed_permille: Permille,
}

/// Power modes: sleep after idling, deep sleep after a long under-voltage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct PowerConfig {
    /// Current magnitude below which the pack counts as idle.
    #[cfg_attr(feature = "serde", serde(rename = "idle_current_ma"))]
    pub idle_current: MilliAmps,
    /// Idle time before sleep.
    #[cfg_attr(feature = "serde", serde(rename = "sleep_after_ms"))]
    pub sleep_after: Duration,
    /// Current magnitude that wakes from sleep.
    #[cfg_attr(feature = "serde", serde(rename = "wake_current_ma"))]
    pub wake_current: MilliAmps,
    /// How long `cell_uv` must be active, with no charger, before deep sleep.
    #[cfg_attr(feature = "serde", serde(rename = "deep_sleep_after_ms"))]
    pub deep_sleep_after: Duration,
}

/// Plausibility limits: readings outside them are a `sensor_fault`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct PlausibilityConfig {
    /// Lowest plausible cell reading (a cell at 0 mV is a wiring or AFE fault).
    #[cfg_attr(feature = "serde", serde(rename = "cell_min_mv"))]
    pub cell_min: MilliVolts,
    /// Highest plausible cell reading.
    #[cfg_attr(feature = "serde", serde(rename = "cell_max_mv"))]
    pub cell_max: MilliVolts,
    /// Lowest plausible temperature.
    #[cfg_attr(feature = "serde", serde(rename = "temp_min_dc"))]
    pub temp_min: DeciCelsius,
    /// Highest plausible temperature.
    #[cfg_attr(feature = "serde", serde(rename = "temp_max_dc"))]
    pub temp_max: DeciCelsius,
    /// Largest allowed difference between the pack voltage and the sum of the cells.
    #[cfg_attr(feature = "serde", serde(rename = "pack_tolerance_mv"))]
    pub pack_tolerance: MilliVolts,
    /// Cell readings that do not change at all for this long while current flows are stuck.
    #[cfg_attr(feature = "serde", serde(rename = "stuck_after_ms"))]
    pub stuck_after: Duration,
    /// Current magnitude above which cell readings must move.
    #[cfg_attr(feature = "serde", serde(rename = "stuck_min_current_ma"))]
    pub stuck_min_current: MilliAmps,
}

/// Charging limits reported to chargers and inverters, with derating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct LimitsConfig {
    /// Constant-voltage target per cell.
    #[cfg_attr(feature = "serde", serde(rename = "charge_voltage_mv"))]
    pub charge_voltage: MilliVolts,
    /// Largest charge current with no derating.
    #[cfg_attr(feature = "serde", serde(rename = "max_charge_current_ma"))]
    pub max_charge_current: MilliAmps,
    /// Largest discharge current with no derating.
    #[cfg_attr(feature = "serde", serde(rename = "max_discharge_current_ma"))]
    pub max_discharge_current: MilliAmps,
    /// Lowest pack voltage per cell the load may draw to.
    #[cfg_attr(feature = "serde", serde(rename = "discharge_voltage_mv"))]
    pub discharge_voltage: MilliVolts,
    /// The body-diode rule: while one direction is blocked, current of at least this
    /// magnitude in the other direction re-closes the blocked MOSFET so its body diode
    /// does not carry the current. `0` disables the rule.
    #[cfg_attr(feature = "serde", serde(rename = "body_diode_current_ma"))]
    pub body_diode_current: MilliAmps,
}

/// What a digital output DO1..DO3 does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "function", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum OutputFunction {
    /// Always off.
    #[default]
    Off,
    /// On while any fault or warning is active (alarm relay).
    Alarm,
    /// On while any fault is active.
    Fault,
    /// On while charging is allowed (enables an external charger).
    ChargerEnable,
    /// On while discharging is allowed (enables the load, e.g. a contactor).
    LoadEnable,
    /// On below `on_below_dc`, off again above `off_above_dc` (coldest NTC).
    Heater {
        /// Switch on at or below this temperature.
        on_below_dc: DeciCelsius,
        /// Switch off at or above this temperature.
        off_above_dc: DeciCelsius,
    },
    /// On above `on_above_dc`, off again below `off_below_dc` (hottest of NTCs and MOSFET).
    Fan {
        /// Switch on at or above this temperature.
        on_above_dc: DeciCelsius,
        /// Switch off at or below this temperature.
        off_below_dc: DeciCelsius,
    },
}

/// The three digital outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct OutputsConfig {
    /// DO1.
    pub do1: OutputFunction,
    /// DO2.
    pub do2: OutputFunction,
    /// DO3.
    pub do3: OutputFunction,
}

impl OutputsConfig {
    /// The three functions, DO1 first.
    pub const fn functions(&self) -> [OutputFunction; 3] {
        [self.do1, self.do2, self.do3]
    }
}

/// The whole configuration of one pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct PackConfig {
    /// The product part number (`ANT16S-300A-C`).
    #[cfg_attr(feature = "serde", serde(with = "variant_str"))]
    pub variant: Variant,
    /// Cells in series, 8..=20, at most the variant's count.
    pub cells: u8,
    /// Cell chemistry.
    pub chemistry: Chemistry,
    /// Nominal capacity.
    pub capacity_mah: MilliAmpHours,
    /// Pre-charge.
    pub precharge: PrechargeConfig,
    /// Power modes.
    pub power: PowerConfig,
    /// Plausibility checks.
    pub plausibility: PlausibilityConfig,
    /// Charge/discharge limits and the body-diode rule.
    pub limits: LimitsConfig,
    /// Digital outputs.
    pub outputs: OutputsConfig,
    /// State-of-charge estimation, `[soc]`.
    pub soc: SocConfig,
    /// Passive balancing, `[balance]`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub balance: BalanceConfig,
    /// The protection table, `[protection.<fault>]`.
    pub protection: ProtectionTable,
}

#[cfg(feature = "serde")]
mod variant_str {
    use super::Variant;
    pub fn serialize<S: serde::Serializer>(v: &Variant, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Variant, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Variant;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a part number such as \"ANT16S-300A-C\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Variant, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// An inconsistent configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// Cells in series outside 8..=20.
    CellCount(u8),
    /// More cells than the variant's monitor has channels.
    CellsExceedVariant {
        /// Configured cells.
        cells: u8,
        /// Channels of the variant.
        variant: u8,
    },
    /// Capacity of zero.
    ZeroCapacity,
    /// A rule on its own is inconsistent.
    Rule(RuleError),
    /// A trip threshold beyond the chemistry's absolute limit.
    BeyondChemistry(Fault),
    /// Over-current levels not strictly increasing (`dsg_oc1 < dsg_oc2 < sc`).
    CurrentLevels,
    /// Charging voltage not strictly between the under- and over-voltage trips.
    ChargeVoltage,
    /// A fraction above 1000 permille or zero where it must not be.
    Fraction,
    /// Plausibility limits that would accept an impossible reading or reject a normal one.
    Plausibility,
    /// A heater or fan output whose off threshold is not on the far side of its on threshold.
    OutputHysteresis,
    /// The `[soc]` section is inconsistent.
    Soc(SocConfigError),
    /// The `[balance]` section is inconsistent.
    Balance(BalanceConfigError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::CellCount(n) => write!(f, "cells = {n}: supported 8..=20"),
            ConfigError::CellsExceedVariant { cells, variant } => {
                write!(
                    f,
                    "cells = {cells} but the variant monitors at most {variant}"
                )
            }
            ConfigError::ZeroCapacity => f.write_str("capacity_mah must be above zero"),
            ConfigError::Rule(e) => e.fmt(f),
            ConfigError::BeyondChemistry(x) => {
                write!(
                    f,
                    "protection.{x}: trip threshold beyond the chemistry's absolute limit"
                )
            }
            ConfigError::CurrentLevels => {
                f.write_str("discharge current trips must increase: dsg_oc1 < dsg_oc2 < sc")
            }
            ConfigError::ChargeVoltage => f.write_str(
                "limits.charge_voltage_mv must lie between the cell_uv and cell_ov trips",
            ),
            ConfigError::Fraction => f.write_str("a permille fraction must be within 1..=1000"),
            ConfigError::Plausibility => {
                f.write_str("plausibility limits must enclose the chemistry and temperature trips")
            }
            ConfigError::OutputHysteresis => {
                f.write_str("outputs: a heater/fan off threshold must be beyond its on threshold")
            }
            ConfigError::Soc(e) => e.fmt(f),
            ConfigError::Balance(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for ConfigError {}

impl From<RuleError> for ConfigError {
    fn from(e: RuleError) -> Self {
        ConfigError::Rule(e)
    }
}

/// Default protection thresholds of a chemistry (cell mV: trip, release, warn for OV, UV).
const fn cell_thresholds(chem: Chemistry) -> [(i32, i32, i32); 2] {
    match chem {
        Chemistry::Lfp => [(3_650, 3_400, 3_600), (2_500, 2_900, 2_800)],
        Chemistry::Nmc => [(4_250, 4_100, 4_200), (2_800, 3_100, 3_000)],
        Chemistry::Lto => [(2_800, 2_650, 2_750), (1_500, 1_800, 1_700)],
    }
}

impl PackConfig {
    /// The default configuration of a product variant for a chemistry, with the
    /// variant's full cell count and a 100 Ah nominal capacity.
    ///
    /// Current limits scale with the variant's ratings: short circuit at the pulse rating
    /// (the specification's 300 A default), `dsg_oc2` at two thirds of it for 10 s,
    /// `dsg_oc1` at 110 % of the continuous rating for 60 s.
    pub fn preset(variant: Variant, chemistry: Chemistry) -> Self {
        let n = variant.cells as i32;
        let [(ov, ov_rel, ov_warn), (uv, uv_rel, uv_warn)] = cell_thresholds(chemistry);
        let pulse = variant.pulse_current.as_ma();
        let rated = variant.rated_current.as_ma();
        let limits = chemistry.limits();
        let r = ProtectionRule::new;
        let rules = [
            // cell_ov
            r(ov, ov_rel, 1_000, 2_000).warn(ov_warn),
            // cell_uv
            r(uv, uv_rel, 1_000, 2_000).warn(uv_warn),
            // pack_ov: a redundant check on the pack divider, 20 mV per cell above cell_ov
            r(n * (ov + 20), n * ov_rel, 2_000, 2_000),
            // pack_uv
            r(n * (uv - 20), n * uv_rel, 2_000, 2_000),
            // chg_oc: 120 % of the continuous rating
            r(rated * 6 / 5, rated / 2, 5_000, 30_000)
                .warn(rated)
                .latch(Latch::ChargerRemoved),
            // dsg_oc1: 110 % of the continuous rating, sustained
            r(rated * 11 / 10, rated, 60_000, 30_000).warn(rated),
            // dsg_oc2: two thirds of the pulse rating, 10 s
            r(pulse * 2 / 3, rated, 10_000, 30_000).latch(Latch::LoadRemoved),
            // sc: the pulse rating, first sample (the AFE trips in hardware within µs);
            // three short circuits within the retry window latch until reset.
            r(pulse, rated / 10, 0, 5_000)
                .latch(Latch::LoadRemoved)
                .retries(3),
            // chg_ot, chg_ut, dsg_ot, dsg_ut (0.1 °C)
            r(550, 500, 2_000, 5_000).warn(500),
            r(0, 50, 2_000, 5_000).warn(50),
            r(650, 600, 2_000, 5_000).warn(600),
            r(-200, -150, 2_000, 5_000).warn(-150),
            // mos_ot
            r(1_000, 800, 1_000, 10_000).warn(850),
            // cell_imbalance (mV)
            r(500, 300, 10_000, 10_000).warn(300),
            // open_wire (count), afe_comm (0/1), sensor_fault (0/1), precharge_fail (0/1)
            r(1, 0, 500, 5_000),
            r(1, 0, 300, 1_000),
            r(1, 0, 500, 2_000),
            r(1, 0, 0, 10_000).retries(3),
        ];
        PackConfig {
            variant,
            cells: variant.cells,
            chemistry,
            capacity_mah: MilliAmpHours::from_mah(100_000),
            precharge: PrechargeConfig {
                enabled: true,
                target_permille: Permille::from_permille(900),
                timeout: Duration::from_secs(2),
                load_removed_permille: Permille::from_permille(500),
            },
            power: PowerConfig {
                idle_current: MilliAmps::from_ma(500),
                sleep_after: Duration::from_mins(30),
                wake_current: MilliAmps::from_ma(1_000),
                deep_sleep_after: Duration::from_mins(60),
            },
            plausibility: PlausibilityConfig {
                cell_min: MilliVolts::from_mv(500),
                cell_max: MilliVolts::from_mv(5_000),
                temp_min: DeciCelsius::from_celsius(-40),
                temp_max: DeciCelsius::from_celsius(125),
                pack_tolerance: MilliVolts::from_mv(250 + 50 * variant.cells as u32),
                stuck_after: Duration::from_secs(30),
                stuck_min_current: MilliAmps::from_amps(5),
            },
            limits: LimitsConfig {
                charge_voltage: limits.charge_voltage,
                max_charge_current: MilliAmps::from_ma(rated),
                max_discharge_current: MilliAmps::from_ma(rated),
                discharge_voltage: MilliVolts::from_mv(uv_warn as u32),
                body_diode_current: MilliAmps::from_amps(2),
            },
            outputs: OutputsConfig {
                do1: OutputFunction::Alarm,
                do2: OutputFunction::ChargerEnable,
                do3: OutputFunction::Off,
            },
            soc: match chemistry {
                Chemistry::Lfp => SocConfig::lfp(),
                Chemistry::Nmc => SocConfig::nmc(),
                Chemistry::Lto => SocConfig::lto(),
            },
            balance: match chemistry {
                Chemistry::Lfp => BalanceConfig::lfp(),
                Chemistry::Nmc => BalanceConfig::nmc(),
                Chemistry::Lto => BalanceConfig::lto(),
            },
            protection: ProtectionTable::from_rules(rules),
        }
    }

    /// The pack-level trip thresholds follow the cell count: call after changing `cells`
    /// on a preset to rescale `pack_ov`/`pack_uv` and the pack tolerance.
    pub fn rescale_pack_thresholds(&mut self) {
        let n = self.cells as i32;
        let [(ov, ov_rel, _), (uv, uv_rel, _)] = cell_thresholds(self.chemistry);
        *self.protection.get_mut(Fault::PackOv) = ProtectionRule {
            trip: n * (ov + 20),
            release: n * ov_rel,
            ..*self.protection.get(Fault::PackOv)
        };
        *self.protection.get_mut(Fault::PackUv) = ProtectionRule {
            trip: n * (uv - 20),
            release: n * uv_rel,
            ..*self.protection.get(Fault::PackUv)
        };
        self.plausibility.pack_tolerance = MilliVolts::from_mv(250 + 50 * self.cells as u32);
    }

    /// Checks that the configuration is consistent and within the chemistry's limits.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = self.cells as usize;
        if !(MIN_CELLS..=MAX_CELLS).contains(&n) {
            return Err(ConfigError::CellCount(self.cells));
        }
        if self.cells > self.variant.cells {
            return Err(ConfigError::CellsExceedVariant {
                cells: self.cells,
                variant: self.variant.cells,
            });
        }
        if self.capacity_mah.as_mah() == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        self.protection.validate()?;
        let lim = self.chemistry.limits();
        let (max, min) = (lim.cell_max.as_mv() as i32, lim.cell_min.as_mv() as i32);
        let p = &self.protection;
        let nn = self.cells as i32;
        // In order, the first fault whose trip is beyond the chemistry's limit; tested one
        // by one (a table of the four results is built on the stack in full first).
        let beyond = if p.get(Fault::CellOv).trip > max {
            Some(Fault::CellOv)
        } else if p.get(Fault::CellUv).trip < min {
            Some(Fault::CellUv)
        } else if p.get(Fault::PackOv).trip > nn * max {
            Some(Fault::PackOv)
        } else if p.get(Fault::PackUv).trip < nn * min {
            Some(Fault::PackUv)
        } else {
            None
        };
        if let Some(f) = beyond {
            return Err(ConfigError::BeyondChemistry(f));
        }
        let (oc1, oc2, sc) = (
            p.get(Fault::DsgOc1).trip,
            p.get(Fault::DsgOc2).trip,
            p.get(Fault::Sc).trip,
        );
        if !(oc1 < oc2 && oc2 < sc) {
            return Err(ConfigError::CurrentLevels);
        }
        let cv = self.limits.charge_voltage.as_mv() as i32;
        if !(p.get(Fault::CellUv).trip < cv && cv < p.get(Fault::CellOv).trip) {
            return Err(ConfigError::ChargeVoltage);
        }
        let frac_ok = |x: Permille| (1..=1000).contains(&x.as_permille());
        if !frac_ok(self.precharge.target_permille)
            || !frac_ok(self.precharge.load_removed_permille)
        {
            return Err(ConfigError::Fraction);
        }
        let pl = &self.plausibility;
        let temp_trips_inside = [
            Fault::ChgOt,
            Fault::ChgUt,
            Fault::DsgOt,
            Fault::DsgUt,
            Fault::MosOt,
        ]
        .iter()
        .all(|f| {
            let t = p.get(*f).trip;
            t > pl.temp_min.as_deci() as i32 && t < pl.temp_max.as_deci() as i32
        });
        if pl.cell_min.as_mv() as i32 >= p.get(Fault::CellUv).trip
            || pl.cell_max.as_mv() as i32 <= p.get(Fault::CellOv).trip
            || pl.cell_min.as_mv() == 0
            || !temp_trips_inside
        {
            return Err(ConfigError::Plausibility);
        }
        self.soc.validate().map_err(ConfigError::Soc)?;
        self.balance.validate().map_err(ConfigError::Balance)?;
        // By reference: no copy of the three outputs.
        let outputs = &self.outputs;
        for o in [&outputs.do1, &outputs.do2, &outputs.do3] {
            let ok = match *o {
                OutputFunction::Heater {
                    on_below_dc,
                    off_above_dc,
                } => off_above_dc > on_below_dc,
                OutputFunction::Fan {
                    on_above_dc,
                    off_below_dc,
                } => off_below_dc < on_above_dc,
                _ => true,
            };
            if !ok {
                return Err(ConfigError::OutputHysteresis);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn preset(chem: Chemistry) -> PackConfig {
        PackConfig::preset(Variant::new(16, 300, Port::Can).unwrap(), chem)
    }

    #[test]
    fn presets_validate() {
        for chem in [Chemistry::Lfp, Chemistry::Nmc, Chemistry::Lto] {
            for pulse in [80, 300] {
                for cells in [8, 16, 20] {
                    let c =
                        PackConfig::preset(Variant::new(cells, pulse, Port::Can).unwrap(), chem);
                    assert_eq!(c.validate(), Ok(()), "{chem} {pulse} A {cells}S");
                }
            }
        }
    }

    #[test]
    fn rejects_each_inconsistency() {
        let base = preset(Chemistry::Lfp);
        type Edit = fn(&mut PackConfig);
        let cases: [(Edit, ConfigError); 12] = [
            (|c| c.cells = 7, ConfigError::CellCount(7)),
            (|c| c.cells = 21, ConfigError::CellCount(21)),
            (
                |c| c.capacity_mah = MilliAmpHours::from_mah(0),
                ConfigError::ZeroCapacity,
            ),
            (
                |c| c.protection.get_mut(Fault::CellOv).release = 3_700,
                ConfigError::Rule(RuleError::ReleaseWrongSide(Fault::CellOv)),
            ),
            (
                |c| c.protection.get_mut(Fault::CellUv).release = 2_400,
                ConfigError::Rule(RuleError::ReleaseWrongSide(Fault::CellUv)),
            ),
            (
                |c| c.protection.get_mut(Fault::CellOv).warn = Some(3_700),
                ConfigError::Rule(RuleError::WarnWrongSide(Fault::CellOv)),
            ),
            (
                |c| c.protection.get_mut(Fault::AfeComm).enabled = false,
                ConfigError::Rule(RuleError::MandatoryDisabled(Fault::AfeComm)),
            ),
            (
                |c| c.protection.get_mut(Fault::CellOv).trip = 3_900,
                ConfigError::BeyondChemistry(Fault::CellOv),
            ),
            (
                |c| c.protection.get_mut(Fault::CellUv).trip = 1_900,
                ConfigError::BeyondChemistry(Fault::CellUv),
            ),
            (
                |c| c.protection.get_mut(Fault::DsgOc2).trip = 400_000,
                ConfigError::CurrentLevels,
            ),
            (
                |c| c.limits.charge_voltage = MilliVolts::from_mv(3_700),
                ConfigError::ChargeVoltage,
            ),
            (
                |c| c.precharge.target_permille = Permille::from_permille(1_200),
                ConfigError::Fraction,
            ),
        ];
        for (edit, err) in cases {
            let mut c = base;
            edit(&mut c);
            assert_eq!(c.validate(), Err(err));
        }
    }

    #[test]
    fn cells_cannot_exceed_variant() {
        let mut c = PackConfig::preset(Variant::new(16, 80, Port::Ttl).unwrap(), Chemistry::Nmc);
        c.cells = 18;
        assert_eq!(
            c.validate(),
            Err(ConfigError::CellsExceedVariant {
                cells: 18,
                variant: 16
            })
        );
        c.cells = 12;
        c.rescale_pack_thresholds();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.protection.get(Fault::PackOv).trip, 12 * 4_270);
    }

    #[test]
    fn output_hysteresis_checked() {
        let mut c = preset(Chemistry::Nmc);
        c.outputs.do3 = OutputFunction::Heater {
            on_below_dc: DeciCelsius::from_celsius(5),
            off_above_dc: DeciCelsius::from_celsius(2),
        };
        assert_eq!(c.validate(), Err(ConfigError::OutputHysteresis));
    }
}
