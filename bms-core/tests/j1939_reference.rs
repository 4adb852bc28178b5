//! The encoders of the J1939 data messages and of the inverter protocol give exactly the
//! bytes of their straightforward first versions (kept here as the reference, with 64-bit
//! arithmetic throughout) for arbitrary telemetry: the cheaper integer paths change nothing
//! on the wire.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use bms_core::can::Frame;
use bms_core::inverter::{self, InverterConfig};
use bms_core::j1939::dm::{DmMessage, DtcTable, Tier, MAX_DM_LEN};
use bms_core::j1939::messages::{
    encode_cell_voltages, power_mode_code, Message, CELL_VOLTAGES_LEN,
};
use bms_core::{
    DeciCelsius, Fault, FaultSet, Limits, MilliAmpHours, MilliAmps, MilliVolts, Permille,
    PowerMode, Soc, Telemetry, MAX_CELLS,
};
use proptest::prelude::*;

/// The first version of the J1939 encoders.
mod reference {
    use super::*;

    const MAX_U16: u32 = 0xFAFF;
    const NA16: u16 = 0xFFFF;
    const MAX_U24: u64 = 0xFA_FFFF;

    fn scale_u16(num: u64, den: u64) -> u16 {
        ((num + den / 2) / den).min(u64::from(MAX_U16)) as u16
    }
    fn hves_current(charging_ma: i64) -> u16 {
        scale_u16((charging_ma + 1_600_000).max(0) as u64, 50)
    }
    fn mv_times_ma_to_w(mv: u32, ma: u32) -> u64 {
        u64::from(mv) * u64::from(ma) / 1_000_000
    }
    fn hves_cell_temp(t: DeciCelsius) -> u16 {
        scale_u16((i64::from(t.as_deci()) + 2_730).max(0) as u64 * 16, 5)
    }
    fn byte_temp(t: Option<DeciCelsius>) -> u8 {
        match t {
            Some(t) => ((i32::from(t.as_deci()) + 405).max(0) / 10).min(250) as u8,
            None => 0xFF,
        }
    }
    fn deci_kelvin(t: Option<DeciCelsius>) -> u16 {
        match t {
            Some(t) => (i32::from(t.as_deci()) + 2_732).clamp(0, MAX_U16 as i32) as u16,
            None => NA16,
        }
    }
    fn put16(b: &mut [u8; 8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    pub fn encode(m: Message, t: &Telemetry) -> [u8; 8] {
        let mut b = [0xFF; 8];
        let l = &t.limits;
        match m {
            Message::Hves1D1 => {
                let v = t.pack_voltage.as_mv();
                let dsg_w = mv_times_ma_to_w(v, l.discharge_current.unsigned_abs());
                let chg_w = mv_times_ma_to_w(v, l.charge_current.unsigned_abs());
                put16(&mut b, 0, scale_u16(dsg_w, 50));
                put16(&mut b, 2, scale_u16(chg_w, 50));
                put16(&mut b, 4, scale_u16(u64::from(v), 50));
                put16(&mut b, 6, hves_current(-i64::from(t.current.as_ma())));
            }
            Message::Hves1D2 => {
                put16(&mut b, 0, t.soc.as_permille() * 64);
                if t.cell_count > 0 {
                    put16(&mut b, 2, scale_u16(u64::from(t.max_cell().0.as_mv()), 1));
                    put16(&mut b, 4, scale_u16(u64::from(t.min_cell().0.as_mv()), 1));
                }
                let status = if t.faults.contains(Fault::CellImbalance) {
                    2
                } else if t.warnings.contains(Fault::CellImbalance) {
                    1
                } else {
                    0
                };
                b[6] = 0xF0 | status;
            }
            Message::Hves1D3 => {
                if let Some((hi, lo)) = t.temp_range() {
                    let (h, l) = (hves_cell_temp(hi), hves_cell_temp(lo));
                    put16(&mut b, 0, h);
                    put16(&mut b, 2, l);
                    put16(&mut b, 4, ((u32::from(h) + u32::from(l)) / 2) as u16);
                    b[6] = 0xFC;
                }
            }
            Message::Hves1D5 => {
                let dcl = i64::from(l.discharge_current.unsigned_abs());
                let ccl = i64::from(l.charge_current.unsigned_abs());
                put16(&mut b, 0, hves_current(-dcl));
                put16(&mut b, 2, hves_current(ccl));
            }
            Message::Hves1D6 => {
                put16(&mut b, 0, scale_u16(u64::from(t.load_voltage.as_mv()), 50));
                b[6] = byte_temp(t.mos_temp);
                b[7] = byte_temp(t.temp_range().map(|(hi, _)| hi));
            }
            Message::Hves1S1 => {
                b[1] = 0xFC | u8::from(t.precharge_fet);
                b[3] = 0x3F | u8::from(t.balance_mask != 0) << 6;
                let connected = u8::from(t.charge_fet || t.discharge_fet);
                let operational = if t.faults.is_empty() { 2 } else { 6 };
                b[5] = operational << 4 | connected;
            }
            Message::Hves1D7 => {
                let v = t.pack_voltage.as_mv();
                let remaining = t.remaining.as_mah();
                let to_full = t.full_capacity.as_mah().saturating_sub(remaining);
                let dsg_wh = mv_times_ma_to_w(v, remaining).min(MAX_U24);
                let chg_wh = mv_times_ma_to_w(v, to_full).min(MAX_U24);
                b[..3].copy_from_slice(&dsg_wh.to_le_bytes()[..3]);
                b[3..6].copy_from_slice(&chg_wh.to_le_bytes()[..3]);
                put16(
                    &mut b,
                    6,
                    scale_u16(u64::from(l.charge_voltage.as_mv()), 50),
                );
            }
            Message::Temperatures => {
                put16(&mut b, 0, deci_kelvin(t.cell_temps[0]));
                put16(&mut b, 2, deci_kelvin(t.cell_temps[1]));
                put16(&mut b, 4, deci_kelvin(t.mos_temp));
                put16(&mut b, 6, deci_kelvin(t.balance_temp));
            }
            Message::Status => {
                b[0] = 0xE0
                    | u8::from(t.charge_fet)
                    | u8::from(t.discharge_fet) << 1
                    | u8::from(t.precharge_fet) << 2
                    | power_mode_code(t.mode) << 3;
                b[1] = t.cell_count;
                b[2..6].copy_from_slice(&(t.balance_mask & ((1 << MAX_CELLS) - 1)).to_le_bytes());
            }
            Message::Limits => {
                put16(
                    &mut b,
                    0,
                    scale_u16(u64::from(l.charge_voltage.as_mv()), 10),
                );
                put16(
                    &mut b,
                    2,
                    scale_u16(u64::from(l.charge_current.unsigned_abs()), 100),
                );
                put16(
                    &mut b,
                    4,
                    scale_u16(u64::from(l.discharge_current.unsigned_abs()), 100),
                );
                put16(
                    &mut b,
                    6,
                    scale_u16(u64::from(l.discharge_voltage.as_mv()), 10),
                );
            }
            Message::Alarms => {
                b[..4].copy_from_slice(&t.faults.bits().to_le_bytes());
                b[4..].copy_from_slice(&t.warnings.bits().to_le_bytes());
            }
            Message::Capacity => {
                put16(&mut b, 0, t.soh.as_permille().min(MAX_U16 as u16));
                put16(&mut b, 2, t.cycles.min(MAX_U16) as u16);
                put16(
                    &mut b,
                    4,
                    scale_u16(u64::from(t.full_capacity.as_mah()), 100),
                );
                put16(&mut b, 6, scale_u16(u64::from(t.remaining.as_mah()), 100));
            }
            Message::CellVoltages => {
                let mut all = [0xFF; CELL_VOLTAGES_LEN];
                cell_voltages(t, &mut all);
                b.copy_from_slice(&all[..8]);
            }
        }
        b
    }

    pub fn cell_voltages(t: &Telemetry, out: &mut [u8; CELL_VOLTAGES_LEN]) {
        out.fill(0xFF);
        out[0] = t.cell_count.min(MAX_CELLS as u8);
        for (i, v) in t.cells().iter().enumerate() {
            let raw = scale_u16(u64::from(v.as_mv()), 1).to_le_bytes();
            out[1 + 2 * i..3 + 2 * i].copy_from_slice(&raw);
        }
    }

    fn i16_sat(v: i64) -> i16 {
        v.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
    }
    fn u16_sat(v: u64) -> u16 {
        v.min(u64::from(u16::MAX)) as u16
    }
    fn le(parts: &[u16]) -> Vec<u8> {
        parts.iter().flat_map(|p| p.to_le_bytes()).take(8).collect()
    }
    fn kelvin(t: DeciCelsius) -> u16 {
        ((i32::from(t.as_deci()) + 2_732 + 5) / 10).clamp(0, i32::from(u16::MAX)) as u16
    }

    /// The first version of the inverter encoder: the data bytes of frame `id`.
    pub fn inverter(id: u16, t: &Telemetry, c: &InverterConfig) -> Option<Vec<u8>> {
        let l = &t.limits;
        let temps = t.temp_range();
        let charge_enabled = t.charge_fet && l.charge_current.unsigned_abs() > 0;
        let discharge_enabled = t.discharge_fet && l.discharge_current.unsigned_abs() > 0;
        let modules = u16::from(c.modules);
        Some(match id {
            0x351 => le(&[
                u16_sat(u64::from(l.charge_voltage.as_mv()) / 100),
                i16_sat(i64::from(l.charge_current.unsigned_abs()) / 100) as u16,
                i16_sat(i64::from(l.discharge_current.unsigned_abs()) / 100) as u16,
                u16_sat(u64::from(l.discharge_voltage.as_mv()) / 100),
            ]),
            0x355 => le(&[
                u16::from(t.soc.as_percent()),
                (t.soh.as_permille().min(1000) + 5) / 10,
            ]),
            0x356 => le(&[
                i16_sat(i64::from(t.pack_voltage.as_mv()) / 10) as u16,
                i16_sat(-i64::from(t.current.as_ma()) / 100) as u16,
                temps.map_or(0, |(hi, _)| hi.as_deci()) as u16,
            ]),
            0x359 => {
                let f = inverter::flag_bytes(t.faults);
                let w = inverter::flag_bytes(t.warnings);
                vec![f[0], f[1], w[0], w[1], c.modules, b'P', b'N', 0]
            }
            0x35C => {
                let force = t.faults.contains(Fault::CellUv) || t.faults.contains(Fault::PackUv);
                let b0 = u8::from(charge_enabled) << 7
                    | u8::from(discharge_enabled) << 6
                    | u8::from(force) << 5;
                vec![b0, 0]
            }
            0x35E => c.manufacturer.to_vec(),
            0x370 => c.bms_name[..8].to_vec(),
            0x371 => c.bms_name[8..].to_vec(),
            0x372 => le(&[
                modules,
                if charge_enabled { 0 } else { modules },
                if discharge_enabled { 0 } else { modules },
                0,
            ]),
            0x373 => le(&[
                u16_sat(u64::from(t.min_cell().0.as_mv())),
                u16_sat(u64::from(t.max_cell().0.as_mv())),
                temps.map_or(0, |(_, lo)| kelvin(lo)),
                temps.map_or(0, |(hi, _)| kelvin(hi)),
            ]),
            0x379 => le(&[u16_sat(u64::from(t.nominal_capacity.as_mah()) / 1000)]),
            _ => return None,
        })
    }
}

/// Mostly realistic values, with the extremes of every type mixed in.
fn u32_value(realistic: u32) -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0..=realistic, 1 => any::<u32>(), 1 => Just(u32::MAX), 1 => Just(0)]
}

