//! Event log and parameter store behaviour on a RAM flash: ring order, overwrite of the
//! oldest, reads by range, recovery on open, corruption handling, versions.
#![allow(clippy::unwrap_used)]

use bms_core::event_log::*;
use bms_core::time::Instant;
use bms_core::{Fault, MilliVolts, Telemetry};

const SECTOR: usize = 2048;
type Flash = RamFlash<8, SECTOR, { 12 * SECTOR }>;
const LOG: Region = Region::new(0, 4 * SECTOR as u32);
const PARAMS: Region = Region::new(8 * SECTOR as u32, 2 * SECTOR as u32);

fn rec(i: u32) -> EventRecord {
    let mut t = Telemetry::empty(16);
    t.now = Instant::from_millis(u64::from(i) * 1000);
    t.cells[(i % 16) as usize] = MilliVolts::from_mv(3_000 + i % 1000);
    let f = Fault::ALL[(i as usize) % Fault::COUNT];
    EventRecord::from_telemetry(EventKind::FaultTrip(f), &t).with_value(i)
}

fn seqs<'a>(it: impl Iterator<Item = Result<StoredEvent, Error<RamFlashError>>> + 'a) -> Vec<u32> {
    it.map(|e| e.unwrap().seq.get()).collect()
}

#[test]
fn geometry() {
    let mut flash = Flash::new();
    let log = EventLog::open(&mut flash, LOG).unwrap();
    assert_eq!(log.records_per_sector(), 32);
    assert_eq!(log.capacity(), 128);
    assert_eq!(log.guaranteed_capacity(), 96);
    assert_eq!(log.newest_seq(), None);
    assert_eq!(log.scan_report().empty, 128);
}

#[test]
fn bad_regions_are_refused() {
    let mut flash = Flash::new();
    for r in [
        Region::new(0, SECTOR as u32),                      // one sector
        Region::new(100, 2 * SECTOR as u32),                // unaligned start
        Region::new(0, 3000),                               // unaligned length
        Region::new(11 * SECTOR as u32, 2 * SECTOR as u32), // past the end
    ] {
        assert!(matches!(
            EventLog::open(&mut flash, r),
            Err(Error::BadRegion)
        ));
    }
    // A blob slot larger than a sector.
    assert!(matches!(
        ParamStore::<4000>::open(&mut flash, PARAMS),
        Err(Error::BadRegion)
    ));
}

#[test]
fn wraps_and_keeps_the_newest_in_order() {
    let mut flash = Flash::new();
    let mut log = EventLog::open(&mut flash, LOG).unwrap();
    for i in 0..1000 {
        assert_eq!(log.append(&mut flash, rec(i)).unwrap().get(), i);
    }
    let newest = seqs(log.iter_newest_first(&mut flash));
    // After the last wrap: 3 full sectors + 1000 % 32 = 8 in the current one.
    assert_eq!(newest.len(), 96 + 8);
    assert_eq!(newest[0], 999);
    assert!(newest.windows(2).all(|w| w[0] == w[1] + 1));
    let oldest = seqs(log.iter_oldest_first(&mut flash));
    assert_eq!(oldest.iter().rev().copied().collect::<Vec<_>>(), newest);

    // Contents survive: every record reads back as written.
    for e in log.iter_newest_first(&mut flash) {
        let e = e.unwrap();
        assert_eq!(e.record, rec(e.seq.get()));
    }

    // Reopen finds the same state and continues the sequence.
    let mut log = EventLog::open(&mut flash, LOG).unwrap();
    assert_eq!(log.next_seq(), Seq::new(1000));
    assert_eq!(log.scan_report().valid, 104);
    assert_eq!(log.append(&mut flash, rec(1000)).unwrap(), Seq::new(1000));
    assert_eq!(seqs(log.iter_newest_first(&mut flash))[0], 1000);
}

#[test]
fn read_range_pages_oldest_first() {
    let mut flash = Flash::new();
    let mut log = EventLog::open(&mut flash, LOG).unwrap();
    for i in 0..200 {
        log.append(&mut flash, rec(i)).unwrap();
    }
    assert_eq!(
        seqs(log.read_range(&mut flash, Seq::new(150)..Seq::new(155))),
        vec![150, 151, 152, 153, 154]
    );
    assert_eq!(
        seqs(log.read_range(&mut flash, Seq::new(197)..)),
        vec![197, 198, 199]
    );
    // Older than what is kept: starts at the oldest kept record.
    let kept = seqs(log.read_range(&mut flash, ..=Seq::new(120)));
    assert_eq!(kept.first(), Some(&96));
    assert_eq!(kept.last(), Some(&120));
    assert!(seqs(log.read_range(&mut flash, Seq::new(500)..)).is_empty());
    #[allow(clippy::reversed_empty_ranges)]
    let empty = seqs(log.read_range(&mut flash, Seq::new(10)..Seq::new(5)));
    assert!(empty.is_empty());
}

