//! Flash wear figures, measured on the simulated flash: erases per sector per day for an
//! event log of 8 sectors of 2 KiB (word size 8, as on an STM32G4) at one fault per minute,
//! and for the statistics store persisted hourly.
//!
//! Run with `cargo test -p bms-hal-mock --test flash_wear -- --nocapture` to see the figures.
#![allow(clippy::unwrap_used)]

use bms_core::event_log::{
    EventKind, EventLog, EventRecord, LifetimeStats, ParamStore, RateLimiter, Region, Stats,
};
use bms_core::time::{Duration, Instant};
use bms_core::{Fault, FaultSet, MilliAmps, Telemetry};
use bms_hal_mock::flash::SimFlash;

const SECTOR: u32 = 2048;
const LOG: Region = Region::new(0, 8 * SECTOR);
const DAYS: u64 = 10;
const DAY_MS: u64 = 86_400_000;

type Flash = SimFlash<8, { SECTOR as usize }>;

/// Runs `days` days of a fault that is active while `faulted(ms)`, stepping every
/// `step_ms`; returns the erases per log sector per day (x1000), the records written and
/// the erase counters.
fn simulate(
    days: u64,
    step_ms: u64,
    faulted: impl Fn(u64) -> bool,
    limiter: Option<RateLimiter<8>>,
) -> (u64, u64, Vec<u32>) {
    let mut flash = Flash::new(8, 1);
    let mut log = EventLog::open(&mut flash, LOG).unwrap();
    let mut limiter = limiter;
    let mut t = Telemetry::empty(16);
    let mut previous = FaultSet::EMPTY;
    let mut written = 0u64;
    let mut step = 0u64;
    while step * step_ms < days * DAY_MS {
        let now = step * step_ms;
        t.now = Instant::from_millis(now);
        t.faults = if faulted(now) {
            FaultSet::from_iter([Fault::CellOv])
        } else {
            FaultSet::EMPTY
        };
        let mut out = Vec::new();
        for f in t.faults.difference(previous).iter() {
            out.push(EventRecord::from_telemetry(EventKind::FaultTrip(f), &t));
        }
        for f in previous.difference(t.faults).iter() {
            out.push(EventRecord::from_telemetry(EventKind::FaultRelease(f), &t));
        }
        previous = t.faults;
        for rec in out {
            let rec = match limiter.as_mut() {
                Some(l) => l.offer(rec),
                None => Some(rec),
            };
            if let Some(rec) = rec {
                log.append(&mut flash, rec).unwrap();
                written += 1;
            }
        }
        if let Some(l) = limiter.as_mut() {
            while let Some(rec) = l.poll(t.now) {
                log.append(&mut flash, rec).unwrap();
                written += 1;
            }
        }
        step += 1;
    }
    let counts = flash.erase_counts().to_vec();
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    let per_sector_day_milli = total * 1000 / (8 * days);
    (per_sector_day_milli, written, counts)
}

/// Years (x10) until 10 000 erase cycles (a common endurance figure for MCU flash).
fn endurance_deciyears(per_sector_day_milli: u64) -> u64 {
    10_000 * 1000 * 10 / per_sector_day_milli.max(1) / 365
}

#[test]
fn one_fault_per_minute_without_limiter() {
    // Trips at the start of each minute, releases 10 s later: 2 records per minute.
    let (w, written, counts) = simulate(DAYS, 5000, |ms| ms % 60_000 < 10_000, None);
    println!(
        "no limiter, 1 fault/min (trip+release), 8 x 2 KiB: {written} records in {DAYS} days, \
         {}.{:03} erases/sector/day, ~{}.{} years to 10k cycles; erases {counts:?}",
        w / 1000,
        w % 1000,
        endurance_deciyears(w) / 10,
        endurance_deciyears(w) % 10
    );
    assert_eq!(written, 2 * 1440 * DAYS);
    // 2880 records/day / 32 per sector / 8 sectors = 11.25.
    assert!((11_200..=11_300).contains(&w), "{w}");
    let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(hi - lo <= 1, "wear not even: {counts:?}");
}

#[test]
fn one_fault_per_minute_with_default_limiter() {
    let limiter = RateLimiter::new(RateLimiter::<8>::DEFAULT_WINDOW);
    let (w, written, counts) = simulate(DAYS, 5000, |ms| ms % 60_000 < 10_000, Some(limiter));
    println!(
        "5 min limiter, 1 fault/min (trip+release), 8 x 2 KiB: {written} records in {DAYS} days, \
         {}.{:03} erases/sector/day, ~{}.{} years to 10k cycles; erases {counts:?}",
        w / 1000,
        w % 1000,
        endurance_deciyears(w) / 10,
        endurance_deciyears(w) % 10
    );
    // 2 records per 5 min = 576/day.
    assert!(written <= 576 * DAYS + 2, "{written}");
    assert!((2_200..=2_300).contains(&w), "{w}");
}

#[test]
fn flapping_fault_with_default_limiter() {
    // Trip and release on alternate 200 ms steps, for 2 days.
    let limiter = RateLimiter::new(RateLimiter::<8>::DEFAULT_WINDOW);
    let (w, written, _) = simulate(2, 200, |ms| (ms / 200) % 2 == 0, Some(limiter));
    println!(
        "5 min limiter, fault flapping every 200 ms: {written} records in 2 days, \
         {}.{:03} erases/sector/day",
        w / 1000,
        w % 1000
    );
    assert!(written <= 576 * 2 + 2, "{written}");
    assert!(w <= 2_300, "{w}");
}

#[test]
fn statistics_persisted_hourly() {
    let mut flash: SimFlash<8, { SECTOR as usize }> = SimFlash::new(2, 1);
    let region = Region::new(0, 2 * SECTOR);
    let mut store: ParamStore<{ LifetimeStats::LEN }> =
        ParamStore::open(&mut flash, region).unwrap();
    let mut stats = Stats::new(LifetimeStats::NEW, Instant::ZERO, Duration::from_mins(60));
    let mut t = Telemetry::empty(16);
    t.current = MilliAmps::from_amps(5);
    let mut stores = 0u64;
    let mut last_stored = LifetimeStats::NEW;
    // 10 s steps for 10 days.
    for step in 0..=(DAYS * DAY_MS / 10_000) {
        t.now = Instant::from_millis(step * 10_000);
        stats.update(&t);
        if stats.persist_due(t.now) {
            store.store(&mut flash, stats.lifetime()).unwrap();
            stats.mark_persisted(t.now);
            last_stored = *stats.lifetime();
            stores += 1;
        }
    }
    let total: u64 = flash.erase_counts().iter().map(|&c| u64::from(c)).sum();
    let w = total * 1000 / (2 * DAYS);
    println!(
        "statistics hourly, 2 x 2 KiB, {} stores/sector: {stores} stores in {DAYS} days, \
         {}.{:03} erases/sector/day",
        store.slots_per_sector(),
        w / 1000,
        w % 1000
    );
    assert_eq!(stores, 24 * DAYS);
    let mut store: ParamStore<{ LifetimeStats::LEN }> =
        ParamStore::open(&mut flash, region).unwrap();
    assert_eq!(
        store.load::<LifetimeStats, _>(&mut flash).unwrap(),
        last_stored
    );
    assert!(w <= 1_000, "{w}");
}
