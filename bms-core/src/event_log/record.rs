//! [`EventRecord`]: one fixed-size event with a snapshot of the pack, and its binary form.

use core::fmt;

use crate::protect::{Fault, FaultSet};
use crate::telemetry::{PowerMode, Telemetry};
use crate::time::Instant;
use crate::units::{DeciCelsius, MilliAmps, MilliVolts, Soc};

use super::Seq;

enum_with_unknown! {
    /// What a calibration event calibrated.
    pub enum Calibration(u8) {
        /// SOC set to 100 % at the end of a charge.
        SocFull = 0,
        /// SOC set to 0 % at the discharge cut-off.
        SocEmpty = 1,
        /// SOC corrected from the open-circuit voltage after a rest.
        SocOcv = 2,
        /// Full capacity re-learned between two calibrations.
        Capacity = 3,
        /// Current sensor zero offset.
        CurrentOffset = 4,
        /// Current sensor gain.
        CurrentGain = 5,
        /// Cell or pack voltage gain.
        VoltageGain = 6,
        /// Temperature sensor offset.
        TemperatureOffset = 7,
    }
}

enum_with_unknown! {
    /// Why the controller (re)started.
    pub enum ResetCause(u8) {
        /// Power-on reset.
        PowerOn = 0,
        /// Supply brown-out.
        Brownout = 1,
        /// Independent or window watchdog.
        Watchdog = 2,
        /// Software-requested reset (firmware update, command).
        Software = 3,
        /// External reset pin.
        Pin = 4,
        /// Core lockup or hard fault.
        Lockup = 5,
        /// Wake-up from deep sleep.
        DeepSleepWake = 6,
    }
}

/// The kind of an event, with its detail. Decoding from the stored code is total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EventKind {
    /// A fault tripped.
    FaultTrip(Fault),
    /// A fault released.
    FaultRelease(Fault),
    /// A warning (first tier below the fault threshold) became active.
    Warning(Fault),
    /// A warning cleared.
    WarningRelease(Fault),
    /// The MOSFETs changed; the new state.
    Mosfet {
        /// Charge MOSFET closed.
        charge: bool,
        /// Discharge MOSFET closed.
        discharge: bool,
        /// Pre-charge path closed.
        precharge: bool,
    },
    /// The power mode changed; the new mode.
    PowerMode(PowerMode),
    /// A calibration happened ([`EventRecord::value`] may carry the new value).
    Calibration(Calibration),
    /// A parameter changed: its identifier ([`EventRecord::value`] may carry the new value).
    ParamChange(u8),
    /// The controller started; why.
    Reset(ResetCause),
    /// A kind this firmware does not know: the raw code and detail bytes.
    Unknown {
        /// Kind code.
        code: u8,
        /// Detail byte.
        detail: u8,
    },
}

mod code {
    pub const FAULT_TRIP: u8 = 1;
    pub const FAULT_RELEASE: u8 = 2;
    pub const WARNING: u8 = 3;
    pub const WARNING_RELEASE: u8 = 4;
    pub const MOSFET: u8 = 5;
    pub const POWER_MODE: u8 = 6;
    pub const CALIBRATION: u8 = 7;
    pub const PARAM_CHANGE: u8 = 8;
    pub const RESET: u8 = 9;
}

fn mode_code(m: PowerMode) -> u8 {
    match m {
        PowerMode::Active => 0,
        PowerMode::Sleep => 1,
        PowerMode::DeepSleep => 2,
    }
}

impl EventKind {
    /// The stored `(code, detail)` bytes.
    pub fn to_raw(self) -> (u8, u8) {
        match self {
            EventKind::FaultTrip(f) => (code::FAULT_TRIP, f as u8),
            EventKind::FaultRelease(f) => (code::FAULT_RELEASE, f as u8),
            EventKind::Warning(f) => (code::WARNING, f as u8),
            EventKind::WarningRelease(f) => (code::WARNING_RELEASE, f as u8),
            EventKind::Mosfet {
                charge,
                discharge,
                precharge,
            } => (
                code::MOSFET,
                charge as u8 | (discharge as u8) << 1 | (precharge as u8) << 2,
            ),
            EventKind::PowerMode(m) => (code::POWER_MODE, mode_code(m)),
            EventKind::Calibration(c) => (code::CALIBRATION, c.into()),
            EventKind::ParamChange(id) => (code::PARAM_CHANGE, id),
            EventKind::Reset(r) => (code::RESET, r.into()),
            EventKind::Unknown { code, detail } => (code, detail),
        }
    }

