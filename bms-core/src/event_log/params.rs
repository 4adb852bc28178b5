//! [`ParamStore`]: a versioned, checksummed blob in flash, updated atomically.

use core::fmt;

use embedded_storage::nor_flash::NorFlash;

use super::ring::{Ring, Walk};
use super::{Error, Region, ScanReport, Seq};

/// Domain byte mixed into the slot CRC of parameter blobs.
const DOMAIN: u8 = 0x9A;

/// A value the [`ParamStore`] can keep: the integrator implements it for its parameter set
/// (pack configuration, calibration, learned capacity, last SOC).
///
/// `encode` and `decode` define the byte format of [`VERSION`](Self::VERSION); a blob stored
/// by an older firmware goes through [`migrate`](Self::migrate).
///
/// # Examples
/// ```
/// use bms_core::event_log::{DecodeError, EncodeError, Persist};
///
/// #[derive(Debug, PartialEq)]
/// struct Learned { capacity_mah: u32, soc_permille: u16 }
///
/// impl Persist for Learned {
///     const VERSION: u16 = 2;
///     const MAX_LEN: usize = 6;
///     fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
///         let buf = buf.get_mut(..6).ok_or(EncodeError::BufferTooSmall)?;
///         buf[..4].copy_from_slice(&self.capacity_mah.to_le_bytes());
///         buf[4..].copy_from_slice(&self.soc_permille.to_le_bytes());
///         Ok(6)
///     }
///     fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
///         let b: [u8; 6] = buf.try_into().map_err(|_| DecodeError::Malformed)?;
///         Ok(Learned {
///             capacity_mah: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
///             soc_permille: u16::from_le_bytes([b[4], b[5]]),
///         })
///     }
///     /// Version 1 stored only the capacity.
///     fn migrate(version: u16, buf: &[u8]) -> Result<Self, DecodeError> {
///         match (version, buf) {
///             (1, &[a, b, c, d]) => Ok(Learned {
///                 capacity_mah: u32::from_le_bytes([a, b, c, d]),
///                 soc_permille: 500,
///             }),
///             _ => Err(DecodeError::UnsupportedVersion(version)),
///         }
///     }
/// }
/// ```
pub trait Persist: Sized {
    /// Schema version written with every blob; raise it when the format changes.
    const VERSION: u16;
    /// Largest encoded length in bytes.
    const MAX_LEN: usize;

    /// Encodes `self` into `buf` (at least [`MAX_LEN`](Self::MAX_LEN) bytes); returns the
    /// length used.
    ///
    /// # Errors
    /// [`EncodeError`] when the value cannot be encoded.
    fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError>;

    /// Decodes a blob of the current [`VERSION`](Self::VERSION).
    ///
    /// # Errors
    /// [`DecodeError`] when the bytes are not a valid value (the checksum already matched,
    /// so this means a logic error or values out of range).
    fn decode(buf: &[u8]) -> Result<Self, DecodeError>;

    /// Decodes a blob of an older `version` (the migration hook). The default refuses.
    ///
    /// # Errors
    /// [`DecodeError::UnsupportedVersion`] when there is no migration from `version`.
    fn migrate(version: u16, buf: &[u8]) -> Result<Self, DecodeError> {
        let _ = buf;
        Err(DecodeError::UnsupportedVersion(version))
    }
}

/// Why a value could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncodeError {
    /// The buffer is smaller than the encoding.
    BufferTooSmall,
    /// A field cannot be represented.
    Invalid,
}

/// Why stored bytes are not a valid value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than the format needs.
    Truncated,
    /// A field out of range or inconsistent.
    Malformed,
    /// No migration from this older version.
    UnsupportedVersion(u16),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::BufferTooSmall => "buffer too small",
            EncodeError::Invalid => "value cannot be encoded",
        })
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated"),
            DecodeError::Malformed => f.write_str("malformed"),
            DecodeError::UnsupportedVersion(v) => write!(f, "no migration from version {v}"),
        }
    }
}

