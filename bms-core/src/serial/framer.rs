//! Byte-stream framer: turns the bytes of a UART or BLE link into whole, checked frames.
//!
//! It recognises every frame kind of the protocol family:
//! - new-protocol frames `7E A1 … CRC AA 55` (requests and responses; responses with up to
//!   [`MAX_TRAILER_JUNK`] junk bytes before `AA 55`),
//! - legacy 6-byte requests and writes `H H ADDR D1 D2 SUM` with `H` one of `DB` (BLE read),
//!   `5A` (RS485 read), `A5` (write), `SUM = ADDR + D1 + D2 (mod 256)`,
//! - legacy 140-byte status frames `AA 55 AA FF … SUM16` (so captures can be decoded).
//!
//! Guarantees: bounded memory (`N` bytes, a const generic); resynchronises after garbage by
//! dropping one byte at a time and rescanning what it holds, so a frame that starts inside
//! garbage or inside a broken frame is still found; while a false start with a large `LEN`
//! waits for its bytes, a complete new-protocol frame arriving inside it is still yielded
//! as soon as its `AA 55` arrives (legacy requests caught inside a false start wait for the
//! false start to fail, or for [`Framer::reset`] after an inter-frame gap); **never yields
//! a frame whose checksum does not match**; never panics on any input.
//!
//! # Examples
//! ```
//! use bms_core::serial::framer::{Frame, Framer};
//! let mut framer: Framer = Framer::new();
//! let stream = [0x00, 0x7E, 0x13, 0x7E, 0xA1, 0x01, 0x00, 0x00, 0xBE, 0x18, 0x55, 0xAA, 0x55];
//! let mut found = 0;
//! for &b in &stream {
//!     if let Some(Frame::New(p)) = framer.push(b) {
//!         assert_eq!(p.len_field(), 0xBE);
//!         found += 1;
//!     }
//! }
//! assert_eq!(found, 1);
//! ```

use super::frame::{crc16_modbus, is_bare, Packet, EOF, MAX_TRAILER_JUNK, OVERHEAD, SOF0, SOF1};
use super::legacy::{LegacyRequest, LEGACY_STATUS_HEADER, LEGACY_STATUS_LEN};

/// Default buffer capacity: the longest new-protocol frame with trailer junk.
pub const DEFAULT_CAPACITY: usize = OVERHEAD + 255 + MAX_TRAILER_JUNK;

/// One checked frame, borrowed from the framer until the next [`Framer::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A new-protocol frame (CRC and trailer checked).
    New(Packet<&'a [u8]>),
    /// A legacy 6-byte request or write (checksum checked).
    Legacy(LegacyRequest),
    /// A legacy 140-byte status frame (checksum checked).
    LegacyStatus(&'a [u8]),
}

enum Scan {
    NeedMore,
    Invalid,
    Complete(usize),
}

/// The streaming framer. `N` bounds its buffer; frames longer than `N` are skipped.
///
/// The buffered bytes are `buf[head..tail]`; dropping bytes from the front only moves
/// `head`, and the bytes are moved back to the start only when the end of the buffer is
/// reached, so resynchronising costs O(1) per dropped byte (amortised).
#[derive(Debug, Clone)]
pub struct Framer<const N: usize = DEFAULT_CAPACITY> {
    buf: [u8; N],
    head: usize,
    tail: usize,
    /// Bytes of the last yielded frame, dropped on the next push.
    consumed: usize,
    /// Bytes dropped while resynchronising (diagnostics).
    skipped: u32,
}

impl<const N: usize> Default for Framer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Framer<N> {
    /// An empty framer.
    pub const fn new() -> Self {
        Framer {
            buf: [0; N],
            head: 0,
            tail: 0,
            consumed: 0,
            skipped: 0,
        }
    }

    // Out of line: one copy of the range check for all its callers.
    #[inline(never)]
    fn data(&self) -> &[u8] {
        self.buf.get(self.head..self.tail).unwrap_or(&[])
    }

    /// Drops any partial frame (call after an inter-frame gap, as UART clients do).
    pub fn reset(&mut self) {
        let pending = (self.tail - self.head).saturating_sub(self.consumed);
        self.skipped = self.skipped.saturating_add(pending as u32);
        self.head = 0;
        self.tail = 0;
        self.consumed = 0;
    }

    /// `true` when a partial frame is buffered.
    pub fn is_mid_frame(&self) -> bool {
        self.tail - self.head > self.consumed
    }

    /// Bytes dropped so far because they did not start a valid frame.
    pub fn skipped(&self) -> u32 {
        self.skipped
    }

    /// Feeds one byte; returns a frame when this byte completes one.
    ///
    /// The frame borrows the framer's buffer until the next call.
    pub fn push(&mut self, byte: u8) -> Option<Frame<'_>> {
        if self.consumed > 0 {
            self.drop_front(self.consumed);
            self.consumed = 0;
        }
        if N == 0 {
            self.skipped = self.skipped.saturating_add(1);
            return None;
        }
        if self.tail == N {
            if self.head == 0 {
                // Full of one candidate that cannot complete: give up its first byte.
                self.resync();
            }
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        if let Some(slot) = self.buf.get_mut(self.tail) {
            *slot = byte;
            self.tail += 1;
        }
        loop {
            match scan(self.data(), N) {
                Scan::NeedMore => match self.embedded_frame_start() {
                    Some(i) => self.discard(i),
                    None => return None,
                },
                Scan::Invalid => self.resync(),
                Scan::Complete(len) => {
                    self.consumed = len;
                    let b = self.data();
                    return frame_at(b.get(..len).unwrap_or(b));
                }
            }
        }
    }

    /// While waiting for the rest of a (possibly false) long frame, a complete new-protocol
    /// frame that ends with the byte just received wins: its start offset.
    fn embedded_frame_start(&self) -> Option<usize> {
        let b = self.data();
        if b.len() < OVERHEAD + 1 || !b.ends_with(&EOF) {
            return None;
        }
        (1..=b.len() - OVERHEAD).find(|&i| {
            // Through `get`: the compiler cannot see that `i` is in bounds.
            let rest = b.get(i..).unwrap_or_default();
            rest.starts_with(&[SOF0, SOF1])
                && matches!(scan_new(rest, N), Scan::Complete(n) if n == rest.len())
        })
    }

    /// Gives up the first buffered byte and the bytes after it up to the next possible frame
    /// start, counting them as skipped.
    // Out of line: one copy for its two callers.
    #[inline(never)]
    fn resync(&mut self) {
        self.discard(1);
        let b = self.data();
        let keep = b.iter().position(|&x| is_start(x)).unwrap_or(b.len());
        self.discard(keep);
    }

    /// Drops `n` bytes that start no frame, counting them as skipped.
    fn discard(&mut self, n: usize) {
        self.skipped = self.skipped.saturating_add(n as u32);
        self.drop_front(n);
    }

    // Out of line: one copy for all its callers.
    #[inline(never)]
    fn drop_front(&mut self, n: usize) {
        self.head = (self.head + n).min(self.tail);
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        }
    }
}