    /// Decodes stored bytes; anything unknown becomes [`EventKind::Unknown`].
    ///
    /// # Examples
    /// ```
    /// use bms_core::event_log::EventKind;
    /// use bms_core::Fault;
    /// let k = EventKind::FaultTrip(Fault::Sc);
    /// assert_eq!(EventKind::from_raw(k.to_raw().0, k.to_raw().1), k);
    /// assert_eq!(EventKind::from_raw(1, 200), EventKind::Unknown { code: 1, detail: 200 });
    /// ```
    pub fn from_raw(code: u8, detail: u8) -> Self {
        let fault = Fault::ALL.get(detail as usize).copied();
        let unknown = EventKind::Unknown { code, detail };
        match (code, fault) {
            (code::FAULT_TRIP, Some(f)) => EventKind::FaultTrip(f),
            (code::FAULT_RELEASE, Some(f)) => EventKind::FaultRelease(f),
            (code::WARNING, Some(f)) => EventKind::Warning(f),
            (code::WARNING_RELEASE, Some(f)) => EventKind::WarningRelease(f),
            (code::MOSFET, _) if detail < 8 => EventKind::Mosfet {
                charge: detail & 1 != 0,
                discharge: detail & 2 != 0,
                precharge: detail & 4 != 0,
            },
            (code::POWER_MODE, _) => match detail {
                0 => EventKind::PowerMode(PowerMode::Active),
                1 => EventKind::PowerMode(PowerMode::Sleep),
                2 => EventKind::PowerMode(PowerMode::DeepSleep),
                _ => unknown,
            },
            (code::CALIBRATION, _) => EventKind::Calibration(detail.into()),
            (code::PARAM_CHANGE, _) => EventKind::ParamChange(detail),
            (code::RESET, _) => EventKind::Reset(detail.into()),
            _ => unknown,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::FaultTrip(x) => write!(f, "trip {x}"),
            EventKind::FaultRelease(x) => write!(f, "release {x}"),
            EventKind::Warning(x) => write!(f, "warning {x}"),
            EventKind::WarningRelease(x) => write!(f, "warning_release {x}"),
            EventKind::Mosfet {
                charge,
                discharge,
                precharge,
            } => write!(
                f,
                "mosfet chg={} dsg={} pre={}",
                *charge as u8, *discharge as u8, *precharge as u8
            ),
            EventKind::PowerMode(m) => write!(f, "mode {m}"),
            EventKind::Calibration(c) => write!(f, "calibration {c:?}"),
            EventKind::ParamChange(id) => write!(f, "param {id}"),
            EventKind::Reset(r) => write!(f, "reset {r:?}"),
            EventKind::Unknown { code, detail } => write!(f, "unknown {code}/{detail}"),
        }
    }
}

/// The state of the pack when an event happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Snapshot {
    /// Lowest cell voltage (stored to 1 mV, saturating at 65.535 V).
    pub min_cell: MilliVolts,
    /// 0-based index of the lowest cell.
    pub min_cell_index: u8,
    /// Highest cell voltage.
    pub max_cell: MilliVolts,
    /// 0-based index of the highest cell.
    pub max_cell_index: u8,
    /// Pack voltage.
    pub pack_voltage: MilliVolts,
    /// Pack current, positive = discharge.
    pub current: MilliAmps,
    /// External NTCs T1 and T2.
    pub cell_temps: [Option<DeciCelsius>; 2],
    /// MOSFET temperature.
    pub mos_temp: Option<DeciCelsius>,
    /// State of charge.
    pub soc: Soc,
    /// Faults active at the time.
    pub faults: FaultSet,
    /// Charge MOSFET closed.
    pub charge_fet: bool,
    /// Discharge MOSFET closed.
    pub discharge_fet: bool,
    /// Pre-charge path closed.
    pub precharge_fet: bool,
}

/// The highest and the lowest cell of `t` with their 0-based indices:
/// `[t.max_cell(), t.min_cell()]`.
// Out of line: one copy of the two scans serves the event snapshot, the statistics and the
// serial status frames.
#[inline(never)]
pub(crate) fn cell_extremes(t: &Telemetry) -> [(MilliVolts, usize); 2] {
    [t.max_cell(), t.min_cell()]
}