fn i32_value(realistic: i32) -> impl Strategy<Value = i32> {
    prop_oneof![
        4 => -realistic..=realistic,
        1 => any::<i32>(),
        1 => Just(i32::MIN),
        1 => Just(i32::MAX)
    ]
}

fn temp() -> impl Strategy<Value = Option<DeciCelsius>> {
    prop_oneof![
        3 => (-400i16..=1_200).prop_map(|d| Some(DeciCelsius::from_deci(d))),
        1 => any::<i16>().prop_map(|d| Some(DeciCelsius::from_deci(d))),
        1 => Just(None)
    ]
}

fn telemetry() -> BoxedStrategy<Telemetry> {
    (
        (
            0u8..=MAX_CELLS as u8 + 3,
            proptest::array::uniform20(u32_value(5_000)),
            u32_value(100_000),
            u32_value(100_000),
            i32_value(400_000),
            proptest::array::uniform2(temp()),
            temp(),
            temp(),
        )
            .boxed(),
        (
            0i32..=1_000,
            any::<u16>(),
            u32_value(400_000),
            u32_value(400_000),
            u32_value(400_000),
            any::<u32>(),
            any::<(bool, bool, bool)>(),
            any::<u32>(),
        )
            .boxed(),
        (
            any::<u32>(),
            any::<u32>(),
            0u8..3,
            (
                u32_value(100_000),
                i32_value(400_000),
                i32_value(400_000),
                u32_value(100_000),
            ),
        )
            .boxed(),
    )
        .prop_map(|(a, b, c)| {
            let mut t = Telemetry::empty(a.0);
            t.cell_count = a.0; // past MAX_CELLS too: the encoders clamp
            t.cells = a.1.map(MilliVolts::from_mv);
            t.pack_voltage = MilliVolts::from_mv(a.2);
            t.load_voltage = MilliVolts::from_mv(a.3);
            t.current = MilliAmps::from_ma(a.4);
            t.cell_temps = a.5;
            t.mos_temp = a.6;
            t.balance_temp = a.7;
            t.soc = Soc::from_permille_clamped(b.0);
            t.soh = Permille::from_permille(b.1);
            t.remaining = MilliAmpHours::from_mah(b.2);
            t.full_capacity = MilliAmpHours::from_mah(b.3);
            t.nominal_capacity = MilliAmpHours::from_mah(b.4);
            t.cycles = b.5;
            (t.charge_fet, t.discharge_fet, t.precharge_fet) = b.6;
            t.balance_mask = b.7;
            t.faults = FaultSet::from_bits(c.0);
            t.warnings = FaultSet::from_bits(c.1);
            t.mode = [PowerMode::Active, PowerMode::Sleep, PowerMode::DeepSleep][usize::from(c.2)];
            t.limits = Limits {
                charge_voltage: MilliVolts::from_mv(c.3 .0),
                charge_current: MilliAmps::from_ma(c.3 .1),
                discharge_current: MilliAmps::from_ma(c.3 .2),
                discharge_voltage: MilliVolts::from_mv(c.3 .3),
            };
            t
        })
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn j1939_encoders_match_the_reference(t in telemetry()) {
        for m in Message::SINGLE_FRAME.into_iter().chain([Message::CellVoltages]) {
            prop_assert_eq!(m.encode(&t), reference::encode(m, &t), "{:?}", m);
        }
        let (mut ours, mut theirs) = ([0; CELL_VOLTAGES_LEN], [0; CELL_VOLTAGES_LEN]);
        encode_cell_voltages(&t, &mut ours);
        reference::cell_voltages(&t, &mut theirs);
        prop_assert_eq!(ours, theirs);
    }

    #[test]
    fn inverter_encoder_matches_the_reference(t in telemetry(), modules in any::<u8>()) {
        let c = InverterConfig { modules, ..InverterConfig::default() };
        for id in 0x340..0x390 {
            let ours = inverter::encode(id, &t, &c).map(|f| f.data().to_vec());
            prop_assert_eq!(ours, reference::inverter(id, &t, &c), "{:#x}", id);
        }
    }
}

