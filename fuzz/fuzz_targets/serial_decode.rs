//! Serial decoders on one frame: new-protocol packet (status, request, device info),
//! legacy status and legacy request.
#![no_main]

use bms_core::serial::Packet;
use bms_fuzz::{check_legacy_request, check_legacy_status, check_serial_packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::new_checked(data) {
        let _ = (p.address(), p.len_field(), p.payload_len(), p.payload());
        check_serial_packet(&p);
    }
    // Unchecked accessors must not panic either on the raw bytes once `check` passed.
    let raw = Packet::new_unchecked(data);
    if raw.check().is_ok() {
        let _ = raw.payload();
    }
    check_legacy_status(data);
    check_legacy_request(data);
});
