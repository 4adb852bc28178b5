//! The CAN 2.0A inverter protocol (Pylontech-compatible, 500 kbit/s) with Victron extras.
//!
//! The BMS sends one burst of frames every second (Victron stops charging and discharging
//! when 0x351 is missing for 3 s). All fields are little-endian. Current on this wire is
//! **positive for charging**; the core's convention is converted here.
//!
//! | ID | DLC | Content |
//! |---|---|---|
//! | 0x351 | 8 | charge voltage limit (0.1 V), charge current limit (0.1 A, i16), discharge current limit (0.1 A, i16), discharge voltage limit (0.1 V) |
//! | 0x355 | 4 | SOC (1 %), SOH (1 %) |
//! | 0x356 | 6 | voltage (0.01 V, i16), current (0.1 A, i16, + = charging), temperature (0.1 °C, i16; highest NTC) |
//! | 0x359 | 8 | protection flags (b0, b1), warning flags (b2, b3), module count, `'P' 'N'`, 0 |
//! | 0x35C | 2 | b0: bit 7 charge enable, bit 6 discharge enable, bit 5 force charge I |
//! | 0x35E | 8 | manufacturer name, ASCII |
//! | 0x370, 0x371 | 8, 8 | BMS name, ASCII (Victron) |
//! | 0x372 | 8 | modules online, blocking charge, blocking discharge, offline (u16 each; Victron) |
//! | 0x373 | 8 | min / max cell voltage (mV), min / max cell temperature (K) (Victron) |
//! | 0x379 | 2 | installed capacity (Ah) (Victron) |
//!
//! Flags of 0x359 (bit numbers within the byte):
//! b0/b2: 1 cell or pack over-voltage, 2 under-voltage, 3 over-temperature (cells or
//! MOSFET), 4 under-temperature, 7 discharge over-current or short circuit;
//! b1/b3: 0 charge over-current, 3 system error (open wire, AFE, sensor, pre-charge).
//! b0/b1 carry faults (protection), b2/b3 warnings.
//!
//! `bms-core/dbc/inverter.dbc` describes every frame.
//!
//! # Examples
//! ```
//! use bms_core::inverter::{InverterConfig, InverterNode};
//! use bms_core::{Instant, Telemetry};
//! let mut node = InverterNode::new(InverterConfig::default());
//! node.update(Instant::ZERO, &Telemetry::empty(16));
//! let mut n = 0;
//! while let Some(_frame) = node.poll_transmit(Instant::ZERO) {
//!     n += 1;
//! }
//! assert_eq!(n, 11);
//! assert_eq!(node.poll_timeout(), Some(Instant::from_millis(1_000)));
//! ```

use crate::can::CanFrame;
use crate::protect::{Fault, FaultSet};
use crate::telemetry::Telemetry;
use crate::time::{Duration, Instant};
use crate::units::DeciCelsius;

/// The inverter's keep-alive frame.
pub const KEEPALIVE_ID: u16 = 0x305;

/// Inverter protocol configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InverterConfig {
    /// Manufacturer name in 0x35E. Some inverters only accept `PYLON   `.
    pub manufacturer: [u8; 8],
    /// BMS name in 0x370/0x371.
    pub bms_name: [u8; 16],
    /// Also send the Victron frames 0x370..=0x373 and 0x379.
    pub victron: bool,
    /// Burst period.
    pub period: Duration,
    /// Module count reported in 0x359 and 0x372.
    pub modules: u8,
}

impl Default for InverterConfig {
    /// `PYLON   `, name `bms-core`, Victron frames on, 1 s, one module.
    fn default() -> Self {
        InverterConfig {
            manufacturer: *b"PYLON   ",
            bms_name: *b"bms-core        ",
            victron: true,
            period: Duration::from_secs(1),
            modules: 1,
        }
    }
}

/// The frames of one burst, in order.
const IDS: [u16; 11] = [
    0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E, 0x370, 0x371, 0x372, 0x373, 0x379,
];
const PYLONTECH_FRAMES: usize = 6;

/// The inverter-side node: sends the burst, notes the inverter's keep-alive.
#[derive(Clone, Debug)]
pub struct InverterNode {
    config: InverterConfig,
    telemetry: Option<Telemetry>,
    next_due: Option<Instant>,
    /// A burst is being sent (`index` is its next frame).
    in_burst: bool,
    index: usize,
    last_keepalive: Option<Instant>,
}