/// The HVES power fields around the clamp and the estimate's correction step.
#[test]
fn power_fields_at_the_edges() {
    let mut t = Telemetry::empty(16);
    for (mv, ma) in [
        (0, 0),
        (1, 24_999_999),
        (1, 25_000_000),
        (50_000, 500_000),
        (3_212_775, 1_000_000),
        (3_212_776, 1_000_000),
        (u32::MAX, 748),
        (u32::MAX, 749),
        (u32::MAX, i32::MAX as u32),
    ] {
        t.pack_voltage = MilliVolts::from_mv(mv);
        t.limits.discharge_current = MilliAmps::from_ma(ma as i32);
        t.limits.charge_current = MilliAmps::from_ma(-(ma as i32));
        let m = Message::Hves1D1;
        assert_eq!(m.encode(&t), reference::encode(m, &t), "{mv} mV, {ma} mA");
    }
    // Every quotient step near the clamp: x = q * D - 1, q * D and q * D + D / 2.
    for q in (0u64..=64_256).step_by(97).chain(64_250..=64_256) {
        for x in [
            q * 50_000_000,
            q * 50_000_000 + 24_999_999,
            q * 50_000_000 + 25_000_000,
        ] {
            let (mv, ma) = (100_000u64, x / 100_000);
            t.pack_voltage = MilliVolts::from_mv(mv as u32);
            t.limits.discharge_current = MilliAmps::from_ma(ma.min(i32::MAX as u64) as i32);
            let m = Message::Hves1D1;
            assert_eq!(m.encode(&t), reference::encode(m, &t), "{mv} mV, {ma} mA");
        }
    }
}

