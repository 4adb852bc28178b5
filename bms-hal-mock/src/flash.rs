//! A simulated NOR flash with erase counters and power-cut injection.
//!
//! [`SimFlash`] implements the blocking `embedded-storage` traits
//! [`ReadNorFlash`] and [`NorFlash`] with the rules of a real NOR part:
//!
//! - erase works on whole sectors of `ERASE` bytes and sets every bit to 1 (`0xFF`);
//! - programming works on aligned words of `WRITE` bytes and can only clear bits
//!   (the stored value becomes `old & new`);
//! - with [`SimFlash::strict`] (the default) programming a word that is not fully erased is
//!   refused, as on parts with ECC (STM32G4/L4 double words) where a second write corrupts the
//!   word; the storage formats of this workspace never program a word twice;
//! - an erase counter per sector gives wear figures.
//!
//! `MultiwriteNorFlash` is deliberately not implemented: the STM32 parts we target do not
//! allow a second write to a programmed word.
//!
//! # Power cuts
//! [`SimFlash::cut_after`] arms a cut: after `n` more bytes have been programmed or erased
//! (an erase counts `ERASE` bytes), the operation in progress stops part-way. A write leaves
//! the bytes before the cut programmed and the word at the cut partially programmed (a
//! random subset of the bits that should have cleared); an erase leaves the sector part
//! erased and part with random bits set. From then on every operation fails with
//! [`SimFlashError::PowerLost`] until [`SimFlash::restart`]. Randomness is a seeded
//! xorshift, so every run is reproducible.
//!
//! # Examples
//! ```
//! use bms_hal_mock::flash::{SimFlash, SimFlashError};
//! use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
//!
//! let mut flash: SimFlash<4, 2048> = SimFlash::new(4, 1);
//! flash.write(0, &[0x12, 0x34, 0x56, 0x78])?;
//! let mut buf = [0u8; 4];
//! flash.read(0, &mut buf)?;
//! assert_eq!(buf, [0x12, 0x34, 0x56, 0x78]);
//!
//! flash.cut_after(2);
//! assert_eq!(flash.write(4, &[0; 4]), Err(SimFlashError::PowerLost));
//! assert_eq!(flash.erase(0, 2048), Err(SimFlashError::PowerLost));
//! flash.restart();
//! flash.erase(0, 2048)?;
//! assert_eq!(flash.erase_count(0), 1);
//! # Ok::<(), SimFlashError>(())
//! ```

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Errors of [`SimFlash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimFlashError {
    /// Offset or length not aligned to the write or erase granularity.
    NotAligned,
    /// Access past the end of the flash.
    OutOfBounds,
    /// Strict mode: a word that is not fully erased was programmed again.
    NotErased,
    /// The power was cut; nothing works until [`SimFlash::restart`].
    PowerLost,
}

impl core::fmt::Display for SimFlashError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SimFlashError::NotAligned => "unaligned flash access",
            SimFlashError::OutOfBounds => "flash access out of bounds",
            SimFlashError::NotErased => "programming a word that is not erased",
            SimFlashError::PowerLost => "power lost",
        })
    }
}

impl core::error::Error for SimFlashError {}

impl NorFlashError for SimFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimFlashError::NotAligned => NorFlashErrorKind::NotAligned,
            SimFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            SimFlashError::NotErased | SimFlashError::PowerLost => NorFlashErrorKind::Other,
        }
    }
}

/// Seeded xorshift64 (Marsaglia): deterministic, no external RNG.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (0 is replaced by a fixed non-zero constant).
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// A RAM-backed NOR flash of `sectors` sectors of `ERASE` bytes, programmed in words of
/// `WRITE` bytes. Starts fully erased.
#[derive(Clone, Debug)]
pub struct SimFlash<const WRITE: usize, const ERASE: usize> {
    data: Vec<u8>,
    erase_counts: Vec<u32>,
    bytes_written: u64,
    strict: bool,
    budget: Option<u64>,
    dead: bool,
    write_cuts: u32,
    erase_cuts: u32,
    rng: XorShift,
}

impl<const WRITE: usize, const ERASE: usize> SimFlash<WRITE, ERASE> {
    const CHECK: () = assert!(WRITE > 0 && ERASE > 0 && ERASE % WRITE == 0);

    /// An erased flash of `sectors` sectors; `seed` drives the randomness of power cuts.
    pub fn new(sectors: usize, seed: u64) -> Self {
        let () = Self::CHECK;
        SimFlash {
            data: vec![0xFF; sectors * ERASE],
            erase_counts: vec![0; sectors],
            bytes_written: 0,
            strict: true,
            budget: None,
            dead: false,
            write_cuts: 0,
            erase_cuts: 0,
            rng: XorShift::new(seed),
        }
    }

    /// Strict mode (default `true`): refuse to program a word that is not fully erased.
    /// With `false`, programming ANDs into the word like a multi-write NOR part.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Arms a power cut after `bytes` more bytes are programmed or erased.
    pub fn cut_after(&mut self, bytes: u64) {
        self.budget = Some(bytes);
    }

    /// Disarms a pending cut (the flash keeps working).
    pub fn disarm(&mut self) {
        self.budget = None;
    }

    /// `true` after a cut, until [`restart`](Self::restart).
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Power comes back: operations work again; the contents stay as the cut left them.
    pub fn restart(&mut self) {
        self.dead = false;
        self.budget = None;
    }

    /// Power cuts so far that fell inside a write.
    pub fn write_cuts(&self) -> u32 {
        self.write_cuts
    }

    /// Power cuts so far that fell inside an erase.
    pub fn erase_cuts(&self) -> u32 {
        self.erase_cuts
    }

    /// Number of erases of sector `index` (0 past the end).
    pub fn erase_count(&self, index: usize) -> u32 {
        self.erase_counts.get(index).copied().unwrap_or(0)
    }

    /// Erase counters of all sectors.
    pub fn erase_counts(&self) -> &[u32] {
        &self.erase_counts
    }

    /// Total bytes programmed so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// The raw contents, for inspection in tests.
    pub fn contents(&self) -> &[u8] {
        &self.data
    }

    /// Raw mutable contents, for corrupting data on purpose in tests.
    pub fn contents_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Takes `n` bytes from the cut budget; returns how many may be done before the cut
    /// (`n` when no cut falls inside the operation).
    fn take_budget(&mut self, n: usize) -> usize {
        match self.budget {
            None => n,
            Some(b) if b >= n as u64 => {
                self.budget = Some(b - n as u64);
                n
            }
            Some(b) => {
                self.budget = None;
                self.dead = true;
                b as usize
            }
        }
    }

    fn check(&self, offset: u32, len: usize, align: usize) -> Result<usize, SimFlashError> {
        if self.dead {
            return Err(SimFlashError::PowerLost);
        }
        let start = offset as usize;
        if start % align != 0 || len % align != 0 {
            return Err(SimFlashError::NotAligned);
        }
        match start.checked_add(len) {
            Some(end) if end <= self.data.len() => Ok(start),
            _ => Err(SimFlashError::OutOfBounds),
        }
    }
}

impl<const WRITE: usize, const ERASE: usize> ErrorType for SimFlash<WRITE, ERASE> {
    type Error = SimFlashError;
}

impl<const WRITE: usize, const ERASE: usize> ReadNorFlash for SimFlash<WRITE, ERASE> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimFlashError> {
        let start = self.check(offset, bytes.len(), 1)?;
        bytes.copy_from_slice(&self.data[start..start + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl<const WRITE: usize, const ERASE: usize> NorFlash for SimFlash<WRITE, ERASE> {
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimFlashError> {
        if to < from {
            return Err(SimFlashError::OutOfBounds);
        }
        let start = self.check(from, (to - from) as usize, ERASE)?;
        for sector_start in (start..to as usize).step_by(ERASE) {
            let done = self.take_budget(ERASE);
            self.erase_counts[sector_start / ERASE] += 1;
            let sector = &mut self.data[sector_start..sector_start + ERASE];
            if done == ERASE {
                sector.fill(0xFF);
                continue;
            }
            self.erase_cuts += 1;
            // Cut part-way: the first `done` bytes are erased, the rest has random bits set.
            sector[..done].fill(0xFF);
            for b in &mut sector[done..] {
                *b |= self.rng.next_u64() as u8;
            }
            return Err(SimFlashError::PowerLost);
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimFlashError> {
        let start = self.check(offset, bytes.len(), WRITE)?;
        if self.strict {
            let target = &self.data[start..start + bytes.len()];
            for (word, new) in target.chunks(WRITE).zip(bytes.chunks(WRITE)) {
                // Writing an all-0xFF word is a no-op on every part, so it is allowed.
                if word.iter().any(|&b| b != 0xFF) && new.iter().any(|&b| b != 0xFF) {
                    return Err(SimFlashError::NotErased);
                }
            }
        }
        let done = self.take_budget(bytes.len());
        for (i, &b) in bytes[..done].iter().enumerate() {
            self.data[start + i] &= b;
        }
        self.bytes_written += done as u64;
        if done == bytes.len() {
            return Ok(());
        }
        self.write_cuts += 1;
        // The word at the cut is partially programmed: a random subset of its bits cleared.
        let word_start = done - done % WRITE;
        let word_end = (word_start + WRITE).min(bytes.len());
        let target = &mut self.data[start + word_start..start + word_end];
        for (d, &b) in target.iter_mut().zip(&bytes[word_start..word_end]) {
            *d &= b | self.rng.next_u64() as u8;
        }
        Err(SimFlashError::PowerLost)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    #[test]
    fn programming_only_clears_bits() {
        let mut f: SimFlash<4, 256> = SimFlash::new(2, 7).strict(false);
        f.write(0, &[0xF0, 0x0F, 0xFF, 0x00]).unwrap();
        f.write(0, &[0x3C, 0xFF, 0x0F, 0xFF]).unwrap();
        assert_eq!(&f.contents()[..4], &[0x30, 0x0F, 0x0F, 0x00]);
    }

    #[test]
    fn strict_refuses_second_program() {
        let mut f: SimFlash<8, 256> = SimFlash::new(2, 7);
        f.write(8, &[0; 8]).unwrap();
        assert_eq!(f.write(8, &[0; 8]), Err(SimFlashError::NotErased));
        f.write(8, &[0xFF; 8]).unwrap();
    }
}
