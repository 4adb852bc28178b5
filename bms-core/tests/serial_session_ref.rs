//! `SerialSession` answers, commands and counters are those of a plain reference session kept
//! here: the request-by-request state machine the crate used before its zero-copy dispatch
//! and its one-struct response queue, written with the crate's public codecs only.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;

use bms_core::serial::auth::{Auth, AuthError};
use bms_core::serial::command::{legacy_command, Command};
use bms_core::serial::device_info::DEVICE_INFO_ADDR;
use bms_core::serial::frame::{emit_frame, Function, ERROR_FLAG, MAX_FRAME_LEN};
use bms_core::serial::framer::{Frame, Framer};
use bms_core::serial::legacy::{LegacyKind, LegacyRequest, LegacyStatusRepr, LEGACY_PASSWORD_ADDR};
use bms_core::serial::registers::{lookup, ParamError, ParameterAccess, REGISTERS};
use bms_core::serial::request::RequestRepr;
use bms_core::serial::session::SessionStats;
use bms_core::serial::status::StatusFrame;
use bms_core::serial::{ControlCode, DecodeError, ErrorCode, SerialConfig, SerialSession};
use bms_core::{DeciCelsius, Duration, Instant, MilliAmps, MilliVolts, Telemetry};
use proptest::prelude::*;

/// Registers in RAM: writes inside the table range succeed except on every fifth
/// register (read-only) and for values ending in 7 (refused as invalid).
#[derive(Clone)]
struct Regs {
    values: Vec<u32>,
}

impl Regs {
    fn new() -> Self {
        Regs {
            values: REGISTERS.iter().map(|r| r.min + 1).collect(),
        }
    }
    fn index(reg: u16) -> Result<usize, ParamError> {
        REGISTERS
            .iter()
            .position(|r| r.addr == reg)
            .ok_or(ParamError::UnknownRegister)
    }
}

