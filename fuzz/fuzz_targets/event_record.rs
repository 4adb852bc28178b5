//! Event record and lifetime-statistics blob decoders, with their round trips.
#![no_main]

use bms_core::event_log::{EventKind, EventRecord, LifetimeStats, Persist};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = EventRecord::decode(data) {
        assert_eq!(EventRecord::decode(&r.encode()), Ok(r), "record round trip");
        let _ = r.to_string();
    }
    if let [code, detail, ..] = *data {
        let kind = EventKind::from_raw(code, detail);
        let (c, d) = kind.to_raw();
        assert_eq!(EventKind::from_raw(c, d), kind, "event kind round trip");
    }
    if let Ok(s) = LifetimeStats::decode(data) {
        let mut buf = [0u8; LifetimeStats::MAX_LEN];
        let n = s.encode(&mut buf).expect("stats encode");
        assert_eq!(
            LifetimeStats::decode(&buf[..n]).as_ref(),
            Ok(&s),
            "stats round trip"
        );
    }
});