/// Four `u16` words as the little-endian payload bytes, packed in a `u64`: the arms of
/// [`encode`] then merge two registers, not eight bytes.
fn words(w: [u16; 4]) -> u64 {
    let [a, b, c, d] = w.map(u64::from);
    a | b << 16 | c << 32 | d << 48
}

/// A non-negative value clamped to `u16`.
fn u16_sat(v: u32) -> u16 {
    v.min(u32::from(u16::MAX)) as u16
}

/// A value clamped to `i16`, in its two's-complement wire form.
fn i16_sat(v: i32) -> u16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16 as u16
}

fn kelvin(t: DeciCelsius) -> u16 {
    ((i32::from(t.as_deci()) + 2_732 + 5) / 10).clamp(0, i32::from(u16::MAX)) as u16
}

/// Protection (or warning) flag bytes of 0x359 for a set of faults.
pub fn flag_bytes(s: FaultSet) -> [u8; 2] {
    // One mask test per flag instead of one test per fault.
    let any = |fs: &[Fault]| u8::from(s.bits() & fs.iter().fold(0, |m, f| m | f.bit()) != 0);
    let b0 = any(&[Fault::CellOv, Fault::PackOv]) << 1
        | any(&[Fault::CellUv, Fault::PackUv]) << 2
        | any(&[Fault::ChgOt, Fault::DsgOt, Fault::MosOt]) << 3
        | any(&[Fault::ChgUt, Fault::DsgUt]) << 4
        | any(&[Fault::DsgOc1, Fault::DsgOc2, Fault::Sc]) << 7;
    let system = [
        Fault::OpenWire,
        Fault::AfeComm,
        Fault::SensorFault,
        Fault::PrechargeFail,
    ];
    let b1 = any(&[Fault::ChgOc]) | any(&system) << 3;
    [b0, b1]
}

/// Encodes the frame `id` of the burst from `t` (`None` for an unknown id).
pub fn encode(id: u16, t: &Telemetry, c: &InverterConfig) -> Option<CanFrame> {
    let l = &t.limits;
    let temps = t.temp_range();
    let charge_enabled = t.charge_fet && l.charge_current.unsigned_abs() > 0;
    let discharge_enabled = t.discharge_fet && l.discharge_current.unsigned_abs() > 0;
    let modules = u16::from(c.modules);
    let blocked = |enabled: bool| if enabled { 0 } else { modules };
    let (data, len) = match id {
        0x351 => (
            words([
                u16_sat(l.charge_voltage.as_mv() / 100),
                i16_sat((l.charge_current.unsigned_abs() / 100) as i32),
                i16_sat((l.discharge_current.unsigned_abs() / 100) as i32),
                u16_sat(l.discharge_voltage.as_mv() / 100),
            ]),
            8,
        ),
        0x355 => (
            words([
                u16::from(t.soc.as_percent()),
                (t.soh.as_permille().min(1000) + 5) / 10,
                0,
                0,
            ]),
            4,
        ),
        0x356 => (
            words([
                i16_sat((t.pack_voltage.as_mv() / 10).min(i32::MAX as u32) as i32),
                // Truncating division is symmetric: -(x / 100) = (-x) / 100, without the
                // overflow of negating i32::MIN.
                i16_sat(-(t.current.as_ma() / 100)),
                temps.map_or(0, |(hi, _)| hi.as_deci() as u16),
                0,
            ]),
            6,
        ),
        0x359 => {
            let [f0, f1] = flag_bytes(t.faults);
            let [w0, w1] = flag_bytes(t.warnings);
            (
                u64::from_le_bytes([f0, f1, w0, w1, c.modules, b'P', b'N', 0]),
                8,
            )
        }
        0x35C => {
            let force = t.faults.contains(Fault::CellUv) || t.faults.contains(Fault::PackUv);
            let b0 = u8::from(charge_enabled) << 7
                | u8::from(discharge_enabled) << 6
                | u8::from(force) << 5;
            (u64::from(b0), 2)
        }
        0x35E => (u64::from_le_bytes(c.manufacturer), 8),
        0x370 | 0x371 => {
            let half = if id == 0x370 { 0 } else { 8 };
            let mut b = [0; 8];
            b.copy_from_slice(c.bms_name.get(half..half + 8)?);
            (u64::from_le_bytes(b), 8)
        }
        0x372 => (
            words([
                modules,
                blocked(charge_enabled),
                blocked(discharge_enabled),
                0,
            ]),
            8,
        ),
        0x373 => {
            // One pass for both extremes; (0, 0) without cells, as `min_cell`/`max_cell`.
            let cells = t
                .cell_extremes()
                .map_or((0, 0), |(lo, hi)| (lo.as_mv(), hi.as_mv()));
            (
                words([
                    u16_sat(cells.0),
                    u16_sat(cells.1),
                    temps.map_or(0, |(_, lo)| kelvin(lo)),
                    temps.map_or(0, |(hi, _)| kelvin(hi)),
                ]),
                8,
            )
        }
        0x379 => (
            words([u16_sat(t.nominal_capacity.as_mah() / 1000), 0, 0, 0]),
            2,
        ),
        _ => return None,
    };
    CanFrame::standard(id, data.to_le_bytes().get(..len)?)
}

