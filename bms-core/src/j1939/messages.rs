//! Battery data messages: HVES1 parameter groups (J1939DA 2018) and proprietary B groups.
//!
//! All multi-byte fields are little-endian. Unused or unknown fields carry the J1939
//! "not available" fill (all ones). Current on the wire is **positive for charging**
//! (SPN 5920), the opposite of the core's convention; the encoders convert.
//!
//! | PGN | Name | Prio | Period | Content |
//! |---|---|---|---|---|
//! | 61584 `F090` | HVES1D1 | 3 | 100 ms | available discharge / charge power (0.05 kW), voltage (0.05 V), current (0.05 A, -1600 A, + = charging) |
//! | 61585 `F091` | HVES1D2 | 3 | 100 ms | SOC (0.0015625 %), highest / lowest cell voltage (1 mV), cell voltage differential status |
//! | 61586 `F092` | HVES1D3 | 3 | 100 ms | highest / lowest / average cell temperature (0.03125 °C, -273 °C) |
//! | 61588 `F094` | HVES1D5 | 3 | 100 ms | discharge / charge current limit (0.05 A, -1600 A) |
//! | 61589 `F095` | HVES1D6 | 3 | 1 s | bus (load) voltage, electronics (MOSFET) and pack temperature (1 °C, -40 °C) |
//! | 61590 `F096` | HVES1S1 | 3 | 100 ms | pre-charge, balancing active, bus connection and operational status |
//! | 61600 `F0A0` | HVES1D7 | 3 | 1 s | discharge / charge energy (1 Wh, 24 bit), max charge voltage limit (0.05 V) |
//! | 65280 `FF00` | BmsCellVoltages | 6 | 2 s, BAM | cell count, 20 × cell voltage (1 mV), `0xFFFF` past the count |
//! | 65281 `FF01` | BmsTemperatures | 6 | 1 s | T1, T2, MOSFET, balancing temperature (0.1 °C, -273.2 °C) |
//! | 65282 `FF02` | BmsStatus | 6 | 100 ms | MOSFETs, power mode, cell count, balancing mask |
//! | 65283 `FF03` | BmsLimits | 6 | 1 s | CVL (0.01 V), CCL, DCL (0.1 A), discharge voltage limit (0.01 V) |
//! | 65284 `FF04` | BmsAlarms | 6 | 1 s | active faults and warnings as bit masks (bit n = `Fault::ALL[n]`) |
//! | 65285 `FF05` | BmsCapacity | 6 | 1 s | SOH (0.1 %), cycles, full and remaining capacity (0.1 Ah) |
//!
//! `bms-core/dbc/bms.dbc` describes every one of them; `tests/dbc.rs` decodes what these
//! encoders produce with that file and compares.

use super::id::Pgn;
use crate::measure::MAX_CELLS;
use crate::telemetry::{PowerMode, Telemetry};
use crate::units::DeciCelsius;

/// Largest valid value of a 16-bit J1939 parameter (`0xFB00..` are error / not available).
const MAX_U16: u32 = 0xFAFF;
/// "Not available" of a 16-bit parameter.
const NA16: u16 = 0xFFFF;
/// Largest valid value of a 24-bit parameter.
const MAX_U24: u64 = 0xFA_FFFF;

/// Length of the [`Message::CellVoltages`] payload: count byte and 20 cells.
pub const CELL_VOLTAGES_LEN: usize = 1 + 2 * MAX_CELLS;

