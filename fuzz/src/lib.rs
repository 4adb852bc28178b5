//! Helpers shared by the fuzz targets.

use bms_core::can::{CanFrame, ExtendedId, Frame, Id, StandardId};

/// Reads fixed-size values off the front of the fuzz input; past the end it yields zeros,
/// so every input maps to some value sequence.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }

    /// `true` when every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next `N` bytes, zero-padded past the end.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.u8();
        }
        out
    }

    /// Little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    /// Little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// Little-endian `i16`.
    pub fn i16(&mut self) -> i16 {
        i16::from_le_bytes(self.array())
    }

    /// Little-endian `i32`.
    pub fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.array())
    }

    /// Little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// `true` for an odd byte.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `max` bytes (length from the next byte).
    pub fn slice(&mut self, max: usize) -> &'a [u8] {
        let n = usize::from(self.u8()).min(max).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A CAN frame: extended or standard id, 0..=8 data bytes.
    pub fn can_frame(&mut self) -> CanFrame {
        let flags = self.u8();
        let ext = flags & 1 == 1;
        let raw = self.u32();
        let len = usize::from(self.u8() % 9);
        let data: [u8; 8] = self.array();
        if flags & 2 == 2 {
            let id = if ext {
                ExtendedId::new(raw & 0x1FFF_FFFF).map(Id::Extended)
            } else {
                StandardId::new((raw & 0x7FF) as u16).map(Id::Standard)
            };
            if let Some(f) = id.and_then(|id| CanFrame::new_remote(id, len)) {
                return f;
            }
        }
        let frame = if ext {
            CanFrame::extended(raw & 0x1FFF_FFFF, &data[..len])
        } else {
            CanFrame::standard((raw & 0x7FF) as u16, &data[..len])
        };
        frame.unwrap_or_else(|| CanFrame::standard(0, &[]).unwrap_or_else(|| unreachable!()))
    }
}

/// Decodes a checked serial packet every way it can be read and checks that whatever
/// decoded re-encodes to a frame that decodes to the same value.
pub fn check_serial_packet(p: &bms_core::serial::Packet<&[u8]>) {
    use bms_core::serial::{DeviceInfo, Packet, RequestRepr, StatusRepr};

    let _ = p.function();
    let _ = p.checksum();
    let mut buf = [0u8; 600];
    if let Ok(s) = StatusRepr::parse(p) {
        let n = s.emit(&mut buf).expect("status emits into its buffer_len");
        assert_eq!(n, s.buffer_len());
        let q = Packet::new_checked(&buf[..n]).expect("emitted status frame is valid");
        assert_eq!(StatusRepr::parse(&q).as_ref(), Ok(&s), "status round trip");
    }
    if let Ok(r) = RequestRepr::parse(p) {
        let n = r.emit(&mut buf).expect("request emits");
        let q = Packet::new_checked(&buf[..n]).expect("emitted request frame is valid");
        assert_eq!(
            RequestRepr::parse(&q).as_ref(),
            Ok(&r),
            "request round trip"
        );
    }
    if let Ok(d) = DeviceInfo::parse(p) {
        let n = d.emit(&mut buf).expect("device info emits");
        assert_eq!(
            DeviceInfo::parse_frame(&buf[..n]),
            Ok(d),
            "device info round trip"
        );
        let _ = (d.hardware(), d.software());
    }
}

/// Decodes a legacy 140-byte status frame and checks its round trip.
pub fn check_legacy_status(b: &[u8]) {
    use bms_core::serial::LegacyStatusRepr;

    if let Ok(s) = LegacyStatusRepr::parse(b) {
        let mut buf = [0u8; 200];
        let n = s.emit(&mut buf).expect("legacy status emits");
        assert_eq!(
            LegacyStatusRepr::parse(&buf[..n]).as_ref(),
            Ok(&s),
            "legacy round trip"
        );
        let _ = (s.pack_voltage(), s.current());
    }
}

/// Decodes a legacy 6-byte request and checks its round trip.
pub fn check_legacy_request(b: &[u8]) {
    use bms_core::serial::LegacyRequest;

    if let Ok(r) = LegacyRequest::parse(b) {
        assert_eq!(
            LegacyRequest::parse(&r.to_bytes()),
            Ok(r),
            "legacy request round trip"
        );
    }
}
