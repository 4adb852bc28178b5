//! [`SerialSession`]: the sans-I/O state machine of one serial or BLE link.
//!
//! Bytes in, frames out, commands out; time is an argument:
//! 1. [`SerialSession::handle_bytes`] feeds received bytes. Complete requests are handled in
//!    order: reads are queued, the password is checked, authenticated writes go straight
//!    to the [`ParameterAccess`] and control codes become [`Command`]s.
//! 2. [`SerialSession::poll_transmit`] writes the next response frame (status frames are
//!    encoded from the [`Telemetry`] passed *now*, so they are always fresh).
//! 3. [`SerialSession::poll_command`] hands control requests to the BMS.
//!
//! Reads (status, device info, registers) need no password. Every write (setting register,
//! control code, legacy control write) needs an open password session
//! ([`auth`](super::auth)); a refused write changes nothing and is answered with an error
//! response (`func | 0x80`, 2-byte [`ErrorCode`]). Legacy writes get no response (the legacy
//! protocol has none); their outcome shows in [`SerialSession::stats`].
//!
//! # Examples
//! ```
//! use bms_core::serial::{SerialConfig, SerialSession, Command, registers::NoParameters};
//! use bms_core::serial::frame::MAX_FRAME_LEN;
//! use bms_core::{Instant, Telemetry};
//!
//! let mut session = SerialSession::new(SerialConfig::new(b"12345678").unwrap());
//! let mut params = NoParameters;
//! let telemetry = Telemetry::empty(16);
//! let now = Instant::from_millis(1_000);
//!
//! // aiobmsble: password, then "charge MOSFET on", then the status request.
//! session.handle_bytes(now, b"\x7e\xa1\x23\x01\x6a\x08\x31\x32\x33\x34\x35\x36\x37\x38\xd9\xee\xaa\x55", &mut params);
//! session.handle_bytes(now, &[0x7E, 0xA1, 0x51, 0x06, 0x00, 0x00, 0x69, 0x24, 0xAA, 0x55], &mut params);
//! session.handle_bytes(now, &[0x7E, 0xA1, 0x01, 0x00, 0x00, 0xBE, 0x18, 0x55, 0xAA, 0x55], &mut params);
//!
//! let mut tx = [0u8; MAX_FRAME_LEN];
//! let mut replies = 0;
//! while let Some(n) = session.poll_transmit(now, &telemetry, &params, &mut tx) {
//!     replies += 1; // uart.write(&tx[..n])
//!     # let _ = n;
//! }
//! assert_eq!(replies, 3); // password ACK, control ACK, status frame
//! assert_eq!(session.poll_command(), Some(Command::SetChargeFet(true)));
//! ```

use heapless::Deque;

use super::auth::{AuthConfig, AuthError, AuthState};
use super::command::{legacy_command, Command};
use super::device_info::{DeviceInfo, DEVICE_INFO_ADDR};
use super::frame::{emit_raw, finish_in_place, Function, ERROR_FLAG, MAX_FRAME_LEN};
use super::framer::{Frame, Framer};
use super::legacy::{emit_legacy_status, LegacyKind, LegacyRequest, LEGACY_PASSWORD_ADDR};
use super::registers::{lookup, ParameterAccess};
use super::request::RequestRepr;
use super::status::{emit_status, StatusOptions};
use super::{DecodeError, ErrorCode};
use crate::telemetry::Telemetry;
use crate::time::{Duration, Instant};

/// Address of the password frame as ESPHome sends it (`6A 01`); aiobmsble sends `01 6A`.
/// Any address is accepted and echoed in the answer.
pub const AUTH_ADDR: u16 = 0x016A;
/// Payload of a successful password ACK (what real devices send).
pub const AUTH_OK: [u8; 2] = [0x05, 0x00];
/// Payload of a successful control ACK.
pub const CONTROL_OK: [u8; 2] = [0x01, 0x00];
/// Responses waiting to be sent, at most.
pub const MAX_PENDING: usize = 8;
/// Commands waiting for the BMS, at most.
pub const MAX_COMMANDS: usize = 4;

