//! The event log and the parameter store opened over flash holding arbitrary bytes:
//! scan, iterate both ways, append, reopen.
#![no_main]

use bms_core::event_log::{
    EventKind, EventLog, EventRecord, LifetimeStats, ParamStore, RamFlash, Region,
};
use bms_core::{Instant, Telemetry};
use libfuzzer_sys::fuzz_target;

const SECTOR: usize = 512;
const SIZE: usize = 8 * SECTOR;
type Flash = RamFlash<4, SECTOR, SIZE>;

fn flash_from(data: &[u8]) -> Flash {
    let mut flash = Flash::new();
    let dst = flash.contents_mut();
    let n = data.len().min(dst.len());
    dst[..n].copy_from_slice(&data[..n]);
    flash
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    // The region: 2..=8 sectors, sometimes misaligned or too large to exercise the checks.
    let sectors = 2 + u32::from(sel & 0x07) % 7;
    let start = if sel & 0x40 != 0 { 1 } else { 0 };
    let region = Region::new(start, sectors * SECTOR as u32);

    let mut flash = flash_from(body);
    if let Ok(mut log) = EventLog::open(&mut flash, region) {
        let _ = log.scan_report();
        let newest: Vec<_> = log.iter_newest_first(&mut flash).collect();
        let oldest: Vec<_> = log.iter_oldest_first(&mut flash).collect();
        assert_eq!(
            newest.len(),
            oldest.len(),
            "both directions see the same records"
        );
        for pair in oldest.windows(2) {
            if let (Ok(a), Ok(b)) = (&pair[0], &pair[1]) {
                assert!(a.seq < b.seq, "oldest-first is in sequence order");
            }
        }
        if let Some(seq) = log.newest_seq() {
            let _ = log.read_range(&mut flash, seq..).count();
        }
        let rec = EventRecord::from_telemetry(EventKind::Reset(0u8.into()), &Telemetry::empty(16))
            .with_value(u32::from(sel));
        let rec = EventRecord {
            time: Instant::from_millis(u64::from(sel)),
            ..rec
        };
        if let Ok(seq) = log.append(&mut flash, rec) {
            let back = log.iter_newest_first(&mut flash).next();
            assert!(
                matches!(back, Some(Ok(e)) if e.seq == seq && e.record == rec),
                "appended record reads back first"
            );
            let reopened = EventLog::open(&mut flash, region).expect("reopen after append");
            assert_eq!(
                reopened.newest_seq(),
                Some(seq),
                "reopen finds the appended record"
            );
        }
    }

    let mut flash = flash_from(body);
    if let Ok(mut store) = ParamStore::<128>::open(&mut flash, region) {
        let _ = store.scan_report();
        let loaded = store.load::<LifetimeStats, _>(&mut flash);
        let value = loaded.clone().unwrap_or(LifetimeStats::NEW);
        if store.store(&mut flash, &value).is_ok() {
            let mut again = ParamStore::<128>::open(&mut flash, region).expect("reopen");
            assert_eq!(
                again.load::<LifetimeStats, _>(&mut flash).ok(),
                Some(value),
                "stored value loads back"
            );
        }
    }
});
