//! The new-protocol frame: `7E A1 | FUNC | ADDR (u16 LE) | LEN | PAYLOAD | CRC (u16 LE) | AA 55`.
//!
//! [`Packet`] is a zero-copy view over one frame (the smoltcp `Packet` shape): after
//! [`Packet::new_checked`] succeeds no accessor panics. [`emit_frame`] writes a clean frame into
//! a caller-supplied buffer.
//!
//! The CRC is CRC-16/MODBUS (reflected polynomial 0xA001, init 0xFFFF, no final xor) over the
//! bytes from `A1` to the last payload byte, stored little-endian. For read requests
//! (`0x01`, `0x02`, `0x04`) `LEN` is the *requested* length and there is no payload; for writes and
//! all responses `LEN` is the payload length.
//!
//! Real devices put up to six junk bytes between the CRC and `AA 55` in some responses
//! (device info, write acknowledgements); [`Packet::new_checked`] accepts those, and this
//! firmware never sends them.
//!
//! # Examples
//! ```
//! use bms_core::serial::frame::{emit_frame, Function, Packet};
//! let mut buf = [0u8; 16];
//! let n = emit_frame(Function::Control, 0x0006, &[], 0, &mut buf).unwrap();
//! assert_eq!(&buf[..n], &[0x7E, 0xA1, 0x51, 0x06, 0x00, 0x00, 0x69, 0x24, 0xAA, 0x55]);
//! let p = Packet::new_checked(&buf[..n]).unwrap();
//! assert_eq!(p.function(), Function::Control);
//! assert_eq!(p.address(), 6);
//! # Ok::<(), bms_core::serial::DecodeError>(())
//! ```

use core::fmt;

use super::DecodeError;

/// First byte of a new-protocol frame.
pub const SOF0: u8 = 0x7E;
/// Second byte of a new-protocol frame.
pub const SOF1: u8 = 0xA1;
/// The two closing bytes.
pub const EOF: [u8; 2] = [0xAA, 0x55];
/// Bytes of a frame besides its payload (header 6, CRC 2, trailer 2).
pub const OVERHEAD: usize = 10;
/// Longest clean frame: a 255-byte payload.
pub const MAX_FRAME_LEN: usize = OVERHEAD + 255;
/// Most junk bytes accepted between the CRC and `AA 55` (seen in real device responses).
pub const MAX_TRAILER_JUNK: usize = 6;

/// CRC-16/MODBUS, bitwise: frames are short and off the control path, and the usual
/// 256-entry table would cost 512 bytes of flash.
const MODBUS: crc::Crc<u16, crc::NoTable> = crc::Crc::<u16, crc::NoTable>::new(&crc::CRC_16_MODBUS);

/// CRC-16/MODBUS of `data`.
///
/// # Examples
/// ```
/// // The status request: CRC over `A1 01 00 00 BE` is 0x5518, sent as `18 55`.
/// assert_eq!(bms_core::serial::frame::crc16_modbus(&[0xA1, 0x01, 0x00, 0x00, 0xBE]), 0x5518);
/// ```
// Out of line: one copy for the framer and every frame writer.
#[inline(never)]
pub fn crc16_modbus(data: &[u8]) -> u16 {
    MODBUS.checksum(data)
}

enum_with_unknown! {
    /// The function byte (requests from the client and the device's responses).
    pub enum Function(u8) {
        /// Request: status (`LEN` = requested length, `0xBE` from the clients).
        ReadStatus = 0x01,
        /// Request: device information (address `0x026C`) or setting registers.
        ReadRegisters = 0x02,
        /// Request: 12-byte identification block.
        ReadIdent = 0x04,
        /// Response to [`Function::ReadStatus`].
        Status = 0x11,
        /// Response to [`Function::ReadRegisters`].
        Registers = 0x12,
        /// Response to [`Function::ReadIdent`].
        Ident = 0x14,
        /// Request: write a setting register (value little-endian).
        WriteRegister = 0x22,
        /// Request: authenticate with the ASCII password (address `0x016A`).
        Authenticate = 0x23,
        /// Response to [`Function::WriteRegister`] (echoes the value).
        WriteAck = 0x42,
        /// Response to [`Function::Authenticate`].
        AuthAck = 0x43,
        /// Request: press a control "button" (the address is the control register).
        Control = 0x51,
        /// Response to [`Function::Control`].
        ControlAck = 0x61,
    }
}