/// A data message the node sends periodically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Message {
    /// HVES1D1, PGN 61584.
    Hves1D1,
    /// HVES1D2, PGN 61585.
    Hves1D2,
    /// HVES1D3, PGN 61586.
    Hves1D3,
    /// HVES1D5, PGN 61588.
    Hves1D5,
    /// HVES1D6, PGN 61589.
    Hves1D6,
    /// HVES1S1, PGN 61590.
    Hves1S1,
    /// HVES1D7, PGN 61600.
    Hves1D7,
    /// Proprietary B 65281: temperatures.
    Temperatures,
    /// Proprietary B 65282: MOSFETs and balancing.
    Status,
    /// Proprietary B 65283: charge / discharge limits.
    Limits,
    /// Proprietary B 65284: faults and warnings.
    Alarms,
    /// Proprietary B 65285: SOH, cycles, capacity.
    Capacity,
    /// Proprietary B 65280: all cell voltages (41 bytes, sent by BAM).
    CellVoltages,
}

impl Message {
    /// The single-frame messages, in the order the scheduler serves them.
    pub const SINGLE_FRAME: [Message; 12] = [
        Message::Hves1D1,
        Message::Hves1D2,
        Message::Hves1D3,
        Message::Hves1D5,
        Message::Hves1S1,
        Message::Status,
        Message::Hves1D6,
        Message::Hves1D7,
        Message::Temperatures,
        Message::Limits,
        Message::Alarms,
        Message::Capacity,
    ];

    /// The parameter group number.
    pub const fn pgn(self) -> Pgn {
        Pgn::from_const(match self {
            Message::Hves1D1 => 0xF090,
            Message::Hves1D2 => 0xF091,
            Message::Hves1D3 => 0xF092,
            Message::Hves1D5 => 0xF094,
            Message::Hves1D6 => 0xF095,
            Message::Hves1S1 => 0xF096,
            Message::Hves1D7 => 0xF0A0,
            Message::CellVoltages => 0xFF00,
            Message::Temperatures => 0xFF01,
            Message::Status => 0xFF02,
            Message::Limits => 0xFF03,
            Message::Alarms => 0xFF04,
            Message::Capacity => 0xFF05,
        })
    }

    /// The message sent under `pgn`, if any.
    pub fn from_pgn(pgn: Pgn) -> Option<Message> {
        Message::SINGLE_FRAME
            .into_iter()
            .chain([Message::CellVoltages])
            .find(|m| m.pgn() == pgn)
    }

    /// The default priority (HVES: 3, proprietary: 6).
    pub const fn priority(self) -> u8 {
        match self {
            Message::Hves1D1
            | Message::Hves1D2
            | Message::Hves1D3
            | Message::Hves1D5
            | Message::Hves1D6
            | Message::Hves1S1
            | Message::Hves1D7 => 3,
            _ => 6,
        }
    }

    /// The transmission period in milliseconds.
    pub const fn period_ms(self) -> u32 {
        match self {
            Message::Hves1D1
            | Message::Hves1D2
            | Message::Hves1D3
            | Message::Hves1D5
            | Message::Hves1S1
            | Message::Status => 100,
            Message::CellVoltages => 2_000,
            _ => 1_000,
        }
    }

    /// Encodes a single-frame message from `t`. [`Message::CellVoltages`] gives its first
    /// eight bytes only; use [`encode_cell_voltages`].
    pub fn encode(self, t: &Telemetry) -> [u8; 8] {
        match Message::SINGLE_FRAME.iter().position(|&m| m == self) {
            Some(i) => encode_single(i, t),
            None => {
                let mut all = [0; CELL_VOLTAGES_LEN];
                encode_cell_voltages(t, &mut all);
                let mut b = [0; 8];
                b.copy_from_slice(&all[..8]);
                b
            }
        }
    }
}

/// Entries of [`ENCODERS`]: a power of two, so that an index masked to it needs no
/// bounds check.
pub(crate) const ENCODER_SLOTS: usize = Message::SINGLE_FRAME.len().next_power_of_two();

