//! `SerialSession` end to end: the vendor app's captured session replayed, and the write
//! security rules (password first, session timeout, lockout, range checks).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use bms_core::serial::frame::{emit_frame, Function, Packet, MAX_FRAME_LEN};
use bms_core::serial::registers::{ParamError, ParameterAccess};
use bms_core::serial::status::StatusFrame;
use bms_core::serial::{Command, DeviceInfo, ErrorCode, SerialConfig, SerialSession};
use bms_core::{Duration, Instant, MilliVolts, Telemetry};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// A parameter store with one chemistry rule, as an integrator would write over PackConfig:
/// the cell over-voltage limit (0x00) must stay at or below 3650 mV (LFP).
#[derive(Default, Clone, PartialEq, Debug)]
struct Store {
    values: BTreeMap<u16, u32>,
    writes: u32,
}

impl ParameterAccess for Store {
    fn read(&self, reg: u16) -> Result<u32, ParamError> {
        self.values
            .get(&reg)
            .copied()
            .ok_or(ParamError::UnknownRegister)
    }
    fn write(&mut self, reg: u16, value: u32) -> Result<(), ParamError> {
        if reg == 0x00 && value > 3_650 {
            return Err(ParamError::OutOfRange);
        }
        if !self.values.contains_key(&reg) {
            return Err(ParamError::ReadOnly);
        }
        self.values.insert(reg, value);
        self.writes += 1;
        Ok(())
    }
}

/// The 16ZMUB's own settings 0x00..0x37, from its answer to the block read in the capture.
const BLOCK: &str = "420ede0dd80e740e600248023408c409d007c409c800c80020035802ffffffff100eac0d48022802b80b1c0cc800c80058029001ffffffff";