fn frame_at(b: &[u8]) -> Option<Frame<'_>> {
    match b.first()? {
        &SOF0 => Some(Frame::New(Packet::new_unchecked(b))),
        0xAA => Some(Frame::LegacyStatus(b)),
        _ => LegacyRequest::parse(b).ok().map(Frame::Legacy),
    }
}

fn is_start(b: u8) -> bool {
    matches!(b, SOF0 | 0xAA | 0xA5 | 0x5A | 0xDB)
}

fn scan(b: &[u8], cap: usize) -> Scan {
    let Some(&first) = b.first() else {
        return Scan::NeedMore;
    };
    match first {
        SOF0 => scan_new(b, cap),
        0xAA => scan_legacy_status(b, cap),
        0xA5 | 0x5A | 0xDB => scan_legacy_request(b),
        _ => Scan::Invalid,
    }
}

fn scan_new(b: &[u8], cap: usize) -> Scan {
    if b.len() < 2 {
        return Scan::NeedMore;
    }
    if b[1] != SOF1 {
        return Scan::Invalid;
    }
    if b.len() < 6 {
        return Scan::NeedMore;
    }
    let payload = if is_bare(b[2]) { 0 } else { b[5] as usize };
    let clean = OVERHEAD + payload;
    if clean > cap {
        return Scan::Invalid;
    }
    let crc_at = clean - 4;
    if b.len() < crc_at + 2 {
        return Scan::NeedMore;
    }
    if crc16_modbus(&b[1..crc_at]) != u16::from_le_bytes([b[crc_at], b[crc_at + 1]]) {
        return Scan::Invalid;
    }
    for junk in 0..=MAX_TRAILER_JUNK {
        let at = crc_at + 2 + junk;
        if at + 2 > cap {
            return Scan::Invalid;
        }
        match b.get(at..at + 2) {
            None => return Scan::NeedMore,
            Some(t) if t == EOF => return Scan::Complete(at + 2),
            Some(_) => {}
        }
    }
    Scan::Invalid
}

fn scan_legacy_status(b: &[u8], cap: usize) -> Scan {
    let head = b.len().min(LEGACY_STATUS_HEADER.len());
    if b[..head] != LEGACY_STATUS_HEADER[..head] || cap < LEGACY_STATUS_LEN {
        return Scan::Invalid;
    }
    if b.len() < LEGACY_STATUS_LEN {
        return Scan::NeedMore;
    }
    let f = &b[..LEGACY_STATUS_LEN];
    if super::legacy::legacy_checksum_ok(f) {
        Scan::Complete(LEGACY_STATUS_LEN)
    } else {
        Scan::Invalid
    }
}