/// The encoder of each message of [`Message::SINGLE_FRAME`], in that order, then
/// encoders of "not available" (all `0xFF`) up to [`ENCODER_SLOTS`].
///
/// Trick: a table of functions instead of a `match`: the node indexes it with the
/// message's position (no second dispatch), and each encoder is one shared body.
pub(crate) const ENCODERS: [fn(&Telemetry) -> u64; ENCODER_SLOTS] = {
    let mut e: [fn(&Telemetry) -> u64; ENCODER_SLOTS] = [not_available; ENCODER_SLOTS];
    let list: [fn(&Telemetry) -> u64; Message::SINGLE_FRAME.len()] = [
        hves1d1,
        hves1d2,
        hves1d3,
        hves1d5,
        hves1s1,
        status,
        hves1d6,
        hves1d7,
        temperatures,
        limits,
        alarms,
        capacity,
    ];
    let mut i = 0;
    while i < list.len() {
        e[i] = list[i];
        i += 1;
    }
    e
};

fn not_available(_: &Telemetry) -> u64 {
    u64::MAX
}

/// Encodes message `i` of [`Message::SINGLE_FRAME`] (all `0xFF` past its end).
pub(crate) fn encode_single(i: usize, t: &Telemetry) -> [u8; 8] {
    ENCODERS
        .get(i)
        .map_or(u64::MAX, |encode| encode(t))
        .to_le_bytes()
}

/// Rounded `num / den` (half up), clamped to a valid 16-bit parameter (`den` at most 100).
///
/// Trick: clamping the dividend first keeps `num + den / 2` from overflowing and makes the
/// quotient at most `MAX_U16`, so one add and one multiply-shift (the division by a
/// constant) do it all.
fn scale_u16(num: u32, den: u32) -> u16 {
    ((num.min(MAX_U16 * den) + den / 2) / den) as u16
}

/// Current in the HVES form: 0.05 A/bit, -1600 A offset, from a current positive when
/// charging (the callers negate the core's convention).
fn hves_current(charging_ma: i64) -> u16 {
    const CAP: i64 = MAX_U16 as i64 * 50;
    scale_u16((charging_ma + 1_600_000).clamp(0, CAP) as u32, 50)
}

/// The divisor of [`power_50w`]: 0.05 kW in mV * mA.
const POWER_DIVISOR: u64 = 50_000_000;

/// `mv * ma` in 0.05 kW, rounded, clamped to a valid 16-bit parameter:
/// `round(floor(mv * ma / 10^6) / 50) = floor((mv * ma + D / 2) / D)` with `D = 5 * 10^7`.
fn power_50w(mv: u32, ma: u32) -> u16 {
    const D: u64 = POWER_DIVISOR;
    let x = (u64::from(mv) * u64::from(ma)).min(MAX_U16 as u64 * D) + D / 2;
    // Trick: a 64-bit target divides by the constant with one wide multiply; elsewhere a
    // 64-bit division is a library call, which `div_power_narrow` avoids.
    if cfg!(target_pointer_width = "64") {
        (x / D) as u16
    } else {
        div_power_narrow(x) as u16
    }
}

/// `x / D` for `x < 2^42` with 32x32 multiplies only (`D` = [`POWER_DIVISOR`]).
///
/// Trick: the estimate `(x >> 10) * floor(2^42 / D) >> 32` is less than one below `x / D`
/// (the ten dropped bits cost under 2^-15, the reciprocal's rounding under 0.94): it is
/// the quotient or one below, and one multiply-and-compare settles it.
fn div_power_narrow(x: u64) -> u64 {
    const D: u64 = POWER_DIVISOR;
    const RECIPROCAL: u64 = (1 << 42) / D;
    let estimate = (u64::from((x >> 10) as u32) * RECIPROCAL) >> 32;
    estimate + u64::from((estimate + 1) * D <= x)
}

fn mv_times_ma_to_w(mv: u32, ma: u32) -> u64 {
    u64::from(mv) * u64::from(ma) / 1_000_000
}

