//! Mock ports over a simulated battery pack, with fault injection, and the library behind
//! the `bms-sim` host tool.
//!
//! - [`pack`]: [`SimPack`], the physics: per-cell equivalent circuit (21-point OCV table,
//!   R0, one RC pair, capacity and SOC spread), thermal nodes (cells, MOSFET, balancing
//!   area), MOSFETs that cut the current, pre-charge into the load capacitance, balancing
//!   resistors, a CC-CV charger.
//! - [`profile`]: scenario building blocks, a data-driven list of [`Segment`]s walked by a
//!   [`World`] that yields the external [`Request`] (load, charger, ambient, ACC) over time.
//! - [`faults`]: time-scheduled, seeded fault injection ([`FaultInjector`], and
//!   [`FaultyAfe`] to wrap any cell monitor).
//! - [`ports`]: every `bms_core::ports` trait over a shared [`Sim`], and [`MockBoard`].
//! - [`rng`]: the seeded generator behind spreads, noise and fault draws.
//! - [`flash`]: a simulated NOR flash with erase counters and power-cut injection.
//! - [`config_file`]: the TOML configuration contract (`bms-sim config` / `--config`).
//! - [`replay`]: `bms-sim replay`, one core step per recorded row.
//! - [`scenario`], [`sim`], [`plot`]: `bms-sim run`, the closed loop and its files.
//!
//! Everything is deterministic for its seeds. Floating point is used freely here: this is
//! the host side; the ports hand the core its unit types.
//!
//! # Examples
//! A closed loop: the physics advances in 100 ms steps and the controller side reads the
//! ports (here by hand) after each one.
//! ```
//! use bms_core::ports::{Board, CellMonitor, CurrentSensor, FetState, PowerSwitches};
//! use bms_core::time::{Duration, Instant};
//! use bms_core::units::MilliVolts;
//! use bms_hal_mock::{Injection, MockBoard, PackParams, Profile, Segment, SensorConfig, Sim, SimPack, World};
//!
//! let pack = SimPack::new(PackParams::lfp(16)).unwrap();
//! let mut board = MockBoard::new(Sim::new(pack, SensorConfig::default()));
//! let sim = board.sim();
//! sim.borrow_mut().inject_at(
//!     Instant::from_millis(30_000),
//!     Injection::LoadShort { amps: 2_000.0 },
//!     Duration::from_secs(1),
//! );
//! let mut world = World::new(Profile::new(25.0).then(Segment::drive_cycle(Duration::from_mins(1), 150.0)));
//! board.switches().set_fets(FetState { charge: true, discharge: true, precharge: false }).unwrap();
//! let mut peak = 0;
//! loop {
//!     let req = { let s = sim.borrow(); world.request(s.now(), s.pack()) };
//!     let Some(req) = req else { break };
//!     sim.borrow_mut().step(Duration::from_millis(100), &req);
//!     // ... here `Controller` reads the ports and drives the FETs ...
//!     peak = peak.max(board.current().read_current().unwrap().as_ma());
//! }
//! assert!(peak > 2_000_000);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
pub mod config_file;
pub mod faults;
pub mod flash;
pub mod pack;
pub mod plot;
pub mod ports;
pub mod profile;
pub mod replay;
pub mod rng;
pub mod scenario;
pub mod sim;

pub use faults::{FaultInjector, FaultyAfe, Injection};
pub use pack::{Charger, Chemistry, PackParams, Request, SimPack};
pub use ports::{MockBoard, MockError, SensorConfig, SharedSim, Sim};
pub use profile::{Load, Profile, Segment, Until, World};
