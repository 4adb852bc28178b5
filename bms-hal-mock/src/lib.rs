//! Mock ports over a simulated battery pack, with fault injection, and the library behind
//! the `bms-sim` host tool.
//!
//! - [`pack`]: [`SimPack`], the physics (per-cell equivalent circuit, thermal nodes,
//!   MOSFETs, balancing resistors, pre-charge and load capacitance).
//! - [`profile`]: scenario building blocks, a data-driven list of segments that yields the
//!   external [`Request`] (load, charger, ambient, ACC) over time.
//! - [`faults`]: time-scheduled, seeded fault injection.
//! - [`ports`]: every `bms_core::ports` trait over a shared [`Sim`], and [`MockBoard`].
//! - [`rng`]: the seeded generator behind noise, spreads and fault draws.
//! - [`config_file`]: the TOML configuration contract (`bms-sim config` / `--config`).
//! - [`replay`]: `bms-sim replay`, one core step per recorded row.
//! - [`scenario`], [`sim`], [`plot`]: `bms-sim run`, the closed loop and its files.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config_file;
pub mod faults;
pub mod pack;
pub mod plot;
pub mod ports;
pub mod profile;
pub mod replay;
pub mod rng;
pub mod scenario;
pub mod sim;

pub use faults::{FaultInjector, Injection};
pub use pack::{Charger, Chemistry, PackParams, Request, SimPack};
pub use ports::{MockBoard, MockError, SensorConfig, SharedSim, Sim};
pub use profile::{Load, Profile, Segment, Until, World};
