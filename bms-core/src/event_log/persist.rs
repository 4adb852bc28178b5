//! What the parameter store keeps across resets: the SOC state ([`StoredSoc`]) and the
//! settings changed over a protocol ([`Settings`]).
//!
//! The configuration is not stored whole: a board boots from its variant's preset and
//! replays the stored setting registers over it, each validated again
//! ([`Settings::apply`]). A setting that no longer validates (e.g. after a firmware update
//! tightened a limit) is skipped and reported, never applied half-way.
//!
//! # Examples
//! ```
//! use bms_core::event_log::{Persist, Settings};
//! use bms_core::config::{Chemistry, PackConfig};
//! use bms_core::serial::ParameterAccess;
//! use bms_core::Bms;
//!
//! let preset = PackConfig::preset("ANT16S-300A-C".parse()?, Chemistry::Lfp);
//! let mut bms = Bms::new(preset.clone())?;
//! bms.write(0x00, 3_620).unwrap(); // cell_ov trip over the serial protocol
//! let settings = Settings::capture(&bms);
//! let mut buf = [0u8; Settings::MAX_LEN];
//! let n = settings.encode(&mut buf).unwrap();
//!
//! // After a reset: the preset, then the stored settings.
//! let mut fresh = Bms::new(preset)?;
//! let skipped = Settings::decode(&buf[..n]).unwrap().apply(&mut fresh);
//! assert_eq!(skipped, 0);
//! assert_eq!(fresh.config(), bms.config());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use heapless::Vec;

use super::params::{DecodeError, EncodeError, Persist};
use crate::bms::Bms;
use crate::serial::{ParameterAccess, REGISTERS};
use crate::soc::StoredSoc;
use crate::units::{MilliAmpHours, MilliAmps, Soc};

impl Persist for StoredSoc {
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 14;

    fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let out = buf
            .get_mut(..Self::MAX_LEN)
            .ok_or(EncodeError::BufferTooSmall)?;
        out[0..2].copy_from_slice(&self.soc.as_permille().to_le_bytes());
        out[2..6].copy_from_slice(&self.full_capacity.as_mah().to_le_bytes());
        out[6..10].copy_from_slice(&self.cycles.to_le_bytes());
        out[10..14].copy_from_slice(&self.current_offset.as_ma().to_le_bytes());
        Ok(Self::MAX_LEN)
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let b = buf.get(..Self::MAX_LEN).ok_or(DecodeError::Truncated)?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let soc = Soc::try_from_permille(u16::from_le_bytes([b[0], b[1]]))
            .map_err(|_| DecodeError::Malformed)?;
        Ok(StoredSoc {
            soc,
            full_capacity: MilliAmpHours::from_mah(u32_at(2)),
            cycles: u32_at(6),
            current_offset: MilliAmps::from_ma(u32_at(10) as i32),
        })
    }
}

/// Most settings kept (one per mapped setting register).
pub const MAX_SETTINGS: usize = 32;

/// Every mapped setting register as `(register, value)` in wire units, as the serial
/// protocol reads and writes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    values: Vec<(u16, u32), MAX_SETTINGS>,
}

impl Settings {
    /// Every mapped setting register of `bms`'s configuration.
    pub fn capture(bms: &Bms) -> Self {
        let mut values = Vec::new();
        for r in REGISTERS.iter() {
            if let Ok(v) = ParameterAccess::read(bms, r.addr) {
                // Capacity is bounded by the table: at most MAX_SETTINGS mapped registers.
                let _ = values.push((r.addr, v));
            }
        }
        Settings { values }
    }

    /// The stored `(register, value)` pairs.
    pub fn values(&self) -> &[(u16, u32)] {
        &self.values
    }

    /// Writes every stored value into `bms` through [`ParameterAccess::write`] (validated
    /// one by one, in register order, twice so that interdependent limits settle); returns
    /// how many were still refused at the end (and so not applied).
    pub fn apply(&self, bms: &mut Bms) -> usize {
        for _ in 0..2 {
            for &(reg, v) in &self.values {
                if ParameterAccess::read(bms, reg) != Ok(v) {
                    let _ = bms.write(reg, v);
                }
            }
        }
        self.values
            .iter()
            .filter(|&&(reg, v)| ParameterAccess::read(bms, reg) != Ok(v))
            .count()
    }
}