impl Snapshot {
    /// The snapshot of a [`Telemetry`] report.
    pub fn from_telemetry(t: &Telemetry) -> Self {
        let [(max_cell, max_i), (min_cell, min_i)] = cell_extremes(t);
        // `i16::MIN` encodes "no reading": a (physically impossible) reading of exactly
        // -3276.8 °C is stored one count higher so that it stays a reading.
        let temp = |x: Option<DeciCelsius>| {
            x.map(|d| DeciCelsius::from_deci(d.as_deci().max(NO_TEMP + 1)))
        };
        Snapshot {
            min_cell,
            min_cell_index: min_i as u8,
            max_cell,
            max_cell_index: max_i as u8,
            pack_voltage: t.pack_voltage,
            current: t.current,
            cell_temps: t.cell_temps.map(temp),
            mos_temp: temp(t.mos_temp),
            soc: t.soc,
            faults: t.faults,
            charge_fet: t.charge_fet,
            discharge_fet: t.discharge_fet,
            precharge_fet: t.precharge_fet,
        }
    }
}

/// One event: what, when, how many times, and the pack state at the time.
///
/// # Examples
/// ```
/// use bms_core::event_log::{EventKind, EventRecord};
/// use bms_core::{Fault, Telemetry};
/// let mut t = Telemetry::empty(16);
/// t.cells[3] = bms_core::MilliVolts::from_mv(3_650);
/// let rec = EventRecord::from_telemetry(EventKind::FaultTrip(Fault::CellOv), &t);
/// assert_eq!(rec.snapshot.max_cell_index, 3);
/// assert_eq!(rec.repeats, 1);
/// let bytes = rec.encode();
/// assert_eq!(EventRecord::decode(&bytes), Ok(rec));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EventRecord {
    /// When it happened (the step's `now`).
    pub time: Instant,
    /// What happened.
    pub kind: EventKind,
    /// How many occurrences this record stands for (at least 1; more when the
    /// [`RateLimiter`](super::RateLimiter) coalesced repeats).
    pub repeats: u16,
    /// A kind-specific value (a new parameter value, a calibration result), else 0.
    pub value: u32,
    /// The pack state.
    pub snapshot: Snapshot,
}

/// Why stored bytes are not an [`EventRecord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RecordError {
    /// Fewer bytes than [`EventRecord::LEN`].
    Truncated,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("event record truncated")
    }
}

impl core::error::Error for RecordError {}

/// Byte layout of an encoded record (little-endian).
mod field {
    use core::ops::Range;
    pub const TIME: Range<usize> = 0..8;
    pub const CODE: usize = 8;
    pub const DETAIL: usize = 9;
    pub const REPEATS: Range<usize> = 10..12;
    pub const VALUE: Range<usize> = 12..16;
    pub const MIN_CELL: Range<usize> = 16..18;
    pub const MAX_CELL: Range<usize> = 18..20;
    pub const MIN_INDEX: usize = 20;
    pub const MAX_INDEX: usize = 21;
    pub const SOC: Range<usize> = 22..24;
    pub const PACK: Range<usize> = 24..28;
    pub const CURRENT: Range<usize> = 28..32;
    pub const T1: Range<usize> = 32..34;
    pub const T2: Range<usize> = 34..36;
    pub const TMOS: Range<usize> = 36..38;
    pub const FETS: Range<usize> = 38..40;
    pub const FAULTS: Range<usize> = 40..44;
}

/// Stored value of a temperature that could not be read.
const NO_TEMP: i16 = i16::MIN;

impl EventRecord {
    /// Encoded length in bytes.
    pub const LEN: usize = 44;

    /// A record of `kind` at `t.now` with the snapshot of `t`, one occurrence, value 0.
    pub fn from_telemetry(kind: EventKind, t: &Telemetry) -> Self {
        EventRecord {
            time: t.now,
            kind,
            repeats: 1,
            value: 0,
            snapshot: Snapshot::from_telemetry(t),
        }
    }

    /// The same record with `value` set.
    pub fn with_value(mut self, value: u32) -> Self {
        self.value = value;
        self
    }

