//! The slot ring: fixed-size, checksummed, sequence-numbered slots in a ring of flash sectors.
//!
//! Both the [`EventLog`](super::EventLog) and the [`ParamStore`](super::ParamStore) are rings
//! of slots. A slot is written once after its sector is erased, and never again:
//!
//! ```text
//! slot = header (16 bytes) | body (len bytes) | 0xFF padding up to the slot size
//! header = seq u32 LE | len u16 LE | tag u16 LE | crc u32 LE | 0x00000000
//! crc = CRC-32/ISO-HDLC over (domain byte, seq, len, tag, body)
//! ```
//!
//! The body is programmed first and the header last, so the header is the commit mark: a
//! slot whose write was cut has no header or a header whose CRC does not match, and reads
//! as corrupt. A slot that reads all `0xFF` is empty. The domain byte keeps a slot of one
//! kind of store from validating in another.
//!
//! Appending goes to the next slot of the current sector; when the sector is full the next
//! sector of the ring is erased first (this is where the oldest slots are overwritten). The
//! current sector always holds the newest valid slot, so the sector being erased never holds
//! it: an interrupted erase or write leaves the previous newest slot intact. Wear is spread
//! evenly: every sector is erased once per turn of the ring.
//!
//! Opening scans every slot: the newest valid slot gives the current sector and the next
//! sequence number, and the write position is after the last slot of that sector that is not
//! empty (a torn slot is skipped, never programmed twice).

use core::ops::{Bound, RangeBounds};

use embedded_storage::nor_flash::NorFlash;

use super::{Error, Region, Seq};

/// Bytes of the slot header.
pub(crate) const HEADER_LEN: usize = 16;
/// Read and write chunk: every supported `WRITE_SIZE` and `READ_SIZE` divides it.
const CHUNK: usize = 64;

/// CRC-32/ISO-HDLC, bitwise: slots are read and written a few times a minute at most, and
/// the usual 256-entry table would cost 1 KiB of flash.
static CRC32: crc::Crc<u32, crc::NoTable> =
    crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);

/// A running CRC-32/ISO-HDLC of a slot.
pub(crate) struct Crc32(crc::Digest<'static, u32, crc::NoTable>);

impl Crc32 {
    /// No bytes yet.
    pub(crate) fn new() -> Self {
        Crc32(CRC32.digest())
    }

    /// Adds `data`.
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The CRC of the bytes added.
    pub(crate) fn finalize(self) -> u32 {
        self.0.finalize()
    }
}

/// What a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// All `0xFF`: never written since the last erase.
    Empty,
    /// Written, but the header or the checksum is wrong (a cut write, a cut erase, bit rot).
    Corrupt,
    /// A committed slot.
    Valid(SlotHeader),
}

/// The decoded header of a valid slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotHeader {
    pub seq: u32,
    pub len: u16,
    pub tag: u16,
}

/// Counts of what the last [`Ring::open`] found; see [`ScanReport`](super::ScanReport).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub valid: u32,
    pub corrupt: u32,
    pub empty: u32,
}

/// A ring of slots in a flash region. Holds only positions, never the flash.
#[derive(Clone, Debug)]
pub(crate) struct Ring {
    start: u32,
    sector_size: u32,
    sectors: u32,
    slot_size: u32,
    slots_per_sector: u32,
    domain: u8,
    /// Sector being filled.
    cursor_sector: u32,
    /// Next slot to write in `cursor_sector` (`slots_per_sector` = full).
    cursor_slot: u32,
    next_seq: u32,
    newest: Option<u32>,
    counts: Counts,
}