impl Persist for Settings {
    const VERSION: u16 = 1;
    const MAX_LEN: usize = 1 + 6 * MAX_SETTINGS;

    fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let len = 1 + 6 * self.values.len();
        let out = buf.get_mut(..len).ok_or(EncodeError::BufferTooSmall)?;
        out[0] = self.values.len() as u8;
        for (chunk, &(reg, v)) in out[1..].chunks_exact_mut(6).zip(self.values.iter()) {
            chunk[..2].copy_from_slice(&reg.to_le_bytes());
            chunk[2..].copy_from_slice(&v.to_le_bytes());
        }
        Ok(len)
    }

    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let (&n, rest) = buf.split_first().ok_or(DecodeError::Truncated)?;
        let body = rest.get(..6 * n as usize).ok_or(DecodeError::Truncated)?;
        let mut values = Vec::new();
        for c in body.chunks_exact(6) {
            let pair = (
                u16::from_le_bytes([c[0], c[1]]),
                u32::from_le_bytes([c[2], c[3], c[4], c[5]]),
            );
            values.push(pair).map_err(|_| DecodeError::Malformed)?;
        }
        Ok(Settings { values })
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::config::{Chemistry, PackConfig};

    #[test]
    fn stored_soc_round_trips_and_rejects_bad_soc() {
        let s = StoredSoc {
            soc: Soc::try_from_permille(734).unwrap(),
            full_capacity: MilliAmpHours::from_mah(98_765),
            cycles: 42,
            current_offset: MilliAmps::from_ma(-123),
        };
        let mut buf = [0u8; StoredSoc::MAX_LEN];
        assert_eq!(s.encode(&mut buf), Ok(14));
        assert_eq!(StoredSoc::decode(&buf), Ok(s));
        buf[0..2].copy_from_slice(&1_001u16.to_le_bytes());
        assert_eq!(StoredSoc::decode(&buf), Err(DecodeError::Malformed));
        assert_eq!(StoredSoc::decode(&buf[..13]), Err(DecodeError::Truncated));
    }

    #[test]
    fn settings_restore_a_changed_configuration() {
        let preset = PackConfig::preset("ANT16S-300A-C".parse().unwrap(), Chemistry::Nmc);
        let mut bms = Bms::new(preset).unwrap();
        // Two interdependent changes: the warning must stay below the trip.
        assert_eq!(bms.write(0x00, 4_280), Ok(()));
        assert_eq!(bms.write(0x20, 4_260), Ok(()));
        let s = Settings::capture(&bms);
        let mut buf = [0u8; Settings::MAX_LEN];
        let n = s.encode(&mut buf).unwrap();
        let back = Settings::decode(&buf[..n]).unwrap();
        assert_eq!(back, s);
        let mut fresh = Bms::new(preset).unwrap();
        assert_eq!(back.apply(&mut fresh), 0);
        assert_eq!(fresh.config(), bms.config());
    }

    #[test]
    fn an_invalid_stored_setting_is_skipped_not_applied() {
        let preset = PackConfig::preset("ANT16S-300A-C".parse().unwrap(), Chemistry::Lfp);
        let mut bms = Bms::new(preset).unwrap();
        let s = Settings {
            values: Vec::from_slice(&[(0x00, 3_900)]).unwrap(),
        };
        assert_eq!(s.apply(&mut bms), 1);
        assert_eq!(bms.config(), &preset);
    }

    #[test]
    fn decode_never_panics() {
        for n in 0..=255u8 {
            let mut buf = [0xA5u8; Settings::MAX_LEN + 8];
            buf[0] = n;
            let _ = Settings::decode(&buf);
            let _ = Settings::decode(&buf[..(n as usize).min(buf.len())]);
        }
    }
}