impl core::error::Error for EncodeError {}
impl core::error::Error for DecodeError {}

/// Why [`ParamStore::load`] returned no value: the caller falls back to safe defaults and
/// logs the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum LoadError<E> {
    /// Nothing was ever stored (the region is erased).
    Empty,
    /// Slots were written but none is valid (corrupt flash, or only torn writes).
    Corrupt,
    /// Stored by a newer firmware with a schema this one does not know.
    NewerVersion {
        /// Version found in flash.
        found: u16,
        /// Newest version this firmware reads.
        supported: u16,
    },
    /// The blob is longer than this store's capacity or than `T::MAX_LEN`.
    TooLong,
    /// The checksum matched but decoding (or migration) failed.
    Decode(DecodeError),
    /// The flash failed.
    Flash(E),
}

impl<E: fmt::Debug> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Empty => f.write_str("no parameters stored"),
            LoadError::Corrupt => f.write_str("no valid parameter copy"),
            LoadError::NewerVersion { found, supported } => {
                write!(f, "parameter version {found} newer than {supported}")
            }
            LoadError::TooLong => f.write_str("stored parameters too long"),
            LoadError::Decode(e) => write!(f, "parameters do not decode: {e}"),
            LoadError::Flash(e) => write!(f, "flash error: {e:?}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for LoadError<E> {}

/// Why [`ParamStore::store`] failed. The previous value stays in flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum StoreError<E> {
    /// `T::MAX_LEN` or the encoded length exceeds the store's capacity `N`.
    TooLarge,
    /// The value could not be encoded.
    Encode(EncodeError),
    /// The flash failed (a power loss while writing: the old value is kept).
    Storage(Error<E>),
}

impl<E: fmt::Debug> fmt::Display for StoreError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::TooLarge => f.write_str("parameters larger than the store"),
            StoreError::Encode(e) => write!(f, "parameters do not encode: {e}"),
            StoreError::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for StoreError<E> {}

/// An atomic, versioned blob store of up to `N` bytes in a ring of at least two sectors.
///
/// Every [`store`](Self::store) appends a new copy (sequence number, schema version, length,
/// CRC-32, then the bytes) in the next slot; [`load`](Self::load) returns the newest copy
/// whose checksum matches. The header is programmed after the bytes, so a power cut during a
/// store leaves either the old or the new copy, never a mix; the sector holding the newest
/// copy is never the one erased. Slots are `16 + N` bytes rounded up to 16, so a 2 KiB sector
/// with `N = 496` takes 4 stores per erase, and wear rotates over the sectors.
///
/// Keep one store per kind of data (parameters, statistics) in its own region.
///
/// # Examples
/// ```
/// # use bms_core::event_log::*;
/// # #[derive(Debug, PartialEq)] struct Soc(u16);
/// # impl Persist for Soc {
/// #     const VERSION: u16 = 1; const MAX_LEN: usize = 2;
/// #     fn encode(&self, b: &mut [u8]) -> Result<usize, EncodeError> {
/// #         b.get_mut(..2).ok_or(EncodeError::BufferTooSmall)?.copy_from_slice(&self.0.to_le_bytes()); Ok(2) }
/// #     fn decode(b: &[u8]) -> Result<Self, DecodeError> {
/// #         Ok(Soc(u16::from_le_bytes(b.try_into().map_err(|_| DecodeError::Truncated)?))) }
/// # }
/// # let mut flash = RamFlash::<8, 2048, 4096>::new();
/// let mut store: ParamStore<64> = ParamStore::open(&mut flash, Region::new(0, 4096))?;
/// assert_eq!(store.load::<Soc, _>(&mut flash), Err(LoadError::Empty)); // use defaults
/// store.store(&mut flash, &Soc(734)).unwrap();
/// let mut store: ParamStore<64> = ParamStore::open(&mut flash, Region::new(0, 4096))?;
/// assert_eq!(store.load::<Soc, _>(&mut flash), Ok(Soc(734)));
/// # Ok::<(), Error<_>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ParamStore<const N: usize> {
    ring: Ring,
    buf: [u8; N],
}