/// The first version of the DTC table's bookkeeping: per fault, per tier.
#[derive(Default)]
struct ReferenceDtcs {
    active: [FaultSet; 2],
    previous: [FaultSet; 2],
    occurrences: [[u8; Fault::COUNT]; 2],
}

#[allow(clippy::needless_range_loop)] // kept as first written
impl ReferenceDtcs {
    fn update(&mut self, faults: FaultSet, warnings: FaultSet) -> bool {
        let new = [faults, warnings.difference(faults)];
        let mut changed = false;
        for i in 0..2 {
            let old = self.active[i];
            if old == new[i] {
                continue;
            }
            changed = true;
            for f in new[i].difference(old).iter() {
                let c = &mut self.occurrences[i][f.index()];
                *c = c.saturating_add(1).min(126);
                self.previous[i].remove(f);
            }
            for f in old.difference(new[i]).iter() {
                self.previous[i].insert(f);
            }
            self.active[i] = new[i];
        }
        changed
    }

    fn clear_previous(&mut self) {
        for i in 0..2 {
            for f in self.previous[i].difference(self.active[i]).iter() {
                self.occurrences[i][f.index()] = 0;
            }
            self.previous[i] = FaultSet::EMPTY;
        }
    }

    fn clear_active(&mut self) {
        self.clear_previous();
        for i in 0..2 {
            for f in Fault::ALL {
                self.occurrences[i][f.index()] = u8::from(self.active[i].contains(f));
            }
        }
    }
}

