//! Mock ports over a simulated battery pack, with fault injection.
//!
//! - [`pack`]: [`SimPack`], the physics (per-cell equivalent circuit, thermal nodes,
//!   MOSFETs, balancing resistors, pre-charge and load capacitance).
//! - [`profile`]: scenario building blocks, a data-driven list of segments that yields the
//!   external [`Request`] (load, charger, ambient, ACC) over time.
//! - [`faults`]: time-scheduled, seeded fault injection.
//! - [`ports`]: every `bms_core::ports` trait over a shared [`Sim`], and [`MockBoard`].
//! - [`rng`]: the seeded generator behind noise, spreads and fault draws.
#![deny(missing_docs)]

pub mod faults;
pub mod pack;
pub mod ports;
pub mod profile;
pub mod rng;

pub use faults::{FaultInjector, FaultyAfe, Injection};
pub use pack::{Charger, Chemistry, PackParams, Request, SimPack};
pub use ports::{MockBoard, MockError, SensorConfig, SharedSim, Sim};
pub use profile::{Load, Profile, Segment, Until, World};
