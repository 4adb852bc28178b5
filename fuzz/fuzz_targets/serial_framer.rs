//! The serial stream framer over arbitrary bytes; every frame it yields is decoded.
#![no_main]

use bms_core::serial::{Frame, Framer};
use bms_fuzz::{check_legacy_request, check_legacy_status, check_serial_packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut framer: Framer = Framer::new();
    // A small buffer exercises the "frame longer than the buffer" path.
    let mut small: Framer<32> = Framer::new();
    for &byte in data {
        match framer.push(byte) {
            Some(Frame::New(p)) => check_serial_packet(&p),
            Some(Frame::Legacy(r)) => check_legacy_request(&r.to_bytes()),
            Some(Frame::LegacyStatus(b)) => check_legacy_status(b),
            None => {}
        }
        let _ = small.push(byte);
        let _ = (framer.is_mid_frame(), framer.skipped());
    }
});