/// Configuration of one link.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SerialConfig {
    /// Password and session timings.
    pub auth: AuthConfig,
    /// Answer to the device-information request.
    pub device_info: DeviceInfo,
    /// Answer to the `0x04` identification request (12 bytes).
    pub ident: [u8; 12],
    /// Status-frame fields not in [`Telemetry`].
    pub status: StatusOptions,
    /// Drop a partial frame after this long without bytes (`None`: never).
    pub rx_gap: Option<Duration>,
}

impl SerialConfig {
    /// A configuration with `password` and defaults elsewhere.
    ///
    /// # Errors
    /// [`AuthError::InvalidPassword`] for an empty password or one over 16 bytes.
    pub fn new(password: &[u8]) -> Result<Self, AuthError> {
        Ok(SerialConfig {
            auth: AuthConfig::new(password)?,
            device_info: DeviceInfo::new("BMS20S", "bms-core"),
            ident: [0; 12],
            status: StatusOptions::default(),
            rx_gap: Some(Duration::from_millis(500)),
        })
    }
}

/// Counters of what the session saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SessionStats {
    /// Frames handled.
    pub frames: u32,
    /// Writes (settings, controls, legacy controls) accepted.
    pub writes_accepted: u32,
    /// Writes refused (authentication, range, validation, unsupported).
    pub writes_rejected: u32,
    /// Wrong passwords.
    pub auth_failures: u32,
    /// Requests dropped because the response queue was full.
    pub dropped: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Request {
    /// A request and the frame's address field (for a control frame, the raw code).
    New(RequestRepr, u16),
    Legacy(LegacyRequest),
    OversizedWrite(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        /// The raw function byte (converted where the function is a constant).
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

/// The protocol state machine of one link (see the module docs). `Debug` shows no password
/// material.
pub struct SerialSession {
    cfg: SerialConfig,
    framer: Framer,
    /// The password state; the password and timings are `cfg.auth`.
    auth: AuthState,
    pending: Deque<Pending, MAX_PENDING>,
    commands: Deque<Command, MAX_COMMANDS>,
    last_rx: Option<Instant>,
    legacy_pw: [u8; 8],
    legacy_pw_parts: u8,
    stats: SessionStats,
}

impl core::fmt::Debug for SerialSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SerialSession")
            .field("auth", &self.auth)
            .field("pending", &self.pending.len())
            .field("commands", &self.commands)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SerialSession {
    /// A session with no password session open and nothing pending.
    pub fn new(cfg: SerialConfig) -> Self {
        SerialSession {
            auth: AuthState::NEW,
            cfg,
            framer: Framer::new(),
            pending: Deque::new(),
            commands: Deque::new(),
            last_rx: None,
            legacy_pw: [0; 8],
            legacy_pw_parts: 0,
            stats: SessionStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SerialConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// `true` while a password session is open.
    pub fn is_authenticated(&self, now: Instant) -> bool {
        self.auth.is_authenticated(now)
    }

    /// Ends the password session (e.g. on a BLE disconnect).
    pub fn logout(&mut self) {
        self.auth.logout();
        self.legacy_pw_parts = 0;
    }

    /// Feeds received bytes; handles every request they complete, in order.
    ///
    /// Setting writes are applied through `params` here, before this returns.
    // Out of line: compiled on its own it is smaller than inlined into a large caller.
    #[inline(never)]
    pub fn handle_bytes<P: ParameterAccess>(&mut self, now: Instant, bytes: &[u8], params: &mut P) {
        if let (Some(gap), Some(last)) = (self.cfg.rx_gap, self.last_rx) {
            if !bytes.is_empty() && now.duration_since(last) > gap {
                self.framer.reset();
            }
        }
        if !bytes.is_empty() {
            self.last_rx = Some(now);
        }
        for &b in bytes {
            // Responses and unknown functions are ignored: on a half-duplex bus they may be
            // this device's own echo.
            let req = match self.framer.push(b) {
                Some(Frame::New(p)) => match RequestRepr::parse(&p) {
                    Ok(r) => Some(Request::New(r, p.address())),
                    // A register write with more than 4 value bytes.
                    Err(DecodeError::Malformed) => Some(Request::OversizedWrite(p.address())),
                    Err(_) => None,
                },
                Some(Frame::Legacy(r)) => Some(Request::Legacy(r)),
                Some(Frame::LegacyStatus(_)) | None => None,
            };
            if let Some(req) = req {
                bump(&mut self.stats.frames);
                self.handle(now, req, params);
            }
        }
    }

    fn queue(&mut self, p: Pending) {
        if self.pending.push_back(p).is_err() {
            bump(&mut self.stats.dropped);
        }
    }

    /// Refuses a write: an error response with the `response` function.
    // Out of line: called from nine branches.
    #[inline(never)]
    fn reject(&mut self, response: u8, addr: u16, code: ErrorCode) {
        bump(&mut self.stats.writes_rejected);
        let func = response | ERROR_FLAG;
        self.queue(Pending::Error { func, addr, code });
    }

    fn handle<P: ParameterAccess>(&mut self, now: Instant, req: Request, params: &mut P) {
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
            // The device-info block is answered whole, whatever length was asked for.
            RequestRepr::ReadRegisters { addr, .. } if addr == DEVICE_INFO_ADDR => {
                self.queue(Pending::DeviceInfo)
            }
            RequestRepr::ReadRegisters { addr, len } => {
                self.queue(Pending::Registers { addr, len })
            }
            RequestRepr::Authenticate { addr, password } => {
                let r = self.auth.attempt(&self.cfg.auth, now, password.as_slice());
                match r {
                    Ok(()) => {
                        let mut data = [0u8; 4];
                        data[..2].copy_from_slice(&AUTH_OK);
                        self.queue(Pending::Ack {
                            func: u8::from(Function::AuthAck),
                            addr,
                            data,
                            len: 2,
                        });
                    }
                    Err(e) => {
                        bump(&mut self.stats.auth_failures);
                        let code = auth_code(e);
                        self.queue(Pending::Error {
                            func: u8::from(Function::AuthAck) | ERROR_FLAG,
                            addr,
                            code,
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
                // The frame's address is the raw code: no conversion back from `ControlCode`.
                let code_raw = frame_addr;
                if let Err(e) = self.auth.check(now) {
                    return self.reject(f, code_raw, auth_code(e));
                }
                let Some(cmd) = code.command() else {
                    return self.reject(f, code_raw, ErrorCode::Unsupported);
                };
                if self.commands.push_back(cmd).is_err() {
                    return self.reject(f, code_raw, ErrorCode::Busy);
                }
                self.accept(now);
                let mut data = [0u8; 4];
                data[..2].copy_from_slice(&CONTROL_OK);
                self.queue(Pending::Ack {
                    func: f,
                    addr: code_raw,
                    data,
                    len: 2,
                });
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        self.auth.touch(&self.cfg.auth, now);
        bump(&mut self.stats.writes_accepted);
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
                        if self.auth.attempt(&self.cfg.auth, now, &pw).is_err() {
                            bump(&mut self.stats.auth_failures);
                        }
                    }
                    return;
                }
                let allowed = self.auth.check(now).is_ok();
                match legacy_command(r.address, r.value) {
                    Some(cmd) if allowed && self.commands.push_back(cmd).is_ok() => {
                        self.accept(now)
                    }
                    _ => bump(&mut self.stats.writes_rejected),
                }
            }
        }
    }

    /// Writes the next response frame into `out` and returns its length; `None` when
    /// nothing is pending.
    ///
    /// Should be called after [`SerialSession::handle_bytes`] until it returns `None`.
    /// Status frames are encoded from `telemetry`, register reads from `params`. `out` should
    /// hold [`MAX_FRAME_LEN`] bytes; a response that does not fit is dropped (counted in
    /// [`SessionStats::dropped`]). `now` is not used yet; it is part of the signature so that
    /// response pacing can be added without changing callers.
    // Out of line: compiled on its own it is smaller than inlined into a large caller.
    #[inline(never)]
    #[must_use]
    pub fn poll_transmit<P: ParameterAccess>(
        &mut self,
        now: Instant,
        telemetry: &Telemetry,
        params: &P,
        out: &mut [u8],
    ) -> Option<usize> {
        let _ = now; // see the doc comment
        while let Some(p) = self.pending.pop_front() {
            match self.emit(p, telemetry, params, out) {
                Ok(n) => return Some(n),
                Err(_) => bump(&mut self.stats.dropped),
            }
        }
        None
    }

    /// The next command for the BMS, oldest first.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    fn emit<P: ParameterAccess>(
        &self,
        p: Pending,
        t: &Telemetry,
        params: &P,
        out: &mut [u8],
    ) -> Result<usize, super::EmitError> {
        // Every short response goes through the one `emit_raw` call below.
        let mut small = [0u8; 4];
        let (func, addr, payload, len): (u8, u16, &[u8], u8) = match p {
            Pending::Status => return emit_status(t, &self.cfg.status, out),
            Pending::LegacyStatus => return emit_legacy_status(t, out),
            Pending::DeviceInfo => return self.cfg.device_info.emit(out),
            Pending::Ident { addr } => (u8::from(Function::Ident), addr, &self.cfg.ident, 12),
            Pending::Ack {
                func,
                addr,
                data,
                len,
            } => {
                small = data;
                (func, addr, &small[..(len as usize).min(4)], len)
            }
            Pending::Error { func, addr, code } => {
                small[..2].copy_from_slice(&u16::from(code).to_le_bytes());
                (func, addr, &small[..2], 2)
            }
            Pending::Registers { addr, len } => match read_block(addr, len, params, out) {
                Ok(n) => return finish_in_place(u8::from(Function::Registers), addr, n, out),
                Err(code) => {
                    small[..2].copy_from_slice(&u16::from(code).to_le_bytes());
                    (
                        u8::from(Function::Registers) | ERROR_FLAG,
                        addr,
                        &small[..2],
                        2,
                    )
                }
            },
        };
        emit_raw(func, addr, payload, len, out)
    }
}

/// Adds one to a counter, saturating.
// Out of line: the counters are bumped from many branches; a call is smaller at each.
#[inline(never)]
fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}

fn auth_code(e: AuthError) -> ErrorCode {
    match e {
        AuthError::LockedOut => ErrorCode::LockedOut,
        AuthError::WrongPassword | AuthError::InvalidPassword => ErrorCode::WrongPassword,
        _ => ErrorCode::NotAuthenticated,
    }
}

/// Reads `len` bytes of registers from `addr` into the payload area of `out` (`out[6..]`):
/// one register when `len` is its width, else a block where unmapped 2-byte slots read
/// `FF FF` (as real devices answer). Returns the payload length.
fn read_block<P: ParameterAccess>(
    addr: u16,
    len: u8,
    params: &P,
    out: &mut [u8],
) -> Result<usize, ErrorCode> {
    let n = len as usize;
    if n == 0 || n % 2 != 0 {
        return Err(ErrorCode::BadLength);
    }
    // Too small an `out` is reported by the caller's emit; keep the error path small.
    let Some(buf) = out.get_mut(6..6 + n) else {
        return Ok(n);
    };
    buf.fill(0xFF);
    if let Some(reg) = lookup(addr) {
        if reg.width as usize == n {
            let v = params.read(addr).map_err(ErrorCode::from)?;
            buf.copy_from_slice(&v.to_le_bytes()[..n]);
            return Ok(n);
        }
    } else if n <= 4 {
        return Err(ErrorCode::UnknownRegister);
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
    Ok(n)
}

// Every response fits a `MAX_FRAME_LEN` buffer.
const _: () = assert!(MAX_FRAME_LEN >= super::status::StatusFrame::MAX_LEN);
const _: () = assert!(MAX_FRAME_LEN >= super::legacy::LEGACY_STATUS_LEN);