    /// Encodes into the fixed layout. Cell voltages saturate at 65 535 mV.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        let s = &self.snapshot;
        let (code, detail) = self.kind.to_raw();
        let mv16 = |v: MilliVolts| v.as_mv().min(u16::MAX as u32) as u16;
        let temp = |t: Option<DeciCelsius>| t.map_or(NO_TEMP, |t| t.as_deci());
        b[field::TIME].copy_from_slice(&self.time.as_millis().to_le_bytes());
        b[field::CODE] = code;
        b[field::DETAIL] = detail;
        b[field::REPEATS].copy_from_slice(&self.repeats.to_le_bytes());
        b[field::VALUE].copy_from_slice(&self.value.to_le_bytes());
        b[field::MIN_CELL].copy_from_slice(&mv16(s.min_cell).to_le_bytes());
        b[field::MAX_CELL].copy_from_slice(&mv16(s.max_cell).to_le_bytes());
        b[field::MIN_INDEX] = s.min_cell_index;
        b[field::MAX_INDEX] = s.max_cell_index;
        b[field::SOC].copy_from_slice(&s.soc.as_permille().to_le_bytes());
        b[field::PACK].copy_from_slice(&s.pack_voltage.as_mv().to_le_bytes());
        b[field::CURRENT].copy_from_slice(&s.current.as_ma().to_le_bytes());
        b[field::T1].copy_from_slice(&temp(s.cell_temps[0]).to_le_bytes());
        b[field::T2].copy_from_slice(&temp(s.cell_temps[1]).to_le_bytes());
        b[field::TMOS].copy_from_slice(&temp(s.mos_temp).to_le_bytes());
        let fets =
            s.charge_fet as u16 | (s.discharge_fet as u16) << 1 | (s.precharge_fet as u16) << 2;
        b[field::FETS].copy_from_slice(&fets.to_le_bytes());
        b[field::FAULTS].copy_from_slice(&s.faults.bits().to_le_bytes());
        b
    }

    /// Decodes the fixed layout. Total: every field decodes (unknown kinds to
    /// [`EventKind::Unknown`], an out-of-range SOC is clamped, unknown fault bits dropped).
    ///
    /// # Errors
    /// [`RecordError::Truncated`] when `b` is shorter than [`EventRecord::LEN`].
    pub fn decode(b: &[u8]) -> Result<Self, RecordError> {
        let b: &[u8; Self::LEN] = b
            .get(..Self::LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(RecordError::Truncated)?;
        let u16_at = |r: core::ops::Range<usize>| u16::from_le_bytes([b[r.start], b[r.start + 1]]);
        let u32_at = |r: core::ops::Range<usize>| {
            u32::from_le_bytes([b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3]])
        };
        let temp = |r| match u16_at(r) as i16 {
            NO_TEMP => None,
            t => Some(DeciCelsius::from_deci(t)),
        };
        let mut time = [0u8; 8];
        time.copy_from_slice(&b[field::TIME]);
        let fets = u16_at(field::FETS);
        Ok(EventRecord {
            time: Instant::from_millis(u64::from_le_bytes(time)),
            kind: EventKind::from_raw(b[field::CODE], b[field::DETAIL]),
            repeats: u16_at(field::REPEATS),
            value: u32_at(field::VALUE),
            snapshot: Snapshot {
                min_cell: MilliVolts::from_mv(u16_at(field::MIN_CELL) as u32),
                min_cell_index: b[field::MIN_INDEX],
                max_cell: MilliVolts::from_mv(u16_at(field::MAX_CELL) as u32),
                max_cell_index: b[field::MAX_INDEX],
                pack_voltage: MilliVolts::from_mv(u32_at(field::PACK)),
                current: MilliAmps::from_ma(u32_at(field::CURRENT) as i32),
                cell_temps: [temp(field::T1), temp(field::T2)],
                mos_temp: temp(field::TMOS),
                soc: Soc::from_permille_clamped(u16_at(field::SOC) as i32),
                faults: FaultSet::from_bits(u32_at(field::FAULTS)),
                charge_fet: fets & 1 != 0,
                discharge_fet: fets & 2 != 0,
                precharge_fet: fets & 4 != 0,
            },
        })
    }
}

/// A record read back from the log, with its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StoredEvent {
    /// Sequence number given by the log (strictly increasing with time of append).
    pub seq: Seq,
    /// The record.
    pub record: EventRecord,
}

