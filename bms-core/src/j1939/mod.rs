//! SAE J1939 node of the BMS: identifiers, address claim, requests, transport protocol
//! (BAM), diagnostics (DM1/DM2/DM3/DM11), battery data messages and commands.
//!
//! Everything is sans-I/O: [`J1939Node`] takes received frames, telemetry snapshots and the
//! time, and hands out frames to send and commands to apply.
//!
//! | Module | Content |
//! |---|---|
//! | [`id`] | [`J1939Id`] and [`Pgn`] |
//! | [`name`] | the 64-bit [`Name`] of J1939-81 |
//! | [`tp`] | BAM sender and receiver |
//! | [`dm`] | DTCs, lamps, the fault-to-DTC map, DM1/DM2 payloads |
//! | [`messages`] | battery data PGNs (HVES1 and proprietary B) |
//! | [`command`] | authenticated commands (proprietary A) |
//! | [`request`] | request and acknowledgment |
//! | [`node`] | the node state machine and its scheduler |

//!
//! # Integration
//! One node per CAN port, owned by the controller next to the `Bms`. Every control step
//! (e.g. 100 ms), after `Bms::step` has produced its telemetry:
//!
//! ```
//! use bms_core::can::CanFrame;
//! use bms_core::j1939::{Command, J1939Config, J1939Node};
//! use bms_core::{Instant, Telemetry};
//!
//! fn can_step(
//!     node: &mut J1939Node,
//!     now: Instant,
//!     telemetry: &Telemetry,
//!     received: &[CanFrame],
//!     mut send: impl FnMut(CanFrame),
//!     mut apply: impl FnMut(Command),
//! ) {
//!     node.update(now, telemetry); // new step: DTCs, schedule, receive budget
//!     for f in received {
//!         node.handle_frame(now, f); // at most `rx_budget` are processed
//!     }
//!     while let Some(f) = node.poll_transmit(now) {
//!         send(f); // e.g. also `write_candump_line` for a log
//!     }
//!     while let Some(c) = node.poll_command() {
//!         apply(c); // forward to the protection logic, which has the last word
//!     }
//! }
//!
//! let mut node = J1939Node::new(J1939Config::default());
//! let mut sent = Vec::new();
//! can_step(&mut node, Instant::ZERO, &Telemetry::empty(16), &[], |f| sent.push(f), |_| {});
//! assert_eq!(sent.len(), 1); // the address claim comes first, alone
//! ```
//!
//! Stepping every 100 ms puts 100 ms between the TP.DT frames of a BAM (within the
//! 50..=200 ms of J1939-21); a caller that wakes at [`J1939Node::poll_timeout`] gets
//! [`J1939Config::bam_gap`] instead.

pub mod command;
pub mod dm;
pub mod id;
pub mod messages;
pub mod name;
pub mod node;
pub mod request;
pub mod tp;

pub use command::Command;
pub use id::{IdError, J1939Id, Pgn};
pub use name::Name;
pub use node::{J1939Config, J1939Node, NodeStats};

use core::fmt;

/// Why a received payload could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the message needs.
    Truncated,
    /// A field outside its valid range or an inconsistent layout.
    Malformed,
    /// A message this node does not know.
    UnknownPgn(Pgn),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("payload truncated"),
            DecodeError::Malformed => f.write_str("malformed payload"),
            DecodeError::UnknownPgn(p) => write!(f, "unknown PGN {p}"),
        }
    }
}

impl core::error::Error for DecodeError {}
