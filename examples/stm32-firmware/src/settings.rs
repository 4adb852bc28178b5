//! The configuration written over the serial protocol, kept across restarts.
//!
//! The stored form is the list of setting registers the BMS maps (`ParameterAccess for
//! Bms`), as `(address, wire value)` pairs: the same values a client wrote, in the
//! protocol's units. At start-up they are written back over the factory configuration
//! through the same validated path, so a stored value the firmware no longer accepts is
//! skipped instead of loaded.

use bms_core::event_log::{DecodeError, EncodeError, Persist};
use bms_core::serial::registers::{ParameterAccess, REGISTERS};

/// Registers of the protocol, at most.
const MAX: usize = REGISTERS.len();
/// Encoded length at most: a count byte, then 6 bytes per register.
pub const SETTINGS_LEN: usize = 1 + 6 * MAX;

/// The mapped setting registers and their values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    len: usize,
    regs: [(u16, u32); MAX],
}

impl Settings {
    /// Every register `params` maps, with its current value.
    pub fn read_from<P: ParameterAccess>(params: &P) -> Self {
        let mut s = Settings {
            len: 0,
            regs: [(0, 0); MAX],
        };
        for (slot, reg) in s.regs.iter_mut().zip(
            REGISTERS
                .iter()
                .filter_map(|r| Some((r.addr, params.read(r.addr).ok()?))),
        ) {
            *slot = reg;
            s.len += 1;
        }
        s
    }

    /// Writes every value that differs from `params`. A write that the configuration
    /// refuses in one order (a trip below the old release, say) may pass after the other
    /// registers moved, so this makes up to 4 passes. Returns the registers still
    /// different.
    pub fn apply_to<P: ParameterAccess>(&self, params: &mut P) -> usize {
        let regs = self.regs.get(..self.len).unwrap_or(&[]);
        let differ = |p: &P| {
            regs.iter()
                .filter(|(a, v)| p.read(*a).ok() != Some(*v))
                .count()
        };
        let mut left = differ(params);
        for _ in 0..4 {
            if left == 0 {
                break;
            }
            for &(a, v) in regs {
                if params.read(a).ok() != Some(v) {
                    let _ = params.write(a, v);
                }
            }
            let now = differ(params);
            if now == left {
                break;
            }
            left = now;
        }
        left
    }
}

impl Persist for Settings {
    const VERSION: u16 = 1;
    const MAX_LEN: usize = SETTINGS_LEN;

    fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let n = 1 + 6 * self.len;
        let out = buf.get_mut(..n).ok_or(EncodeError::BufferTooSmall)?;
        let regs = self.regs.get(..self.len).ok_or(EncodeError::Invalid)?;
        let (count, body) = out.split_at_mut(1);
        count[0] = u8::try_from(self.len).map_err(|_| EncodeError::Invalid)?;
        for (chunk, (a, v)) in body.chunks_exact_mut(6).zip(regs) {
            chunk[..2].copy_from_slice(&a.to_le_bytes());
            chunk[2..].copy_from_slice(&v.to_le_bytes());
        }
        Ok(n)
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let (&count, body) = buf.split_first().ok_or(DecodeError::Truncated)?;
        let len = usize::from(count);
        if len > MAX {
            return Err(DecodeError::Malformed);
        }
        if body.len() != 6 * len {
            return Err(DecodeError::Truncated);
        }
        let mut s = Settings {
            len,
            regs: [(0, 0); MAX],
        };
        for (slot, c) in s.regs.iter_mut().zip(body.chunks_exact(6)) {
            *slot = (
                u16::from_le_bytes([c[0], c[1]]),
                u32::from_le_bytes([c[2], c[3], c[4], c[5]]),
            );
        }
        Ok(s)
    }
}
