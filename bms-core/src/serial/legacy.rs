//! The legacy protocol: 6-byte requests/writes and the 140-byte `AA 55 AA FF` status frame.
//!
//! Requests are `H H ADDR D1 D2 SUM` with `SUM = ADDR + D1 + D2 (mod 256)` and the value
//! big-endian: `DB DB 00 00 00 00` (status over BLE), `5A 5A 00 00 01 01` (status over RS485),
//! `A5 A5 ADDR D1 D2 SUM` (write). Control addresses (`ant-legacy-serial-protocol.txt`):
//! 247 power off, 248 current to zero, 249 discharge MOSFET (1 on, 0 off), 250 charge MOSFET,
//! 251 LiFePO4 preset, 252 balancer (1 on, 0 off), 253 factory reset, 254 reboot, 255 apply.
//! The password is written as four ASCII pairs to addresses `0xF1..=0xF4` (ESPHome's
//! `ant_bms_old`), so only 8-byte passwords can authenticate over the legacy protocol.
//!
//! The status frame is big-endian, 140 bytes, with a 16-bit sum of bytes 4..138 at 138:
//!
//! | offset | type | field |
//! |---|---|---|
//! | 4 | u16 | pack voltage, 100 mV |
//! | 6..70 | u16 ×32 | cell voltages, mV |
//! | 70 | i32 | current, 100 mA, positive = discharge |
//! | 74 | u8 | SOC % |
//! | 75 / 79 | u32 / u32 | design / remaining capacity, µAh |
//! | 83 / 87 | u32 / u32 | cycle capacity mAh / runtime s |
//! | 91..103 | i16 ×6 | temperatures °C: MOSFET, balancer, T1, T2, then −40 (absent) |
//! | 103 / 104 / 105 | u8 ×3 | charge / discharge MOSFET status, balancer status |
//! | 106 / 108 / 110 | u16 / u16 / u8 | tyre length, pulses per week, relay (0) |
//! | 111 | i32 | power W |
//! | 115 / 116 | u8 / u16 | highest cell number / mV |
//! | 118 / 119 | u8 / u16 | lowest cell number / mV |
//! | 121 / 123 | u16 / u8 | average cell mV / number of cells |
//! | 124..132 | u16 ×4 | MOSFET voltages, comparator (0) |
//! | 132 | u32 | balancing mask |
//! | 136 | u16 | system log (0) |
//! | 138 | u16 | checksum |

use heapless::Vec;

use super::cursor::Writer;
use super::status::{
    mv16, StatusOptions, Values, TEMP_ABSENT, V_AVERAGE_MV, V_BALANCER, V_BALANCER_TEMP,
    V_BALANCE_MASK, V_CELLS, V_CELL_COUNT, V_CHARGE_MOS, V_CURRENT_DA32, V_CYCLE_MAH, V_DESIGN_UAH,
    V_DISCHARGE_MOS, V_LEGACY_HEADER, V_MAX_MV, V_MAX_NUMBER, V_MIN_MV, V_MIN_NUMBER, V_MOS_TEMP,
    V_PACK_DV, V_POWER_W, V_REMAINING_UAH, V_RUNTIME_S, V_SOC, V_T1, V_T2, V_TEMP_ABSENT, V_ZERO,
};
use super::{DecodeError, EmitError};
use crate::telemetry::Telemetry;
use crate::units::{MilliAmps, MilliVolts};

/// Header of the legacy status frame.
pub const LEGACY_STATUS_HEADER: [u8; 4] = [0xAA, 0x55, 0xAA, 0xFF];
/// Length of the legacy status frame.
pub const LEGACY_STATUS_LEN: usize = 140;
/// Cell slots in the legacy status frame.
pub const LEGACY_CELL_SLOTS: usize = 32;
/// First of the four password addresses (`0xF1..=0xF4`).
pub const LEGACY_PASSWORD_ADDR: u8 = 0xF1;

/// Kind of a legacy 6-byte frame, from its doubled header byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LegacyKind {
    /// `DB DB`: read (BLE), answered with the status frame.
    ReadBle,
    /// `5A 5A`: read (RS485), answered with the status frame.
    ReadSerial,
    /// `A5 A5`: write to the BMS.
    Write,
}

