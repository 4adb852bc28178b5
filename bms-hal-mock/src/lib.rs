//! Mock ports over a simulated battery pack, with fault injection, and the library behind
//! the `bms-sim` host tool.
//!
//! - [`config_file`]: the TOML configuration contract (`bms-sim config` / `--config`).
//! - [`replay`]: `bms-sim replay`, one core step per recorded row.
#![forbid(unsafe_code)]

pub mod config_file;
pub mod replay;
