//! Power cuts at random points during 10 000 sequences of event appends, parameter stores
//! and statistics stores on the simulated NOR flash. After every restart:
//! - every record reported committed is still there, unless older than the newest
//!   `guaranteed_capacity - torn slots` (the overwrite-oldest rule);
//! - no record is returned that was not written (no corrupt, no phantom record);
//! - the parameter set and the statistics are the old or the new value, never a mix, and
//!   never missing once one was committed.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use bms_core::event_log::{
    DecodeError, EncodeError, EventKind, EventLog, EventRecord, LifetimeStats, LoadError,
    ParamStore, Persist, Region,
};
use bms_core::time::Instant;
use bms_core::{Fault, MilliAmps, MilliVolts, Telemetry};
use bms_hal_mock::flash::{SimFlash, XorShift};

const SECTOR: u32 = 2048;
const LOG: Region = Region::new(0, 8 * SECTOR);
const PARAMS: Region = Region::new(8 * SECTOR, 2 * SECTOR);
const STATS: Region = Region::new(10 * SECTOR, 2 * SECTOR);

/// A parameter set whose bytes all depend on one number, so a mix of two sets is detected.
#[derive(Clone, Debug, PartialEq)]
struct Params {
    gen: u32,
    body: Vec<u8>,
}

impl Params {
    fn new(gen: u32) -> Self {
        let mut r = XorShift::new(u64::from(gen) + 1);
        let len = 40 + (r.below(200) as usize);
        Params {
            gen,
            body: (0..len).map(|_| r.next_u64() as u8).collect(),
        }
    }
}

impl Persist for Params {
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 4 + 240;
    fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let n = 4 + self.body.len();
        let b = buf.get_mut(..n).ok_or(EncodeError::BufferTooSmall)?;
        b[..4].copy_from_slice(&self.gen.to_le_bytes());
        b[4..].copy_from_slice(&self.body);
        Ok(n)
    }
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let gen = u32::from_le_bytes(
            buf.get(..4)
                .ok_or(DecodeError::Truncated)?
                .try_into()
                .unwrap(),
        );
        let p = Params::new(gen);
        // Any mix of two generations fails here, whatever the checksum said.
        if buf[4..] != p.body[..] {
            return Err(DecodeError::Malformed);
        }
        Ok(p)
    }
}

fn record(rng: &mut XorShift, i: u64) -> EventRecord {
    let mut t = Telemetry::empty(16);
    t.now = Instant::from_millis(i * 997);
    for c in t.cells.iter_mut().take(16) {
        *c = MilliVolts::from_mv(3_000 + rng.below(600) as u32);
    }
    t.current = MilliAmps::from_ma(rng.next_u64() as i32 / 1000);
    let f = Fault::ALL[rng.below(Fault::COUNT as u64) as usize];
    let kind = match rng.below(3) {
        0 => EventKind::FaultTrip(f),
        1 => EventKind::FaultRelease(f),
        _ => EventKind::Warning(f),
    };
    EventRecord::from_telemetry(kind, &t).with_value(rng.next_u64() as u32)
}

/// Old and in-flight values of one blob store.
struct Blob<T> {
    committed: Option<T>,
    in_flight: Option<T>,
}

impl<T: PartialEq + Clone + std::fmt::Debug> Blob<T> {
    /// Checks one load after a restart; returns 1 when the in-flight value won.
    fn check<E: std::fmt::Debug>(&mut self, got: Result<T, LoadError<E>>, what: &str) -> u32 {
        let in_flight = self.in_flight.take();
        let won = match (&got, &self.committed) {
            (Ok(v), _) if Some(v) == in_flight.as_ref() => true,
            (Ok(v), Some(c)) if v == c => false,
            (Err(LoadError::Empty) | Err(LoadError::Corrupt), None) => false,
            _ => panic!(
                "{what}: got {got:?}, committed {:?}, in flight {in_flight:?}",
                self.committed
            ),
        };
        if won {
            self.committed = in_flight;
        }
        won as u32
    }
}

struct Totals {
    sequences: u32,
    restarts_checked: u32,
    appends_committed: u64,
    records_checked: u64,
    param_stores: u64,
    stats_stores: u64,
    in_flight_recovered: u32,
    torn_slots_max: u32,
}