impl ParameterAccess for Regs {
    fn read(&self, reg: u16) -> Result<u32, ParamError> {
        let i = Self::index(reg)?;
        if i % 7 == 3 {
            return Err(ParamError::UnknownRegister);
        }
        Ok(self.values[i])
    }
    fn write(&mut self, reg: u16, value: u32) -> Result<(), ParamError> {
        let i = Self::index(reg)?;
        if i % 5 == 4 {
            return Err(ParamError::ReadOnly);
        }
        if value % 10 == 7 {
            return Err(ParamError::Invalid);
        }
        self.values[i] = value;
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Request {
    New(RequestRepr, u16),
    Legacy(LegacyRequest),
    OversizedWrite(u16),
}

#[derive(Clone, Copy, Debug)]
enum Pending {
    Status,
    LegacyStatus,
    DeviceInfo,
    Ident {
        addr: u16,
    },
    Registers {
        addr: u16,
        len: u8,
    },
    Ack {
        func: u8,
        addr: u16,
        data: [u8; 4],
        len: u8,
    },
    Error {
        func: u8,
        addr: u16,
        code: ErrorCode,
    },
}

/// The reference session.
struct Reference {
    cfg: SerialConfig,
    framer: Framer,
    auth: Auth,
    pending: VecDeque<Pending>,
    commands: VecDeque<Command>,
    last_rx: Option<Instant>,
    legacy_pw: [u8; 8],
    legacy_pw_parts: u8,
    stats: SessionStats,
}

fn bump(c: &mut u32) {
    *c = c.saturating_add(1);
}

fn auth_code(e: AuthError) -> ErrorCode {
    match e {
        AuthError::LockedOut => ErrorCode::LockedOut,
        AuthError::WrongPassword | AuthError::InvalidPassword => ErrorCode::WrongPassword,
        _ => ErrorCode::NotAuthenticated,
    }
}

impl Reference {
    fn new(cfg: SerialConfig) -> Self {
        Reference {
            auth: Auth::new(cfg.auth.clone()),
            cfg,
            framer: Framer::new(),
            pending: VecDeque::new(),
            commands: VecDeque::new(),
            last_rx: None,
            legacy_pw: [0; 8],
            legacy_pw_parts: 0,
            stats: SessionStats::default(),
        }
    }

    fn logout(&mut self) {
        self.auth.logout();
        self.legacy_pw_parts = 0;
    }

    fn handle_bytes(&mut self, now: Instant, bytes: &[u8], params: &mut Regs) {
        if let (Some(gap), Some(last)) = (self.cfg.rx_gap, self.last_rx) {
            if !bytes.is_empty() && now.duration_since(last) > gap {
                self.framer.reset();
            }
        }
        if !bytes.is_empty() {
            self.last_rx = Some(now);
        }
        for &b in bytes {
            let req = match self.framer.push(b) {
                Some(Frame::New(p)) => match RequestRepr::parse(&p) {
                    Ok(r) => Some(Request::New(r, p.address())),
                    Err(DecodeError::Malformed) => Some(Request::OversizedWrite(p.address())),
                    Err(_) => None,
                },
                Some(Frame::Legacy(r)) => Some(Request::Legacy(r)),
                _ => None,
            };
            if let Some(req) = req {
                bump(&mut self.stats.frames);
                self.handle(now, req, params);
            }
        }
    }

    fn queue(&mut self, p: Pending) {
        if self.pending.len() < bms_core::serial::session::MAX_PENDING {
            self.pending.push_back(p);
        } else {
            bump(&mut self.stats.dropped);
        }
    }

    fn reject(&mut self, response: u8, addr: u16, code: ErrorCode) {
        bump(&mut self.stats.writes_rejected);
        self.queue(Pending::Error {
            func: response | ERROR_FLAG,
            addr,
            code,
        });
    }

    fn push_command(&mut self, c: Command) -> bool {
        if self.commands.len() < bms_core::serial::session::MAX_COMMANDS {
            self.commands.push_back(c);
            true
        } else {
            false
        }
    }

    fn accept(&mut self, now: Instant) {
        self.auth.touch(now);
        bump(&mut self.stats.writes_accepted);
    }

    fn handle(&mut self, now: Instant, req: Request, params: &mut Regs) {
        let (req, frame_addr) = match req {
            Request::New(r, addr) => (r, addr),
            Request::Legacy(r) => return self.handle_legacy(now, r),
            Request::OversizedWrite(addr) => {
                let code = match self.auth.check(now) {
                    Err(e) => auth_code(e),
                    Ok(()) => ErrorCode::BadLength,
                };
                return self.reject(u8::from(Function::WriteAck), addr, code);
            }
        };
        match req {
            RequestRepr::Status { .. } => self.queue(Pending::Status),
            RequestRepr::Ident { addr, .. } => self.queue(Pending::Ident { addr }),
            RequestRepr::ReadRegisters { addr, .. } if addr == DEVICE_INFO_ADDR => {
                self.queue(Pending::DeviceInfo)
            }
            RequestRepr::ReadRegisters { addr, len } => {
                self.queue(Pending::Registers { addr, len })
            }
            RequestRepr::Authenticate { addr, password } => {
                match self.auth.attempt(now, password.as_slice()) {
                    Ok(()) => self.queue(Pending::Ack {
                        func: u8::from(Function::AuthAck),
                        addr,
                        data: [5, 0, 0, 0],
                        len: 2,
                    }),
                    Err(e) => {
                        bump(&mut self.stats.auth_failures);
                        self.queue(Pending::Error {
                            func: u8::from(Function::AuthAck) | ERROR_FLAG,
                            addr,
                            code: auth_code(e),
                        });
                    }
                }
            }
            RequestRepr::WriteRegister { addr, value } => {
                let f = u8::from(Function::WriteAck);
                let len = value.len() as u8;
                let mut data = [0u8; 4];
                data[..value.len()].copy_from_slice(&value);
                if let Err(e) = self.auth.check(now) {
                    return self.reject(f, addr, auth_code(e));
                }
                let Some(reg) = lookup(addr) else {
                    return self.reject(f, addr, ErrorCode::UnknownRegister);
                };
                if len != reg.width {
                    return self.reject(f, addr, ErrorCode::BadLength);
                }
                let value = u32::from_le_bytes(data);
                if !reg.contains(value) {
                    return self.reject(f, addr, ErrorCode::OutOfRange);
                }
                if let Err(e) = params.write(addr, value) {
                    return self.reject(f, addr, ErrorCode::from(e));
                }
                self.accept(now);
                self.queue(Pending::Ack {
                    func: f,
                    addr,
                    data,
                    len,
                });
            }
            RequestRepr::Control(code) => {
                let f = u8::from(Function::ControlAck);
                if let Err(e) = self.auth.check(now) {
                    return self.reject(f, frame_addr, auth_code(e));
                }
                let Some(cmd) = code.command() else {
                    return self.reject(f, frame_addr, ErrorCode::Unsupported);
                };
                if !self.push_command(cmd) {
                    return self.reject(f, frame_addr, ErrorCode::Busy);
                }
                self.accept(now);
                self.queue(Pending::Ack {
                    func: f,
                    addr: frame_addr,
                    data: [1, 0, 0, 0],
                    len: 2,
                });
            }
        }
    }

    fn handle_legacy(&mut self, now: Instant, r: LegacyRequest) {
        match r.kind {
            LegacyKind::ReadBle | LegacyKind::ReadSerial => {
                if r.address == 0 {
                    self.queue(Pending::LegacyStatus);
                }
            }
            LegacyKind::Write => {
                let part = r.address.wrapping_sub(LEGACY_PASSWORD_ADDR);
                if part < 4 {
                    let i = part as usize * 2;
                    self.legacy_pw[i..i + 2].copy_from_slice(&r.value.to_be_bytes());
                    self.legacy_pw_parts |= 1 << part;
                    if self.legacy_pw_parts == 0x0F {
                        self.legacy_pw_parts = 0;
                        let pw = self.legacy_pw;
                        if self.auth.attempt(now, &pw).is_err() {
                            bump(&mut self.stats.auth_failures);
                        }
                    }
                    return;
                }
                let allowed = self.auth.check(now).is_ok();
                match legacy_command(r.address, r.value) {
                    Some(cmd) if allowed && self.push_command(cmd) => self.accept(now),
                    _ => bump(&mut self.stats.writes_rejected),
                }
            }
        }
    }

    fn poll_transmit(&mut self, t: &Telemetry, params: &Regs, out: &mut [u8]) -> Option<usize> {
        while let Some(p) = self.pending.pop_front() {
            match self.emit(p, t, params, out) {
                Some(n) => return Some(n),
                None => bump(&mut self.stats.dropped),
            }
        }
        None
    }

    fn emit(&self, p: Pending, t: &Telemetry, params: &Regs, out: &mut [u8]) -> Option<usize> {
        let raw = |func: u8, addr: u16, payload: &[u8], len: u8, out: &mut [u8]| {
            emit_frame(Function::from(func), addr, payload, len, out).ok()
        };
        match p {
            Pending::Status => StatusFrame::emit_with(t, &self.cfg.status, out).ok(),
            Pending::LegacyStatus => LegacyStatusRepr::from_telemetry(t).emit(out).ok(),
            Pending::DeviceInfo => self.cfg.device_info.emit(out).ok(),
            Pending::Ident { addr } => raw(0x14, addr, &self.cfg.ident, 12, out),
            Pending::Ack {
                func,
                addr,
                data,
                len,
            } => raw(func, addr, &data[..len as usize], len, out),
            Pending::Error { func, addr, code } => {
                raw(func, addr, &u16::from(code).to_le_bytes(), 2, out)
            }
            Pending::Registers { addr, len } => match read_block(addr, len, params) {
                Ok(payload) => raw(0x12, addr, &payload, payload.len() as u8, out),
                Err(code) => raw(0x92, addr, &u16::from(code).to_le_bytes(), 2, out),
            },
        }
    }
}

/// The register block read, plainly.
fn read_block(addr: u16, len: u8, params: &Regs) -> Result<Vec<u8>, ErrorCode> {
    let n = len as usize;
    if n == 0 || n % 2 != 0 {
        return Err(ErrorCode::BadLength);
    }
    let mut buf = vec![0xFF; n];
    match lookup(addr) {
        Some(reg) if reg.width as usize == n => {
            let v = params.read(addr).map_err(ErrorCode::from)?;
            buf.copy_from_slice(&v.to_le_bytes()[..n]);
            return Ok(buf);
        }
        Some(_) => {}
        None if n <= 4 => return Err(ErrorCode::UnknownRegister),
        None => {}
    }
    let mut off = 0usize;
    while off < n {
        let a = addr.wrapping_add(off as u16);
        let w = lookup(a).map_or(2, |r| r.width as usize);
        if off + w <= n {
            if let Ok(v) = params.read(a) {
                buf[off..off + w].copy_from_slice(&v.to_le_bytes()[..w]);
            }
        }
        off += w;
    }
    Ok(buf)
}

const PASSWORD: &[u8] = b"12345678";

/// One request frame (new protocol) for `func`.
fn new_frame(func: u8, addr: u16, len: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; MAX_FRAME_LEN];
    let n = emit_frame(Function::from(func), addr, payload, len, &mut out).unwrap();
    out.truncate(n);
    out
}

fn addr_strategy() -> impl Strategy<Value = u16> {
    prop_oneof![
        (0..REGISTERS.len()).prop_map(|i| REGISTERS[i].addr),
        Just(DEVICE_INFO_ADDR),
        Just(0x016A),
        0u16..0x40,
        any::<u16>(),
    ]
}

fn value_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u32..6_000).prop_map(|v| v.to_le_bytes()[..2].to_vec()),
        any::<u32>().prop_map(|v| v.to_le_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ]
}

