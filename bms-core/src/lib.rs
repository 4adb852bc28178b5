//! # bms-core
//!
//! A hardware-agnostic, sans-I/O battery management core for 8..20-series Li-ion, LFP and
//! LTO packs: protection, state of charge, passive balancing and the wire protocols
//! (J1939, the CAN 2.0A inverter protocol, the ANT-compatible serial protocol).
//!
//! ## Layers
//! - **Units and time** ([`units`], [`time`]): integer newtypes; no FPU on the control path.
//! - **Model** ([`measure`], [`telemetry`], [`config`]): one snapshot in, one report out,
//!   one validated configuration.
//! - **Logic** ([`protect`], [`soc`], [`balance`], tied together by [`Bms::step`]): pure
//!   functions of configuration, measurements and time.
//! - **Wire** ([`can`], [`j1939`], [`inverter`], [`serial`]): sans-I/O codecs and protocol
//!   state machines fed from [`telemetry::Telemetry`]; [`event_log`]: power-cut-safe storage over
//!   `embedded-storage` NOR flash.
//! - **Ports** ([`ports`], [`Controller`]): the traits a board implements, and one control
//!   cycle over them.
//!
//! ## Guarantees
//! `#![no_std]`, no heap, `#![forbid(unsafe_code)]`; no decoder panics on any input.
//! Current is positive for discharge, negative for charge, everywhere inside the core.
//!
//! ## Minimum supported Rust version
//! Rust 1.85 (edition 2021). Raising it is a minor-version change.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod band;
mod bits;
#[macro_use]
mod macros;

pub mod balance;
pub mod bms;
pub mod can;
pub mod config;
pub mod controller;
pub mod event_log;
pub mod inverter;
pub mod j1939;
pub mod measure;
pub mod ports;
pub mod protect;
pub mod serial;
pub mod soc;
pub mod telemetry;
pub mod time;
pub mod units;

pub use bms::{Bms, Event, Outputs, TimedEvent};
pub use controller::Controller;
pub use measure::{Measurements, MAX_CELLS};
pub use ports::FetState;
pub use protect::{Fault, FaultSet};
pub use telemetry::{Limits, PowerMode, Telemetry};
pub use time::{Duration, Instant, OptInstant};
pub use units::{DeciCelsius, MilliAmpHours, MilliAmpMillis, MilliAmps, MilliVolts, Permille, Soc};