fn run<const W: usize>(sequences: u32, seed: u64) -> (Totals, Vec<u32>, u32, u32) {
    let mut rng = XorShift::new(seed);
    let mut flash: SimFlash<W, { SECTOR as usize }> = SimFlash::new(12, seed ^ 0xABCD);
    let mut committed: BTreeMap<u32, EventRecord> = BTreeMap::new();
    let mut ever_committed: u64 = 0;
    let mut params = Blob::<Params> {
        committed: None,
        in_flight: None,
    };
    let mut stats = Blob::<LifetimeStats> {
        committed: None,
        in_flight: None,
    };
    let mut t = Totals {
        sequences,
        restarts_checked: 0,
        appends_committed: 0,
        records_checked: 0,
        param_stores: 0,
        stats_stores: 0,
        in_flight_recovered: 0,
        torn_slots_max: 0,
    };
    // The record being appended when the power was cut, with its sequence number.
    let mut committed_in_flight: Option<(u32, EventRecord)> = None;
    let mut event_no = 0u64;
    let mut gen = 0u32;

    for _ in 0..sequences {
        // Restart and recover.
        flash.restart();
        let mut log = EventLog::open(&mut flash, LOG).unwrap();
        let mut pstore: ParamStore<{ Params::MAX_LEN }> =
            ParamStore::open(&mut flash, PARAMS).unwrap();
        let mut sstore: ParamStore<{ LifetimeStats::LEN }> =
            ParamStore::open(&mut flash, STATS).unwrap();

        // --- check the log ---
        let report = log.scan_report();
        t.torn_slots_max = t.torn_slots_max.max(report.corrupt);
        let back: Vec<_> = log
            .iter_oldest_first(&mut flash)
            .map(|e| e.unwrap())
            .collect();
        assert_eq!(back.len() as u32, report.valid);
        let in_flight = committed_in_flight.take();
        for e in &back {
            let seq = e.seq.get();
            match committed.get(&seq) {
                Some(r) => assert_eq!(*r, e.record, "record {seq} changed"),
                None => {
                    let (s, r) = in_flight.expect("a record that was never written");
                    assert_eq!((s, r), (seq, e.record), "phantom record {seq}");
                    committed.insert(seq, r);
                    ever_committed += 1;
                    t.in_flight_recovered += 1;
                }
            }
        }
        if let Some(oldest) = back.first().map(|e| e.seq.get()) {
            committed = committed.split_off(&oldest);
        }
        // No hole: everything committed from the oldest returned record on is there.
        let back_seqs: Vec<u32> = back.iter().map(|e| e.seq.get()).collect();
        let want: Vec<u32> = committed.keys().copied().collect();
        assert_eq!(back_seqs, want, "committed records lost");
        // Nothing lost beyond the overwrite-oldest rule.
        let floor = u64::from(log.guaranteed_capacity().saturating_sub(report.corrupt));
        assert!(
            back.len() as u64 >= ever_committed.min(floor),
            "kept {} of {ever_committed}, floor {floor}",
            back.len()
        );
        t.records_checked += back.len() as u64;

        // --- check the blobs ---
        t.in_flight_recovered += params.check(pstore.load::<Params, _>(&mut flash), "params");
        t.in_flight_recovered += stats.check(sstore.load::<LifetimeStats, _>(&mut flash), "stats");
        t.restarts_checked += 1;

        // --- a sequence of operations until the power is cut ---
        let budget = if rng.below(10) < 7 {
            rng.below(900)
        } else {
            rng.below(24_000)
        };
        flash.cut_after(budget);
        for _ in 0..60 {
            match rng.below(10) {
                0..=6 => {
                    event_no += 1;
                    let r = record(&mut rng, event_no);
                    let seq = log.next_seq().get();
                    committed_in_flight = Some((seq, r));
                    match log.append(&mut flash, r) {
                        Ok(s) => {
                            assert_eq!(s.get(), seq);
                            committed.insert(seq, r);
                            ever_committed += 1;
                            committed_in_flight = None;
                            t.appends_committed += 1;
                        }
                        Err((_, back)) => {
                            assert!(flash.is_dead(), "append failed without a power cut");
                            assert_eq!(back, r, "the rejected record is handed back");
                            break;
                        }
                    }
                }
                7 | 8 => {
                    gen += 1;
                    let p = Params::new(gen);
                    params.in_flight = Some(p.clone());
                    if pstore.store(&mut flash, &p).is_err() {
                        assert!(flash.is_dead(), "store failed without a power cut");
                        break;
                    }
                    params.committed = params.in_flight.take();
                    t.param_stores += 1;
                }
                _ => {
                    let mut s = stats.committed.unwrap_or(LifetimeStats::NEW);
                    s.cycles += 1;
                    s.trips[rng.below(Fault::COUNT as u64) as usize] += 1;
                    s.max_cell = Some(MilliVolts::from_mv(3_600 + s.cycles % 100));
                    stats.in_flight = Some(s);
                    if sstore.store(&mut flash, &s).is_err() {
                        assert!(flash.is_dead(), "store failed without a power cut");
                        break;
                    }
                    stats.committed = stats.in_flight.take();
                    t.stats_stores += 1;
                }
            }
        }
    }
    let erases = flash.erase_counts().to_vec();
    (t, erases, flash.write_cuts(), flash.erase_cuts())
}

fn report<const W: usize>(sequences: u32, seed: u64) {
    let (t, erases, write_cuts, erase_cuts) = run::<W>(sequences, seed);
    println!(
        "WRITE_SIZE={W}: {} sequences, {} restarts checked, {} power cuts in writes, {} in erases; \
         {} appends committed, {} records checked after restarts, {} parameter stores, \
         {} statistics stores, {} in-flight writes found complete, at most {} torn slots at once; \
         erases per sector {:?}",
        t.sequences,
        t.restarts_checked,
        write_cuts,
        erase_cuts,
        t.appends_committed,
        t.records_checked,
        t.param_stores,
        t.stats_stores,
        t.in_flight_recovered,
        t.torn_slots_max,
        erases,
    );
    assert_eq!(t.restarts_checked, sequences);
    assert!(write_cuts > sequences / 4, "too few cuts in writes");
    assert!(erase_cuts > sequences / 20, "too few cuts in erases");
    // The log wrapped many times, so the overwrite rule was exercised.
    assert!(t.appends_committed > 20 * 256);
    // Wear is spread: every log sector erased, within a factor of 2 of each other.
    let log = &erases[..8];
    let (lo, hi) = (log.iter().min().unwrap(), log.iter().max().unwrap());
    assert!(*lo > 0 && hi / lo <= 2, "{log:?}");
}

#[test]
fn power_cut_anywhere_loses_nothing_committed() {
    report::<8>(10_000, 0x5EED_0001);
}

#[test]
fn power_cut_with_word_size_4() {
    report::<4>(2_000, 0x5EED_0002);
}