impl Function {
    /// The response function a device answers this request with (`None` for responses and
    /// unknown codes).
    pub fn response(self) -> Option<Function> {
        Some(match self {
            Function::ReadStatus => Function::Status,
            Function::ReadRegisters => Function::Registers,
            Function::ReadIdent => Function::Ident,
            Function::WriteRegister => Function::WriteAck,
            Function::Authenticate => Function::AuthAck,
            Function::Control => Function::ControlAck,
            _ => return None,
        })
    }

    /// `true` for the requests without payload (reads and control): the frame is always
    /// 10 bytes and `LEN` is a requested length (or a value byte) that counts no payload.
    pub fn is_bare_request(self) -> bool {
        matches!(
            self,
            Function::ReadStatus
                | Function::ReadRegisters
                | Function::ReadIdent
                | Function::Control
        )
    }
}

/// The request function bytes, for code that reads the raw byte (no conversion to
/// [`Function`] and its 30-arm table on the receive path).
pub(crate) mod func {
    pub const READ_STATUS: u8 = 0x01;
    pub const READ_REGISTERS: u8 = 0x02;
    pub const READ_IDENT: u8 = 0x04;
    pub const WRITE_REGISTER: u8 = 0x22;
    pub const AUTHENTICATE: u8 = 0x23;
    pub const CONTROL: u8 = 0x51;
}

/// [`Function::is_bare_request`] of a raw function byte.
pub(crate) const fn is_bare(f: u8) -> bool {
    matches!(
        f,
        func::READ_STATUS | func::READ_REGISTERS | func::READ_IDENT | func::CONTROL
    )
}

/// Bit set in a response function byte to mark an error response (this firmware's
/// convention; its payload is a 2-byte [`super::ErrorCode`]).
pub const ERROR_FLAG: u8 = 0x80;

mod field {
    use core::ops::Range;
    pub const SOF: Range<usize> = 0..2;
    pub const FUNC: usize = 2;
    pub const ADDR: Range<usize> = 3..5;
    pub const LEN: usize = 5;
    pub const PAYLOAD: usize = 6;
}

/// A read-only or read-write view of one new-protocol frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without any check.
    ///
    /// The accessors read 0 for the fields of a buffer shorter than 10 bytes; use
    /// [`Packet::new_checked`] for bytes from the wire.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and checks start bytes, length, CRC and trailer.
    ///
    /// The buffer must hold exactly one frame; up to [`MAX_TRAILER_JUNK`] bytes between the
    /// CRC and `AA 55` are accepted.
    ///
    /// # Errors
    /// See [`Packet::check`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>, DecodeError> {
        let p = Packet::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// Checks the frame.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] when shorter than `10 + LEN`, [`DecodeError::Malformed`] for
    /// wrong start bytes, trailer or trailing bytes, [`DecodeError::Checksum`] for a CRC mismatch.
    pub fn check(&self) -> Result<(), DecodeError> {
        let b = self.buffer.as_ref();
        if b.len() < OVERHEAD {
            return Err(DecodeError::Truncated);
        }
        if b[field::SOF] != [SOF0, SOF1] {
            return Err(DecodeError::Malformed);
        }
        let clean = OVERHEAD + self.payload_len();
        if b.len() < clean {
            return Err(DecodeError::Truncated);
        }
        if b.len() > clean + MAX_TRAILER_JUNK || b[b.len() - 2..] != EOF {
            return Err(DecodeError::Malformed);
        }
        let crc_at = clean - 4;
        if crc16_modbus(&b[1..crc_at]) != u16::from_le_bytes([b[crc_at], b[crc_at + 1]]) {
            return Err(DecodeError::Checksum);
        }
        Ok(())
    }

    /// The inner buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The function byte.
    pub fn function(&self) -> Function {
        Function::from(self.buffer.as_ref()[field::FUNC])
    }

    /// The raw function byte (keeps the [`ERROR_FLAG`] visible).
    // `get` (0 past the end) rather than indexing: no panic path in the receive code.
    pub fn function_raw(&self) -> u8 {
        self.buffer.as_ref().get(field::FUNC).copied().unwrap_or(0)
    }

    /// The address field (register or control code).
    pub fn address(&self) -> u16 {
        match self.buffer.as_ref().get(field::ADDR) {
            Some(&[lo, hi]) => u16::from_le_bytes([lo, hi]),
            _ => 0,
        }
    }

    /// The `LEN` byte (payload length, or the requested length for read requests).
    pub fn len_field(&self) -> u8 {
        self.buffer.as_ref().get(field::LEN).copied().unwrap_or(0)
    }

    /// Number of payload bytes: `LEN`, or 0 for [bare requests](Function::is_bare_request).
    pub fn payload_len(&self) -> usize {
        if is_bare(self.function_raw()) {
            0
        } else {
            self.len_field() as usize
        }
    }

    /// The payload (empty for bare requests).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        b.get(field::PAYLOAD..field::PAYLOAD + self.payload_len())
            .unwrap_or(&[])
    }

    /// The CRC as stored.
    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        let at = field::PAYLOAD + self.payload_len();
        match b.get(at..at + 2) {
            Some(c) => u16::from_le_bytes([c[0], c[1]]),
            None => 0,
        }
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ANT func=0x{:02X} addr=0x{:04X} len={}",
            self.function_raw(),
            self.address(),
            self.len_field()
        )
    }
}

