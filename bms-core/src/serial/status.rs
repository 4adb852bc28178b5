//! The status frame (function `0x11`), answer to the status request (`0x01`).
//!
//! Little-endian; `o = 2·cells + 2·temps`; total length `116 + o`, `LEN = 106 + o`
//! (`ant-protocol-notes.md` §3.2):
//!
//! | offset | type | field |
//! |---|---|---|
//! | 6 | u8 | permissions (`0x05` on real devices) |
//! | 7 | u8 | [`BatteryStatus`] |
//! | 8 / 9 | u8 / u8 | temperature sensors / cells |
//! | 10 / 18 / 26 | u64 ×3 | protection mask, warning mask, reserved ([`faults`]) |
//! | 34 | u16 × cells | cell voltages, mV |
//! | 34+2c | i16 × temps | temperatures, °C (−40 = absent) |
//! | 34+o / 36+o | i16 / i16 | MOSFET / balancer temperature, °C |
//! | 38+o | u16 | pack voltage, 10 mV |
//! | 40+o | i16 | current, 100 mA, **positive = discharge** |
//! | 42+o / 44+o | u16 / u16 | SOC % / SOH % |
//! | 46+o / 47+o | u8 / u8 | **discharge** / **charge** MOSFET status (see below) |
//! | 48+o / 49+o | u8 / u8 | balancer status / reserved |
//! | 50+o / 54+o | u32 / u32 | design / remaining capacity, µAh |
//! | 58+o | u32 | cycle (throughput) capacity, mAh: mean of lifetime charged and discharged |
//! | 62+o / 66+o / 70+o | i32 / u32 / u32 | power W (sign of current) / runtime s / balancing mask |
//! | 74+o .. 84+o | u16 ×6 | max cell mV, its number, min cell mV, its number, delta mV, average mV |
//! | 86+o .. 92+o | u16 ×4 | discharge MOSFET D-S voltage, two drive voltages (100 mV), "F40com" |
//! | 94+o | u16 | [`BatteryType`] |
//! | 96+o / 100+o | u32 / u32 | total discharged / charged, mAh |
//! | 104+o / 108+o | u32 / u32 | total discharge / charge time, s |
//!
//! **MOSFET byte order.** Real devices put the discharge MOSFET status first (both real
//! captures of a full pack read `01 02`: discharge on, charge stopped by over-charge
//! protection). This firmware does the same ([`DISCHARGE_MOS_FIRST`]); aiobmsble and ESPHome
//! read the first byte as the charge MOSFET and so show the two swapped, exactly as they do
//! with real ANT hardware.
//!
//! # Examples
//! ```
//! use bms_core::serial::status::StatusFrame;
//! use bms_core::{MilliAmps, MilliVolts, Telemetry};
//! let mut t = Telemetry::empty(8);
//! for c in t.cells.iter_mut().take(8) { *c = MilliVolts::from_mv(3_300); }
//! t.pack_voltage = MilliVolts::from_mv(26_400);
//! t.current = MilliAmps::from_ma(-12_300); // charging 12.3 A
//! let mut buf = [0u8; 200];
//! let n = StatusFrame::emit(&t, &mut buf)?;
//! assert_eq!(n, 116 + 2 * 8 + 2 * 2);
//! let back = StatusFrame::parse(&buf[..n])?;
//! assert_eq!(back.current().as_ma(), -12_300);
//! assert_eq!(back.cells[0], 3_300);
//! # Ok::<(), bms_core::serial::Error>(())
//! ```

use heapless::Vec;

use super::cursor::Writer;
use super::faults::{self, BALANCER_ACTIVE, BALANCER_OFF, CHARGE_CODES, DISCHARGE_CODES};
use super::frame::{finish_in_place, Function, Packet, OVERHEAD};
use super::{DecodeError, EmitError, Error};
use crate::telemetry::{PowerMode, Telemetry};
use crate::units::{DeciCelsius, MilliAmps, MilliVolts};

/// The discharge MOSFET status is at `46 + o`, the charge MOSFET status at `47 + o`.
pub const DISCHARGE_MOS_FIRST: bool = true;
/// Most cells a status frame can describe here (the protocol's own limit is 32).
pub const MAX_FRAME_CELLS: usize = 32;
/// Most temperature sensors accepted when parsing.
pub const MAX_FRAME_TEMPS: usize = 8;
/// Temperature reported for an absent or unreadable sensor, °C.
pub const TEMP_ABSENT: i16 = -40;
/// Permissions byte sent by this firmware (the value real devices send).
pub const PERMISSIONS: u8 = 0x05;
/// Below this current magnitude the battery status is idle rather than (dis)charging
/// (a real 16ZMUB reported idle at +0.3 A and at +1.0 A).
pub const IDLE_CURRENT: MilliAmps = MilliAmps::from_ma(1_500);
/// Fixed part of the status frame's `LEN`.
pub const BASE_LEN: usize = 106;

enum_with_unknown! {
    /// Battery status byte (offset 7).
    pub enum BatteryStatus(u8) {
        /// No state known yet.
        Unknown0 = 0,
        /// No current.
        Idle = 1,
        /// Charging (aiobmsble: `battery_charging`).
        Charge = 2,
        /// Discharging.
        Discharge = 3,
        /// Sleep or deep sleep.
        Standby = 4,
        /// A fault is active and no current flows.
        Error = 5,
    }
}

enum_with_unknown! {
    /// Cell chemistry code (offset 94 + o).
    pub enum BatteryType(u16) {
        /// Ternary lithium (NMC/NCA).
        Nmc = 0xFAF1,
        /// LiFePO4.
        Lfp = 0xFAF2,
        /// Lithium titanate.
        Lto = 0xFAF3,
        /// Custom settings.
        Custom = 0xFAF4,
    }
}