const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl Ring {
    /// Validates the geometry and scans the region.
    pub(crate) fn open<F: NorFlash>(
        flash: &mut F,
        region: Region,
        body_max: usize,
        domain: u8,
    ) -> Result<Self, Error<F::Error>> {
        let mut ring = Self::geometry::<F>(flash.capacity(), region, body_max, domain)?;
        ring.scan(flash)?;
        Ok(ring)
    }

    fn geometry<F: NorFlash>(
        capacity: usize,
        region: Region,
        body_max: usize,
        domain: u8,
    ) -> Result<Self, Error<F::Error>> {
        let erase = F::ERASE_SIZE;
        let supported = |n: usize| n > 0 && HEADER_LEN % n == 0 && CHUNK % n == 0;
        if !supported(F::WRITE_SIZE) || !supported(F::READ_SIZE) || erase == 0 {
            return Err(Error::BadRegion);
        }
        let slot_size = round_up(HEADER_LEN + body_max, HEADER_LEN);
        let (start, len) = (region.start() as usize, region.len() as usize);
        let end = start.checked_add(len).ok_or(Error::BadRegion)?;
        if start % erase != 0 || len % erase != 0 || end > capacity || len / erase < 2 {
            return Err(Error::BadRegion);
        }
        if body_max > u16::MAX as usize || slot_size > erase {
            return Err(Error::BadRegion);
        }
        Ok(Ring {
            start: region.start(),
            sector_size: erase as u32,
            sectors: (len / erase) as u32,
            slot_size: slot_size as u32,
            slots_per_sector: (erase / slot_size) as u32,
            domain,
            cursor_sector: 0,
            cursor_slot: 0,
            next_seq: 0,
            newest: None,
            counts: Counts::default(),
        })
    }

    /// Finds the newest valid slot and places the write cursor after it.
    fn scan<F: NorFlash>(&mut self, flash: &mut F) -> Result<(), Error<F::Error>> {
        let mut counts = Counts::default();
        let mut newest: Option<(u32, u32)> = None; // (seq, sector)
        let mut fill = [0u32; 2]; // (sector 0 fill, fill of the newest sector)
        for sector in 0..self.sectors {
            let mut last_used = 0;
            let mut newest_here = false;
            for slot in 0..self.slots_per_sector {
                match self.read_slot(flash, sector, slot, None)? {
                    Slot::Empty => counts.empty += 1,
                    Slot::Corrupt => {
                        counts.corrupt += 1;
                        last_used = slot + 1;
                    }
                    Slot::Valid(h) => {
                        counts.valid += 1;
                        last_used = slot + 1;
                        if newest.is_none_or(|(s, _)| h.seq > s) {
                            newest = Some((h.seq, sector));
                            newest_here = true;
                        }
                    }
                }
            }
            if sector == 0 {
                fill[0] = last_used;
            }
            if newest_here {
                fill[1] = last_used;
            }
        }
        self.counts = counts;
        match newest {
            Some((seq, sector)) => {
                self.cursor_sector = sector;
                self.cursor_slot = fill[1];
                self.newest = Some(seq);
                self.next_seq = seq.saturating_add(1);
            }
            None => {
                self.cursor_sector = 0;
                self.cursor_slot = fill[0];
                self.newest = None;
                self.next_seq = 0;
            }
        }
        Ok(())
    }

    fn slot_addr(&self, sector: u32, slot: u32) -> u32 {
        self.start + sector * self.sector_size + slot * self.slot_size
    }

    /// Reads and classifies one slot; copies the body of a valid slot into `body_out` when
    /// given (a body longer than `body_out` makes the slot [`Slot::Corrupt`]).
    pub(crate) fn read_slot<F: NorFlash>(
        &self,
        flash: &mut F,
        sector: u32,
        slot: u32,
        mut body_out: Option<&mut [u8]>,
    ) -> Result<Slot, Error<F::Error>> {
        let addr = self.slot_addr(sector, slot);
        let size = self.slot_size as usize;
        let mut buf = [0u8; CHUNK];
        let mut all_ff = true;
        let mut header = SlotHeader {
            seq: 0,
            len: 0,
            tag: 0,
        };
        let mut stored_crc = 0u32;
        let mut digest = Crc32::new();
        let mut bad = false;
        // Slot offset where the body ends; stays 0 (no body bytes) once the slot is bad.
        let mut body_end = 0usize;
        let mut off = 0usize;
        while off < size {
            let n = (size - off).min(CHUNK);
            flash
                .read(addr + off as u32, &mut buf[..n])
                .map_err(Error::Flash)?;
            let chunk = &buf[..n];
            all_ff &= chunk.iter().all(|&b| b == 0xFF);
            if off == 0 {
                // The first chunk holds the whole header (a slot is at least `HEADER_LEN`
                // bytes), so it is read from the fixed buffer at constant offsets: no checks.
                let u32_at =
                    |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
                let u16_at = |i: usize| u16::from_le_bytes([buf[i], buf[i + 1]]);
                header = SlotHeader {
                    seq: u32_at(0),
                    len: u16_at(4),
                    tag: u16_at(6),
                };
                stored_crc = u32_at(8);
                body_end = HEADER_LEN + header.len as usize;
                if u32_at(12) != 0 || body_end > size {
                    bad = true;
                    body_end = 0;
                }
                digest.update(&[self.domain]);
                digest.update(&buf[..8]);
            }
            // Body bytes of this chunk: slot offsets [HEADER_LEN, body_end).
            let lo = off.max(HEADER_LEN);
            let hi = (off + n).min(body_end);
            if lo < hi {
                let part = &chunk[lo - off..hi - off];
                digest.update(part);
                if let Some(out) = body_out.as_deref_mut() {
                    match out.get_mut(lo - HEADER_LEN..hi - HEADER_LEN) {
                        Some(dst) => dst.copy_from_slice(part),
                        None => {
                            bad = true;
                            body_end = 0;
                        }
                    }
                }
            }
            off += n;
        }
        if all_ff {
            return Ok(Slot::Empty);
        }
        if !bad && header.seq != u32::MAX && digest.finalize() == stored_crc {
            Ok(Slot::Valid(header))
        } else {
            Ok(Slot::Corrupt)
        }
    }

    /// Appends one slot with `tag` and `body`; returns its sequence number.
    ///
    /// The slot is consumed even when the write fails (a torn slot is never written again).
    pub(crate) fn append<F: NorFlash>(
        &mut self,
        flash: &mut F,
        tag: u16,
        body: &[u8],
    ) -> Result<Seq, Error<F::Error>> {
        if HEADER_LEN + body.len() > self.slot_size as usize {
            return Err(Error::TooLarge);
        }
        if self.next_seq == u32::MAX {
            return Err(Error::Exhausted);
        }
        if self.cursor_slot >= self.slots_per_sector {
            let target = (self.cursor_sector + 1) % self.sectors;
            let from = self.start + target * self.sector_size;
            flash
                .erase(from, from + self.sector_size)
                .map_err(Error::Flash)?;
            self.cursor_sector = target;
            self.cursor_slot = 0;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let addr = self.slot_addr(self.cursor_sector, self.cursor_slot);
        self.cursor_slot += 1;

        // Body first, in word-padded chunks.
        let mut buf = [0xFFu8; CHUNK];
        for (i, part) in body.chunks(CHUNK).enumerate() {
            let n = round_up(part.len(), F::WRITE_SIZE);
            buf.fill(0xFF);
            buf[..part.len()].copy_from_slice(part);
            let at = addr + (HEADER_LEN + i * CHUNK) as u32;
            flash.write(at, &buf[..n]).map_err(Error::Flash)?;
        }

        // Header last: the commit mark.
        let len = body.len() as u16;
        let mut header = [0u8; HEADER_LEN];
        header[0..4].copy_from_slice(&seq.to_le_bytes());
        header[4..6].copy_from_slice(&len.to_le_bytes());
        header[6..8].copy_from_slice(&tag.to_le_bytes());
        let mut digest = Crc32::new();
        digest.update(&[self.domain]);
        digest.update(&header[..8]);
        digest.update(body);
        header[8..12].copy_from_slice(&digest.finalize().to_le_bytes());
        flash.write(addr, &header).map_err(Error::Flash)?;
        self.newest = Some(seq);
        Ok(Seq::new(seq))
    }

    /// Total slots in the ring.
    pub(crate) fn slots(&self) -> u32 {
        self.sectors * self.slots_per_sector
    }

    /// Slots kept in every case: all sectors but the one erased next.
    pub(crate) fn guaranteed_slots(&self) -> u32 {
        (self.sectors - 1) * self.slots_per_sector
    }

    pub(crate) fn slots_per_sector(&self) -> u32 {
        self.slots_per_sector
    }

    pub(crate) fn sectors(&self) -> u32 {
        self.sectors
    }

    pub(crate) fn counts(&self) -> Counts {
        self.counts
    }

    pub(crate) fn next_seq(&self) -> u32 {
        self.next_seq
    }

    pub(crate) fn newest(&self) -> Option<u32> {
        self.newest
    }

    /// The physical `(sector, slot)` of ring position `i`, oldest first
    /// (`0..slots()`; the last sector of the order is the one being filled).
    pub(crate) fn position(&self, i: u32) -> (u32, u32) {
        let sps = self.slots_per_sector;
        let sector = (self.cursor_sector + 1 + i / sps) % self.sectors;
        (sector, i % sps)
    }

    /// Number of ring positions that may hold data (the rest of the current sector is empty).
    pub(crate) fn used_positions(&self) -> u32 {
        self.slots() - (self.slots_per_sector - self.cursor_slot.min(self.slots_per_sector))
    }
}

/// Iterates over valid slots oldest-first or newest-first, yielding strictly monotonic
/// sequence numbers inside `range`, copying each body into `body`.
pub(crate) struct Walk {
    next: u32,
    end: u32,
    forward: bool,
    last: Option<u32>,
    lo: u32,
    hi: Option<u32>,
    done: bool,
}

impl Walk {
    pub(crate) fn new(ring: &Ring, forward: bool, range: impl RangeBounds<Seq>) -> Self {
        let lo = match range.start_bound() {
            Bound::Included(s) => s.get(),
            Bound::Excluded(s) => s.get().saturating_add(1),
            Bound::Unbounded => 0,
        };
        let hi = match range.end_bound() {
            Bound::Included(s) => Some(s.get()),
            Bound::Excluded(s) => s.get().checked_sub(1),
            Bound::Unbounded => Some(u32::MAX),
        };
        Walk {
            next: 0,
            end: ring.used_positions(),
            forward,
            last: None,
            lo,
            hi,
            done: hi.is_none_or(|h| h < lo),
        }
    }

    /// The next valid slot (header; the body is in `body`), or `None` at the end.
    pub(crate) fn next<F: NorFlash>(
        &mut self,
        ring: &Ring,
        flash: &mut F,
        body: &mut [u8],
    ) -> Option<Result<SlotHeader, Error<F::Error>>> {
        let hi = self.hi?;
        while !self.done && self.next < self.end {
            let i = if self.forward {
                self.next
            } else {
                self.end - 1 - self.next
            };
            self.next += 1;
            let (sector, slot) = ring.position(i);
            let h = match ring.read_slot(flash, sector, slot, Some(&mut *body)) {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(Slot::Valid(h)) => h,
                Ok(_) => continue,
            };
            let monotonic = match (self.last, self.forward) {
                (None, _) => true,
                (Some(l), true) => h.seq > l,
                (Some(l), false) => h.seq < l,
            };
            if !monotonic {
                continue;
            }
            self.last = Some(h.seq);
            if h.seq < self.lo {
                if self.forward {
                    continue;
                }
                self.done = true;
                return None;
            }
            if h.seq > hi {
                if self.forward {
                    self.done = true;
                    return None;
                }
                continue;
            }
            return Some(Ok(h));
        }
        None
    }
}

#[cfg(test)]
mod test {
    use super::Crc32;

    proptest::proptest! {
        /// The 16-entry table gives the CRC of the full-table implementation it replaced,
        /// whatever the split of the bytes into updates.
        #[test]
        fn crc32_equals_the_table_driven_reference(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            cut in 0usize..300,
        ) {
            let reference = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
            let (a, b) = data.split_at(cut.min(data.len()));
            let mut c = Crc32::new();
            c.update(a);
            c.update(b);
            proptest::prop_assert_eq!(c.finalize(), reference.checksum(&data));
        }
    }

    #[test]
    fn crc32_check_value() {
        let mut c = Crc32::new();
        c.update(b"123456789");
        assert_eq!(c.finalize(), 0xCBF4_3926);
    }
}