fn scan_legacy_request(b: &[u8]) -> Scan {
    if b.len() < 2 {
        return Scan::NeedMore;
    }
    if b[1] != b[0] {
        return Scan::Invalid;
    }
    if b.len() < LegacyRequest::LEN {
        return Scan::NeedMore;
    }
    match LegacyRequest::parse(&b[..LegacyRequest::LEN]) {
        Ok(_) => Scan::Complete(LegacyRequest::LEN),
        Err(_) => Scan::Invalid,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;
    use crate::serial::frame::Function;
    use crate::serial::legacy::LegacyKind;

    fn collect(stream: &[u8]) -> heapless::Vec<heapless::Vec<u8, 300>, 16> {
        let mut f: Framer = Framer::new();
        let mut out = heapless::Vec::new();
        for &b in stream {
            if let Some(fr) = f.push(b) {
                let bytes: &[u8] = match fr {
                    Frame::New(p) => p.into_inner(),
                    Frame::LegacyStatus(s) => s,
                    Frame::Legacy(r) => {
                        out.push(heapless::Vec::from_slice(&r.to_bytes()).unwrap())
                            .unwrap();
                        continue;
                    }
                };
                out.push(heapless::Vec::from_slice(bytes).unwrap()).unwrap();
            }
        }
        out
    }

    const STATUS_REQ: [u8; 10] = [0x7E, 0xA1, 0x01, 0x00, 0x00, 0xBE, 0x18, 0x55, 0xAA, 0x55];

    #[test]
    fn resyncs_after_garbage_and_broken_frames() {
        let mut s: heapless::Vec<u8, 128> = heapless::Vec::new();
        s.extend_from_slice(&[0x7E, 0x7E, 0xA1, 0x22, 0x00])
            .unwrap(); // cut-off write
        s.extend_from_slice(&[0xAA, 0x55, 0x13]).unwrap(); // looks like a legacy header start
        s.extend_from_slice(&STATUS_REQ).unwrap();
        let mut bad = STATUS_REQ;
        bad[7] ^= 0xFF; // CRC broken
        s.extend_from_slice(&bad).unwrap();
        s.extend_from_slice(&[0xDB, 0xDB, 0x00, 0x00, 0x00, 0x00])
            .unwrap();
        s.extend_from_slice(&[0x5A, 0x5A, 0x00, 0x00, 0x01, 0x01])
            .unwrap();
        s.extend_from_slice(&[0xA5, 0xA5, 0xFA, 0x00, 0x01, 0xFA])
            .unwrap(); // bad sum
        s.extend_from_slice(&STATUS_REQ).unwrap();
        let frames = collect(&s);
        assert_eq!(frames.len(), 4, "{frames:02x?}");
        assert_eq!(&frames[0][..], &STATUS_REQ);
        assert_eq!(&frames[1][..], &[0xDB, 0xDB, 0, 0, 0, 0]);
        assert_eq!(&frames[2][..], &[0x5A, 0x5A, 0, 0, 1, 1]);
        assert_eq!(&frames[3][..], &STATUS_REQ);
    }

    #[test]
    fn frame_inside_a_false_start_is_found() {
        // `7E A1 11 .. LEN=0xFF` announces a long frame; the real request inside it must
        // still come out once the false start is abandoned.
        let mut s: heapless::Vec<u8, 400> = heapless::Vec::new();
        s.extend_from_slice(&[0x7E, 0xA1, 0x11, 0x00, 0x00, 0x20])
            .unwrap();
        s.extend_from_slice(&STATUS_REQ).unwrap();
        s.extend_from_slice(&[0u8; 40]).unwrap();
        let frames = collect(&s);
        assert_eq!(frames.len(), 1);
        assert_eq!(&frames[0][..], &STATUS_REQ);
    }

    #[test]
    fn legacy_request_kinds() {
        let mut f: Framer = Framer::new();
        let mut kinds = heapless::Vec::<LegacyKind, 4>::new();
        for &b in &[0xDB, 0xDB, 0, 0, 0, 0, 0xA5, 0xA5, 0xFA, 0x00, 0x01, 0xFB] {
            if let Some(Frame::Legacy(r)) = f.push(b) {
                kinds.push(r.kind).unwrap();
            }
        }
        assert_eq!(&kinds[..], &[LegacyKind::ReadBle, LegacyKind::Write]);
    }

    #[test]
    fn small_capacity_skips_long_frames() {
        let mut f: Framer<16> = Framer::new();
        let long = [0x7E, 0xA1, 0x11, 0, 0, 0x80];
        for &b in long.iter().chain(STATUS_REQ.iter()) {
            if let Some(Frame::New(p)) = f.push(b) {
                assert_eq!(p.function(), Function::ReadStatus);
                return;
            }
        }
        panic!("status request not found");
    }
}