/// What the status frame needs beyond [`Telemetry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StatusOptions {
    /// Chemistry code to report.
    pub battery_type: BatteryType,
    /// Lifetime discharge time, s.
    pub total_discharge_time_s: u32,
    /// Lifetime charge time, s.
    pub total_charge_time_s: u32,
}

impl Default for StatusOptions {
    fn default() -> Self {
        StatusOptions {
            battery_type: BatteryType::Custom,
            total_discharge_time_s: 0,
            total_charge_time_s: 0,
        }
    }
}

/// A decoded status frame, at wire resolution (so `parse(emit(x)) == x` exactly).
///
/// Field names carry their unit; the accessors convert to the core's unit types.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StatusRepr {
    /// Permissions byte.
    pub permissions: u8,
    /// Battery status.
    pub battery_status: BatteryStatus,
    /// Protection mask (see [`faults`]).
    pub protection_mask: u64,
    /// Warning mask.
    pub warning_mask: u64,
    /// Reserved mask at offset 26 (0 from this firmware).
    pub reserved_mask: u64,
    /// Cell voltages, mV, cell 1 first.
    pub cells: Vec<u16, MAX_FRAME_CELLS>,
    /// Temperature sensors, °C ([`TEMP_ABSENT`] = absent).
    pub temps_c: Vec<i16, MAX_FRAME_TEMPS>,
    /// MOSFET temperature, °C.
    pub mos_temp_c: i16,
    /// Balancer temperature, °C.
    pub balancer_temp_c: i16,
    /// Pack voltage, 10 mV.
    pub pack_voltage_cv: u16,
    /// Current, 100 mA, positive = discharge.
    pub current_da: i16,
    /// State of charge, %.
    pub soc_percent: u16,
    /// State of health, %.
    pub soh_percent: u16,
    /// Discharge MOSFET status code.
    pub discharge_mos: u8,
    /// Charge MOSFET status code.
    pub charge_mos: u8,
    /// Balancer status code.
    pub balancer: u8,
    /// Reserved byte after the balancer status.
    pub reserved: u8,
    /// Design capacity, µAh.
    pub design_capacity_uah: u32,
    /// Remaining capacity, µAh.
    pub remaining_uah: u32,
    /// Cycle (throughput) capacity, mAh.
    pub cycle_capacity_mah: u32,
    /// Power, W (positive = discharge).
    pub power_w: i32,
    /// Runtime, s.
    pub runtime_s: u32,
    /// Cells being balanced, bit 0 = cell 1.
    pub balance_mask: u32,
    /// Highest cell, mV.
    pub max_cell_mv: u16,
    /// Number (1-based) of the highest cell.
    pub max_cell_number: u16,
    /// Lowest cell, mV.
    pub min_cell_mv: u16,
    /// Number (1-based) of the lowest cell.
    pub min_cell_number: u16,
    /// Highest minus lowest, mV.
    pub delta_mv: u16,
    /// Average cell, mV.
    pub average_mv: u16,
    /// Discharge MOSFET drain-source voltage, 100 mV.
    pub dsg_mos_ds_dv: u16,
    /// Discharge MOSFET drive voltage, 100 mV.
    pub dsg_drive_dv: u16,
    /// Charge MOSFET drive voltage, 100 mV.
    pub chg_drive_dv: u16,
    /// "F40com" word.
    pub f40: u16,
    /// Chemistry code.
    pub battery_type: BatteryType,
    /// Lifetime discharged, mAh.
    pub total_discharged_mah: u32,
    /// Lifetime charged, mAh.
    pub total_charged_mah: u32,
    /// Lifetime discharge time, s.
    pub total_discharge_time_s: u32,
    /// Lifetime charge time, s.
    pub total_charge_time_s: u32,
}

