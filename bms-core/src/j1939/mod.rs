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
