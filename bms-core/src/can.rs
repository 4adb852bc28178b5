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
///
/// Trick: the identifier is kept as one word with the format in bit 31 (`embedded_can::Id`
/// takes 8 bytes), so a frame is 16 bytes and `Option<CanFrame>` (niche in `remote`) too:
/// the transmit queues are smaller and a returned frame fits two registers.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CanFrame {
    /// The raw identifier, [`EXTENDED`] set for a 29-bit one.
    raw: u32,
    remote: bool,
    dlc: u8,
    data: [u8; 8],
}

/// Bit of [`CanFrame::raw`] marking an extended identifier.
const EXTENDED: u32 = 1 << 31;

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

    /// An eight-byte data frame with the extended identifier `raw & 0x1FFF_FFFF`.
    ///
    /// For identifiers built from validated parts (the J1939 node's periodic messages):
    /// no checks and no slice copy.
    pub(crate) const fn extended8(raw: u32, data: [u8; 8]) -> Self {
        CanFrame {
            raw: raw & 0x1FFF_FFFF | EXTENDED,
            remote: false,
            dlc: 8,
            data,
        }
    }

    /// `raw` (29 bits) in the tagged form that [`CanFrame::extended8_tagged`] takes.
    pub(crate) const fn extended_tag(raw: u32) -> u32 {
        raw & 0x1FFF_FFFF | EXTENDED
    }

    /// [`CanFrame::extended8`] of `raw` from `tagged = extended_tag(raw) | low`, where `low`
    /// fits the bits of `raw` that are zero (the J1939 node's source address).
    ///
    /// Trick: the identifier is built once per message (a constant) and completed with
    /// one `or` per frame, not masked and tagged again.
    pub(crate) const fn extended8_tagged(tagged: u32, data: [u8; 8]) -> Self {
        debug_assert!(tagged & EXTENDED != 0);
        CanFrame {
            raw: tagged,
            remote: false,
            dlc: 8,
            data,
        }
    }

    /// The raw identifier (11 or 29 bits) and whether it is extended.
    pub fn raw_id(&self) -> (u32, bool) {
        (self.raw & !EXTENDED, self.raw & EXTENDED != 0)
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
            raw: raw(id.into()),
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
            raw: raw(id.into()),
            remote: true,
            dlc: dlc as u8,
            data: [0; 8],
        })
    }

    fn is_extended(&self) -> bool {
        self.raw & EXTENDED != 0
    }

    fn is_remote_frame(&self) -> bool {
        self.remote
    }

    fn id(&self) -> Id {
        let (raw, extended) = self.raw_id();
        if extended {
            Id::Extended(ExtendedId::new(raw).unwrap_or(ExtendedId::ZERO))
        } else {
            Id::Standard(StandardId::new(raw as u16).unwrap_or(StandardId::ZERO))
        }
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
        match self.raw_id() {
            (raw, false) => write!(f, "{raw:03X}#")?,
            (raw, true) => write!(f, "{raw:08X}#")?,
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

/// The identifier in one word: its raw value, [`EXTENDED`] set for a 29-bit one.
fn raw(id: Id) -> u32 {
    match id {
        Id::Standard(s) => u32::from(s.as_raw()),
        Id::Extended(e) => e.as_raw() | EXTENDED,
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
        assert_eq!(core::mem::size_of::<Option<CanFrame>>(), 16);
    }

    #[test]
    fn id_round_trip() {
        for id in [
            Id::Standard(StandardId::ZERO),
            Id::Standard(StandardId::MAX),
            Id::Extended(ExtendedId::ZERO),
            Id::Extended(ExtendedId::MAX),
            Id::Extended(ExtendedId::new(0x7FF).unwrap()),
        ] {
            let f = CanFrame::new(id, &[1]).unwrap();
            assert_eq!(f.id(), id);
            assert_eq!(f.is_extended(), matches!(id, Id::Extended(_)));
            let r = CanFrame::new_remote(id, 2).unwrap();
            assert_eq!(r.id(), id);
            assert!(r.is_remote_frame() && r.data().is_empty() && r != f);
        }
        // A standard and an extended frame with the same number differ.
        let s = CanFrame::standard(0x123, &[]).unwrap();
        let e = CanFrame::extended(0x123, &[]).unwrap();
        assert_ne!(s, e);
        assert_eq!(
            CanFrame::extended8(0x18FE_CAF3, [7; 8]),
            CanFrame::extended(0x18FE_CAF3, &[7; 8]).unwrap()
        );
    }

    #[test]
    fn candump_standard() {
        let f = CanFrame::standard(0x351, &[0x38, 0x02]).unwrap();
        let mut s = String::new();
        write_candump_line(&mut s, Instant::from_millis(60_001), &f).unwrap();
        assert_eq!(s, "(60.001000) can0 351#3802\n");
    }
}