fn rd16(b: &[u8], at: usize) -> Result<u16, DecodeError> {
    let s = b.get(at..at + 2).ok_or(DecodeError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}
fn rd32(b: &[u8], at: usize) -> Result<u32, DecodeError> {
    let s = b.get(at..at + 4).ok_or(DecodeError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn rd64(b: &[u8], at: usize) -> Result<u64, DecodeError> {
    Ok(rd32(b, at)? as u64 | (rd32(b, at + 4)? as u64) << 32)
}
fn rd8(b: &[u8], at: usize) -> Result<u8, DecodeError> {
    b.get(at).copied().ok_or(DecodeError::Truncated)
}

/// `v / d` rounded half away from zero (`d > 0`), exact for every `v`.
// 32-bit: the remainder decides the rounding, so no 64-bit division is needed.
pub(crate) const fn div_round(v: i32, d: i32) -> i32 {
    let (q, r) = (v / d, v % d);
    if r.unsigned_abs() >= (d - d / 2) as u32 {
        q + v.signum()
    } else {
        q
    }
}

/// `v / d` rounded half up (`d > 0`), exact for every `v` (no overflow near `u32::MAX`).
// Out of line: one hardware division serves its four callers (each inlined copy divides by
// its constant with a longer multiply sequence).
#[inline(never)]
pub(crate) const fn udiv_round(v: u32, d: u32) -> u32 {
    v / d + (v % d >= d - d / 2) as u32
}

/// Saturated to `u16`.
pub(crate) const fn sat_u16(v: u32) -> u16 {
    if v > u16::MAX as u32 {
        u16::MAX
    } else {
        v as u16
    }
}

/// A cell voltage in whole mV, saturated to the wire's `u16`.
pub(crate) const fn mv16(v: MilliVolts) -> u16 {
    sat_u16(v.as_mv())
}

/// A capacity in µAh, saturated to the wire's `u32`.
pub(crate) const fn uah(v: crate::units::MilliAmpHours) -> u32 {
    v.as_mah().saturating_mul(1000)
}

/// A temperature in whole °C (rounded half away from zero), [`TEMP_ABSENT`] when unknown.
// Out of line: one copy for the four sensors.
#[inline(never)]
pub(crate) fn celsius(t: Option<DeciCelsius>) -> i16 {
    // |deci / 10| <= 3277: always an i16.
    t.map_or(TEMP_ABSENT, |t| div_round(t.as_deci() as i32, 10) as i16)
}

/// Cycle (throughput) capacity: the mean of lifetime charged and discharged, as real devices
/// report it (16ZMUB capture: 4862.650 Ah = (3902.649 + 5822.651) / 2; 14S capture:
/// 21.256 Ah = ⌊(11.901 + 30.612) / 2⌋).
pub(crate) fn cycle_capacity_mah(t: &Telemetry) -> u32 {
    ((t.total_discharged.as_mah() as u64 + t.total_charged.as_mah() as u64) / 2) as u32
}

fn battery_status(t: &Telemetry) -> BatteryStatus {
    let i = t.current.as_ma();
    let idle = i.unsigned_abs() < IDLE_CURRENT.unsigned_abs();
    if !t.faults.is_empty() && idle {
        BatteryStatus::Error
    } else if !idle && i < 0 {
        BatteryStatus::Charge
    } else if !idle {
        BatteryStatus::Discharge
    } else if t.mode != PowerMode::Active {
        BatteryStatus::Standby
    } else {
        BatteryStatus::Idle
    }
}

// The status frames are encoded from a table: every scalar of both frames is computed once
// into `Values` (indexed by the `V_*` constants below), and each frame is a list of
// `(value, width)` fields written in order. One small loop replaces a store sequence per field.

/// Always 0.
pub(crate) const V_ZERO: u8 = 0;
const V_PERMISSIONS: u8 = 1;
const V_BATTERY_STATUS: u8 = 2;
const V_TEMP_COUNT: u8 = 3;
pub(crate) const V_CELL_COUNT: u8 = 4;
const V_PROTECTION_LO: u8 = 5;
const V_PROTECTION_HI: u8 = 6;
const V_WARNING_LO: u8 = 7;
const V_WARNING_HI: u8 = 8;
pub(crate) const V_T1: u8 = 9;
pub(crate) const V_T2: u8 = 10;
pub(crate) const V_MOS_TEMP: u8 = 11;
pub(crate) const V_BALANCER_TEMP: u8 = 12;
const V_PACK_CV: u8 = 13;
const V_CURRENT_DA16: u8 = 14;
pub(crate) const V_SOC: u8 = 15;
const V_SOH: u8 = 16;
pub(crate) const V_DISCHARGE_MOS: u8 = 17;
pub(crate) const V_CHARGE_MOS: u8 = 18;
pub(crate) const V_BALANCER: u8 = 19;
pub(crate) const V_DESIGN_UAH: u8 = 20;
pub(crate) const V_REMAINING_UAH: u8 = 21;
pub(crate) const V_CYCLE_MAH: u8 = 22;
pub(crate) const V_POWER_W: u8 = 23;
pub(crate) const V_RUNTIME_S: u8 = 24;
pub(crate) const V_BALANCE_MASK: u8 = 25;
pub(crate) const V_MAX_MV: u8 = 26;
pub(crate) const V_MAX_NUMBER: u8 = 27;
pub(crate) const V_MIN_MV: u8 = 28;
pub(crate) const V_MIN_NUMBER: u8 = 29;
const V_DELTA_MV: u8 = 30;
pub(crate) const V_AVERAGE_MV: u8 = 31;
const V_DSG_MOS_DS_DV: u8 = 32;
const V_BATTERY_TYPE: u8 = 33;
const V_TOTAL_DISCHARGED: u8 = 34;
const V_TOTAL_CHARGED: u8 = 35;
const V_DISCHARGE_TIME: u8 = 36;
const V_CHARGE_TIME: u8 = 37;
/// Pack voltage in 100 mV (legacy frame).
pub(crate) const V_PACK_DV: u8 = 38;
/// Current in 100 mA, not saturated to 16 bits (legacy frame).
pub(crate) const V_CURRENT_DA32: u8 = 39;
/// [`TEMP_ABSENT`].
pub(crate) const V_TEMP_ABSENT: u8 = 40;
/// The legacy frame's header, `AA 55 AA FF` big-endian.
pub(crate) const V_LEGACY_HEADER: u8 = 41;
const V_COUNT: usize = 42;
/// Pseudo-value of a field list: the cell voltages, 2 bytes each; the field's width is the
/// number of slots (0: one per cell; more: the slots past the last cell are 0).
pub(crate) const V_CELLS: u8 = 0xFF;

/// The fields of the status frame's payload (`LEN` bytes from offset 6), little-endian;
/// the 64-bit masks are two 32-bit halves, the temperatures follow the cells.
const STATUS_FIELDS: &[(u8, u8)] = &[
    (V_PERMISSIONS, 1),
    (V_BATTERY_STATUS, 1),
    (V_TEMP_COUNT, 1),
    (V_CELL_COUNT, 1),
    (V_PROTECTION_LO, 4),
    (V_PROTECTION_HI, 4),
    (V_WARNING_LO, 4),
    (V_WARNING_HI, 4),
    (V_ZERO, 4),
    (V_ZERO, 4),
    (V_CELLS, 0),
    (V_T1, 2),
    (V_T2, 2),
    (V_MOS_TEMP, 2),
    (V_BALANCER_TEMP, 2),
    (V_PACK_CV, 2),
    (V_CURRENT_DA16, 2),
    (V_SOC, 2),
    (V_SOH, 2),
    (V_DISCHARGE_MOS, 1),
    (V_CHARGE_MOS, 1),
    (V_BALANCER, 1),
    (V_ZERO, 1),
    (V_DESIGN_UAH, 4),
    (V_REMAINING_UAH, 4),
    (V_CYCLE_MAH, 4),
    (V_POWER_W, 4),
    (V_RUNTIME_S, 4),
    (V_BALANCE_MASK, 4),
    (V_MAX_MV, 2),
    (V_MAX_NUMBER, 2),
    (V_MIN_MV, 2),
    (V_MIN_NUMBER, 2),
    (V_DELTA_MV, 2),
    (V_AVERAGE_MV, 2),
    (V_DSG_MOS_DS_DV, 2),
    (V_ZERO, 6), // drive voltages, "F40com"
    (V_BATTERY_TYPE, 2),
    (V_TOTAL_DISCHARGED, 4),
    (V_TOTAL_CHARGED, 4),
    (V_DISCHARGE_TIME, 4),
    (V_CHARGE_TIME, 4),
];

// The status frame's charge/discharge order is fixed by the table above.
const _: () = assert!(DISCHARGE_MOS_FIRST);
// The temperatures are filled in a loop over consecutive values.
const _: () = assert!(V_T2 == V_T1 + 1 && V_MOS_TEMP == V_T1 + 2 && V_BALANCER_TEMP == V_T1 + 3);

/// Every scalar of the status frames of one [`Telemetry`], at wire resolution (signed
/// values sign-extended to 32 bits).
pub(crate) struct Values<'a> {
    v: [u32; V_COUNT],
    cells: &'a [MilliVolts],
}

impl<'a> Values<'a> {
    /// The values reported for `t` (scaling rules: [`StatusRepr::from_telemetry`]).
    pub(crate) fn of(t: &'a Telemetry, opts: &StatusOptions) -> Self {
        let mut values = Values {
            v: [0; V_COUNT],
            cells: t.cells(),
        };
        values.fill(t, opts);
        values
    }

    // Out of line and in place: shared by both status frames, and the array is not copied.
    #[inline(never)]
    fn fill(&mut self, t: &Telemetry, opts: &StatusOptions) {
        let cells = self.cells;
        let [(max, imax), (min, imin)] = crate::event_log::cell_extremes(t);
        let (max, min) = (mv16(max), mv16(min));
        let sum: u64 = cells.iter().map(|c| c.as_mv() as u64).sum();
        // Rounded down, as the real device does (52 840 mV / 16 cells -> 3302), saturated to
        // the wire's u16. 32-bit division: below `u16::MAX · n` the sum fits 32 bits.
        let n = cells.len() as u32;
        let average = if sum >= u64::from(n) * u64::from(u16::MAX) {
            u32::from(u16::MAX) * (n != 0) as u32
        } else {
            sum as u32 / n.max(1)
        };
        // Pack voltage × current exceeds 32 bits: the frame's one 64-bit division.
        let power_uw = t.pack_voltage.as_mv() as i64 * t.current.as_ma() as i64;
        let half = if power_uw >= 0 { 500_000 } else { -500_000 };
        let power_w = (power_uw + half) / 1_000_000;
        let (pack, load) = (t.pack_voltage.as_mv(), t.load_voltage.as_mv());
        let current_da = div_round(t.current.as_ma(), 100);
        let protection = faults::fault_mask(t.faults);
        let warning = faults::fault_mask(t.warnings);
        let v = &mut self.v;
        v[V_PERMISSIONS as usize] = PERMISSIONS as u32;
        v[V_BATTERY_STATUS as usize] = u8::from(battery_status(t)) as u32;
        v[V_TEMP_COUNT as usize] = t.cell_temps.len() as u32;
        v[V_CELL_COUNT as usize] = cells.len() as u32;
        v[V_PROTECTION_LO as usize] = protection as u32;
        v[V_PROTECTION_HI as usize] = (protection >> 32) as u32;
        v[V_WARNING_LO as usize] = warning as u32;
        v[V_WARNING_HI as usize] = (warning >> 32) as u32;
        // The four temperatures are consecutive values: one call in a loop.
        let temps = [t.cell_temps[0], t.cell_temps[1], t.mos_temp, t.balance_temp];
        for (slot, temp) in v[V_T1 as usize..=V_BALANCER_TEMP as usize]
            .iter_mut()
            .zip(temps)
        {
            *slot = celsius(temp) as u32;
        }
        v[V_PACK_CV as usize] = sat_u16(udiv_round(pack, 10)) as u32;
        v[V_CURRENT_DA16 as usize] = current_da.clamp(i16::MIN as i32, i16::MAX as i32) as u32;
        v[V_SOC as usize] = t.soc.as_percent() as u32;
        // At most 6554: always a u16.
        v[V_SOH as usize] = udiv_round(t.soh.as_permille() as u32, 10);
        v[V_DISCHARGE_MOS as usize] =
            faults::mos_code(t.discharge_fet, t.faults, DISCHARGE_CODES) as u32;
        v[V_CHARGE_MOS as usize] = faults::mos_code(t.charge_fet, t.faults, CHARGE_CODES) as u32;
        v[V_BALANCER as usize] = if t.balance_mask != 0 {
            BALANCER_ACTIVE
        } else {
            BALANCER_OFF
        } as u32;
        v[V_DESIGN_UAH as usize] = uah(t.nominal_capacity);
        v[V_REMAINING_UAH as usize] = uah(t.remaining);
        v[V_CYCLE_MAH as usize] = cycle_capacity_mah(t);
        v[V_POWER_W as usize] = power_w.clamp(i32::MIN as i64, i32::MAX as i64) as u32;
        v[V_RUNTIME_S as usize] = (t.now.as_millis() / 1000).min(u32::MAX as u64) as u32;
        v[V_BALANCE_MASK as usize] = t.balance_mask;
        v[V_MAX_MV as usize] = max as u32;
        v[V_MAX_NUMBER as usize] = (imax + 1) as u32;
        v[V_MIN_MV as usize] = min as u32;
        v[V_MIN_NUMBER as usize] = (imin + 1) as u32;
        v[V_DELTA_MV as usize] = max.saturating_sub(min) as u32;
        v[V_AVERAGE_MV as usize] = average;
        // A load above the pack reads 0, as a negative value rounds to at most 0.
        v[V_DSG_MOS_DS_DV as usize] =
            sat_u16(pack.checked_sub(load).map_or(0, |v| udiv_round(v, 100))) as u32;
        v[V_BATTERY_TYPE as usize] = u16::from(opts.battery_type) as u32;
        v[V_TOTAL_DISCHARGED as usize] = t.total_discharged.as_mah();
        v[V_TOTAL_CHARGED as usize] = t.total_charged.as_mah();
        v[V_DISCHARGE_TIME as usize] = opts.total_discharge_time_s;
        v[V_CHARGE_TIME as usize] = opts.total_charge_time_s;
        v[V_PACK_DV as usize] = sat_u16(udiv_round(pack, 100)) as u32;
        v[V_CURRENT_DA32 as usize] = current_da as u32;
        v[V_TEMP_ABSENT as usize] = TEMP_ABSENT as u32;
        v[V_LEGACY_HEADER as usize] = u32::from_be_bytes(super::legacy::LEGACY_STATUS_HEADER);
    }

    /// Value `i` (0 for an index past the table).
    pub(crate) fn get(&self, i: u8) -> u32 {
        self.v.get(i as usize).copied().unwrap_or(0)
    }

    /// Writes `fields` in order from `out[0]`, big-endian when `big`; returns the bytes
    /// written (bytes past the end of `out` are dropped: callers check the length first).
    // Out of line: the one field writer of both status frames.
    #[inline(never)]
    pub(crate) fn write(&self, fields: &[(u8, u8)], big: bool, out: &mut [u8]) -> usize {
        let mut at = 0;
        let mut put = |v: u32, width: usize| {
            for k in 0..width {
                let byte = if big { width - 1 - k } else { k };
                // Widths above 4 only carry zeros (`V_ZERO`).
                let b = v.checked_shr(8 * byte as u32).unwrap_or(0) as u8;
                if let Some(o) = out.get_mut(at) {
                    *o = b;
                }
                at += 1;
            }
        };
        for &(i, width) in fields {
            if i == V_CELLS {
                let slots = if width == 0 {
                    self.cells.len()
                } else {
                    width as usize
                };
                for k in 0..slots {
                    put(self.cells.get(k).map_or(0, |&c| mv16(c) as u32), 2);
                }
            } else {
                put(self.get(i), width as usize);
            }
        }
        at
    }
}

/// Writes the status frame of `t` (what `StatusRepr::from_telemetry(t, opts).emit(out)`
/// writes) into `out`; returns its length.
pub(crate) fn emit_status(
    t: &Telemetry,
    opts: &StatusOptions,
    out: &mut [u8],
) -> Result<usize, EmitError> {
    let len = BASE_LEN + 2 * t.cells().len() + 2 * t.cell_temps.len();
    let payload = out
        .get_mut(6..OVERHEAD + len)
        .ok_or(EmitError::BufferTooSmall)?;
    let n = Values::of(t, opts).write(STATUS_FIELDS, false, payload);
    debug_assert_eq!(n, len);
    finish_in_place(u8::from(Function::Status), 0, len, out)
}

impl StatusRepr {
    /// Builds the status this BMS reports for `t`.
    ///
    /// Scaling: cells exact (mV); pack voltage to 10 mV, current to 100 mA, temperatures to
    /// 1 °C, SOC/SOH to 1 %, all rounded half away from zero; capacities exact; power is
    /// `pack voltage × current`, rounded to 1 W; runtime is `t.now` in seconds. Two temperature
    /// sensors (`t.cell_temps`), absent ones as [`TEMP_ABSENT`]. Fields the core does not
    /// measure (MOSFET drive voltages, "F40com") are 0; the discharge MOSFET D-S voltage is
    /// `pack − load`. Average cell voltage is rounded down and max/min numbers are 1-based,
    /// as on real devices.
    ///
    /// Battery status: [`BatteryStatus::Error`] when a fault is active and |I| is below
    /// [`IDLE_CURRENT`]; else charge or discharge by the current's sign when |I| ≥
    /// [`IDLE_CURRENT`]; else [`BatteryStatus::Standby`] in sleep modes, [`BatteryStatus::Idle`]
    /// otherwise. MOSFET and balancer codes and the masks follow [`faults`].
    pub fn from_telemetry(t: &Telemetry, opts: &StatusOptions) -> StatusRepr {
        let v = Values::of(t, opts);
        let mut cells: Vec<u16, MAX_FRAME_CELLS> = Vec::new();
        for &c in t.cells().iter().take(MAX_FRAME_CELLS) {
            // `take` bounds the count: the push cannot fail.
            let _ = cells.push(mv16(c));
        }
        let temps = [v.get(V_T1) as i16, v.get(V_T2) as i16];
        // Two sensors, eight slots: cannot fail.
        let temps_c = Vec::from_slice(&temps).unwrap_or_default();
        let mask = |lo: u8, hi: u8| u64::from(v.get(lo)) | u64::from(v.get(hi)) << 32;
        StatusRepr {
            permissions: v.get(V_PERMISSIONS) as u8,
            battery_status: BatteryStatus::from(v.get(V_BATTERY_STATUS) as u8),
            protection_mask: mask(V_PROTECTION_LO, V_PROTECTION_HI),
            warning_mask: mask(V_WARNING_LO, V_WARNING_HI),
            reserved_mask: 0,
            cells,
            temps_c,
            mos_temp_c: v.get(V_MOS_TEMP) as i16,
            balancer_temp_c: v.get(V_BALANCER_TEMP) as i16,
            pack_voltage_cv: v.get(V_PACK_CV) as u16,
            current_da: v.get(V_CURRENT_DA16) as i16,
            soc_percent: v.get(V_SOC) as u16,
            soh_percent: v.get(V_SOH) as u16,
            discharge_mos: v.get(V_DISCHARGE_MOS) as u8,
            charge_mos: v.get(V_CHARGE_MOS) as u8,
            balancer: v.get(V_BALANCER) as u8,
            reserved: 0,
            design_capacity_uah: v.get(V_DESIGN_UAH),
            remaining_uah: v.get(V_REMAINING_UAH),
            cycle_capacity_mah: v.get(V_CYCLE_MAH),
            power_w: v.get(V_POWER_W) as i32,
            runtime_s: v.get(V_RUNTIME_S),
            balance_mask: v.get(V_BALANCE_MASK),
            max_cell_mv: v.get(V_MAX_MV) as u16,
            max_cell_number: v.get(V_MAX_NUMBER) as u16,
            min_cell_mv: v.get(V_MIN_MV) as u16,
            min_cell_number: v.get(V_MIN_NUMBER) as u16,
            delta_mv: v.get(V_DELTA_MV) as u16,
            average_mv: v.get(V_AVERAGE_MV) as u16,
            dsg_mos_ds_dv: v.get(V_DSG_MOS_DS_DV) as u16,
            dsg_drive_dv: 0,
            chg_drive_dv: 0,
            f40: 0,
            battery_type: opts.battery_type,
            total_discharged_mah: v.get(V_TOTAL_DISCHARGED),
            total_charged_mah: v.get(V_TOTAL_CHARGED),
            total_discharge_time_s: opts.total_discharge_time_s,
            total_charge_time_s: opts.total_charge_time_s,
        }
    }

    /// Offset `o` of the fields after the temperatures.
    fn o(&self) -> usize {
        2 * self.cells.len() + 2 * self.temps_c.len()
    }

    /// The frame length this status emits to: `116 + o`.
    pub fn buffer_len(&self) -> usize {
        OVERHEAD + BASE_LEN + self.o()
    }

    /// Decodes a checked status packet.
    ///
    /// # Errors
    /// [`DecodeError::WrongFunction`] when it is not a `0x11` frame; [`DecodeError::Malformed`]
    /// when `LEN` does not match the cell and sensor counts, or those exceed
    /// [`MAX_FRAME_CELLS`] / [`MAX_FRAME_TEMPS`].
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<StatusRepr, DecodeError> {
        if p.function() != Function::Status {
            return Err(DecodeError::WrongFunction);
        }
        let b = p.payload();
        // Offsets below are frame offsets; the payload starts at 6.
        let at = |off: usize| off - 6;
        let temps = rd8(b, at(8))? as usize;
        let ncells = rd8(b, at(9))? as usize;
        if temps > MAX_FRAME_TEMPS || ncells > MAX_FRAME_CELLS {
            return Err(DecodeError::Malformed);
        }
        let o = 2 * ncells + 2 * temps;
        if b.len() != BASE_LEN + o {
            return Err(DecodeError::Malformed);
        }
        let mut cells = Vec::new();
        for i in 0..ncells {
            cells
                .push(rd16(b, at(34) + 2 * i)?)
                .map_err(|_| DecodeError::Malformed)?;
        }
        let mut temps_c = Vec::new();
        for i in 0..temps {
            temps_c
                .push(rd16(b, at(34) + 2 * ncells + 2 * i)? as i16)
                .map_err(|_| DecodeError::Malformed)?;
        }
        let f = |off: usize| at(off) + o;
        let (discharge_mos, charge_mos) = if DISCHARGE_MOS_FIRST {
            (rd8(b, f(46))?, rd8(b, f(47))?)
        } else {
            (rd8(b, f(47))?, rd8(b, f(46))?)
        };
        Ok(StatusRepr {
            permissions: rd8(b, at(6))?,
            battery_status: BatteryStatus::from(rd8(b, at(7))?),
            protection_mask: rd64(b, at(10))?,
            warning_mask: rd64(b, at(18))?,
            reserved_mask: rd64(b, at(26))?,
            cells,
            temps_c,
            mos_temp_c: rd16(b, f(34))? as i16,
            balancer_temp_c: rd16(b, f(36))? as i16,
            pack_voltage_cv: rd16(b, f(38))?,
            current_da: rd16(b, f(40))? as i16,
            soc_percent: rd16(b, f(42))?,
            soh_percent: rd16(b, f(44))?,
            discharge_mos,
            charge_mos,
            balancer: rd8(b, f(48))?,
            reserved: rd8(b, f(49))?,
            design_capacity_uah: rd32(b, f(50))?,
            remaining_uah: rd32(b, f(54))?,
            cycle_capacity_mah: rd32(b, f(58))?,
            power_w: rd32(b, f(62))? as i32,
            runtime_s: rd32(b, f(66))?,
            balance_mask: rd32(b, f(70))?,
            max_cell_mv: rd16(b, f(74))?,
            max_cell_number: rd16(b, f(76))?,
            min_cell_mv: rd16(b, f(78))?,
            min_cell_number: rd16(b, f(80))?,
            delta_mv: rd16(b, f(82))?,
            average_mv: rd16(b, f(84))?,
            dsg_mos_ds_dv: rd16(b, f(86))?,
            dsg_drive_dv: rd16(b, f(88))?,
            chg_drive_dv: rd16(b, f(90))?,
            f40: rd16(b, f(92))?,
            battery_type: BatteryType::from(rd16(b, f(94))?),
            total_discharged_mah: rd32(b, f(96))?,
            total_charged_mah: rd32(b, f(100))?,
            total_discharge_time_s: rd32(b, f(104))?,
            total_charge_time_s: rd32(b, f(108))?,
        })
    }

    /// Writes the whole frame (`7E A1 11 00 00 LEN … CRC AA 55`) into `out`.
    ///
    /// Returns the frame length, [`StatusRepr::buffer_len`].
    ///
    /// # Errors
    /// [`EmitError::BufferTooSmall`] when `out` is shorter than [`StatusRepr::buffer_len`].
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, EmitError> {
        let len = BASE_LEN + self.o();
        let frame = out
            .get_mut(..OVERHEAD + len)
            .ok_or(EmitError::BufferTooSmall)?;
        // The fields follow each other without gaps from offset 6 (see the table above).
        let mut w = Writer::new(frame.get_mut(6..).unwrap_or_default());
        w.bytes(&[
            self.permissions,
            u8::from(self.battery_status),
            self.temps_c.len() as u8,
            self.cells.len() as u8,
        ]);
        w.le64(self.protection_mask);
        w.le64(self.warning_mask);
        w.le64(self.reserved_mask);
        for &c in &self.cells {
            w.le16(c);
        }
        for &t in &self.temps_c {
            w.le16(t as u16);
        }
        let words = [
            self.mos_temp_c as u16,
            self.balancer_temp_c as u16,
            self.pack_voltage_cv,
            self.current_da as u16,
            self.soc_percent,
            self.soh_percent,
        ];
        for v in words {
            w.le16(v);
        }
        let (first, second) = if DISCHARGE_MOS_FIRST {
            (self.discharge_mos, self.charge_mos)
        } else {
            (self.charge_mos, self.discharge_mos)
        };
        w.bytes(&[first, second, self.balancer, self.reserved]);
        let longs = [
            self.design_capacity_uah,
            self.remaining_uah,
            self.cycle_capacity_mah,
            self.power_w as u32,
            self.runtime_s,
            self.balance_mask,
        ];
        for v in longs {
            w.le32(v);
        }
        let words = [
            self.max_cell_mv,
            self.max_cell_number,
            self.min_cell_mv,
            self.min_cell_number,
            self.delta_mv,
            self.average_mv,
            self.dsg_mos_ds_dv,
            self.dsg_drive_dv,
            self.chg_drive_dv,
            self.f40,
            u16::from(self.battery_type),
        ];
        for v in words {
            w.le16(v);
        }
        let longs = [
            self.total_discharged_mah,
            self.total_charged_mah,
            self.total_discharge_time_s,
            self.total_charge_time_s,
        ];
        for v in longs {
            w.le32(v);
        }
        debug_assert_eq!(w.position(), len);
        finish_in_place(u8::from(Function::Status), 0, len, out)
    }

    /// Pack voltage.
    pub fn pack_voltage(&self) -> MilliVolts {
        MilliVolts::from_mv(self.pack_voltage_cv as u32 * 10)
    }

    /// Current in the core's convention (positive = discharge; the frame uses the same).
    pub fn current(&self) -> MilliAmps {
        MilliAmps::from_ma(self.current_da as i32 * 100)
    }

    /// Active faults according to the protection mask.
    pub fn faults(&self) -> crate::protect::FaultSet {
        faults::faults_from_mask(self.protection_mask)
    }
}

/// The simulator's and firmware's entry point: one status frame from one [`Telemetry`].
#[derive(Debug, Clone, Copy)]
pub struct StatusFrame;

impl StatusFrame {
    /// Longest status frame this firmware emits (20 cells, 2 sensors).
    pub const MAX_LEN: usize = OVERHEAD + BASE_LEN + 2 * crate::measure::MAX_CELLS + 4;

    /// Emits the status frame for `t` with default [`StatusOptions`]; returns its length.
    ///
    /// # Errors
    /// [`Error::Emit`] when `out` is too short (use [`StatusFrame::MAX_LEN`]).
    pub fn emit(t: &Telemetry, out: &mut [u8]) -> Result<usize, Error> {
        Self::emit_with(t, &StatusOptions::default(), out)
    }

    /// Emits the status frame for `t` with `opts`; returns its length.
    ///
    /// # Errors
    /// [`Error::Emit`] when `out` is too short.
    pub fn emit_with(t: &Telemetry, opts: &StatusOptions, out: &mut [u8]) -> Result<usize, Error> {
        Ok(emit_status(t, opts, out)?)
    }

    /// Checks and decodes one status frame (`7E A1 11 …`).
    ///
    /// # Errors
    /// [`Error::Decode`] for a bad frame or a frame of another function.
    pub fn parse(frame: &[u8]) -> Result<StatusRepr, Error> {
        Ok(StatusRepr::parse(&Packet::new_checked(frame)?)?)
    }
}

impl core::fmt::Display for StatusRepr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "ANT status {}S {}.{:02} V {} dA SOC {} % dsg/chg MOS {}/{} max {} mV #{} min {} mV #{} prot 0x{:X} warn 0x{:X}",
            self.cells.len(),
            self.pack_voltage_cv / 100,
            self.pack_voltage_cv % 100,
            self.current_da,
            self.soc_percent,
            self.discharge_mos,
            self.charge_mos,
            self.max_cell_mv,
            self.max_cell_number,
            self.min_cell_mv,
            self.min_cell_number,
            self.protection_mask,
            self.warning_mask,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;
    use crate::protect::Fault;
    use crate::units::Soc;

    fn pack(n: u8, mv: u32, ma: i32) -> Telemetry {
        let mut t = Telemetry::empty(n);
        for c in t.cells.iter_mut().take(n as usize) {
            *c = MilliVolts::from_mv(mv);
        }
        t.pack_voltage = MilliVolts::from_mv(mv * n as u32);
        t.current = MilliAmps::from_ma(ma);
        t
    }

    #[test]
    fn test_emit_layout_8s() {
        let mut t = pack(8, 3_300, -12_345);
        t.soc = Soc::try_from_permille(575).unwrap();
        t.charge_fet = true;
        t.faults.insert(Fault::CellUv);
        let mut b = [0u8; StatusFrame::MAX_LEN];
        let n = StatusFrame::emit(&t, &mut b).unwrap();
        // 8 cells, 2 sensors: o = 20, length 136, LEN 0x7E (batmon's 8S fixture has the same).
        assert_eq!(n, 136);
        assert_eq!(&b[..6], &[0x7E, 0xA1, 0x11, 0x00, 0x00, 0x7E]);
        assert_eq!(b[7], 2, "charging");
        assert_eq!((b[8], b[9]), (2, 8));
        assert_eq!(b[10], 1 << 2, "cell_uv is protection bit 2");
        assert_eq!(&b[34..36], &3_300u16.to_le_bytes());
        let o = 20;
        assert_eq!(
            &b[34 + o..36 + o],
            &(-40i16).to_le_bytes(),
            "MOS sensor absent"
        );
        assert_eq!(&b[38 + o..40 + o], &2_640u16.to_le_bytes());
        assert_eq!(
            &b[40 + o..42 + o],
            &(-123i16).to_le_bytes(),
            "-12.345 A -> -12.3 A"
        );
        assert_eq!(&b[42 + o..44 + o], &58u16.to_le_bytes(), "57.5 % -> 58 %");
        assert_eq!(
            (b[46 + o], b[47 + o]),
            (2, 1),
            "discharge: under-voltage; charge: on"
        );
        assert_eq!(&b[n - 2..n], &[0xAA, 0x55]);
    }

    #[test]
    fn test_emit_rounds_half_away_from_zero() {
        let mut t = pack(16, 3_300, 50);
        t.cell_temps = [
            Some(DeciCelsius::from_deci(-45)),
            Some(DeciCelsius::from_deci(44)),
        ];
        let r = StatusRepr::from_telemetry(&t, &StatusOptions::default());
        assert_eq!(r.current_da, 1);
        assert_eq!(&r.temps_c[..], &[-5, 4]);
        assert_eq!(r.battery_status, BatteryStatus::Idle);
        let r = StatusRepr::from_telemetry(&pack(16, 3_300, -50), &StatusOptions::default());
        assert_eq!(r.current_da, -1);
    }

    /// The 64-bit rounding the 32-bit helpers replace.
    fn div_round_wide(v: i64, d: i64) -> i64 {
        if v >= 0 {
            (v + d / 2) / d
        } else {
            (v - d / 2) / d
        }
    }

    proptest::proptest! {
        #[test]
        fn rounding_helpers_equal_the_wide_division(v: i32, u: u32, k in 0usize..4) {
            let d = [10, 100, 1_000, 7][k];
            proptest::prop_assert_eq!(div_round(v, d) as i64, div_round_wide(v as i64, d as i64));
            proptest::prop_assert_eq!(udiv_round(u, d as u32) as i64, div_round_wide(u as i64, d as i64));
        }
    }

    #[test]
    fn rounding_helpers_at_the_edges() {
        for v in [
            i32::MIN,
            i32::MIN + 1,
            -51,
            -50,
            -49,
            -5,
            0,
            5,
            49,
            50,
            51,
            i32::MAX,
        ] {
            assert_eq!(
                div_round(v, 100) as i64,
                div_round_wide(v as i64, 100),
                "{v}"
            );
        }
        for u in [0, 4, 5, 49, 50, u32::MAX - 50, u32::MAX - 49, u32::MAX] {
            assert_eq!(
                udiv_round(u, 100) as i64,
                div_round_wide(u as i64, 100),
                "{u}"
            );
        }
    }

    #[test]
    fn test_buffer_too_small() {
        let t = pack(20, 3_300, 0);
        let mut b = [0u8; StatusFrame::MAX_LEN - 1];
        assert_eq!(
            StatusFrame::emit(&t, &mut b),
            Err(Error::Emit(EmitError::BufferTooSmall))
        );
        let mut b = [0u8; StatusFrame::MAX_LEN];
        assert_eq!(StatusFrame::emit(&t, &mut b), Ok(StatusFrame::MAX_LEN));
    }
}
