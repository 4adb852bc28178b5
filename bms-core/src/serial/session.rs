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
use super::command::{command_of, legacy_command, Command};
use super::device_info::{DeviceInfo, DEVICE_INFO_ADDR};
use super::frame::{emit_raw, finish_in_place, func, Packet, ERROR_FLAG, MAX_FRAME_LEN};
use super::framer::{Frame, Framer};
use super::legacy::{emit_legacy_status, LegacyKind, LegacyRequest, LEGACY_PASSWORD_ADDR};
use super::registers::{lookup, ParameterAccess};
use super::request::MAX_AUTH_PAYLOAD;
use super::status::{emit_status, StatusOptions};
use super::ErrorCode;
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

/// A response waiting to be sent: one small struct for every kind, told apart by the
/// response function (a queue of 8-byte entries instead of a larger enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    /// The response function byte (with [`ERROR_FLAG`] for errors), or [`LEGACY_STATUS`].
    func: u8,
    /// Payload length of an acknowledgement or error; bytes asked for by a register read.
    len: u8,
    /// The address field of the answer.
    addr: u16,
    /// Payload of an acknowledgement or error.
    data: [u8; 4],
}

/// `func` of a queued legacy status frame (no new-protocol response uses 0).
const LEGACY_STATUS: u8 = 0;

impl Pending {
    /// An entry without payload: a status, identification or register read.
    const fn new(func: u8, addr: u16, len: u8) -> Self {
        Pending {
            func,
            len,
            addr,
            data: [0; 4],
        }
    }
}

// The response functions as bytes, for the queue entries.
const STATUS: u8 = 0x11;
const REGISTERS: u8 = 0x12;
const IDENT: u8 = 0x14;
const WRITE_ACK: u8 = 0x42;
const AUTH_ACK: u8 = 0x43;
const CONTROL_ACK: u8 = 0x61;

/// The protocol state machine of one link (see the module docs). `Debug` shows no password
/// material.
pub struct SerialSession {
    framer: Framer,
    /// Everything else: borrowed apart from the framer, so a request is handled in place in
    /// the framer's buffer.
    link: Link,
}

struct Link {
    cfg: SerialConfig,
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
        let l = &self.link;
        f.debug_struct("SerialSession")
            .field("auth", &l.auth)
            .field("pending", &l.pending.len())
            .field("commands", &l.commands)
            .field("stats", &l.stats)
            .finish_non_exhaustive()
    }
}