/// Bytes of one thing a client may send.
fn chunk() -> impl Strategy<Value = Vec<u8>> {
    let funcs = prop_oneof![
        Just(0x01u8),
        Just(0x02),
        Just(0x04),
        Just(0x22),
        Just(0x23),
        Just(0x51),
        Just(0x11),
        Just(0x42),
        any::<u8>(),
    ];
    prop_oneof![
        // Password, right or wrong.
        prop_oneof![
            Just(PASSWORD.to_vec()),
            proptest::collection::vec(any::<u8>(), 0..40),
        ]
        .prop_map(|pw| new_frame(0x23, 0x016A, pw.len() as u8, &pw)),
        // A register write.
        (addr_strategy(), value_bytes()).prop_map(|(a, v)| new_frame(0x22, a, v.len() as u8, &v)),
        // A control code.
        (0u16..0x30).prop_map(|c| new_frame(0x51, c, 0, &[])),
        // Reads.
        (addr_strategy(), any::<u8>()).prop_map(|(a, l)| new_frame(0x02, a, l, &[])),
        (addr_strategy(), prop_oneof![Just(2u8), Just(4), 0u8..12]).prop_map(|(a, l)| new_frame(
            0x02,
            a,
            l,
            &[]
        )),
        Just(new_frame(0x01, 0, 0xBE, &[])),
        (any::<u16>()).prop_map(|a| new_frame(0x04, a, 12, &[])),
        // Any function, any payload.
        (
            funcs,
            addr_strategy(),
            proptest::collection::vec(any::<u8>(), 0..8)
        )
            .prop_map(|(f, a, pl)| {
                let bare = matches!(f, 0x01 | 0x02 | 0x04 | 0x51);
                if bare {
                    new_frame(f, a, pl.len() as u8, &[])
                } else {
                    new_frame(f, a, pl.len() as u8, &pl)
                }
            }),
        // Legacy reads, password parts, control writes.
        (
            prop_oneof![Just(0xDBu8), Just(0x5A), Just(0xA5)],
            prop_oneof![Just(0u8), 0xF1u8..=0xF4, 247u8..=255, any::<u8>()],
            prop_oneof![
                Just(0u16),
                Just(1),
                Just(u16::from_be_bytes([b'1', b'2'])),
                Just(u16::from_be_bytes([b'3', b'4'])),
                Just(u16::from_be_bytes([b'5', b'6'])),
                Just(u16::from_be_bytes([b'7', b'8'])),
                any::<u16>(),
            ],
        )
            .prop_map(|(h, a, v)| {
                let [hi, lo] = v.to_be_bytes();
                vec![h, h, a, hi, lo, a.wrapping_add(hi).wrapping_add(lo)]
            }),
        // The legacy password in one go.
        Just(
            [b"12", b"34", b"56", b"78"]
                .iter()
                .enumerate()
                .flat_map(|(i, p)| {
                    let a = 0xF1 + i as u8;
                    vec![
                        0xA5,
                        0xA5,
                        a,
                        p[0],
                        p[1],
                        a.wrapping_add(p[0]).wrapping_add(p[1]),
                    ]
                })
                .collect::<Vec<u8>>()
        ),
        // Garbage.
        proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    /// Advance the clock, then feed the bytes (cut into two calls at `cut`).
    Feed {
        dt: u64,
        bytes: Vec<u8>,
        cut: usize,
    },
    /// Poll up to `n` responses into a buffer of `buf` bytes.
    Transmit {
        n: usize,
        buf: usize,
    },
    /// Drain up to `n` commands.
    Commands {
        n: usize,
    },
    Logout,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop_oneof![0u64..100, 0u64..1_000, 0u64..400_000],
            proptest::collection::vec(chunk(), 1..5),
            any::<usize>(),
        )
            .prop_map(|(dt, chunks, cut)| {
                let bytes: Vec<u8> = chunks.concat();
                let cut = cut % (bytes.len() + 1);
                Op::Feed { dt, bytes, cut }
            }),
        3 => (0usize..12, prop_oneof![Just(MAX_FRAME_LEN), 0usize..150])
            .prop_map(|(n, buf)| Op::Transmit { n, buf }),
        2 => (0usize..6).prop_map(|n| Op::Commands { n }),
        1 => Just(Op::Logout),
    ]
}