fn store_from_capture() -> Store {
    let b = hex(BLOCK);
    let mut s = Store::default();
    for (i, w) in b.chunks(2).enumerate() {
        let v = u16::from_le_bytes([w[0], w[1]]);
        if v != 0xFFFF {
            s.values.insert(2 * i as u16, v as u32);
        }
    }
    s
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn session() -> SerialSession {
    let mut cfg = SerialConfig::new(b"12345678").unwrap();
    cfg.device_info = DeviceInfo::new("16ZM", "16ZMUB00-211026A");
    cfg.ident = hex("40703b18dc8f9e1137428401").try_into().unwrap();
    SerialSession::new(cfg)
}

fn telemetry16() -> Telemetry {
    let mut tm = Telemetry::empty(16);
    for c in tm.cells.iter_mut().take(16) {
        *c = MilliVolts::from_mv(3_300);
    }
    tm.pack_voltage = MilliVolts::from_mv(52_800);
    tm
}

fn drain(s: &mut SerialSession, now: Instant, tm: &Telemetry, p: &Store) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_FRAME_LEN];
    while let Some(n) = s.poll_transmit(now, tm, p, &mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

const PASSWORD: &str = "7ea1230 16a083132333435363738d9eeaa55";

#[test]
fn vendor_app_session_replays() {
    // The capture's requests; the app logged in before the capture starts, so the
    // password frame (aiobmsble's bytes) is sent first.
    let requests = [
        "7ea1026c022058c4aa55",
        "7ea1010000be1855aa55",
        "7ea10200003899b3aa55",
        "7ea122000002420ebdecaa55",
        "7ea15107000038e4aa55",
        "7ea122020002de0ded2daa55",
        "7ea15107000038e4aa55",
        "7ea1010000be1855aa55",
        "7ea1510f0000b926aa55",
        "7ea10400000c98ecaa55",
    ];
    // The device's answers (payloads; junk after the CRC dropped).
    let device = [
        (
            0x12,
            "31365a4d00000000000000000000000031365a4d554230302d32313130323641",
        ),
        (0x11, ""),
        (0x12, BLOCK),
        (0x42, "420e"),
        (0x61, "0100"),
        (0x42, "de0d"),
        (0x61, "0100"),
        (0x11, ""),
        (0x61, "0300"),
        (0x14, "40703b18dc8f9e1137428401"),
    ];
    let mut s = session();
    let mut p = store_from_capture();
    let tm = telemetry16();
    let now = t(10_000);
    s.handle_bytes(now, &hex(PASSWORD), &mut p);
    let ack = drain(&mut s, now, &tm, &p);
    assert_eq!(ack, vec![hex("7ea143016a02050027b1aa55")]);

    for (i, (req, (func, payload))) in requests.iter().zip(device).enumerate() {
        s.handle_bytes(now, &hex(req), &mut p);
        let out = drain(&mut s, now, &tm, &p);
        assert_eq!(out.len(), 1, "request {i}");
        let pk = Packet::new_checked(&out[0][..]).unwrap();
        assert_eq!(pk.function_raw(), func, "request {i}");
        match func {
            0x11 => {
                let st = StatusFrame::parse(&out[0]).unwrap();
                assert_eq!(st.cells.len(), 16);
                assert_eq!(st.pack_voltage_cv, 5280);
            }
            // Clear-log: the device answered 03 00, this firmware 01 00 (done).
            0x61 if req.contains("510f") => assert_eq!(pk.payload(), &[1, 0]),
            _ => assert_eq!(pk.payload(), &hex(payload)[..], "request {i}"),
        }
    }
    assert_eq!(p.values[&0x00], 3650);
    assert_eq!(p.values[&0x02], 3550);
    assert_eq!(p.writes, 2);
    let cmds: Vec<_> = std::iter::from_fn(|| s.poll_command()).collect();
    assert_eq!(
        cmds,
        [
            Command::ApplySettings,
            Command::ApplySettings,
            Command::ClearEventLog
        ]
    );
}

fn write_frame(reg: u16, value: u16) -> Vec<u8> {
    let mut b = [0u8; 16];
    let n = emit_frame(
        Function::WriteRegister,
        reg,
        &value.to_le_bytes(),
        2,
        &mut b,
    )
    .unwrap();
    b[..n].to_vec()
}

fn error_code(frame: &[u8]) -> (u8, ErrorCode) {
    let p = Packet::new_checked(frame).unwrap();
    let pl = p.payload();
    (
        p.function_raw(),
        ErrorCode::from(u16::from_le_bytes([pl[0], pl[1]])),
    )
}

#[test]
fn writes_need_a_password_and_expire() {
    let mut s = session();
    let mut p = store_from_capture();
    let before = p.clone();
    let tm = telemetry16();

    // No password: refused, nothing changes, error answered.
    s.handle_bytes(t(0), &write_frame(0x00, 3_600), &mut p);
    s.handle_bytes(
        t(0),
        &hex("7ea151060000 6924aa55".replace(' ', "").as_str()),
        &mut p,
    );
    let out = drain(&mut s, t(0), &tm, &p);
    assert_eq!(error_code(&out[0]), (0xC2, ErrorCode::NotAuthenticated));
    assert_eq!(error_code(&out[1]), (0xE1, ErrorCode::NotAuthenticated));
    assert_eq!(p, before);
    assert_eq!(s.poll_command(), None);

    // Password, then the write is taken.
    s.handle_bytes(t(1_000), &hex(PASSWORD), &mut p);
    s.handle_bytes(t(1_000), &write_frame(0x00, 3_600), &mut p);
    let out = drain(&mut s, t(1_000), &tm, &p);
    assert_eq!(out.len(), 2);
    assert_eq!(p.values[&0x00], 3_600);

    // Out of the table range (6 V cell), over the chemistry limit, unknown register,
    // wrong width: each refused with its code, nothing changes.
    let snapshot = p.clone();
    for (frame, code) in [
        (write_frame(0x00, 6_000), ErrorCode::OutOfRange),
        (write_frame(0x00, 3_700), ErrorCode::OutOfRange),
        (write_frame(0x01, 3_000), ErrorCode::UnknownRegister),
        (write_frame(0x9C, 1), ErrorCode::ReadOnly),
        (
            {
                let mut b = [0u8; 16];
                let n = emit_frame(Function::WriteRegister, 0xA2, &[1, 0], 2, &mut b).unwrap();
                b[..n].to_vec()
            },
            ErrorCode::BadLength,
        ),
    ] {
        s.handle_bytes(t(2_000), &frame, &mut p);
        let out = drain(&mut s, t(2_000), &tm, &p);
        assert_eq!(error_code(&out[0]), (0xC2, code));
    }
    assert_eq!(p, snapshot);

    // The session lasts 5 minutes after the last accepted write (t = 1 s; refused writes
    // do not extend it).
    let five_min = Duration::from_mins(5).as_millis() as u64;
    let later = 1_000 + five_min - 1;
    s.handle_bytes(t(later), &write_frame(0x02, 3_500), &mut p);
    assert_eq!(p.values[&0x02], 3_500);
    let _ = drain(&mut s, t(later), &tm, &p);
    let expired = later + five_min;
    s.handle_bytes(t(expired), &write_frame(0x02, 3_400), &mut p);
    let out = drain(&mut s, t(expired), &tm, &p);
    assert_eq!(error_code(&out[0]), (0xC2, ErrorCode::NotAuthenticated));
    assert_eq!(p.values[&0x02], 3_500);
}

#[test]
fn wrong_passwords_lock_out() {
    let mut s = session();
    let mut p = Store::default();
    let tm = telemetry16();
    let mut wrong = [0u8; 32];
    let n = emit_frame(Function::Authenticate, 0x016A, b"00000000", 8, &mut wrong).unwrap();
    for i in 0..5 {
        s.handle_bytes(t(i), &wrong[..n], &mut p);
    }
    let out = drain(&mut s, t(5), &tm, &p);
    assert!(out
        .iter()
        .all(|f| error_code(f) == (0xC3, ErrorCode::WrongPassword)));
    // Now even the right password is refused until the lockout ends.
    s.handle_bytes(t(10), &hex(PASSWORD), &mut p);
    let out = drain(&mut s, t(10), &tm, &p);
    assert_eq!(error_code(&out[0]), (0xC3, ErrorCode::LockedOut));
    assert!(!s.is_authenticated(t(10)));
    let after = 4 + Duration::from_mins(5).as_millis() as u64 + 1;
    s.handle_bytes(t(after), &hex(PASSWORD), &mut p);
    assert!(s.is_authenticated(t(after)));
    assert_eq!(s.stats().auth_failures, 6);
}

#[test]
fn control_codes_become_commands() {
    let mut s = session();
    let mut p = Store::default();
    let tm = telemetry16();
    s.handle_bytes(t(0), &hex(PASSWORD), &mut p);
    let _ = drain(&mut s, t(0), &tm, &p);
    for (code, cmd) in [
        ("7ea151010000d8e5aa55", Command::SetDischargeFet(false)),
        ("7ea151030000 7925aa55", Command::SetDischargeFet(true)),
        ("7ea151040000c8e4aa55", Command::SetChargeFet(false)),
        ("7ea1510d000018e6aa55", Command::SetBalancer(true)),
        ("7ea1510e0000e8e6aa55", Command::SetBalancer(false)),
        ("7ea15109000059 27aa55", Command::Restart),
        ("7ea1510b0000f8e7aa55", Command::Shutdown),
    ] {
        s.handle_bytes(t(1), &hex(code), &mut p);
        assert_eq!(s.poll_command(), Some(cmd), "{code}");
        let ack = drain(&mut s, t(1), &tm, &p);
        assert_eq!(
            Packet::new_checked(&ack[0][..]).unwrap().function_raw(),
            0x61
        );
    }
    let mut b = [0u8; 16];
    let n = emit_frame(Function::Control, 0x0C, &[], 0, &mut b).unwrap();
    s.handle_bytes(t(1), &b[..n], &mut p);
    assert_eq!(s.poll_command(), Some(Command::FactoryReset));
    // Buzzer: not supported here.
    let n = emit_frame(Function::Control, 0x1E, &[], 0, &mut b).unwrap();
    s.handle_bytes(t(1), &b[..n], &mut p);
    assert_eq!(s.poll_command(), None);
    let out = drain(&mut s, t(1), &tm, &p);
    assert_eq!(
        error_code(out.last().unwrap()),
        (0xE1, ErrorCode::Unsupported)
    );
}

#[test]
fn legacy_status_requests_and_control_writes() {
    let mut s = session();
    let mut p = Store::default();
    let tm = telemetry16();
    s.handle_bytes(
        t(0),
        &[0xDB, 0xDB, 0, 0, 0, 0, 0x5A, 0x5A, 0, 0, 1, 1],
        &mut p,
    );
    let out = drain(&mut s, t(0), &tm, &p);
    assert_eq!(out.len(), 2);
    let leg = bms_core::serial::LegacyStatusRepr::parse(&out[0]).unwrap();
    assert_eq!(leg.cells.len(), 16);
    assert_eq!(leg.pack_voltage_dv, 528);

    // Charge MOSFET on (address 250) without the password: ignored.
    s.handle_bytes(t(1), &[0xA5, 0xA5, 0xFA, 0x00, 0x01, 0xFB], &mut p);
    assert_eq!(s.poll_command(), None);
    // ESPHome's legacy login: "12345678" as four pairs to 0xF1..0xF4.
    let mut login = Vec::new();
    for (i, pair) in b"12345678".chunks(2).enumerate() {
        let a = 0xF1 + i as u8;
        login.extend_from_slice(&[
            0xA5,
            0xA5,
            a,
            pair[0],
            pair[1],
            a.wrapping_add(pair[0]).wrapping_add(pair[1]),
        ]);
    }
    s.handle_bytes(t(2), &login, &mut p);
    assert!(s.is_authenticated(t(2)));
    s.handle_bytes(t(3), &[0xA5, 0xA5, 0xFA, 0x00, 0x01, 0xFB], &mut p);
    assert_eq!(s.poll_command(), Some(Command::SetChargeFet(true)));
    assert_eq!(s.stats().writes_rejected, 1);
    assert_eq!(s.stats().writes_accepted, 1);
}

#[test]
fn register_reads_need_no_password() {
    let mut s = session();
    let mut p = store_from_capture();
    let tm = telemetry16();
    s.handle_bytes(
        t(0),
        &hex("7ea102000002 19a0aa55".replace(' ', "").as_str()),
        &mut p,
    );
    // Unknown single register.
    let mut b = [0u8; 16];
    let n = emit_frame(Function::ReadRegisters, 0x01, &[], 2, &mut b).unwrap();
    s.handle_bytes(t(0), &b[..n], &mut p);
    let out = drain(&mut s, t(0), &tm, &p);
    assert_eq!(
        Packet::new_checked(&out[0][..]).unwrap().payload(),
        &[0x42, 0x0E]
    );
    assert_eq!(error_code(&out[1]), (0x92, ErrorCode::UnknownRegister));
}

#[test]
fn a_gap_drops_a_partial_frame() {
    let mut s = session();
    let mut p = Store::default();
    let tm = telemetry16();
    // A false start announcing a long write, then silence, then a status request: without
    // the gap rule the request would sit inside the false start's announced payload.
    s.handle_bytes(t(0), &[0x7E, 0xA1, 0x22, 0x00, 0x00, 0xF0, 0x01], &mut p);
    s.handle_bytes(t(600), &[0x5A, 0x5A, 0x00, 0x00, 0x01, 0x01], &mut p);
    let out = drain(&mut s, t(600), &tm, &p);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), 140);
    // Within the gap the same bytes are still part of the pending frame.
    s.handle_bytes(
        t(1_000),
        &[0x7E, 0xA1, 0x22, 0x00, 0x00, 0xF0, 0x01],
        &mut p,
    );
    s.handle_bytes(t(1_100), &[0x5A, 0x5A, 0x00, 0x00, 0x01, 0x01], &mut p);
    assert!(drain(&mut s, t(1_100), &tm, &p).is_empty());
}

#[test]
fn oversized_writes_are_refused() {
    let mut s = session();
    let mut p = store_from_capture();
    let before = p.clone();
    let tm = telemetry16();
    let mut b = [0u8; 32];
    let n = emit_frame(
        Function::WriteRegister,
        0x00,
        &[0x42, 0x0E, 0, 0, 0, 0],
        6,
        &mut b,
    )
    .unwrap();
    s.handle_bytes(t(0), &b[..n], &mut p);
    s.handle_bytes(t(0), &hex(PASSWORD), &mut p);
    s.handle_bytes(t(0), &b[..n], &mut p);
    let out = drain(&mut s, t(0), &tm, &p);
    assert_eq!(error_code(&out[0]), (0xC2, ErrorCode::NotAuthenticated));
    assert_eq!(error_code(&out[2]), (0xC2, ErrorCode::BadLength));
    assert_eq!(p, before);
}
