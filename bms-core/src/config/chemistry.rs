//! Cell chemistries: absolute limits and default protection thresholds.

use core::fmt;
use core::str::FromStr;

use crate::units::MilliVolts;

/// A cell chemistry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Chemistry {
    /// Lithium iron phosphate (flat OCV plateau around 3.3 V).
    #[default]
    Lfp,
    /// Lithium nickel manganese cobalt oxide (3.0..4.2 V).
    Nmc,
    /// Lithium titanate (1.5..2.8 V).
    Lto,
}

/// The limits no configuration may exceed, and the charging voltage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChemistryLimits {
    /// Highest cell voltage any trip threshold may use.
    pub cell_max: MilliVolts,
    /// Lowest cell voltage any trip threshold may use.
    pub cell_min: MilliVolts,
    /// Constant-voltage charging target per cell.
    pub charge_voltage: MilliVolts,
    /// Nominal cell voltage.
    pub nominal: MilliVolts,
}

impl Chemistry {
    /// The absolute limits of this chemistry (cell manufacturers' datasheet envelopes).
    pub const fn limits(self) -> ChemistryLimits {
        let (max, min, cv, nom) = match self {
            Chemistry::Lfp => (3_800, 2_000, 3_550, 3_200),
            Chemistry::Nmc => (4_300, 2_500, 4_150, 3_650),
            Chemistry::Lto => (2_900, 1_300, 2_700, 2_300),
        };
        ChemistryLimits {
            cell_max: MilliVolts::from_mv(max),
            cell_min: MilliVolts::from_mv(min),
            charge_voltage: MilliVolts::from_mv(cv),
            nominal: MilliVolts::from_mv(nom),
        }
    }

    /// The configuration name (`lfp`, `nmc`, `lto`).
    pub const fn name(self) -> &'static str {
        match self {
            Chemistry::Lfp => "lfp",
            Chemistry::Nmc => "nmc",
            Chemistry::Lto => "lto",
        }
    }
}

impl fmt::Display for Chemistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown chemistry name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnknownChemistry;

impl fmt::Display for UnknownChemistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown chemistry: expected lfp, nmc or lto")
    }
}

impl core::error::Error for UnknownChemistry {}

impl FromStr for Chemistry {
    type Err = UnknownChemistry;
    fn from_str(s: &str) -> Result<Self, UnknownChemistry> {
        match s {
            "lfp" => Ok(Chemistry::Lfp),
            "nmc" => Ok(Chemistry::Nmc),
            "lto" => Ok(Chemistry::Lto),
            _ => Err(UnknownChemistry),
        }
    }
}