proptest! {
    /// The DTC table's set-at-once update keeps the same active and previous DTCs and
    /// occurrence counts as the per-fault bookkeeping, through clears (DM3, DM11) too.
    #[test]
    fn dtc_table_matches_the_reference(
        ops in proptest::collection::vec((0u8..10, 0u32..256, 0u32..256), 1..200)
    ) {
        let (mut ours, mut theirs) = (DtcTable::new(), ReferenceDtcs::default());
        for (kind, a, b) in ops {
            // Few faults (so that counts rise and fall), spread over the mask.
            let set = |x: u32| FaultSet::from_bits((x & 0x0F) | (x & 0xF0) << 10);
            match kind {
                0 => {
                    ours.clear_previous();
                    theirs.clear_previous();
                }
                1 => {
                    ours.clear_active();
                    theirs.clear_active();
                }
                _ => prop_assert_eq!(
                    ours.update(set(a), set(b)),
                    theirs.update(set(a), set(b))
                ),
            }
            for (i, tier) in [Tier::Trip, Tier::Warning].into_iter().enumerate() {
                prop_assert_eq!(ours.active(tier), theirs.active[i]);
                for f in Fault::ALL {
                    prop_assert_eq!(ours.dtc(f, tier).occurrences(), theirs.occurrences[i][f.index()]);
                }
            }
            // DM2 lists the previously active DTCs.
            let mut dm2 = [0; MAX_DM_LEN];
            let n = ours.dm2(&mut dm2);
            let listed = DmMessage::parse(&dm2[..n]).unwrap().dtcs().count() as u32;
            prop_assert_eq!(listed, theirs.previous[0].len() + theirs.previous[1].len());
        }
    }
}
