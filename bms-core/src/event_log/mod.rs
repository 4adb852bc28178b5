//! System event log, lifetime statistics and parameter store in NOR flash, safe against a
//! power cut at any point.
//!
//! Everything here is blocking and works over the `embedded-storage`
//! [`NorFlash`](embedded_storage::nor_flash::NorFlash) trait, so it runs from the same plain
//! loop as the control step, with no executor. The stores hold only positions and
//! buffers; the flash is passed to each call (`&mut F`), so one flash device can serve all
//! three.
//!
//! - [`EventLog`]: fixed-size [`EventRecord`]s (fault trip and release, warning, MOSFET
//!   change, power mode, calibration, parameter change, reset cause) with a timestamp, a
//!   sequence number and a [`Snapshot`] of the pack, in a ring of sectors: the oldest are
//!   overwritten, wear rotates over every sector. Read back newest-first or by sequence range.
//! - [`RateLimiter`]: coalesces repeats of an event inside a window into one record that
//!   counts them, so a flapping fault cannot wear out the flash.
//! - [`Stats`] / [`LifetimeStats`]: cycles, charge in and out, trips per fault, extremes;
//!   updated every step, persisted every [`Stats::DEFAULT_INTERVAL`].
//! - [`ParamStore`]: an atomic, versioned, checksummed blob store for any [`Persist`] type;
//!   a missing or corrupt copy is a typed [`LoadError`].
//!
//! # Format (home-made, see `ring.rs`)
//! Each store is a ring of fixed-size slots: a 16-byte header (sequence number, length,
//! version tag, CRC-32) programmed *after* the body, so the header is the commit mark. Every
//! slot is programmed once per erase (fits flash with ECC that forbids a second write), a
//! sector is erased only when the ring moves into it, and the sector holding the newest
//! slot is never the one erased. Opening scans the region and resumes after the newest
//! valid slot. An event takes 64 bytes: 32 per 2 KiB sector.
//!
//! Why not `sequential-storage`: it is async only (the core has no executor), its queue
//! pop needs `MultiwriteNorFlash`, which ECC flash (STM32G4/L4) does not offer, and a
//! fixed-slot ring is small: the log, limiter, parameter store and statistics together
//! take about 4.3 KB of code in the reference firmware (`benches/size.sh -v`: thumbv7em,
//! opt-level `s`, LTO; the `event_log/` files) and a 64-byte CRC table, and one erase per
//! 32 events.
//!
//! # Wear (measured on the simulated flash, `bms-hal-mock/tests/flash_wear.rs`)
//! 8 sectors of 2 KiB, one fault per minute (trip and release, 2 records a minute):
//! 11.24 erases per sector per day without the limiter (about 2.4 years to 10 000 cycles),
//! 2.24 with the default 5-minute [`RateLimiter`] window (about 12 years). A fault flapping
//! every step costs the same 2.2 per sector per day with the limiter. Statistics persisted
//! hourly in 2 sectors: 0.7 erases per sector per day.
//!
//! # Suggested layout (2 KiB sectors, e.g. STM32G4)
//! | region | sectors | holds |
//! |---|---|---|
//! | events | 8 (16 KiB) | 256 records, at least 224 kept at any time |
//! | parameters | 2 (4 KiB) | `ParamStore<N>` of the parameter set |
//! | statistics | 2 (4 KiB) | `ParamStore<{LifetimeStats::LEN}>` |
//!
//! # Examples
//! One step of the controller loop:
//! ```
//! use bms_core::event_log::*;
//! use bms_core::time::{Duration, Instant};
//! use bms_core::{Fault, FaultSet, Telemetry};
//!
//! let mut flash = RamFlash::<8, 2048, { 12 * 2048 }>::new();
//! let mut log = EventLog::open(&mut flash, Region::new(0, 8 * 2048))?;
//! let mut stats_store: ParamStore<{ LifetimeStats::LEN }> =
//!     ParamStore::open(&mut flash, Region::new(8 * 2048, 2 * 2048))?;
//! let loaded = stats_store.load::<LifetimeStats, _>(&mut flash).unwrap_or(LifetimeStats::NEW);
//! let mut stats = Stats::new(loaded, Instant::ZERO, Stats::DEFAULT_INTERVAL);
//! let mut limiter: RateLimiter<8> = RateLimiter::new(RateLimiter::<8>::DEFAULT_WINDOW);
//!
//! let mut previous = FaultSet::EMPTY;
//! let mut t = Telemetry::empty(16);
//! t.faults = FaultSet::from_iter([Fault::CellUv]); // what Bms::step reported
//! // Each step:
//! for f in t.faults.difference(previous).iter() {
//!     if let Some(rec) = limiter.offer(EventRecord::from_telemetry(EventKind::FaultTrip(f), &t)) {
//!         if let Err((_e, _rec)) = log.append(&mut flash, rec) { /* count, report */ }
//!     }
//! }
//! while let Some(rec) = limiter.poll(t.now) {
//!     let _ = log.append(&mut flash, rec);
//! }
//! previous = t.faults;
//! stats.update(&t);
//! if stats.persist_due(t.now) && stats_store.store(&mut flash, stats.lifetime()).is_ok() {
//!     stats.mark_persisted(t.now);
//! }
//! assert_eq!(log.iter_newest_first(&mut flash).count(), 1);
//! # let _ = previous;
//! # Ok::<(), Error<bms_core::event_log::RamFlashError>>(())
//! ```