/// Length of a frame whose request has no payload (`LEN` = requested length): always 10.
pub const REQUEST_LEN: usize = OVERHEAD;

/// Writes a clean frame `7E A1 func addr len payload crc AA 55` into `out`.
///
/// `len` is the `LEN` byte; for frames with a payload pass `payload.len()`, for read requests
/// pass the requested length and an empty payload.
///
/// Returns the number of bytes written.
///
/// # Errors
/// [`super::EmitError::BufferTooSmall`] when `out` is shorter than `10 + payload.len()`,
/// [`super::EmitError::PayloadTooLong`] for payloads over 255 bytes or `len` not matching a
/// non-empty payload.
pub fn emit_frame(
    func: Function,
    addr: u16,
    payload: &[u8],
    len: u8,
    out: &mut [u8],
) -> Result<usize, super::EmitError> {
    emit_raw(u8::from(func), addr, payload, len, out)
}

/// Completes a frame whose `n`-byte payload the caller already wrote at `out[6..6 + n]`:
/// writes header, CRC and trailer around it; returns the frame length.
pub(crate) fn finish_in_place(
    func: u8,
    addr: u16,
    n: usize,
    out: &mut [u8],
) -> Result<usize, super::EmitError> {
    if n > 255 {
        return Err(super::EmitError::PayloadTooLong);
    }
    seal(func, addr, n as u8, n, out)
}

/// [`emit_frame`] with the function as a raw byte (error responses set [`ERROR_FLAG`]).
// Out of line: one copy of the payload copy for every short response.
#[inline(never)]
pub(crate) fn emit_raw(
    func: u8,
    addr: u16,
    payload: &[u8],
    len: u8,
    out: &mut [u8],
) -> Result<usize, super::EmitError> {
    use super::EmitError;
    let n = payload.len();
    if n > 255 || (n != 0 && n != len as usize) {
        return Err(EmitError::PayloadTooLong);
    }
    let out = out
        .get_mut(..OVERHEAD + n)
        .ok_or(EmitError::BufferTooSmall)?;
    // Always there (`out` holds the whole frame): `get_mut` keeps the panic path out.
    if let Some(dst) = out.get_mut(6..6 + n) {
        dst.copy_from_slice(payload);
    }
    seal(func, addr, len, n, out)
}