impl InverterNode {
    /// A node that sends its first burst at the first `update`.
    pub fn new(config: InverterConfig) -> Self {
        InverterNode {
            config,
            telemetry: None,
            next_due: None,
            in_burst: false,
            index: 0,
            last_keepalive: None,
        }
    }

    /// Takes a new telemetry snapshot.
    // Out of line: the snapshot is copied from the reference, not from the caller's registers
    // and stack.
    #[inline(never)]
    pub fn update(&mut self, now: Instant, telemetry: &Telemetry) {
        self.telemetry = Some(*telemetry);
        if self.next_due.is_none() {
            self.next_due = Some(now);
        }
    }

    /// Notes the inverter's keep-alive (0x305); other frames are ignored.
    pub fn handle_frame(&mut self, now: Instant, frame: &CanFrame) {
        if frame.raw_id() == (u32::from(KEEPALIVE_ID), false) {
            self.last_keepalive = Some(now);
        }
    }

    /// When the inverter's keep-alive was last seen.
    pub fn last_keepalive(&self) -> Option<Instant> {
        self.last_keepalive
    }

    /// The next frame to send at `now`; call until `None`.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<CanFrame> {
        let count = if self.config.victron {
            IDS.len()
        } else {
            PYLONTECH_FRAMES
        };
        if !self.in_burst {
            let due = self.next_due.filter(|&d| d <= now)?;
            let next = due + self.config.period;
            self.next_due = Some(if next <= now {
                now + self.config.period
            } else {
                next
            });
            self.in_burst = true;
            self.index = 0;
        }
        let t = self.telemetry.as_ref()?;
        let id = *IDS.get(self.index)?;
        self.index += 1;
        if self.index >= count {
            self.in_burst = false;
        }
        encode(id, t, &self.config)
    }

    /// When the next burst is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_burst {
            return Some(Instant::ZERO);
        }
        self.next_due
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;
    use crate::can::Frame;
    use crate::units::{MilliAmps, MilliVolts};

    #[test]
    fn test_emit_golden_351_356() {
        // Pytes capture: 0x351 `38 02 E8 03 E8 03 C7 01` = 56.8 V / 100 A / 100 A / 45.5 V,
        // 0x356 `BE 14 F9 FF B4 00` = 53.10 V (0x14BE; the notes' "52.62 V" does not match
        // the bytes), -0.7 A (discharging), 18.0 °C.
        let mut t = Telemetry::empty(16);
        t.limits.charge_voltage = MilliVolts::from_mv(56_800);
        t.limits.charge_current = MilliAmps::from_amps(100);
        t.limits.discharge_current = MilliAmps::from_amps(100);
        t.limits.discharge_voltage = MilliVolts::from_mv(45_500);
        t.pack_voltage = MilliVolts::from_mv(53_100);
        t.current = MilliAmps::from_ma(700);
        t.cell_temps = [Some(DeciCelsius::from_deci(180)), None];
        let c = InverterConfig::default();
        let f = encode(0x351, &t, &c).unwrap();
        assert_eq!(f.data(), &[0x38, 0x02, 0xE8, 0x03, 0xE8, 0x03, 0xC7, 0x01]);
        let f = encode(0x356, &t, &c).unwrap();
        assert_eq!(f.data(), &[0xBE, 0x14, 0xF9, 0xFF, 0xB4, 0x00]);
    }

    #[test]
    fn flags_and_enable() {
        let mut t = Telemetry::empty(16);
        t.faults = FaultSet::from_iter([Fault::CellOv, Fault::Sc, Fault::AfeComm]);
        t.warnings = FaultSet::from_iter([Fault::ChgOc]);
        t.charge_fet = true;
        t.discharge_fet = true;
        t.limits.charge_current = MilliAmps::from_amps(10);
        let c = InverterConfig::default();
        let f = encode(0x359, &t, &c).unwrap();
        assert_eq!(f.data(), &[0x82, 0x08, 0x00, 0x01, 1, b'P', b'N', 0]);
        // Discharge current limit 0: discharge disabled.
        assert_eq!(encode(0x35C, &t, &c).unwrap().data(), &[0x80, 0]);
        assert_eq!(encode(0x35E, &t, &c).unwrap().data(), b"PYLON   ");
    }

    /// Every frame of the burst for a telemetry with every field set, against the bytes
    /// the byte-array encoder (before the `u64` payload) produced.
    #[test]
    fn every_frame_golden() {
        let mut t = Telemetry::empty(4);
        t.limits.charge_voltage = MilliVolts::from_mv(58_400);
        t.limits.charge_current = MilliAmps::from_amps(-120);
        t.limits.discharge_current = MilliAmps::from_amps(250);
        t.limits.discharge_voltage = MilliVolts::from_mv(44_000);
        t.pack_voltage = MilliVolts::from_mv(52_345);
        t.current = MilliAmps::from_ma(-12_345);
        t.cell_temps = [
            Some(DeciCelsius::from_deci(215)),
            Some(DeciCelsius::from_deci(-35)),
        ];
        t.faults = FaultSet::from_iter([Fault::PackUv, Fault::MosOt, Fault::OpenWire]);
        t.warnings = FaultSet::from_iter([Fault::DsgOc2, Fault::ChgOc]);
        t.charge_fet = true;
        t.soc = crate::units::Soc::try_from_permille(567).unwrap();
        t.soh = crate::units::Permille::from_permille(987);
        t.nominal_capacity = crate::units::MilliAmpHours::from_mah(280_000);
        for (i, mv) in [3_301, 3_287, 3_312, 3_295].into_iter().enumerate() {
            t.cells[i] = MilliVolts::from_mv(mv);
        }
        let c = InverterConfig {
            modules: 3,
            ..InverterConfig::default()
        };
        let mut got = std::string::String::new();
        for id in IDS {
            let f = encode(id, &t, &c).unwrap();
            got += &std::format!("{id:03X}:");
            for b in f.data() {
                got += &std::format!(" {b:02X}");
            }
            got += "\n";
        }
        let golden = "\
351: 48 02 B0 04 C4 09 B8 01
355: 39 00 63 00
356: 72 14 7B 00 D7 00
359: 0C 08 80 01 03 50 4E 00
35C: A0 00
35E: 50 59 4C 4F 4E 20 20 20
370: 62 6D 73 2D 63 6F 72 65
371: 20 20 20 20 20 20 20 20
372: 03 00 00 00 03 00 00 00
373: D7 0C F0 0C 0E 01 27 01
379: 18 01
";
        assert_eq!(got, golden);
        assert_eq!(encode(0x300, &t, &c), None);
    }

    #[test]
    fn burst_every_period() {
        let mut n = InverterNode::new(InverterConfig {
            victron: false,
            ..InverterConfig::default()
        });
        assert_eq!(n.poll_transmit(Instant::ZERO), None);
        n.update(Instant::ZERO, &Telemetry::empty(8));
        let mut ids = heapless::Vec::<u32, 16>::new();
        while let Some(f) = n.poll_transmit(Instant::ZERO) {
            ids.push(f.raw_id().0).unwrap();
        }
        assert_eq!(&ids[..], &[0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E]);
        assert_eq!(n.poll_transmit(Instant::from_millis(999)), None);
        assert!(n.poll_transmit(Instant::from_millis(1_000)).is_some());
        n.handle_frame(
            Instant::from_millis(5),
            &CanFrame::standard(0x305, &[0; 8]).unwrap(),
        );
        assert_eq!(n.last_keepalive(), Some(Instant::from_millis(5)));
    }
}