impl LegacyKind {
    /// The header byte.
    pub const fn byte(self) -> u8 {
        match self {
            LegacyKind::ReadBle => 0xDB,
            LegacyKind::ReadSerial => 0x5A,
            LegacyKind::Write => 0xA5,
        }
    }
}

/// A legacy 6-byte request or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LegacyRequest {
    /// Read or write.
    pub kind: LegacyKind,
    /// Address byte.
    pub address: u8,
    /// Value (big-endian on the wire).
    pub value: u16,
}

impl LegacyRequest {
    /// Frame length.
    pub const LEN: usize = 6;

    /// Checks and decodes 6 bytes.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] for fewer than 6 bytes, [`DecodeError::Malformed`] for an
    /// unknown or undoubled header, [`DecodeError::Checksum`] for a wrong sum.
    pub fn parse(b: &[u8]) -> Result<LegacyRequest, DecodeError> {
        let b = b.get(..Self::LEN).ok_or(DecodeError::Truncated)?;
        let kind = match (b[0], b[1]) {
            (0xDB, 0xDB) => LegacyKind::ReadBle,
            (0x5A, 0x5A) => LegacyKind::ReadSerial,
            (0xA5, 0xA5) => LegacyKind::Write,
            _ => return Err(DecodeError::Malformed),
        };
        if b[2].wrapping_add(b[3]).wrapping_add(b[4]) != b[5] {
            return Err(DecodeError::Checksum);
        }
        Ok(LegacyRequest {
            kind,
            address: b[2],
            value: u16::from_be_bytes([b[3], b[4]]),
        })
    }

    /// The 6 bytes of this request.
    pub fn to_bytes(&self) -> [u8; 6] {
        let h = self.kind.byte();
        let [hi, lo] = self.value.to_be_bytes();
        [
            h,
            h,
            self.address,
            hi,
            lo,
            self.address.wrapping_add(hi).wrapping_add(lo),
        ]
    }
}

/// `true` when the 16-bit sum of bytes 4..138 matches the big-endian checksum at 138.
pub fn legacy_checksum_ok(frame: &[u8]) -> bool {
    frame.len() == LEGACY_STATUS_LEN
        && frame[..4] == LEGACY_STATUS_HEADER
        && legacy_sum(&frame[4..138]) == u16::from_be_bytes([frame[138], frame[139]])
}

fn legacy_sum(b: &[u8]) -> u16 {
    b.iter().fold(0u16, |a, &x| a.wrapping_add(x as u16))
}

/// The legacy status frame's fields before the checksum (bytes 0..138), big-endian; see the
/// table above and [`Values`].
const LEGACY_FIELDS: &[(u8, u8)] = &[
    (V_LEGACY_HEADER, 4),
    (V_PACK_DV, 2),
    (V_CELLS, LEGACY_CELL_SLOTS as u8),
    (V_CURRENT_DA32, 4),
    (V_SOC, 1),
    (V_DESIGN_UAH, 4),
    (V_REMAINING_UAH, 4),
    (V_CYCLE_MAH, 4),
    (V_RUNTIME_S, 4),
    (V_MOS_TEMP, 2),
    (V_BALANCER_TEMP, 2),
    (V_T1, 2),
    (V_T2, 2),
    (V_TEMP_ABSENT, 2),
    (V_TEMP_ABSENT, 2),
    (V_CHARGE_MOS, 1),
    (V_DISCHARGE_MOS, 1),
    (V_BALANCER, 1),
    (V_ZERO, 5), // tyre length, pulses per week, relay
    (V_POWER_W, 4),
    (V_MAX_NUMBER, 1),
    (V_MAX_MV, 2),
    (V_MIN_NUMBER, 1),
    (V_MIN_MV, 2),
    (V_AVERAGE_MV, 2),
    (V_CELL_COUNT, 1),
    (V_ZERO, 8), // MOSFET voltages, comparator
    (V_BALANCE_MASK, 4),
    (V_ZERO, 2), // system log
];

