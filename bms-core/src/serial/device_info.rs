//! Device information (function `0x02` at address `0x026C` → `0x12`): hardware and software
//! version strings, 16 bytes each, NUL-padded.
//!
//! # Examples
//! ```
//! use bms_core::serial::device_info::DeviceInfo;
//! let info = DeviceInfo::new("20ZM", "20ZMUB00-261128A");
//! let mut buf = [0u8; 48];
//! let n = info.emit(&mut buf)?;
//! assert_eq!(n, 42);
//! let back = DeviceInfo::parse_frame(&buf[..n])?;
//! assert_eq!(back.hardware(), "20ZM");
//! # Ok::<(), bms_core::serial::Error>(())
//! ```

use super::frame::{emit_frame, Function, Packet};
use super::{DecodeError, EmitError, Error};

/// Address of the device-information block.
pub const DEVICE_INFO_ADDR: u16 = 0x026C;
/// Length of the device-information payload.
pub const DEVICE_INFO_LEN: usize = 32;

/// Hardware and software version strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeviceInfo {
    hardware: [u8; 16],
    software: [u8; 16],
}

fn pad(s: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = s.len().min(16);
    out[..n].copy_from_slice(&s[..n]);
    out
}

fn text(b: &[u8; 16]) -> &str {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let b = &b[..end];
    match core::str::from_utf8(b) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or(""),
    }
}

impl DeviceInfo {
    /// From two strings, each cut to 16 bytes.
    pub fn new(hardware: &str, software: &str) -> Self {
        DeviceInfo {
            hardware: pad(hardware.as_bytes()),
            software: pad(software.as_bytes()),
        }
    }

    /// Hardware version (up to the first NUL; invalid UTF-8 cut off).
    pub fn hardware(&self) -> &str {
        text(&self.hardware)
    }

    /// Software version (up to the first NUL; invalid UTF-8 cut off).
    pub fn software(&self) -> &str {
        text(&self.software)
    }

    /// Decodes a checked `0x12` packet at [`DEVICE_INFO_ADDR`].
    ///
    /// # Errors
    /// [`DecodeError::WrongFunction`] for another function or address,
    /// [`DecodeError::Truncated`] for a payload under 32 bytes.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<DeviceInfo, DecodeError> {
        if p.function() != Function::Registers || p.address() != DEVICE_INFO_ADDR {
            return Err(DecodeError::WrongFunction);
        }
        let b = p.payload();
        let hw = b.get(..16).ok_or(DecodeError::Truncated)?;
        let sw = b.get(16..32).ok_or(DecodeError::Truncated)?;
        Ok(DeviceInfo {
            hardware: pad(hw),
            software: pad(sw),
        })
    }

    /// Checks and decodes a whole frame (junk before `AA 55` tolerated, as real devices send).
    ///
    /// # Errors
    /// As [`Packet::new_checked`] and [`DeviceInfo::parse`].
    pub fn parse_frame(frame: &[u8]) -> Result<DeviceInfo, Error> {
        Ok(DeviceInfo::parse(&Packet::new_checked(frame)?)?)
    }

    /// Writes the clean 42-byte response frame.
    ///
    /// # Errors
    /// [`EmitError::BufferTooSmall`] when `out` is shorter than 42 bytes.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, EmitError> {
        let mut pl = [0u8; DEVICE_INFO_LEN];
        pl[..16].copy_from_slice(&self.hardware);
        pl[16..].copy_from_slice(&self.software);
        emit_frame(
            Function::Registers,
            DEVICE_INFO_ADDR,
            &pl,
            DEVICE_INFO_LEN as u8,
            out,
        )
    }
}