fn telemetry(n: u8, seed: u32) -> Telemetry {
    let mut t = Telemetry::empty(n);
    for (i, c) in t.cells.iter_mut().take(n as usize).enumerate() {
        *c = MilliVolts::from_mv(3_000 + (seed.wrapping_mul(31).wrapping_add(i as u32 * 7)) % 700);
    }
    t.pack_voltage = MilliVolts::from_mv(3_300 * n as u32);
    t.current = MilliAmps::from_ma((seed % 20_000) as i32 - 10_000);
    t.cell_temps = [
        Some(DeciCelsius::from_deci((seed % 600) as i16 - 100)),
        None,
    ];
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn session_matches_the_reference(
        ops in proptest::collection::vec(op(), 1..40),
        cells in 1u8..=20,
        seed: u32,
        attempts in 1u8..4,
        gap in prop_oneof![Just(None), (1u32..2_000).prop_map(Some)],
    ) {
        let mut cfg = SerialConfig::new(PASSWORD).unwrap();
        cfg.auth.max_attempts = attempts;
        cfg.auth.session_timeout = Duration::from_secs(60);
        cfg.auth.lockout = Duration::from_secs(30);
        cfg.ident = *b"IDENT-123456";
        cfg.rx_gap = gap.map(Duration::from_millis);
        let mut session = SerialSession::new(cfg.clone());
        let mut reference = Reference::new(cfg);
        let (mut p_new, mut p_ref) = (Regs::new(), Regs::new());
        let t = telemetry(cells, seed);
        let mut now = Instant::from_millis(1_000);
        for op in ops {
            match op {
                Op::Feed { dt, bytes, cut } => {
                    now += Duration::from_millis(dt as u32);
                    let (a, b) = bytes.split_at(cut);
                    for part in [a, b] {
                        session.handle_bytes(now, part, &mut p_new);
                        reference.handle_bytes(now, part, &mut p_ref);
                    }
                }
                Op::Transmit { n, buf } => {
                    for _ in 0..n {
                        let mut o1 = vec![0u8; buf];
                        let mut o2 = vec![0u8; buf];
                        let a = session.poll_transmit(now, &t, &p_new, &mut o1);
                        let b = reference.poll_transmit(&t, &p_ref, &mut o2);
                        prop_assert_eq!(a, b);
                        if let Some(n) = a {
                            prop_assert_eq!(&o1[..n], &o2[..n]);
                        }
                    }
                }
                Op::Commands { n } => {
                    for _ in 0..n {
                        prop_assert_eq!(session.poll_command(), reference.commands.pop_front());
                    }
                }
                Op::Logout => {
                    session.logout();
                    reference.logout();
                }
            }
            prop_assert_eq!(session.stats(), reference.stats);
            prop_assert_eq!(session.is_authenticated(now), reference.auth.is_authenticated(now));
            prop_assert_eq!(&p_new.values, &p_ref.values);
        }
        // Everything still queued comes out the same.
        loop {
            let mut o1 = [0u8; MAX_FRAME_LEN];
            let mut o2 = [0u8; MAX_FRAME_LEN];
            let a = session.poll_transmit(now, &t, &p_new, &mut o1);
            let b = reference.poll_transmit(&t, &p_ref, &mut o2);
            prop_assert_eq!(a, b);
            match a {
                Some(n) => prop_assert_eq!(&o1[..n], &o2[..n]),
                None => break,
            }
        }
        prop_assert_eq!(session.stats(), reference.stats);
    }
}

/// The generator reaches every answer kind (so the comparison above covers them).
#[test]
fn control_codes_cover_supported_and_unsupported() {
    assert!(ControlCode::from(0x06).command().is_some());
    assert!(ControlCode::from(0x10).command().is_none());
}