/// Writes header (`LEN` = `len`), CRC and trailer around the `n`-byte payload at `out[6..]`.
// The one frame writer behind every response: kept out of line so it exists once.
#[inline(never)]
fn seal(func: u8, addr: u16, len: u8, n: usize, out: &mut [u8]) -> Result<usize, super::EmitError> {
    let total = OVERHEAD + n;
    let out = out
        .get_mut(..total)
        .ok_or(super::EmitError::BufferTooSmall)?;
    out[0] = SOF0;
    out[1] = SOF1;
    out[2] = func;
    out[3..5].copy_from_slice(&addr.to_le_bytes());
    out[5] = len;
    let crc = crc16_modbus(&out[1..6 + n]);
    out[6 + n..8 + n].copy_from_slice(&crc.to_le_bytes());
    out[8 + n..].copy_from_slice(&EOF);
    Ok(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    proptest::proptest! {
        /// The 16-entry table gives the CRC of the full-table implementation it replaced.
        #[test]
        fn crc16_equals_the_table_driven_reference(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)
        ) {
            let reference = crc::Crc::<u16>::new(&crc::CRC_16_MODBUS);
            proptest::prop_assert_eq!(crc16_modbus(&data), reference.checksum(&data));
        }
    }

    fn hex(s: &str) -> heapless::Vec<u8, 300> {
        let s: heapless::String<700> = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    // Requests from the notes' test vectors (esphome, aiobmsble), CRC-verified there.
    #[test]
    fn test_deconstruct_requests() {
        let status = hex("7e a1 01 00 00 be 18 55 aa 55");
        let p = Packet::new_checked(&status[..]).unwrap();
        assert_eq!(p.function(), Function::ReadStatus);
        assert_eq!(p.address(), 0);
        assert_eq!(p.len_field(), 0xBE);
        assert_eq!(p.checksum(), 0x5518);

        let info = hex("7e a1 02 6c 02 20 58 c4 aa 55");
        let p = Packet::new_checked(&info[..]).unwrap();
        assert_eq!(p.function(), Function::ReadRegisters);
        assert_eq!(p.address(), 0x026C);
        assert_eq!(p.len_field(), 0x20);

        // aiobmsble sends the password address as `01 6A` (0x6A01 little-endian), ESPHome
        // as `6A 01`; both CRCs check.
        let pw = hex("7e a1 23 01 6a 08 31 32 33 34 35 36 37 38 d9 ee aa 55");
        let p = Packet::new_checked(&pw[..]).unwrap();
        assert_eq!(p.function(), Function::Authenticate);
        assert_eq!(p.address(), 0x6A01);
        assert_eq!(p.payload(), b"12345678");

        let write = hex("7e a1 22 00 00 02 42 0e bd ec aa 55");
        let p = Packet::new_checked(&write[..]).unwrap();
        assert_eq!(p.function(), Function::WriteRegister);
        assert_eq!(p.payload(), &[0x42, 0x0E]);
    }

    #[test]
    fn test_deconstruct_response_with_junk() {
        // Device info answer of a real 16ZMUB: six junk bytes before AA 55.
        let b = hex("7ea1126c022031365a4d00000000000000000000000031365a4d554230302d323131303236417208ff0b000041f2aa55");
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.function(), Function::Registers);
        assert_eq!(&p.payload()[..4], b"16ZM");
    }

    #[test]
    fn test_construct_matches_vectors() {
        let cases: [(Function, u16, &[u8], u8, &str); 6] = [
            (Function::ReadStatus, 0, &[], 0xBE, "7ea1010000be1855aa55"),
            (
                Function::ReadRegisters,
                0x00A2,
                &[],
                4,
                "7ea102a200043840aa55",
            ),
            (Function::Control, 0x01, &[], 0, "7ea151010000d8e5aa55"),
            (Function::Control, 0x0B, &[], 0, "7ea1510b0000f8e7aa55"),
            (
                Function::ControlAck,
                0x07,
                &[1, 0],
                2,
                "7ea1610700020100b62baa55",
            ),
            (
                Function::Authenticate,
                0x016A,
                b"123456789abc",
                12,
                "7ea1236a010c3132333435363738396162632062aa55",
            ),
        ];
        for (f, a, pl, len, want) in cases {
            let mut out = [0u8; 32];
            let n = emit_frame(f, a, pl, len, &mut out).unwrap();
            assert_eq!(&out[..n], &hex(want)[..], "{f:?}");
        }
    }

    #[test]
    fn raw_request_bytes_are_the_functions() {
        let pairs = [
            (func::READ_STATUS, Function::ReadStatus),
            (func::READ_REGISTERS, Function::ReadRegisters),
            (func::READ_IDENT, Function::ReadIdent),
            (func::WRITE_REGISTER, Function::WriteRegister),
            (func::AUTHENTICATE, Function::Authenticate),
            (func::CONTROL, Function::Control),
        ];
        for (b, f) in pairs {
            assert_eq!(Function::from(b), f);
        }
        for b in 0..=255u8 {
            assert_eq!(is_bare(b), Function::from(b).is_bare_request(), "{b:#x}");
        }
    }

    #[test]
    fn test_impossible_len_and_truncated() {
        let status = hex("7e a1 01 00 00 be 18 55 aa 55");
        assert_eq!(
            Packet::new_checked(&status[..9]).unwrap_err(),
            DecodeError::Truncated
        );
        let pw = hex("7e a1 23 01 6a 08 31 32 33 34 35 36 37 38 d9 ee aa 55");
        assert_eq!(
            Packet::new_checked(&pw[..12]).unwrap_err(),
            DecodeError::Truncated
        );
        let mut bad = status.clone();
        bad[6] ^= 1;
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            DecodeError::Checksum
        );
        let mut bad = status.clone();
        bad[9] = 0;
        assert_eq!(
            Packet::new_checked(&bad[..]).unwrap_err(),
            DecodeError::Malformed
        );
        let mut out = [0u8; 9];
        assert!(emit_frame(Function::ReadStatus, 0, &[], 0xBE, &mut out).is_err());
    }
}
