//! The configuration file: [`PackConfig`] as TOML (DESIGN.md section 7).
//!
//! `bms-sim config` prints it, `--config` reads it back; the two are exact inverses.

use std::fmt;
use std::path::Path;

use bms_core::config::{Chemistry, ConfigError, PackConfig, Variant};

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io(std::io::Error),
    /// The file is not valid TOML for the schema (the message names the key and line).
    Toml(toml::de::Error),
    /// The values are inconsistent.
    Invalid(ConfigError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(e) => write!(f, "cannot read the configuration: {e}"),
            LoadError::Toml(e) => write!(f, "invalid configuration: {e}"),
            LoadError::Invalid(e) => write!(f, "inconsistent configuration: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Parses and validates a TOML configuration.
///
/// # Errors
/// [`LoadError::Toml`] for syntax or schema errors, [`LoadError::Invalid`] when
/// [`PackConfig::validate`] fails.
pub fn parse(text: &str) -> Result<PackConfig, LoadError> {
    let cfg: PackConfig = toml::from_str(text).map_err(LoadError::Toml)?;
    cfg.validate().map_err(LoadError::Invalid)?;
    Ok(cfg)
}

/// Reads, parses and validates a TOML configuration file.
///
/// # Errors
/// See [`parse`]; [`LoadError::Io`] if the file cannot be read.
pub fn load(path: &Path) -> Result<PackConfig, LoadError> {
    parse(&std::fs::read_to_string(path).map_err(LoadError::Io)?)
}

/// Renders a configuration as TOML.
pub fn render(cfg: &PackConfig) -> String {
    // Serialising plain data with string keys cannot fail.
    toml::to_string(cfg).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
}

/// The preset of a part number and chemistry.
///
/// # Errors
/// The part-number error.
pub fn preset(
    part: &str,
    chemistry: Chemistry,
) -> Result<PackConfig, bms_core::config::PartNumberError> {
    let v: Variant = part.parse()?;
    Ok(PackConfig::preset(v, chemistry))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn render_parse_round_trip_every_preset() {
        for part in ["ANT16S-80A-T", "ANT20S-300A-C", "ANT8S-300A-R"] {
            for chem in [Chemistry::Lfp, Chemistry::Nmc, Chemistry::Lto] {
                let cfg = preset(part, chem).unwrap();
                let text = render(&cfg);
                assert_eq!(parse(&text).unwrap(), cfg, "{part} {chem}");
                assert_eq!(render(&parse(&text).unwrap()), text);
            }
        }
    }

    #[test]
    fn schema_keys() {
        let text = render(&preset("ANT16S-80A-T", Chemistry::Lfp).unwrap());
        for key in [
            "cells = 16",
            "chemistry = \"lfp\"",
            "capacity_mah = ",
            "[protection.cell_ov]",
            "delay_ms = ",
            "release_delay_ms = ",
            "latch = \"auto\"",
        ] {
            assert!(text.contains(key), "missing {key} in\n{text}");
        }
    }

    #[test]
    fn malformed_configs_are_rejected_with_a_reason() {
        let good = render(&preset("ANT16S-80A-T", Chemistry::Lfp).unwrap());
        let cases = [
            (good.replace("cells = 16", "cells = 21"), "cells = 21"),
            (
                good.replace("chemistry = \"lfp\"", "chemistry = \"lead\""),
                "unknown variant",
            ),
            (
                good.replacen("[protection.cell_ov]", "[protection.cell_0v]", 1),
                "unknown fault",
            ),
            (
                good.replacen("latch = \"auto\"", "latch = \"sometimes\"", 1),
                "unknown variant",
            ),
            (
                good.replace("capacity_mah = 100000", "capacity_mah = 0"),
                "capacity_mah",
            ),
            (
                good.replace("capacity_mah = 100000", "capacity_mah = -5"),
                "invalid value",
            ),
            (format!("{good}\n[surprise]\nx = 1\n"), "unknown field"),
        ];
        for (text, needle) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err:?}");
        }
    }
}
