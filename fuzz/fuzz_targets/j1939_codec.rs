//! J1939 decoders: identifiers, PGNs, NAME, requests, acknowledgments, DM1/DM2, commands.
#![no_main]

use bms_core::j1939::command::Command;
use bms_core::j1939::dm::{DmMessage, Dtc};
use bms_core::j1939::request::{Ack, Request};
use bms_core::j1939::{J1939Id, Name, Pgn};
use bms_fuzz::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);

    let raw = b.u32();
    if let Ok(id) = J1939Id::from_raw(raw) {
        assert_eq!(J1939Id::from_raw(id.to_raw()), Ok(id));
        let again = J1939Id::new(
            id.priority(),
            id.pgn(),
            id.destination().unwrap_or(0xFF),
            id.source_address(),
        );
        assert_eq!(again, Ok(id));
    }
    if let Ok(pgn) = Pgn::new(raw) {
        assert_eq!(Pgn::new(pgn.as_u32()), Ok(pgn));
        assert_eq!(Pgn::from_le_bytes(pgn.to_le_bytes()), Ok(pgn));
    }
    if let Ok(pgn) = Pgn::from_le_bytes(b.array()) {
        assert_eq!(Pgn::from_le_bytes(pgn.to_le_bytes()), Ok(pgn));
    }

    let name = Name::from_le_bytes(b.array());
    assert_eq!(Name::from_le_bytes(name.to_le_bytes()), name);
    // Bit 48 is the reserved bit: the fields do not carry it.
    assert_eq!(
        Name::from_fields(name.fields()).to_raw(),
        name.to_raw() & !(1 << 48)
    );

    let dtc = Dtc::decode(b.array());
    assert_eq!(Dtc::decode(dtc.encode()), dtc);

    let key = b.u32();
    let key = if b.bool() { Some(key) } else { None };
    let payload = b.slice(64);
    if let Ok(cmd) = Command::parse(payload, key) {
        let k = key.unwrap_or_else(|| unreachable!("accepted without a key"));
        assert_eq!(Command::parse(&cmd.emit(k), key), Ok(cmd));
    }
    if let Ok(r) = Request::parse(payload) {
        assert_eq!(Request::parse(&r.emit()), Ok(r));
    }
    if let Ok(a) = Ack::parse(payload) {
        assert_eq!(Ack::parse(&a.emit()), Ok(a));
    }
    if let Ok(dm) = DmMessage::parse(payload) {
        let _ = dm.lamp_status();
        for d in dm.dtcs() {
            assert_eq!(Dtc::decode(d.encode()), d);
        }
    }
});