/// Temperature in the HVES cell form: 0.03125 °C/bit, -273 °C.
fn hves_cell_temp(t: DeciCelsius) -> u16 {
    // (deci / 10 + 273) * 32 = (deci + 2730) * 16 / 5
    scale_u16((i32::from(t.as_deci()) + 2_730).max(0) as u32 * 16, 5)
}

/// Temperature in the 1 °C/bit, -40 °C byte form.
fn byte_temp(t: Option<DeciCelsius>) -> u8 {
    match t {
        Some(t) => ((i32::from(t.as_deci()) + 405).max(0) / 10).min(250) as u8,
        None => 0xFF,
    }
}

/// Temperature in the proprietary form: 0.1 °C/bit, -273.2 °C (tenths of a kelvin).
fn deci_kelvin(t: Option<DeciCelsius>) -> u16 {
    match t {
        Some(t) => (i32::from(t.as_deci()) + 2_732).clamp(0, MAX_U16 as i32) as u16,
        None => NA16,
    }
}

/// Trick: every payload is built as one little-endian `u64` (field `k` of 16 bits at
/// `<< 16 * k`): register arithmetic and one store instead of byte-wise writes.
const fn fields16(f: [u16; 4]) -> u64 {
    f[0] as u64 | (f[1] as u64) << 16 | (f[2] as u64) << 32 | (f[3] as u64) << 48
}

/// Bytes `0..n` of `v`, the rest `0xFF` ("not available").
const fn fill_above(v: u64, bytes: u32) -> u64 {
    v | u64::MAX << (8 * bytes)
}

fn hves1d1(t: &Telemetry) -> u64 {
    let v = t.pack_voltage.as_mv();
    fields16([
        power_50w(v, t.limits.discharge_current.unsigned_abs()),
        power_50w(v, t.limits.charge_current.unsigned_abs()),
        scale_u16(v, 50),
        hves_current(-i64::from(t.current.as_ma())),
    ])
}

fn hves1d2(t: &Telemetry) -> u64 {
    let (hi, lo) = match t.cell_extremes() {
        Some((lo, hi)) => (
            hi.as_mv().min(MAX_U16) as u16,
            lo.as_mv().min(MAX_U16) as u16,
        ),
        None => (NA16, NA16),
    };
    let imbalance = crate::protect::Fault::CellImbalance;
    let status = if t.faults.contains(imbalance) {
        2 // external balancing needed
    } else if t.warnings.contains(imbalance) {
        1 // auto-balancing can correct
    } else {
        0
    };
    fill_above(
        fields16([t.soc.as_permille() * 64, hi, lo, 0xF0 | status]),
        7,
    )
}

fn hves1d3(t: &Telemetry) -> u64 {
    match t.temp_range() {
        Some((hi, lo)) => {
            let (h, l) = (hves_cell_temp(hi), hves_cell_temp(lo));
            // Average of the two readings, taken at wire resolution (finer than 0.1 °C).
            let avg = ((u32::from(h) + u32::from(l)) / 2) as u16;
            fill_above(fields16([h, l, avg, 0xFC]), 7) // differential status: within limits
        }
        None => u64::MAX,
    }
}

fn hves1d5(t: &Telemetry) -> u64 {
    let dcl = i64::from(t.limits.discharge_current.unsigned_abs());
    let ccl = i64::from(t.limits.charge_current.unsigned_abs());
    fields16([hves_current(-dcl), hves_current(ccl), NA16, NA16])
}

fn hves1d6(t: &Telemetry) -> u64 {
    let temps = u16::from_le_bytes([
        byte_temp(t.mos_temp),
        byte_temp(t.temp_range().map(|(hi, _)| hi)),
    ]);
    fields16([scale_u16(t.load_voltage.as_mv(), 50), NA16, NA16, temps])
}

