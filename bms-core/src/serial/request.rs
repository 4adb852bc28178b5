//! Client requests of the new protocol as a `Repr`: parse what a client sent, or emit a
//! request (host tools, tests).
//!
//! | request | frame |
//! |---|---|
//! | [`RequestRepr::Status`] | `7E A1 01 00 00 BE CRC AA 55` |
//! | [`RequestRepr::ReadRegisters`] | `7E A1 02 ADDR LEN CRC AA 55` (`ADDR = 0x026C`: device info) |
//! | [`RequestRepr::Ident`] | `7E A1 04 00 00 0C CRC AA 55` |
//! | [`RequestRepr::WriteRegister`] | `7E A1 22 ADDR LEN VALUE(LE) CRC AA 55` |
//! | [`RequestRepr::Authenticate`] | `7E A1 23 ADDR LEN PASSWORD CRC AA 55` |
//! | [`RequestRepr::Control`] | `7E A1 51 CODE 00 CRC AA 55` |
//!
//! # Examples
//! ```
//! use bms_core::serial::request::RequestRepr;
//! use bms_core::serial::{ControlCode, Packet};
//! let mut buf = [0u8; 16];
//! let n = RequestRepr::Control(ControlCode::ChargeOn).emit(&mut buf)?;
//! assert_eq!(&buf[..n], &[0x7E, 0xA1, 0x51, 0x06, 0x00, 0x00, 0x69, 0x24, 0xAA, 0x55]);
//! let back = RequestRepr::parse(&Packet::new_checked(&buf[..n])?)?;
//! assert_eq!(back, RequestRepr::Control(ControlCode::ChargeOn));
//! # Ok::<(), bms_core::serial::Error>(())
//! ```

use heapless::Vec;

use super::command::ControlCode;
use super::frame::{emit_frame, Function, Packet};
use super::{DecodeError, EmitError};

/// Longest authentication payload kept; longer ones can never match a password.
pub const MAX_AUTH_PAYLOAD: usize = 32;

/// A request from a client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequestRepr {
    /// Status (`0x01`); `len` is the requested length (`0xBE` from the clients).
    Status {
        /// Requested length.
        len: u8,
    },
    /// Read setting registers or the device information (`0x02`).
    ReadRegisters {
        /// First register, or `0x026C` for the device information.
        addr: u16,
        /// Bytes requested.
        len: u8,
    },
    /// The 12-byte identification block (`0x04`).
    Ident {
        /// Address (0 from the vendor app).
        addr: u16,
        /// Bytes requested.
        len: u8,
    },
    /// Write one setting register (`0x22`).
    WriteRegister {
        /// Register address.
        addr: u16,
        /// Value bytes as sent, little-endian (2 or 4 for table registers).
        value: Vec<u8, 4>,
    },
    /// Password (`0x23`). ESPHome sends address `0x016A`, aiobmsble `0x6A01`.
    Authenticate {
        /// Address as sent.
        addr: u16,
        /// Password bytes (cut to [`MAX_AUTH_PAYLOAD`]).
        password: Vec<u8, MAX_AUTH_PAYLOAD>,
    },
    /// Press a control "button" (`0x51`).
    Control(ControlCode),
}

impl RequestRepr {
    /// Decodes a checked packet.
    ///
    /// # Errors
    /// [`DecodeError::WrongFunction`] for responses and unknown functions;
    /// [`DecodeError::Malformed`] for a register write whose value is longer than 4 bytes.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<RequestRepr, DecodeError> {
        let addr = p.address();
        Ok(match p.function() {
            Function::ReadStatus => RequestRepr::Status { len: p.len_field() },
            Function::ReadRegisters => RequestRepr::ReadRegisters {
                addr,
                len: p.len_field(),
            },
            Function::ReadIdent => RequestRepr::Ident {
                addr,
                len: p.len_field(),
            },
            Function::WriteRegister => RequestRepr::WriteRegister {
                addr,
                value: Vec::from_slice(p.payload()).map_err(|_| DecodeError::Malformed)?,
            },
            Function::Authenticate => {
                let pl = p.payload();
                RequestRepr::Authenticate {
                    addr,
                    password: Vec::from_slice(&pl[..pl.len().min(MAX_AUTH_PAYLOAD)])
                        .map_err(|_| DecodeError::Malformed)?,
                }
            }
            Function::Control => RequestRepr::Control(ControlCode::from(addr)),
            _ => return Err(DecodeError::WrongFunction),
        })
    }

    /// Writes the request frame into `out`; returns its length.
    ///
    /// # Errors
    /// [`EmitError::BufferTooSmall`] when `out` is too short (10 bytes plus any payload).
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, EmitError> {
        match self {
            RequestRepr::Status { len } => emit_frame(Function::ReadStatus, 0, &[], *len, out),
            RequestRepr::ReadRegisters { addr, len } => {
                emit_frame(Function::ReadRegisters, *addr, &[], *len, out)
            }
            RequestRepr::Ident { addr, len } => {
                emit_frame(Function::ReadIdent, *addr, &[], *len, out)
            }
            RequestRepr::WriteRegister { addr, value } => emit_frame(
                Function::WriteRegister,
                *addr,
                value,
                value.len() as u8,
                out,
            ),
            RequestRepr::Authenticate { addr, password } => emit_frame(
                Function::Authenticate,
                *addr,
                password,
                password.len() as u8,
                out,
            ),
            RequestRepr::Control(code) => {
                emit_frame(Function::Control, u16::from(*code), &[], 0, out)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    #[test]
    fn test_parse_client_requests() {
        // aiobmsble's status request and ESPHome's "discharge MOSFET off".
        let status = [0x7E, 0xA1, 0x01, 0x00, 0x00, 0xBE, 0x18, 0x55, 0xAA, 0x55];
        let r = RequestRepr::parse(&Packet::new_checked(&status[..]).unwrap()).unwrap();
        assert_eq!(r, RequestRepr::Status { len: 0xBE });
        let off = [0x7E, 0xA1, 0x51, 0x01, 0x00, 0x00, 0xD8, 0xE5, 0xAA, 0x55];
        let r = RequestRepr::parse(&Packet::new_checked(&off[..]).unwrap()).unwrap();
        assert_eq!(r, RequestRepr::Control(ControlCode::DischargeOff));
        // The vendor app's write of 3650 mV to register 0.
        let w = [
            0x7E, 0xA1, 0x22, 0x00, 0x00, 0x02, 0x42, 0x0E, 0xBD, 0xEC, 0xAA, 0x55,
        ];
        let r = RequestRepr::parse(&Packet::new_checked(&w[..]).unwrap()).unwrap();
        assert_eq!(
            r,
            RequestRepr::WriteRegister {
                addr: 0,
                value: Vec::from_slice(&[0x42, 0x0E]).unwrap()
            }
        );
        let mut out = [0u8; 16];
        let n = r.emit(&mut out).unwrap();
        assert_eq!(&out[..n], &w);
    }

    #[test]
    fn test_responses_are_not_requests() {
        let ack = [
            0x7E, 0xA1, 0x61, 0x07, 0x00, 0x02, 0x01, 0x00, 0xB6, 0x2B, 0xAA, 0x55,
        ];
        assert_eq!(
            RequestRepr::parse(&Packet::new_checked(&ack[..]).unwrap()),
            Err(DecodeError::WrongFunction)
        );
    }
}