mod changes;
mod limiter;
mod log;
mod params;
mod persist;
mod ram;
mod record;
mod ring;
mod stats;

pub use changes::{changes, Changes};
pub use limiter::RateLimiter;
pub use log::{EventLog, Events};
pub use params::{DecodeError, EncodeError, LoadError, ParamStore, Persist, StoreError};
pub use persist::{Settings, MAX_SETTINGS};
pub use ram::{RamFlash, RamFlashError};
pub use record::{
    Calibration, EventKind, EventRecord, RecordError, ResetCause, Snapshot, StoredEvent,
};
pub use stats::{LifetimeStats, Stats};

pub(crate) use record::cell_extremes;

use core::fmt;

/// A sector-aligned byte range of the flash given to one store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Region {
    start: u32,
    len: u32,
}

impl Region {
    /// `len` bytes from `start` (checked against the flash geometry when a store opens).
    pub const fn new(start: u32, len: u32) -> Self {
        Region { start, len }
    }

    /// First byte offset.
    pub const fn start(self) -> u32 {
        self.start
    }

    /// Length in bytes.
    pub const fn len(self) -> u32 {
        self.len
    }

    /// `true` for an empty region.
    pub const fn is_empty(self) -> bool {
        self.len == 0
    }
}

/// A record's sequence number: unique and strictly increasing in append order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Seq(u32);

impl Seq {
    /// A sequence number from its raw value.
    pub const fn new(raw: u32) -> Self {
        Seq(raw)
    }

    /// The raw value.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What opening a store found in its region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ScanReport {
    /// Committed slots.
    pub valid: u32,
    /// Written slots that do not check (cut writes, cut erases): skipped.
    pub corrupt: u32,
    /// Erased slots.
    pub empty: u32,
}

/// Storage errors, generic over the flash error `E`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error<E> {
    /// The flash failed (a read, write or erase error, or a power loss).
    Flash(E),
    /// The region is not sector-aligned, has fewer than 2 sectors, lies outside the flash,
    /// a slot does not fit a sector, or the flash word size does not divide 16 bytes.
    BadRegion,
    /// The data is larger than a slot.
    TooLarge,
    /// Sequence numbers are used up (2³² − 1 appends).
    Exhausted,
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Flash(e) => write!(f, "flash error: {e:?}"),
            Error::BadRegion => f.write_str("bad flash region"),
            Error::TooLarge => f.write_str("data larger than a slot"),
            Error::Exhausted => f.write_str("sequence numbers exhausted"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// The log record of a [`crate::bms::Event`], stamped with the step's [`crate::Telemetry`]
/// (`None` for events the log does not keep: the plausibility detail, which travels as the
/// `value` of the `sensor_fault` trip instead, see [`crate::bms::Bms::step`]).
///
/// `value` carries the detail: the SOC in permille for SOC calibrations, the new capacity in
/// mAh for a learned capacity, the cause bits of a `sensor_fault` trip.
pub fn record_of(
    event: &crate::bms::Event,
    t: &crate::Telemetry,
    sensor_causes: u8,
) -> Option<EventRecord> {
    use crate::bms::Event;
    use crate::soc::SocEvent;
    let (kind, value) = match *event {
        Event::FaultTripped(f) => {
            let v = if f == crate::Fault::SensorFault {
                u32::from(sensor_causes)
            } else {
                0
            };
            (EventKind::FaultTrip(f), v)
        }
        Event::FaultReleased(f) => (EventKind::FaultRelease(f), 0),
        Event::Warning(f) => (EventKind::Warning(f), 0),
        Event::WarningCleared(f) => (EventKind::WarningRelease(f), 0),
        Event::FetsChanged(s) => (
            EventKind::Mosfet {
                charge: s.charge,
                discharge: s.discharge,
                precharge: s.precharge,
            },
            0,
        ),
        Event::ModeChanged(m) => (EventKind::PowerMode(m), 0),
        Event::FaultsReset => (EventKind::Reset(ResetCause::Software), 0),
        Event::ConfigChanged => (EventKind::ParamChange(0), 0),
        Event::SensorCauses(_) => return None,
        Event::Soc(e) => match e {
            SocEvent::Boot { soc, .. } => (
                EventKind::Calibration(Calibration::SocOcv),
                u32::from(soc.as_permille()),
            ),
            SocEvent::OcvCalibration { after, .. } => (
                EventKind::Calibration(Calibration::SocOcv),
                u32::from(after.as_permille()),
            ),
            SocEvent::Full { after, .. } => (
                EventKind::Calibration(Calibration::SocFull),
                u32::from(after.as_permille()),
            ),
            SocEvent::Empty { .. } => (EventKind::Calibration(Calibration::SocEmpty), 0),
            SocEvent::CapacityLearned { new, .. } => {
                (EventKind::Calibration(Calibration::Capacity), new.as_mah())
            }
            SocEvent::CapacityRejected { .. } => return None,
        },
    };
    Some(EventRecord::from_telemetry(kind, t).with_value(value))
}