fn hves1s1(t: &Telemetry) -> u64 {
    let connected = u64::from(t.charge_fet || t.discharge_fet);
    let operational = if t.faults.is_empty() { 2 } else { 6 };
    // Byte 1 `0xFC | pre-charge`, byte 3 `0x3F | balancing << 6`, byte 5 the status.
    !(0x03 << 8 | 0x03 << 30 | 0xFF << 40)
        | u64::from(t.precharge_fet) << 8
        | u64::from(t.balance_mask != 0) << 30
        | (operational << 4 | connected) << 40
}

fn hves1d7(t: &Telemetry) -> u64 {
    let v = t.pack_voltage.as_mv();
    let remaining = t.remaining.as_mah();
    let to_full = t.full_capacity.as_mah().saturating_sub(remaining);
    let dsg_wh = mv_times_ma_to_w(v, remaining).min(MAX_U24);
    let chg_wh = mv_times_ma_to_w(v, to_full).min(MAX_U24);
    let cvl = scale_u16(t.limits.charge_voltage.as_mv(), 50);
    dsg_wh | chg_wh << 24 | u64::from(cvl) << 48
}

fn temperatures(t: &Telemetry) -> u64 {
    fields16([
        deci_kelvin(t.cell_temps[0]),
        deci_kelvin(t.cell_temps[1]),
        deci_kelvin(t.mos_temp),
        deci_kelvin(t.balance_temp),
    ])
}

/// Power mode code in [`Message::Status`]: 0 active, 1 sleep, 2 deep sleep.
pub const fn power_mode_code(m: PowerMode) -> u8 {
    match m {
        PowerMode::Active => 0,
        PowerMode::Sleep => 1,
        PowerMode::DeepSleep => 2,
    }
}

fn status(t: &Telemetry) -> u64 {
    let flags = 0xE0
        | u8::from(t.charge_fet)
        | u8::from(t.discharge_fet) << 1
        | u8::from(t.precharge_fet) << 2
        | power_mode_code(t.mode) << 3;
    let mask = t.balance_mask & ((1 << MAX_CELLS) - 1);
    fill_above(
        u64::from(flags) | u64::from(t.cell_count) << 8 | u64::from(mask) << 16,
        6,
    )
}

fn limits(t: &Telemetry) -> u64 {
    let l = &t.limits;
    fields16([
        scale_u16(l.charge_voltage.as_mv(), 10),
        scale_u16(l.charge_current.unsigned_abs(), 100),
        scale_u16(l.discharge_current.unsigned_abs(), 100),
        scale_u16(l.discharge_voltage.as_mv(), 10),
    ])
}

fn alarms(t: &Telemetry) -> u64 {
    u64::from(t.faults.bits()) | u64::from(t.warnings.bits()) << 32
}

fn capacity(t: &Telemetry) -> u64 {
    fields16([
        t.soh.as_permille().min(MAX_U16 as u16),
        t.cycles.min(MAX_U16) as u16,
        scale_u16(t.full_capacity.as_mah(), 100),
        scale_u16(t.remaining.as_mah(), 100),
    ])
}