/// Writes the legacy status frame of `t` (what `LegacyStatusRepr::from_telemetry(t).emit(out)`
/// writes) into `out`; returns 140.
pub(crate) fn emit_legacy_status(t: &Telemetry, out: &mut [u8]) -> Result<usize, EmitError> {
    let b = out
        .get_mut(..LEGACY_STATUS_LEN)
        .ok_or(EmitError::BufferTooSmall)?;
    let n = Values::of(t, &StatusOptions::default()).write(LEGACY_FIELDS, true, b);
    debug_assert_eq!(n, 138);
    seal_legacy(b);
    Ok(LEGACY_STATUS_LEN)
}

/// Writes the checksum of a 140-byte legacy status frame.
fn seal_legacy(b: &mut [u8]) {
    let sum = legacy_sum(b.get(4..138).unwrap_or_default());
    if let Some(s) = b.get_mut(138..140) {
        s.copy_from_slice(&sum.to_be_bytes());
    }
}

/// A decoded legacy status frame at wire resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LegacyStatusRepr {
    /// Pack voltage, 100 mV.
    pub pack_voltage_dv: u16,
    /// Cell voltages, mV (`cell_count` of them).
    pub cells: Vec<u16, LEGACY_CELL_SLOTS>,
    /// Current, 100 mA, positive = discharge.
    pub current_da: i32,
    /// SOC, %.
    pub soc_percent: u8,
    /// Design capacity, µAh.
    pub design_capacity_uah: u32,
    /// Remaining capacity, µAh.
    pub remaining_uah: u32,
    /// Cycle capacity, mAh.
    pub cycle_capacity_mah: u32,
    /// Runtime, s.
    pub runtime_s: u32,
    /// Six temperatures, °C (MOSFET, balancer, T1..T4).
    pub temps_c: [i16; 6],
    /// Charge MOSFET status code.
    pub charge_mos: u8,
    /// Discharge MOSFET status code.
    pub discharge_mos: u8,
    /// Balancer status code.
    pub balancer: u8,
    /// Power, W.
    pub power_w: i32,
    /// Highest cell number (1-based) and mV.
    pub max_cell: (u8, u16),
    /// Lowest cell number (1-based) and mV.
    pub min_cell: (u8, u16),
    /// Average cell, mV.
    pub average_mv: u16,
    /// Balancing mask, bit 0 = cell 1.
    pub balance_mask: u32,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl LegacyStatusRepr {
    /// Builds the legacy status of `t` (same scaling rules as
    /// [`StatusRepr::from_telemetry`](super::status::StatusRepr::from_telemetry)). The legacy
    /// frame has no fault mask: faults show only in the MOSFET status codes.
    pub fn from_telemetry(t: &Telemetry) -> LegacyStatusRepr {
        // The same values as the new status frame, except where the legacy layout differs:
        // pack voltage in 100 mV, the current not saturated to 16 bits, four temperatures.
        let v = Values::of(t, &StatusOptions::default());
        let temp = |i| v.get(i) as i16;
        LegacyStatusRepr {
            pack_voltage_dv: v.get(V_PACK_DV) as u16,
            cells: t.cells().iter().map(|&c| mv16(c)).collect(),
            current_da: v.get(V_CURRENT_DA32) as i32,
            soc_percent: v.get(V_SOC) as u8,
            design_capacity_uah: v.get(V_DESIGN_UAH),
            remaining_uah: v.get(V_REMAINING_UAH),
            cycle_capacity_mah: v.get(V_CYCLE_MAH),
            runtime_s: v.get(V_RUNTIME_S),
            temps_c: [
                temp(V_MOS_TEMP),
                temp(V_BALANCER_TEMP),
                temp(V_T1),
                temp(V_T2),
                TEMP_ABSENT,
                TEMP_ABSENT,
            ],
            charge_mos: v.get(V_CHARGE_MOS) as u8,
            discharge_mos: v.get(V_DISCHARGE_MOS) as u8,
            balancer: v.get(V_BALANCER) as u8,
            power_w: v.get(V_POWER_W) as i32,
            max_cell: (v.get(V_MAX_NUMBER) as u8, v.get(V_MAX_MV) as u16),
            min_cell: (v.get(V_MIN_NUMBER) as u8, v.get(V_MIN_MV) as u16),
            average_mv: v.get(V_AVERAGE_MV) as u16,
            balance_mask: t.balance_mask,
        }
    }

    /// Checks and decodes a 140-byte frame.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] for a short frame, [`DecodeError::Malformed`] for a wrong
    /// header or a cell count over 32, [`DecodeError::Checksum`] for a wrong sum.
    pub fn parse(b: &[u8]) -> Result<LegacyStatusRepr, DecodeError> {
        if b.len() < LEGACY_STATUS_LEN {
            return Err(DecodeError::Truncated);
        }
        let b = &b[..LEGACY_STATUS_LEN];
        if b[..4] != LEGACY_STATUS_HEADER {
            return Err(DecodeError::Malformed);
        }
        if !legacy_checksum_ok(b) {
            return Err(DecodeError::Checksum);
        }
        let n = b[123] as usize;
        if n > LEGACY_CELL_SLOTS {
            return Err(DecodeError::Malformed);
        }
        let mut temps_c = [0i16; 6];
        for (i, t) in temps_c.iter_mut().enumerate() {
            *t = be16(b, 91 + 2 * i) as i16;
        }
        Ok(LegacyStatusRepr {
            pack_voltage_dv: be16(b, 4),
            cells: (0..n).map(|i| be16(b, 6 + 2 * i)).collect(),
            current_da: be32(b, 70) as i32,
            soc_percent: b[74],
            design_capacity_uah: be32(b, 75),
            remaining_uah: be32(b, 79),
            cycle_capacity_mah: be32(b, 83),
            runtime_s: be32(b, 87),
            temps_c,
            charge_mos: b[103],
            discharge_mos: b[104],
            balancer: b[105],
            power_w: be32(b, 111) as i32,
            max_cell: (b[115], be16(b, 116)),
            min_cell: (b[118], be16(b, 119)),
            average_mv: be16(b, 121),
            balance_mask: be32(b, 132),
        })
    }

    /// Writes the 140-byte frame into `out`; returns 140.
    ///
    /// # Errors
    /// [`EmitError::BufferTooSmall`] when `out` is shorter than 140 bytes.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, EmitError> {
        let b = out
            .get_mut(..LEGACY_STATUS_LEN)
            .ok_or(EmitError::BufferTooSmall)?;
        b.fill(0);
        // In offset order (see the table above); the skipped bytes stay 0.
        let mut w = Writer::new(b);
        w.bytes(&LEGACY_STATUS_HEADER);
        w.be16(self.pack_voltage_dv);
        for &c in &self.cells {
            w.be16(c);
        }
        w.skip(2 * (LEGACY_CELL_SLOTS - self.cells.len()));
        w.be32(self.current_da as u32);
        w.u8(self.soc_percent);
        for v in [
            self.design_capacity_uah,
            self.remaining_uah,
            self.cycle_capacity_mah,
            self.runtime_s,
        ] {
            w.be32(v);
        }
        for t in self.temps_c {
            w.be16(t as u16);
        }
        w.u8(self.charge_mos);
        w.u8(self.discharge_mos);
        w.u8(self.balancer);
        w.skip(5); // tyre length, pulses per week, relay
        w.be32(self.power_w as u32);
        w.u8(self.max_cell.0);
        w.be16(self.max_cell.1);
        w.u8(self.min_cell.0);
        w.be16(self.min_cell.1);
        w.be16(self.average_mv);
        w.u8(self.cells.len() as u8);
        w.skip(8); // MOSFET voltages, comparator
        w.be32(self.balance_mask);
        w.skip(2); // system log
        debug_assert_eq!(w.position(), 138);
        seal_legacy(b);
        Ok(LEGACY_STATUS_LEN)
    }

    /// Pack voltage.
    pub fn pack_voltage(&self) -> MilliVolts {
        MilliVolts::from_mv(self.pack_voltage_dv as u32 * 100)
    }

    /// Current, positive = discharge.
    pub fn current(&self) -> MilliAmps {
        MilliAmps::from_ma(self.current_da.saturating_mul(100))
    }
}
