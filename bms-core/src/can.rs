//! A plain classic-CAN frame ([`CanFrame`]) and the candump log line writer.
//!
//! Every CAN protocol of the core (the J1939 node, the inverter protocol) produces and
//! consumes [`CanFrame`]s. The type implements [`embedded_can::Frame`], so a HAL whose frames
//! implement the same trait converts with `Frame::new(frame.id(), frame.data())`.
//!
//! # Examples
//! ```
//! use bms_core::can::{write_candump_line, CanFrame};
//! use bms_core::time::Instant;
//! use embedded_can::{ExtendedId, Frame, Id};
//!
//! let id = Id::Extended(ExtendedId::new(0x18FECAF3).unwrap());
//! let f = CanFrame::new(id, &[0x00, 0xFF, 0, 0, 0, 0, 0xFF, 0xFF]).unwrap();
//! let mut line = String::new();
//! write_candump_line(&mut line, Instant::from_millis(1_250), &f).unwrap();
//! assert_eq!(line, "(1.250000) can0 18FECAF3#00FF00000000FFFF\n");
//! ```

use core::fmt;

pub use embedded_can::{ExtendedId, Frame, Id, StandardId};

use crate::time::Instant;

/// A classic CAN data frame (or remote frame): identifier, 0..=8 data bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CanFrame {
    id: Id,
    remote: bool,
    dlc: u8,
    data: [u8; 8],
}

impl CanFrame {
    /// A data frame with an extended (29-bit) identifier from a raw value.
    ///
    /// Returns `None` when `raw` does not fit 29 bits or `data` is longer than 8 bytes.
    pub fn extended(raw: u32, data: &[u8]) -> Option<Self> {
        Self::new(Id::Extended(ExtendedId::new(raw)?), data)
    }

    /// A data frame with a standard (11-bit) identifier from a raw value.
    ///
    /// Returns `None` when `raw` does not fit 11 bits or `data` is longer than 8 bytes.
    pub fn standard(raw: u16, data: &[u8]) -> Option<Self> {
        Self::new(Id::Standard(StandardId::new(raw)?), data)
    }

    /// The raw identifier (11 or 29 bits) and whether it is extended.
    pub fn raw_id(&self) -> (u32, bool) {
        match self.id {
            Id::Standard(s) => (u32::from(s.as_raw()), false),
            Id::Extended(e) => (e.as_raw(), true),
        }
    }

    /// The valid data bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..usize::from(self.dlc.min(8))]
    }
}

impl Frame for CanFrame {
    fn new(id: impl Into<Id>, data: &[u8]) -> Option<Self> {
        if data.len() > 8 {
            return None;
        }
        let mut buf = [0u8; 8];
        buf[..data.len()].copy_from_slice(data);
        Some(CanFrame {
            id: id.into(),
            remote: false,
            dlc: data.len() as u8,
            data: buf,
        })
    }

    fn new_remote(id: impl Into<Id>, dlc: usize) -> Option<Self> {
        if dlc > 8 {
            return None;
        }
        Some(CanFrame {
            id: id.into(),
            remote: true,
            dlc: dlc as u8,
            data: [0; 8],
        })
    }

    fn is_extended(&self) -> bool {
        matches!(self.id, Id::Extended(_))
    }

    fn is_remote_frame(&self) -> bool {
        self.remote
    }

    fn id(&self) -> Id {
        self.id
    }

    fn dlc(&self) -> usize {
        usize::from(self.dlc)
    }

    fn data(&self) -> &[u8] {
        if self.remote {
            &[]
        } else {
            self.bytes()
        }
    }
}

/// Prints `ID#DATA` as candump does (`18FECAF3#00FF...`, `351#...`).
impl fmt::Display for CanFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id {
            Id::Standard(s) => write!(f, "{:03X}#", s.as_raw())?,
            Id::Extended(e) => write!(f, "{:08X}#", e.as_raw())?,
        }
        if self.remote {
            return f.write_str("R");
        }
        for b in self.bytes() {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CanFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CanFrame({self})")
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for CanFrame {
    fn format(&self, f: defmt::Formatter) {
        let (raw, ext) = self.raw_id();
        defmt::write!(
            f,
            "{=u32:X} ext={=bool} {=[u8]:02X}",
            raw,
            ext,
            self.bytes()
        );
    }
}

/// Writes one `candump -L` line: `(secs.usecs) can0 ID#DATA\n`.
///
/// Extended identifiers are printed as 8 hex digits, standard ones as 3, which is how
/// python-can's `CanutilsLogReader` tells them apart. Time is `now` since the epoch.
///
/// # Errors
/// Whatever the writer returns.
pub fn write_candump_line(w: &mut impl fmt::Write, now: Instant, frame: &CanFrame) -> fmt::Result {
    let ms = now.as_millis();
    writeln!(
        w,
        "({}.{:06}) can0 {}",
        ms / 1000,
        (ms % 1000) * 1000,
        frame
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    #[test]
    fn frame_limits() {
        assert!(CanFrame::extended(0x2000_0000, &[]).is_none());
        assert!(CanFrame::standard(0x800, &[]).is_none());
        assert!(CanFrame::extended(1, &[0; 9]).is_none());
        let f = CanFrame::standard(0x351, &[1, 2, 3]).unwrap();
        assert_eq!(f.dlc(), 3);
        assert_eq!(f.data(), &[1, 2, 3]);
        assert_eq!(f.raw_id(), (0x351, false));
    }

    #[test]
    fn candump_standard() {
        let f = CanFrame::standard(0x351, &[0x38, 0x02]).unwrap();
        let mut s = String::new();
        write_candump_line(&mut s, Instant::from_millis(60_001), &f).unwrap();
        assert_eq!(s, "(60.001000) can0 351#3802\n");
    }
}
