//! Commands to the BMS over Proprietary A (PGN 61184, `0x18EF<BMS><tool>`, PDU1).
//!
//! Payload (8 bytes, little-endian):
//!
//! | Byte | Content |
//! |---|---|
//! | 0 | command code: `0x01` charge MOSFET, `0x02` discharge MOSFET, `0x03` fault reset |
//! | 1 | argument: `0x00` disable / `0x01` enable for codes 1 and 2; `0xFF` for code 3 |
//! | 2..=5 | 32-bit key, must equal [`J1939Config::command_key`](super::node::J1939Config::command_key) |
//! | 6..=7 | `0xFF 0xFF` |
//!
//! Authentication is a shared 32-bit key in the configuration; without a key configured
//! every command is refused. The key travels in clear text: it keeps stray or mistaken
//! frames from switching the MOSFETs, it does not stop an attacker who can read the bus.
//! Every other byte is range-checked, and a refused frame changes nothing.
//! The node answers each command with an Acknowledgment (PGN 59392): ACK, NACK (malformed)
//! or access denied (wrong key, or commands disabled).
//!
//! # Examples
//! ```
//! use bms_core::j1939::command::{Command, CommandError};
//! let key = 0x1234_5678u32;
//! let mut frame = [0x02, 0x00, 0x78, 0x56, 0x34, 0x12, 0xFF, 0xFF];
//! assert_eq!(Command::parse(&frame, Some(key)), Ok(Command::SetDischarge(false)));
//! assert_eq!(Command::SetDischarge(false).emit(key), frame);
//! frame[2] ^= 1;
//! assert_eq!(Command::parse(&frame, Some(key)), Err(CommandError::AccessDenied));
//! ```

use core::fmt;

/// A command the caller must apply (poll with [`super::J1939Node::poll_command`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Command {
    /// Allow (`true`) or forbid (`false`) the charge MOSFET. Protection still has the last word.
    SetCharge(bool),
    /// Allow or forbid the discharge MOSFET. Protection still has the last word.
    SetDischarge(bool),
    /// Reset latched faults (those whose condition has cleared).
    ResetFaults,
}

/// Why a command frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CommandError {
    /// Fewer than 8 bytes.
    Truncated,
    /// Unknown code, argument out of range or reserved bytes not `0xFF`.
    Malformed,
    /// Wrong key, or no key configured.
    AccessDenied,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CommandError::Truncated => "command truncated",
            CommandError::Malformed => "malformed command",
            CommandError::AccessDenied => "command access denied",
        })
    }
}

impl core::error::Error for CommandError {}

impl Command {
    /// Carries the (already authenticated) command out on `bms`: the switches only ever take
    /// permission away or give it back, protection keeps the last word; a reset releases only
    /// faults whose condition has cleared.
    pub fn apply(self, bms: &mut crate::Bms) {
        let mut sw = bms.switches();
        match self {
            Command::SetCharge(on) => sw.charge = on,
            Command::SetDischarge(on) => sw.discharge = on,
            Command::ResetFaults => bms.reset_faults(bms.telemetry().now),
        }
        bms.set_switches(sw);
    }

    /// The command code (byte 0).
    pub const fn code(self) -> u8 {
        match self {
            Command::SetCharge(_) => 0x01,
            Command::SetDischarge(_) => 0x02,
            Command::ResetFaults => 0x03,
        }
    }

    /// Parses and authenticates a command payload.
    ///
    /// # Errors
    /// [`CommandError::Truncated`] below 8 bytes, [`CommandError::Malformed`] for a bad
    /// code, argument or reserved byte, [`CommandError::AccessDenied`] when `key` is
    /// `None` or differs from the frame's.
    pub fn parse(data: &[u8], key: Option<u32>) -> Result<Self, CommandError> {
        let b: [u8; 8] = data
            .get(..8)
            .and_then(|s| s.try_into().ok())
            .ok_or(CommandError::Truncated)?;
        if b[6] != 0xFF || b[7] != 0xFF {
            return Err(CommandError::Malformed);
        }
        let cmd = match (b[0], b[1]) {
            (0x01, a @ (0 | 1)) => Command::SetCharge(a == 1),
            (0x02, a @ (0 | 1)) => Command::SetDischarge(a == 1),
            (0x03, 0xFF) => Command::ResetFaults,
            _ => return Err(CommandError::Malformed),
        };
        let got = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        match key {
            Some(k) if k == got => Ok(cmd),
            _ => Err(CommandError::AccessDenied),
        }
    }

    /// The payload of this command with `key` (for tools and tests).
    pub fn emit(self, key: u32) -> [u8; 8] {
        let arg = match self {
            Command::SetCharge(on) | Command::SetDischarge(on) => u8::from(on),
            Command::ResetFaults => 0xFF,
        };
        let k = key.to_le_bytes();
        [self.code(), arg, k[0], k[1], k[2], k[3], 0xFF, 0xFF]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    #[test]
    fn test_parse_checks() {
        let k = 7;
        for c in [
            Command::SetCharge(true),
            Command::SetCharge(false),
            Command::SetDischarge(true),
            Command::ResetFaults,
        ] {
            assert_eq!(Command::parse(&c.emit(k), Some(k)), Ok(c));
            assert_eq!(
                Command::parse(&c.emit(k), None),
                Err(CommandError::AccessDenied)
            );
        }
        let mut b = Command::SetCharge(true).emit(k);
        b[1] = 2;
        assert_eq!(Command::parse(&b, Some(k)), Err(CommandError::Malformed));
        b = Command::ResetFaults.emit(k);
        b[7] = 0;
        assert_eq!(Command::parse(&b, Some(k)), Err(CommandError::Malformed));
        assert_eq!(
            Command::parse(&b[..7], Some(k)),
            Err(CommandError::Truncated)
        );
    }
}
