//! Request (PGN 59904) and Acknowledgment (PGN 59392), J1939-21 sections 5.4.2 and 5.4.4.
//!
//! A request carries the requested PGN in 3 little-endian bytes. An acknowledgment is
//! `control, group function, FF, FF, address acknowledged, pgn0, pgn1, pgn2` sent to the
//! global address.
//!
//! # Examples
//! ```
//! use bms_core::j1939::request::{Ack, AckControl, Request};
//! use bms_core::j1939::Pgn;
//! // Request for address claim (J1939 notes): data `00 EE 00`.
//! assert_eq!(Request::parse(&[0x00, 0xEE, 0x00])?.pgn, Pgn::ADDRESS_CLAIMED);
//! let nack = Ack { control: AckControl::Nack, group_function: 0xFF, address: 0xF9, pgn: Pgn::new(0xFEDA)? };
//! assert_eq!(nack.emit(), [0x01, 0xFF, 0xFF, 0xFF, 0xF9, 0xDA, 0xFE, 0x00]);
//! assert_eq!(Ack::parse(&nack.emit())?, nack);
//! # Ok::<(), bms_core::j1939::DecodeError>(())
//! ```

use super::id::Pgn;
use super::DecodeError;

impl From<super::IdError> for DecodeError {
    fn from(_: super::IdError) -> Self {
        DecodeError::Malformed
    }
}

/// A request for one PGN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Request {
    /// The requested PGN.
    pub pgn: Pgn,
}

impl Request {
    /// Parses a request payload (3 bytes; longer payloads are accepted, extra ignored).
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] below 3 bytes, [`DecodeError::Malformed`] for an
    /// invalid PGN.
    pub fn parse(data: &[u8]) -> Result<Self, DecodeError> {
        let b: [u8; 3] = data
            .get(..3)
            .and_then(|s| s.try_into().ok())
            .ok_or(DecodeError::Truncated)?;
        Ok(Request {
            pgn: Pgn::from_le_bytes(b)?,
        })
    }

    /// The 3-byte payload.
    pub const fn emit(&self) -> [u8; 3] {
        self.pgn.to_le_bytes()
    }
}

/// The control byte of an acknowledgment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AckControl {
    /// 0: positive acknowledgment.
    Ack,
    /// 1: negative acknowledgment (not supported).
    Nack,
    /// 2: access denied.
    AccessDenied,
    /// 3: cannot respond now.
    Busy,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for AckControl {
    fn from(v: u8) -> Self {
        match v {
            0 => AckControl::Ack,
            1 => AckControl::Nack,
            2 => AckControl::AccessDenied,
            3 => AckControl::Busy,
            x => AckControl::Unknown(x),
        }
    }
}

impl From<AckControl> for u8 {
    fn from(c: AckControl) -> u8 {
        match c {
            AckControl::Ack => 0,
            AckControl::Nack => 1,
            AckControl::AccessDenied => 2,
            AckControl::Busy => 3,
            AckControl::Unknown(x) => x,
        }
    }
}

/// An acknowledgment message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ack {
    /// Positive, negative, denied or busy.
    pub control: AckControl,
    /// Group function value (command code for proprietary commands, else `0xFF`).
    pub group_function: u8,
    /// The address of the node being answered.
    pub address: u8,
    /// The PGN being answered.
    pub pgn: Pgn,
}

impl Ack {
    /// The 8-byte payload.
    pub fn emit(&self) -> [u8; 8] {
        let p = self.pgn.to_le_bytes();
        [
            self.control.into(),
            self.group_function,
            0xFF,
            0xFF,
            self.address,
            p[0],
            p[1],
            p[2],
        ]
    }

    /// Parses an 8-byte acknowledgment.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] below 8 bytes, [`DecodeError::Malformed`] for an
    /// invalid PGN.
    pub fn parse(data: &[u8]) -> Result<Self, DecodeError> {
        let b: [u8; 8] = data
            .get(..8)
            .and_then(|s| s.try_into().ok())
            .ok_or(DecodeError::Truncated)?;
        Ok(Ack {
            control: b[0].into(),
            group_function: b[1],
            address: b[4],
            pgn: Pgn::from_le_bytes([b[5], b[6], b[7]])?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    #[test]
    fn test_truncated() {
        assert_eq!(Request::parse(&[0, 0xEE]), Err(DecodeError::Truncated));
        assert_eq!(Ack::parse(&[0; 7]), Err(DecodeError::Truncated));
        assert_eq!(
            Request::parse(&[0x01, 0xEA, 0]),
            Err(DecodeError::Malformed)
        );
    }

    #[test]
    fn control_total() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(AckControl::from(v)), v);
        }
    }
}