impl<const N: usize> ParamStore<N> {
    /// Opens the store in `region`, scanning it.
    ///
    /// # Errors
    /// [`Error::BadRegion`] when the region is not sector-aligned, has fewer than 2 sectors,
    /// lies outside the flash or a slot of `N` bytes does not fit a sector;
    /// [`Error::Flash`] when a read fails.
    pub fn open<F: NorFlash>(flash: &mut F, region: Region) -> Result<Self, Error<F::Error>> {
        Ok(ParamStore {
            ring: Ring::open(flash, region, N, DOMAIN)?,
            buf: [0; N],
        })
    }

    /// Loads the newest valid copy, migrating an older schema version through
    /// [`Persist::migrate`].
    ///
    /// # Errors
    /// A [`LoadError`] telling why there is no value (empty, corrupt, newer version,
    /// decode failure, flash failure); the caller uses safe defaults.
    pub fn load<T: Persist, F: NorFlash>(
        &mut self,
        flash: &mut F,
    ) -> Result<T, LoadError<F::Error>> {
        let (tag, bytes) = newest(&self.ring, flash, &mut self.buf)?;
        if tag > T::VERSION {
            return Err(LoadError::NewerVersion {
                found: tag,
                supported: T::VERSION,
            });
        }
        if tag == T::VERSION {
            if bytes.len() > T::MAX_LEN {
                return Err(LoadError::TooLong);
            }
            T::decode(bytes).map_err(LoadError::Decode)
        } else {
            T::migrate(tag, bytes).map_err(LoadError::Decode)
        }
    }

    /// Stores `value` as the new copy; returns its sequence number once committed.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] when `T::MAX_LEN > N`, [`StoreError::Encode`] when encoding
    /// fails, [`StoreError::Storage`] when the flash fails (the previous copy is kept).
    pub fn store<T: Persist, F: NorFlash>(
        &mut self,
        flash: &mut F,
        value: &T,
    ) -> Result<Seq, StoreError<F::Error>> {
        if T::MAX_LEN > N {
            return Err(StoreError::TooLarge);
        }
        let len = value.encode(&mut self.buf).map_err(StoreError::Encode)?;
        let bytes = self.buf.get(..len).ok_or(StoreError::TooLarge)?;
        self.ring
            .append(flash, T::VERSION, bytes)
            .map_err(StoreError::Storage)
    }

    /// What the last [`open`](Self::open) found.
    pub fn scan_report(&self) -> ScanReport {
        let c = self.ring.counts();
        ScanReport {
            valid: c.valid,
            corrupt: c.corrupt,
            empty: c.empty,
        }
    }

    /// Stores per sector erase.
    pub fn slots_per_sector(&self) -> u32 {
        self.ring.slots_per_sector()
    }
}

/// The newest valid copy in `ring`: its version tag and its bytes, read into `buf`.
// Generic over the flash only (not the store size or the value type): one copy in firmware.
fn newest<'b, F: NorFlash>(
    ring: &Ring,
    flash: &mut F,
    buf: &'b mut [u8],
) -> Result<(u16, &'b [u8]), LoadError<F::Error>> {
    let mut walk = Walk::new(ring, false, ..);
    let h = match walk.next(ring, flash, buf) {
        None if ring.counts().valid == 0 && ring.counts().corrupt == 0 => {
            return Err(LoadError::Empty)
        }
        None => return Err(LoadError::Corrupt),
        Some(Err(Error::Flash(e))) => return Err(LoadError::Flash(e)),
        Some(Err(_)) => return Err(LoadError::Corrupt),
        Some(Ok(h)) => h,
    };
    let bytes = buf.get(..h.len as usize).ok_or(LoadError::TooLong)?;
    Ok((h.tag, bytes))
}
