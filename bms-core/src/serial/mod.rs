//! The RS485 / TTL / Bluetooth protocol, compatible with ANT BMS clients (the vendor app,
//! Home Assistant's aiobmsble, ESPHome's `ant_bms`/`ant_bms_old`).
//!
//! Layers, bottom up:
//! - [`frame`]: the new-protocol frame `7E A1 FUNC ADDR LEN DATA CRC16 AA 55` ([`Packet`]).
//! - [`framer`]: a bounded byte-stream framer that resynchronises after garbage and never
//!   yields a frame with a bad checksum; it also knows the legacy 6-byte requests and the
//!   legacy 140-byte status frame ([`legacy`]).
//! - Messages, each a `Repr` with `parse`/`emit`: [`request`] (what clients send),
//!   [`status`] (`0x11`), [`device_info`]
//!   (`0x12` at `0x026C`), [`registers`] (setting registers), [`command`] (control codes),
//!   [`legacy`] (legacy status and writes).
//! - [`session`]: [`SerialSession`], the sans-I/O state machine of one link: it answers
//!   requests, checks the password before any write ([`auth`]), calls a [`ParameterAccess`]
//!   for setting registers and hands control requests to the BMS as [`Command`]s.
//!
//! Fault reporting (protection/warning masks and MOSFET status codes) is documented in
//! [`faults`].
//!
//! Conventions decided here (see `ant-protocol-notes.md`): the status frame reports current
//! **positive = discharge** and puts the **discharge MOSFET status first**, as real devices
//! do; clients that read it otherwise show the same thing they show for real hardware.
//! Error responses (this firmware's extension) carry the response function with bit 7 set
//! and a 2-byte [`ErrorCode`].
//!
//! Everything is `no_std`, allocation-free and integer-only; no function panics on any
//! input, and decoders return [`DecodeError`].
//!
//! # Integration
//! Firmware: one [`SerialSession`] per link (UART or BLE characteristic). After each
//! `Bms::step`, with the bytes the link received and the step's [`Telemetry`](crate::Telemetry):
//! ```
//! use bms_core::serial::{frame::MAX_FRAME_LEN, registers::NoParameters, SerialConfig, SerialSession};
//! use bms_core::{Instant, Telemetry};
//! # let rx: &[u8] = &[0x5A, 0x5A, 0x00, 0x00, 0x01, 0x01];
//! # let telemetry = Telemetry::empty(16);
//! let mut session = SerialSession::new(SerialConfig::new(b"12345678").unwrap());
//! let mut params = NoParameters; // the integrator's `ParameterAccess` over PackConfig
//! let now = Instant::from_millis(100);
//! session.handle_bytes(now, rx, &mut params);
//! let mut tx = [0u8; MAX_FRAME_LEN];
//! while let Some(n) = session.poll_transmit(now, &telemetry, &params, &mut tx) {
//!     // uart.write(&tx[..n])
//!     # assert_eq!(n, 140);
//! }
//! while let Some(_command) = session.poll_command() {
//!     // bms.handle_command(command): the BMS decides, protections still win
//! }
//! ```
//! Simulator (`bms-sim run --serial-log FILE`): once per simulated second write
//! `time_ms,hex` with the frame of [`StatusFrame::emit`]; `.ci/peers-serial.sh FILE --trace
//! trace.csv` decodes every line with aiobmsble and compares cells, current and SOC.

pub mod auth;
pub mod command;
pub mod config_access;
mod cursor;
pub mod device_info;
pub mod faults;
pub mod frame;
pub mod framer;
pub mod legacy;
pub mod registers;
pub mod request;
pub mod session;
pub mod status;

use core::fmt;

pub use auth::{AuthConfig, AuthError};
pub use command::{Command, ControlCode, Counter};
pub use device_info::DeviceInfo;
pub use frame::{Function, Packet};
pub use framer::{Frame, Framer};
pub use legacy::{LegacyRequest, LegacyStatusRepr};
pub use registers::{ParamError, ParameterAccess, Register, REGISTERS};
pub use request::RequestRepr;
pub use session::{SerialConfig, SerialSession};
pub use status::{StatusFrame, StatusRepr};

/// Why bytes could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the frame needs.
    Truncated,
    /// Wrong start bytes, trailer, length field or counts.
    Malformed,
    /// CRC or sum mismatch.
    Checksum,
    /// A valid frame of another function than expected.
    WrongFunction,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::Truncated => "frame truncated",
            DecodeError::Malformed => "frame malformed",
            DecodeError::Checksum => "checksum mismatch",
            DecodeError::WrongFunction => "unexpected function",
        })
    }
}

impl core::error::Error for DecodeError {}

/// Why a frame could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EmitError {
    /// The output buffer is too short.
    BufferTooSmall,
    /// The payload does not fit the one-byte length field.
    PayloadTooLong,
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EmitError::BufferTooSmall => "output buffer too small",
            EmitError::PayloadTooLong => "payload too long",
        })
    }
}

impl core::error::Error for EmitError {}

/// Any error of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// Decoding failed.
    Decode(DecodeError),
    /// Encoding failed.
    Emit(EmitError),
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
    }
}

impl From<EmitError> for Error {
    fn from(e: EmitError) -> Self {
        Error::Emit(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Decode(e) => e.fmt(f),
            Error::Emit(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for Error {}

enum_with_unknown! {
    /// Error code of an error response (`func | 0x80`, 2-byte little-endian payload).
    pub enum ErrorCode(u16) {
        /// A write without a valid password session.
        NotAuthenticated = 0x0010,
        /// The password was wrong.
        WrongPassword = 0x0011,
        /// Too many wrong passwords: locked out for a while.
        LockedOut = 0x0012,
        /// The register is not in the table or not mapped.
        UnknownRegister = 0x0020,
        /// The write's length does not match the register width.
        BadLength = 0x0021,
        /// The value is out of range.
        OutOfRange = 0x0022,
        /// The value would make the configuration invalid.
        Invalid = 0x0023,
        /// The register is read-only over this link.
        ReadOnly = 0x0024,
        /// Persisting failed.
        Storage = 0x0025,
        /// The control code or request is not supported.
        Unsupported = 0x0030,
        /// Too many commands pending; try again.
        Busy = 0x0031,
    }
}

impl From<ParamError> for ErrorCode {
    fn from(e: ParamError) -> Self {
        match e {
            ParamError::UnknownRegister => ErrorCode::UnknownRegister,
            ParamError::OutOfRange => ErrorCode::OutOfRange,
            ParamError::Invalid => ErrorCode::Invalid,
            ParamError::ReadOnly => ErrorCode::ReadOnly,
            ParamError::Storage => ErrorCode::Storage,
        }
    }
}
