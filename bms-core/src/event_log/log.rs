//! [`EventLog`]: the ring of event records in flash.

use core::ops::RangeBounds;

use embedded_storage::nor_flash::NorFlash;

use super::record::{EventRecord, StoredEvent};
use super::ring::{Ring, Walk};
use super::{Error, Region, ScanReport, Seq};

/// Domain byte mixed into the slot CRC of event records.
const DOMAIN: u8 = 0xE1;
/// Record format version, stored in the slot tag.
const FORMAT: u16 = 1;

/// The event log: fixed-size records in a ring of flash sectors, oldest overwritten.
///
/// Each record takes one 64-byte slot (16-byte header with sequence number and CRC-32, the
/// 44-byte [`EventRecord`], padding), so a 2 KiB sector holds 32 records. The log holds only
/// positions; the flash is passed to each call, so one flash can serve the log, the
/// parameter store and the statistics.
///
/// # Examples
/// ```
/// # use bms_core::event_log::*;
/// # use bms_core::{Fault, Telemetry};
/// # let mut flash = bms_core::event_log::RamFlash::<4, 2048, { 8 * 2048 }>::new();
/// let region = Region::new(0, 8 * 2048);
/// let mut log = EventLog::open(&mut flash, region)?;
/// let t = Telemetry::empty(16);
/// let seq = log
///     .append(&mut flash, EventRecord::from_telemetry(EventKind::FaultTrip(Fault::CellOv), &t))
///     .map_err(|(e, _rejected)| e)?;
/// log.append(&mut flash, EventRecord::from_telemetry(EventKind::FaultRelease(Fault::CellOv), &t))
///     .map_err(|(e, _)| e)?;
///
/// // Newest first, as a protocol serves "the last N events".
/// let kinds: Vec<_> = log.iter_newest_first(&mut flash).map(|e| e.unwrap().record.kind).collect();
/// assert_eq!(kinds[0], EventKind::FaultRelease(Fault::CellOv));
///
/// // By sequence range, oldest first.
/// let first = log.read_range(&mut flash, seq..=seq).next().unwrap()?;
/// assert_eq!(first.record.kind, EventKind::FaultTrip(Fault::CellOv));
///
/// // After a restart, open() finds everything again.
/// let log = EventLog::open(&mut flash, region)?;
/// assert_eq!(log.scan_report().valid, 2);
/// # Ok::<(), Error<RamFlashError>>(())
/// ```
#[derive(Clone, Debug)]
pub struct EventLog {
    ring: Ring,
}

impl EventLog {
    /// Bytes of flash per record.
    pub const SLOT_LEN: usize = 64;

    /// Opens the log in `region`, recovering its state by scanning every slot.
    ///
    /// An erased region is an empty log. Torn slots (a write cut by a power loss) are skipped
    /// and never written again.
    ///
    /// # Errors
    /// [`Error::BadRegion`] when `region` is not sector-aligned, has fewer than 2 sectors,
    /// lies outside the flash, or the flash word size does not divide 16;
    /// [`Error::Flash`] when a read fails.
    pub fn open<F: NorFlash>(flash: &mut F, region: Region) -> Result<Self, Error<F::Error>> {
        Ok(EventLog {
            ring: Ring::open(flash, region, EventRecord::LEN, DOMAIN)?,
        })
    }

    /// Erases the whole region and opens an empty log (a "clear log" command).
    ///
    /// # Errors
    /// As [`open`](Self::open), and [`Error::Flash`] when an erase fails.
    pub fn format<F: NorFlash>(flash: &mut F, region: Region) -> Result<Self, Error<F::Error>> {
        // Validate before erasing anything.
        Ring::open(flash, region, EventRecord::LEN, DOMAIN)?;
        flash
            .erase(region.start(), region.start() + region.len())
            .map_err(Error::Flash)?;
        Self::open(flash, region)
    }

    /// Appends `record`; returns its sequence number once it is committed to flash.
    ///
    /// When the current sector is full, the oldest sector is erased first.
    ///
    /// # Errors
    /// The error and the rejected record, so the caller can count or escalate it:
    /// [`Error::Flash`] when an erase or write fails (the slot is skipped, never reused),
    /// [`Error::Exhausted`] after 2³² − 1 records.
    pub fn append<F: NorFlash>(
        &mut self,
        flash: &mut F,
        record: EventRecord,
    ) -> Result<Seq, (Error<F::Error>, EventRecord)> {
        self.ring
            .append(flash, FORMAT, &record.encode())
            .map_err(|e| (e, record))
    }

    /// Records from the newest to the oldest. Corrupt slots are skipped; the iterator ends
    /// after the first flash error.
    pub fn iter_newest_first<'a, F: NorFlash>(&'a self, flash: &'a mut F) -> Events<'a, F> {
        Events::new(self, flash, false, ..)
    }

    /// Records from the oldest to the newest.
    pub fn iter_oldest_first<'a, F: NorFlash>(&'a self, flash: &'a mut F) -> Events<'a, F> {
        Events::new(self, flash, true, ..)
    }

    /// Records whose sequence number is in `range`, oldest first (for protocols that page
    /// through the log: `read_range(flash, next..)`).
    pub fn read_range<'a, F: NorFlash>(
        &'a self,
        flash: &'a mut F,
        range: impl RangeBounds<Seq>,
    ) -> Events<'a, F> {
        Events::new(self, flash, true, range)
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

    /// Sequence number of the newest committed record, if any.
    pub fn newest_seq(&self) -> Option<Seq> {
        self.ring.newest().map(Seq::new)
    }

    /// Sequence number the next record will get.
    pub fn next_seq(&self) -> Seq {
        Seq::new(self.ring.next_seq())
    }

    /// Slots in the region (the most records the log can hold).
    pub fn capacity(&self) -> u32 {
        self.ring.slots()
    }

    /// Records always kept: the newest this many committed records survive any power cut,
    /// less one per torn slot still in the region.
    pub fn guaranteed_capacity(&self) -> u32 {
        self.ring.guaranteed_slots()
    }

    /// Records per sector.
    pub fn records_per_sector(&self) -> u32 {
        self.ring.slots_per_sector()
    }

    /// Sectors in the region.
    pub fn sectors(&self) -> u32 {
        self.ring.sectors()
    }
}

/// Iterator over stored events; see [`EventLog::iter_newest_first`].
pub struct Events<'a, F> {
    ring: &'a Ring,
    flash: &'a mut F,
    walk: Walk,
}

impl<'a, F: NorFlash> Events<'a, F> {
    fn new(log: &'a EventLog, flash: &'a mut F, forward: bool, r: impl RangeBounds<Seq>) -> Self {
        Events {
            ring: &log.ring,
            flash,
            walk: Walk::new(&log.ring, forward, r),
        }
    }
}

impl<F: NorFlash> Iterator for Events<'_, F> {
    type Item = Result<StoredEvent, Error<F::Error>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut body = [0u8; EventRecord::LEN];
        loop {
            let h = match self.walk.next(self.ring, self.flash, &mut body)? {
                Ok(h) => h,
                Err(e) => return Some(Err(e)),
            };
            // A valid slot of another format or length is not an event of this firmware.
            if h.tag != FORMAT || h.len as usize != EventRecord::LEN {
                continue;
            }
            if let Ok(record) = EventRecord::decode(&body) {
                return Some(Ok(StoredEvent {
                    seq: Seq::new(h.seq),
                    record,
                }));
            }
        }
    }
}