impl fmt::Display for EventRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.snapshot;
        write!(
            f,
            "{} {} x{} value={} min={}mV#{} max={}mV#{} pack={}mV I={}mA soc={} faults={}",
            self.time,
            self.kind,
            self.repeats,
            self.value,
            s.min_cell.as_mv(),
            u16::from(s.min_cell_index) + 1,
            s.max_cell.as_mv(),
            u16::from(s.max_cell_index) + 1,
            s.pack_voltage.as_mv(),
            s.current.as_ma(),
            s.soc.as_permille(),
            s.faults,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    /// Layout written by hand from the field table, not by the encoder.
    #[test]
    fn test_emit_golden() {
        let rec = EventRecord {
            time: Instant::from_millis(0x0102_0304_0506),
            kind: EventKind::FaultTrip(Fault::DsgOc1),
            repeats: 3,
            value: 0xAABB_CCDD,
            snapshot: Snapshot {
                min_cell: MilliVolts::from_mv(3_000),
                min_cell_index: 2,
                max_cell: MilliVolts::from_mv(3_400),
                max_cell_index: 15,
                pack_voltage: MilliVolts::from_mv(52_000),
                current: MilliAmps::from_ma(-1),
                cell_temps: [Some(DeciCelsius::from_deci(251)), None],
                mos_temp: Some(DeciCelsius::from_deci(-5)),
                soc: Soc::from_permille_clamped(500),
                faults: FaultSet::from_bits(0x20),
                charge_fet: false,
                discharge_fet: true,
                precharge_fet: true,
            },
        };
        let golden: [u8; 44] = [
            0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0, 0, // time
            1, 5, // trip, dsg_oc1
            3, 0, // repeats
            0xDD, 0xCC, 0xBB, 0xAA, // value
            0xB8, 0x0B, 0x48, 0x0D, // 3000, 3400
            2, 15, // indices
            0xF4, 0x01, // soc 500
            0x20, 0xCB, 0, 0, // 52000 mV
            0xFF, 0xFF, 0xFF, 0xFF, // -1 mA
            0xFB, 0x00, 0x00, 0x80, // 25.1 C, none
            0xFB, 0xFF, // -0.5 C
            0x06, 0x00, // fets
            0x20, 0, 0, 0, // faults
        ];
        assert_eq!(rec.encode(), golden);
        assert_eq!(EventRecord::decode(&golden), Ok(rec));
    }

    #[test]
    fn test_truncated() {
        assert_eq!(EventRecord::decode(&[0u8; 43]), Err(RecordError::Truncated));
    }

    #[test]
    fn kinds_round_trip_and_unknown_is_total() {
        for code in 0..=255u8 {
            for detail in 0..=255u8 {
                let k = EventKind::from_raw(code, detail);
                assert_eq!(k.to_raw(), (code, detail), "{code}/{detail}");
            }
        }
        assert_eq!(
            EventKind::from_raw(6, 2),
            EventKind::PowerMode(PowerMode::DeepSleep)
        );
        assert_eq!(
            EventKind::from_raw(9, 42),
            EventKind::Reset(ResetCause::Unknown(42))
        );
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics_and_round_trips(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..60)) {
            if let Ok(rec) = EventRecord::decode(&bytes) {
                let again = EventRecord::decode(&rec.encode());
                proptest::prop_assert_eq!(again, Ok(rec));
            }
        }
    }

    #[test]
    fn display_of_any_decoded_record_does_not_overflow() {
        let mut b = [0u8; EventRecord::LEN];
        b[20] = 0xFF;
        b[21] = 0xFF;
        let r = EventRecord::decode(&b).unwrap();
        assert!(r.to_string().contains("256"));
    }

    #[test]
    fn lowest_temperature_stays_a_reading() {
        let mut t = Telemetry::empty(16);
        t.mos_temp = Some(DeciCelsius::from_deci(i16::MIN));
        t.cell_temps[0] = Some(DeciCelsius::from_deci(i16::MIN));
        let r = EventRecord::from_telemetry(EventKind::from_raw(1, 0), &t);
        assert_eq!(EventRecord::decode(&r.encode()), Ok(r));
        assert!(r.snapshot.mos_temp.is_some());
    }
}
