//! The BAM receiver fed TP.CM and TP.DT frames built from the input.
#![no_main]

use bms_core::j1939::tp::{BamReceiver, MAX_BAM_LEN};
use bms_core::Instant;
use bms_fuzz::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let mut rx = BamReceiver::new();
    let mut now = 0u64;
    while !b.is_empty() {
        now = now.saturating_add(u64::from(b.u16()));
        let t = Instant::from_millis(now);
        let op = b.u8();
        let source = b.u8() & 0x03;
        let len = usize::from(b.u8() % 9);
        let mut payload: [u8; 8] = b.array();
        match op % 4 {
            0 => {
                let _ = rx.handle_cm(t, source, &payload[..len]);
            }
            1 => {
                // A well-formed BAM announcement with a fuzzed size and PGN.
                payload[0] = 0x20;
                let _ = rx.handle_cm(t, source, &payload);
            }
            2 => {
                if let Ok(Some((_pgn, msg))) = rx.handle_dt(t, source, &payload[..len]) {
                    assert!(msg.len() >= 9 && msg.len() <= MAX_BAM_LEN);
                }
            }
            _ => {
                let _ = rx.handle_timeout(t);
                if let Some(deadline) = rx.poll_timeout() {
                    assert!(deadline >= t || rx.handle_timeout(t));
                }
            }
        }
    }
});