#[test]
fn a_corrupt_record_is_skipped_never_returned() {
    let mut flash = Flash::new();
    let mut log = EventLog::open(&mut flash, LOG).unwrap();
    for i in 0..10 {
        log.append(&mut flash, rec(i)).unwrap();
    }
    // Flip one bit in the body of record 4 (slot 4, byte 16 + 20).
    flash.contents_mut()[4 * 64 + 36] ^= 0x01;
    let log = EventLog::open(&mut flash, LOG).unwrap();
    assert_eq!(log.scan_report().corrupt, 1);
    assert_eq!(
        seqs(log.iter_oldest_first(&mut flash)),
        vec![0, 1, 2, 3, 5, 6, 7, 8, 9]
    );
    // The newest record corrupted: the sequence resumes from the newest valid one and the
    // torn slot is not written again.
    flash.contents_mut()[9 * 64] ^= 0x80;
    let mut log = EventLog::open(&mut flash, LOG).unwrap();
    assert_eq!(log.next_seq(), Seq::new(9));
    log.append(&mut flash, rec(9)).unwrap();
    assert_eq!(seqs(log.iter_newest_first(&mut flash))[..2], [9, 8]);
}

#[test]
fn a_full_region_of_garbage_is_recovered() {
    let mut flash = Flash::new();
    flash.contents_mut()[..LOG.len() as usize].fill(0x5A);
    let mut log = EventLog::open(&mut flash, LOG).unwrap();
    assert_eq!(log.scan_report().corrupt, 128);
    assert_eq!(log.iter_newest_first(&mut flash).count(), 0);
    log.append(&mut flash, rec(0)).unwrap();
    assert_eq!(seqs(log.iter_newest_first(&mut flash)), vec![0]);
}

#[test]
fn format_clears_the_log() {
    let mut flash = Flash::new();
    let mut log = EventLog::open(&mut flash, LOG).unwrap();
    log.append(&mut flash, rec(0)).unwrap();
    let log = EventLog::format(&mut flash, LOG).unwrap();
    assert_eq!(log.iter_newest_first(&mut flash).count(), 0);
    assert_eq!(log.next_seq(), Seq::new(0));
}

/// Word sizes from byte-programmable external NOR to 16-byte words.
#[test]
fn every_supported_write_size() {
    fn run<const W: usize>() {
        let mut flash = RamFlash::<W, 1024, 4096>::new();
        let region = Region::new(0, 4096);
        let mut log = EventLog::open(&mut flash, region).unwrap();
        for i in 0..100 {
            log.append(&mut flash, rec(i)).unwrap();
        }
        let log = EventLog::open(&mut flash, region).unwrap();
        let got = seqs(log.iter_newest_first(&mut flash));
        assert_eq!(got[0], 99, "W={W}");
        assert_eq!(got.len(), 48 + 100 % 16, "W={W}");
    }
    run::<1>();
    run::<2>();
    run::<4>();
    run::<8>();
    run::<16>();
    let mut flash = RamFlash::<32, 1024, 4096>::new();
    assert!(matches!(
        EventLog::open(&mut flash, Region::new(0, 4096)),
        Err(Error::BadRegion)
    ));
}

/// Unknown kinds written by a newer firmware come back as `Unknown`, not dropped.
#[test]
fn unknown_kinds_survive_storage() {
    let mut flash = Flash::new();
    let mut log = EventLog::open(&mut flash, LOG).unwrap();
    let mut r = rec(0);
    r.kind = EventKind::Unknown {
        code: 77,
        detail: 3,
    };
    log.append(&mut flash, r).unwrap();
    let back = log.iter_newest_first(&mut flash).next().unwrap().unwrap();
    assert_eq!(back.record.kind, EventKind::from_raw(77, 3));
}

// ---- parameter store ----

#[derive(Debug, Clone, PartialEq)]
struct ParamsV2 {
    capacity_mah: u32,
    name: [u8; 8],
    soc: u16,
}

impl Persist for ParamsV2 {
    const VERSION: u16 = 2;
    const MAX_LEN: usize = 14;
    fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let b = buf.get_mut(..14).ok_or(EncodeError::BufferTooSmall)?;
        b[..4].copy_from_slice(&self.capacity_mah.to_le_bytes());
        b[4..12].copy_from_slice(&self.name);
        b[12..].copy_from_slice(&self.soc.to_le_bytes());
        Ok(14)
    }
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        if buf.len() != 14 {
            return Err(DecodeError::Truncated);
        }
        let soc = u16::from_le_bytes([buf[12], buf[13]]);
        if soc > 1000 {
            return Err(DecodeError::Malformed);
        }
        Ok(ParamsV2 {
            capacity_mah: u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]),
            name: buf[4..12].try_into().unwrap(),
            soc,
        })
    }
    fn migrate(version: u16, buf: &[u8]) -> Result<Self, DecodeError> {
        match (version, buf) {
            (1, &[a, b, c, d]) => Ok(ParamsV2 {
                capacity_mah: u32::from_le_bytes([a, b, c, d]),
                name: *b"migrated",
                soc: 500,
            }),
            _ => Err(DecodeError::UnsupportedVersion(version)),
        }
    }
}

