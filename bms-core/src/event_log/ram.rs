//! [`RamFlash`]: a minimal RAM-backed NOR flash for examples and unit tests.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Errors of [`RamFlash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RamFlashError {
    /// Offset or length not aligned.
    NotAligned,
    /// Past the end.
    OutOfBounds,
}

impl NorFlashError for RamFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            RamFlashError::NotAligned => NorFlashErrorKind::NotAligned,
            RamFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
        }
    }
}

/// `SIZE` bytes of RAM behaving as NOR flash (erase to `0xFF` in `ERASE`-byte sectors,
/// program `WRITE`-byte words by AND). No power-cut injection: the host mock
/// `bms_hal_mock::flash::SimFlash` has it.
#[derive(Clone, Debug)]
pub struct RamFlash<const WRITE: usize, const ERASE: usize, const SIZE: usize> {
    data: [u8; SIZE],
}

impl<const WRITE: usize, const ERASE: usize, const SIZE: usize> Default
    for RamFlash<WRITE, ERASE, SIZE>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<const WRITE: usize, const ERASE: usize, const SIZE: usize> RamFlash<WRITE, ERASE, SIZE> {
    /// An erased flash.
    pub const fn new() -> Self {
        const { assert!(WRITE > 0 && ERASE % WRITE == 0 && SIZE % ERASE == 0) };
        RamFlash { data: [0xFF; SIZE] }
    }

    /// The raw contents.
    pub fn contents_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    fn range(&self, offset: u32, len: usize, align: usize) -> Result<usize, RamFlashError> {
        let start = offset as usize;
        if start % align != 0 || len % align != 0 {
            return Err(RamFlashError::NotAligned);
        }
        match start.checked_add(len) {
            Some(end) if end <= SIZE => Ok(start),
            _ => Err(RamFlashError::OutOfBounds),
        }
    }
}

impl<const WRITE: usize, const ERASE: usize, const SIZE: usize> ErrorType
    for RamFlash<WRITE, ERASE, SIZE>
{
    type Error = RamFlashError;
}

impl<const WRITE: usize, const ERASE: usize, const SIZE: usize> ReadNorFlash
    for RamFlash<WRITE, ERASE, SIZE>
{
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), RamFlashError> {
        let start = self.range(offset, bytes.len(), 1)?;
        let src = self
            .data
            .get(start..start + bytes.len())
            .ok_or(RamFlashError::OutOfBounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }

    fn capacity(&self) -> usize {
        SIZE
    }
}

impl<const WRITE: usize, const ERASE: usize, const SIZE: usize> NorFlash
    for RamFlash<WRITE, ERASE, SIZE>
{
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), RamFlashError> {
        let len = to.checked_sub(from).ok_or(RamFlashError::OutOfBounds)? as usize;
        let start = self.range(from, len, ERASE)?;
        if let Some(d) = self.data.get_mut(start..start + len) {
            d.fill(0xFF);
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), RamFlashError> {
        let start = self.range(offset, bytes.len(), WRITE)?;
        if let Some(d) = self.data.get_mut(start..start + bytes.len()) {
            for (d, b) in d.iter_mut().zip(bytes) {
                *d &= b;
            }
        }
        Ok(())
    }
}