impl SerialSession {
    /// A session with no password session open and nothing pending.
    pub fn new(cfg: SerialConfig) -> Self {
        SerialSession {
            framer: Framer::new(),
            link: Link {
                auth: AuthState::NEW,
                cfg,
                pending: Deque::new(),
                commands: Deque::new(),
                last_rx: None,
                legacy_pw: [0; 8],
                legacy_pw_parts: 0,
                stats: SessionStats::default(),
            },
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SerialConfig {
        &self.link.cfg
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        self.link.stats
    }

    /// `true` while a password session is open.
    pub fn is_authenticated(&self, now: Instant) -> bool {
        self.link.auth.is_authenticated(now)
    }

    /// Ends the password session (e.g. on a BLE disconnect).
    pub fn logout(&mut self) {
        self.link.auth.logout();
        self.link.legacy_pw_parts = 0;
    }

    /// Feeds received bytes; handles every request they complete, in order.
    ///
    /// Setting writes are applied through `params` here, before this returns.
    // Out of line: compiled on its own it is smaller than inlined into a large caller.
    #[inline(never)]
    pub fn handle_bytes<P: ParameterAccess>(&mut self, now: Instant, bytes: &[u8], params: &mut P) {
        let link = &mut self.link;
        if let (Some(gap), Some(last)) = (link.cfg.rx_gap, link.last_rx) {
            if !bytes.is_empty() && now.duration_since(last) > gap {
                self.framer.reset();
            }
        }
        if !bytes.is_empty() {
            link.last_rx = Some(now);
        }
        for &b in bytes {
            // Responses and unknown functions are ignored: on a half-duplex bus they may be
            // this device's own echo.
            match self.framer.push(b) {
                Some(Frame::New(p)) => link.handle(now, &p, params),
                Some(Frame::Legacy(r)) => {
                    bump(&mut link.stats.frames);
                    link.handle_legacy(now, r);
                }
                Some(Frame::LegacyStatus(_)) | None => {}
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
        let link = &mut self.link;
        while let Some(p) = link.pending.pop_front() {
            match link.emit(p, telemetry, params, out) {
                Ok(n) => return Some(n),
                Err(_) => bump(&mut link.stats.dropped),
            }
        }
        None
    }

    /// The next command for the BMS, oldest first.
    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.link.commands.pop_front()
    }
}

impl Link {
    fn queue(&mut self, p: Pending) {
        if self.pending.push_back(p).is_err() {
            bump(&mut self.stats.dropped);
        }
    }

    /// Queues an acknowledgement or error with a 2-byte payload.
    // Out of line: called from every answer branch.
    #[inline(never)]
    fn answer(&mut self, func: u8, addr: u16, payload: [u8; 2]) {
        self.queue(Pending {
            func,
            len: 2,
            addr,
            data: [payload[0], payload[1], 0, 0],
        });
    }

    /// Refuses a write: an error response with the `response` function.
    // Out of line: called from nine branches.
    #[inline(never)]
    fn reject(&mut self, response: u8, addr: u16, code: ErrorCode) {
        bump(&mut self.stats.writes_rejected);
        self.answer(response | ERROR_FLAG, addr, u16::from(code).to_le_bytes());
    }

    /// Handles one checked new-protocol frame (requests only; anything else is ignored).
    fn handle<T: AsRef<[u8]>, P: ParameterAccess>(
        &mut self,
        now: Instant,
        p: &Packet<T>,
        params: &mut P,
    ) {
        let addr = p.address();
        let len = p.len_field();
        let f = p.function_raw();
        if !matches!(
            f,
            func::READ_STATUS
                | func::READ_REGISTERS
                | func::READ_IDENT
                | func::WRITE_REGISTER
                | func::AUTHENTICATE
                | func::CONTROL
        ) {
            return;
        }
        bump(&mut self.stats.frames);
        match f {
            func::READ_STATUS => self.queue(Pending::new(STATUS, 0, 0)),
            func::READ_IDENT => self.queue(Pending::new(IDENT, addr, 0)),
            // The device-info block is answered whole, whatever length was asked for (the
            // entry is told apart by its address).
            func::READ_REGISTERS => self.queue(Pending::new(REGISTERS, addr, len)),
            func::AUTHENTICATE => {
                // A password longer than the longest kept never matches, as when cut.
                let password = p.payload();
                let password = password.get(..MAX_AUTH_PAYLOAD).unwrap_or(password);
                match self.auth.attempt(&self.cfg.auth, now, password) {
                    Ok(()) => self.answer(AUTH_ACK, addr, AUTH_OK),
                    Err(e) => {
                        bump(&mut self.stats.auth_failures);
                        self.answer(
                            AUTH_ACK | ERROR_FLAG,
                            addr,
                            u16::from(auth_code(e)).to_le_bytes(),
                        );
                    }
                }
            }
            func::WRITE_REGISTER => {
                let value = p.payload();
                if let Err(e) = self.auth.check(now) {
                    return self.reject(WRITE_ACK, addr, auth_code(e));
                }
                // More than 4 value bytes fit no register.
                if value.len() > 4 {
                    return self.reject(WRITE_ACK, addr, ErrorCode::BadLength);
                }
                let mut data = [0u8; 4];
                data[..value.len()].copy_from_slice(value);
                let Some(reg) = lookup(addr) else {
                    return self.reject(WRITE_ACK, addr, ErrorCode::UnknownRegister);
                };
                if value.len() != reg.width as usize {
                    return self.reject(WRITE_ACK, addr, ErrorCode::BadLength);
                }
                let v = u32::from_le_bytes(data);
                if !reg.contains(v) {
                    return self.reject(WRITE_ACK, addr, ErrorCode::OutOfRange);
                }
                if let Err(e) = params.write(addr, v) {
                    return self.reject(WRITE_ACK, addr, ErrorCode::from(e));
                }
                self.accept(now);
                self.queue(Pending {
                    func: WRITE_ACK,
                    len: reg.width,
                    addr,
                    data,
                });
            }
            _ => {
                // Control: the frame's address is the raw code, echoed as sent.
                if let Err(e) = self.auth.check(now) {
                    return self.reject(CONTROL_ACK, addr, auth_code(e));
                }
                let Some(cmd) = command_of(addr) else {
                    return self.reject(CONTROL_ACK, addr, ErrorCode::Unsupported);
                };
                if self.commands.push_back(cmd).is_err() {
                    return self.reject(CONTROL_ACK, addr, ErrorCode::Busy);
                }
                self.accept(now);
                self.answer(CONTROL_ACK, addr, CONTROL_OK);
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
                    self.queue(Pending::new(LEGACY_STATUS, 0, 0));
                }
            }
            LegacyKind::Write => {
                let part = r.address.wrapping_sub(LEGACY_PASSWORD_ADDR);
                if let Some(dst) = self
                    .legacy_pw
                    .get_mut(2 * part as usize..2 * part as usize + 2)
                {
                    dst.copy_from_slice(&r.value.to_be_bytes());
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

    fn emit<P: ParameterAccess>(
        &self,
        p: Pending,
        t: &Telemetry,
        params: &P,
        out: &mut [u8],
    ) -> Result<usize, super::EmitError> {
        let Pending {
            func,
            len,
            addr,
            data,
        } = p;
        match func {
            STATUS => emit_status(t, &self.cfg.status, out),
            LEGACY_STATUS => emit_legacy_status(t, out),
            REGISTERS if addr == DEVICE_INFO_ADDR => self.cfg.device_info.emit(out),
            REGISTERS => match read_block(addr, len, params, out) {
                Ok(n) => finish_in_place(REGISTERS, addr, n, out),
                Err(code) => emit_raw(
                    REGISTERS | ERROR_FLAG,
                    addr,
                    &u16::from(code).to_le_bytes(),
                    2,
                    out,
                ),
            },
            IDENT => emit_raw(IDENT, addr, &self.cfg.ident, 12, out),
            _ => emit_raw(
                func,
                addr,
                data.get(..len as usize).unwrap_or(&data),
                len,
                out,
            ),
        }
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