/// The same data as stored by an older firmware.
struct ParamsV1(u32);
impl Persist for ParamsV1 {
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 4;
    fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        buf.get_mut(..4)
            .ok_or(EncodeError::BufferTooSmall)?
            .copy_from_slice(&self.0.to_le_bytes());
        Ok(4)
    }
    fn decode(_: &[u8]) -> Result<Self, DecodeError> {
        Err(DecodeError::Malformed)
    }
}

/// And by a newer one.
struct ParamsV3;
impl Persist for ParamsV3 {
    const VERSION: u16 = 3;
    const MAX_LEN: usize = 1;
    fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        *buf.first_mut().ok_or(EncodeError::BufferTooSmall)? = 3;
        Ok(1)
    }
    fn decode(_: &[u8]) -> Result<Self, DecodeError> {
        Ok(ParamsV3)
    }
}

fn p(i: u32) -> ParamsV2 {
    ParamsV2 {
        capacity_mah: 100_000 + i,
        name: *b"pack-001",
        soc: (i % 1001) as u16,
    }
}

#[test]
fn params_store_and_reload_many_times() {
    let mut flash = Flash::new();
    let mut store: ParamStore<64> = ParamStore::open(&mut flash, PARAMS).unwrap();
    assert_eq!(store.load::<ParamsV2, _>(&mut flash), Err(LoadError::Empty));
    assert_eq!(store.slots_per_sector(), 2048 / 80);
    for i in 0..200 {
        store.store(&mut flash, &p(i)).unwrap();
        assert_eq!(store.load::<ParamsV2, _>(&mut flash), Ok(p(i)));
    }
    let mut store: ParamStore<64> = ParamStore::open(&mut flash, PARAMS).unwrap();
    assert_eq!(store.load::<ParamsV2, _>(&mut flash), Ok(p(199)));
}

#[test]
fn params_migrate_older_refuse_newer() {
    let mut flash = Flash::new();
    let mut store: ParamStore<64> = ParamStore::open(&mut flash, PARAMS).unwrap();
    store.store(&mut flash, &ParamsV1(88_000)).unwrap();
    let got = store.load::<ParamsV2, _>(&mut flash).unwrap();
    assert_eq!((got.capacity_mah, &got.name), (88_000, b"migrated"));

    store.store(&mut flash, &ParamsV3).unwrap();
    assert_eq!(
        store.load::<ParamsV2, _>(&mut flash),
        Err(LoadError::NewerVersion {
            found: 3,
            supported: 2
        })
    );
}

#[test]
fn params_corrupt_and_too_large() {
    let mut flash = Flash::new();
    let mut store: ParamStore<64> = ParamStore::open(&mut flash, PARAMS).unwrap();
    store.store(&mut flash, &p(1)).unwrap();
    store.store(&mut flash, &p(2)).unwrap();
    // Corrupt the newest copy: the previous one is served.
    let base = PARAMS.start() as usize;
    flash.contents_mut()[base + 80 + 20] ^= 0x10;
    let mut store: ParamStore<64> = ParamStore::open(&mut flash, PARAMS).unwrap();
    assert_eq!(store.load::<ParamsV2, _>(&mut flash), Ok(p(1)));
    // Corrupt both: a typed reason.
    flash.contents_mut()[base + 20] ^= 0x10;
    let mut store: ParamStore<64> = ParamStore::open(&mut flash, PARAMS).unwrap();
    assert_eq!(
        store.load::<ParamsV2, _>(&mut flash),
        Err(LoadError::Corrupt)
    );
    // A decode failure behind a good checksum.
    let mut bad = p(3);
    bad.soc = 2000;
    store.store(&mut flash, &bad).unwrap();
    assert_eq!(
        store.load::<ParamsV2, _>(&mut flash),
        Err(LoadError::Decode(DecodeError::Malformed))
    );
    // A type larger than the store.
    let mut small: ParamStore<8> = ParamStore::open(&mut flash, PARAMS).unwrap();
    assert!(matches!(
        small.store(&mut flash, &p(0)),
        Err(StoreError::TooLarge)
    ));
}

#[test]
fn stats_persist_through_a_store() {
    let mut flash = Flash::new();
    let mut store: ParamStore<{ LifetimeStats::LEN }> =
        ParamStore::open(&mut flash, PARAMS).unwrap();
    let mut s = LifetimeStats::NEW;
    s.cycles = 12;
    s.trips[Fault::Sc.index()] = 3;
    store.store(&mut flash, &s).unwrap();
    let mut store: ParamStore<{ LifetimeStats::LEN }> =
        ParamStore::open(&mut flash, PARAMS).unwrap();
    assert_eq!(store.load::<LifetimeStats, _>(&mut flash), Ok(s));
}