/// Writes the [`Message::CellVoltages`] payload: byte 0 cell count, then cell 1..=20 in
/// mV (u16), `0xFFFF` past the count.
pub fn encode_cell_voltages(t: &Telemetry, out: &mut [u8; CELL_VOLTAGES_LEN]) {
    out.fill(0xFF);
    out[0] = t.cell_count.min(MAX_CELLS as u8);
    // Trick: the slots zipped with the cells, not indexed: no bounds check per cell.
    for (slot, v) in out[1..].chunks_exact_mut(2).zip(t.cells()) {
        slot.copy_from_slice(&(v.as_mv().min(MAX_U16) as u16).to_le_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;
    use crate::units::{MilliAmpHours, MilliAmps, MilliVolts, Soc};

    fn sample() -> Telemetry {
        let mut t = Telemetry::empty(16);
        for (i, c) in t.cells.iter_mut().take(16).enumerate() {
            *c = MilliVolts::from_mv(3_300 + i as u32);
        }
        t.pack_voltage = MilliVolts::from_mv(52_800);
        t.current = MilliAmps::from_ma(-12_340); // charging 12.34 A
        t.soc = Soc::try_from_permille(500).unwrap();
        t.cell_temps = [
            Some(DeciCelsius::from_deci(251)),
            Some(DeciCelsius::from_deci(-55)),
        ];
        t.remaining = MilliAmpHours::from_mah(50_000);
        t.full_capacity = MilliAmpHours::from_mah(100_000);
        t
    }

    /// The 32-bit quotient of [`power_50w`] is exact over its whole range: at and around
    /// every multiple of the divisor near the ends and at random points between.
    #[test]
    fn test_div_power_narrow_is_exact() {
        let top = MAX_U16 as u64 * POWER_DIVISOR + POWER_DIVISOR / 2;
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        let mut points = [0, 1, top, top - 1].to_vec();
        for q in [1, 2, 3, MAX_U16 as u64 - 1, MAX_U16 as u64] {
            let m = q * POWER_DIVISOR;
            points.extend([m - 1, m, m + 1]);
        }
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            points.push(x % (top + 1));
        }
        for p in points {
            assert_eq!(div_power_narrow(p), p / POWER_DIVISOR, "x = {p}");
        }
    }

    #[test]
    fn test_emit_hves1d1() {
        let b = Message::Hves1D1.encode(&sample());
        // 52.8 V / 0.05 = 1056; charging 12.34 A: (12.34 + 1600) / 0.05 = 32246.8 -> 32247.
        assert_eq!(u16::from_le_bytes([b[4], b[5]]), 1056);
        assert_eq!(u16::from_le_bytes([b[6], b[7]]), 32_247);
    }

    #[test]
    fn test_emit_hves1d2_d3() {
        let b = Message::Hves1D2.encode(&sample());
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), 32_000); // 50 % / 0.0015625
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), 3_315);
        assert_eq!(u16::from_le_bytes([b[4], b[5]]), 3_300);
        let b = Message::Hves1D3.encode(&sample());
        // 25.1 °C: (25.1 + 273) * 32 = 9539.2 -> 9539; -5.5 °C: 267.5 * 32 = 8560.
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), 9_539);
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), 8_560);
    }

    #[test]
    fn test_emit_d7_cells() {
        let b = Message::Hves1D7.encode(&sample());
        // 50 Ah * 52.8 V = 2640 Wh both ways.
        assert_eq!(&b[..6], &[0x50, 0x0A, 0x00, 0x50, 0x0A, 0x00]);
        let mut c = [0; CELL_VOLTAGES_LEN];
        encode_cell_voltages(&sample(), &mut c);
        assert_eq!(&c[..5], &[16, 0xE4, 0x0C, 0xE5, 0x0C]);
        assert_eq!(&c[33..], &[0xFF; 8]);
    }

    #[test]
    fn extremes_clamp() {
        let mut t = sample();
        t.current = MilliAmps::from_ma(i32::MAX);
        t.pack_voltage = MilliVolts::from_mv(u32::MAX);
        t.cell_temps = [Some(DeciCelsius::from_deci(i16::MIN)), None];
        t.limits.discharge_current = MilliAmps::from_ma(i32::MIN);
        for m in Message::SINGLE_FRAME {
            let _ = m.encode(&t);
        }
        let b = Message::Hves1D1.encode(&t);
        assert_eq!(u16::from_le_bytes([b[6], b[7]]), 0);
        assert_eq!(u16::from_le_bytes([b[4], b[5]]), 0xFAFF);
    }

    #[test]
    fn pgns_unique() {
        for a in Message::SINGLE_FRAME {
            assert_eq!(Pgn::new(a.pgn().as_u32()), Ok(a.pgn()));
            assert_eq!(Message::from_pgn(a.pgn()), Some(a));
        }
        assert_eq!(Message::from_pgn(Pgn::DM1), None);
    }
}
