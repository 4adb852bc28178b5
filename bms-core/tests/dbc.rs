//! The encoders agree with `dbc/bms.dbc` and `dbc/inverter.dbc`: every frame is parsed
//! with the `can-dbc` crate's DBC model and decoded here from the DBC's bit positions,
//! factors and offsets, then compared with the telemetry it was made from (in physical
//! units, computed independently of the encoders).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::HashMap;

use bms_core::can::{CanFrame, Frame};
use bms_core::inverter::{self, InverterConfig};
use bms_core::j1939::messages::{encode_cell_voltages, Message, CELL_VOLTAGES_LEN};
use bms_core::j1939::node::{J1939Config, J1939Node};
use bms_core::j1939::J1939Id;
use bms_core::protect::{Fault, FaultSet};
use bms_core::units::{DeciCelsius, MilliAmpHours, MilliAmps, MilliVolts, Permille, Soc};
use bms_core::{Instant, PowerMode, Telemetry};
use can_dbc::{ByteOrder, Dbc, MessageId, ValueType};

fn load(path: &str) -> Dbc {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    Dbc::try_from(text.as_str()).unwrap()
}

fn pgn_of(id: u32) -> u32 {
    J1939Id::from_raw(id).unwrap().pgn().as_u32()
}

/// Finds the DBC message of a frame: 11-bit ids exactly, 29-bit ids by PGN (J1939).
fn find(dbc: &Dbc, raw: u32, extended: bool) -> Option<&can_dbc::Message> {
    dbc.messages.iter().find(|m| match (m.id, extended) {
        (MessageId::Standard(s), false) => u32::from(s) == raw,
        (MessageId::Extended(e), true) => pgn_of(e) == pgn_of(raw),
        _ => false,
    })
}

fn num(v: &can_dbc::NumericValue) -> f64 {
    match *v {
        can_dbc::NumericValue::Uint(u) => u as f64,
        can_dbc::NumericValue::Int(i) => i as f64,
        can_dbc::NumericValue::Double(d) => d,
    }
}

/// Decodes every signal (little-endian only; our DBCs have no other) and checks that each
/// value lies in the DBC's [min|max] unless its raw value has a value description
/// ("NotAvailable" and the like).
fn decode(dbc: &Dbc, raw: u32, extended: bool, data: &[u8]) -> HashMap<String, f64> {
    let m = find(dbc, raw, extended).unwrap_or_else(|| panic!("{raw:X} not in DBC"));
    assert_eq!(data.len() as u64, m.size, "{}: length", m.name);
    let mut bits = [0u8; 64];
    bits[..data.len()].copy_from_slice(data);
    let mut out = HashMap::new();
    for s in &m.signals {
        assert_eq!(s.byte_order, ByteOrder::LittleEndian);
        let mut v: u64 = 0;
        for i in 0..s.size {
            let b = s.start_bit + i;
            let bit = (bits[(b / 8) as usize] >> (b % 8)) & 1;
            v |= u64::from(bit) << i;
        }
        let raw_i = if s.value_type == ValueType::Signed && v >> (s.size - 1) & 1 == 1 {
            v as i64 - (1i64 << s.size)
        } else {
            v as i64
        };
        let phys = raw_i as f64 * s.factor + s.offset;
        let described = dbc
            .value_descriptions_for_signal(m.id, &s.name)
            .is_some_and(|d| d.iter().any(|d| d.id == raw_i));
        if !described {
            let (lo, hi) = (num(&s.min), num(&s.max));
            assert!(
                phys >= lo - 1e-9 && phys <= hi + 1e-9,
                "{}.{} = {phys} outside [{lo}|{hi}]",
                m.name,
                s.name
            );
        }
        out.insert(s.name.clone(), phys);
    }
    out
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol + 1e-9,
        "{what}: got {got}, want {want} ± {tol}"
    );
}

fn telemetry() -> Telemetry {
    let mut t = Telemetry::empty(16);
    for (i, c) in t.cells.iter_mut().take(16).enumerate() {
        *c = MilliVolts::from_mv(3_280 + 7 * i as u32);
    }
    t.pack_voltage = MilliVolts::from_mv(53_123);
    t.load_voltage = MilliVolts::from_mv(52_987);
    t.current = MilliAmps::from_ma(-48_760); // charging 48.76 A
    t.cell_temps = [
        Some(DeciCelsius::from_deci(312)),
        Some(DeciCelsius::from_deci(-47)),
    ];
    t.mos_temp = Some(DeciCelsius::from_deci(451));
    t.balance_temp = None;
    t.soc = Soc::try_from_permille(637).unwrap();
    t.soh = Permille::from_permille(942);
    t.remaining = MilliAmpHours::from_mah(178_300);
    t.full_capacity = MilliAmpHours::from_mah(280_000);
    t.nominal_capacity = MilliAmpHours::from_mah(300_000);
    t.cycles = 321;
    t.charge_fet = true;
    t.discharge_fet = true;
    t.precharge_fet = false;
    t.balance_mask = 0b1010_0000_0000_0101;
    t.faults = FaultSet::from_iter([Fault::ChgOt]);
    t.warnings = FaultSet::from_iter([Fault::CellOv, Fault::CellImbalance]);
    t.mode = PowerMode::Active;
    t.limits.charge_voltage = MilliVolts::from_mv(56_800);
    t.limits.charge_current = MilliAmps::from_ma(150_000);
    t.limits.discharge_current = MilliAmps::from_ma(300_000);
    t.limits.discharge_voltage = MilliVolts::from_mv(44_800);
    t
}

fn j1939(dbc: &Dbc, m: Message, t: &Telemetry) -> HashMap<String, f64> {
    let id = J1939Id::new(m.priority(), m.pgn(), 0xFF, 0x42).unwrap();
    decode(dbc, id.to_raw(), true, &m.encode(t))
}

#[test]
fn bms_dbc_agrees_with_hves_encoders() {
    let dbc = load("dbc/bms.dbc");
    let t = telemetry();
    let v = j1939(&dbc, Message::Hves1D1, &t);
    close(v["VoltageLevel"], 53.123, 0.025, "voltage");
    close(v["Current"], 48.76, 0.025, "current (+ = charging)");
    close(
        v["AvailableDischargePower"],
        53.123 * 300.0 / 1000.0,
        0.05,
        "dsg power",
    );
    close(
        v["AvailableChargePower"],
        53.123 * 150.0 / 1000.0,
        0.05,
        "chg power",
    );
    let v = j1939(&dbc, Message::Hves1D2, &t);
    close(v["FastUpdateSoc"], 63.7, 0.0016, "soc");
    close(v["HighestCellVoltage"], 3.385, 0.0, "max cell");
    close(v["LowestCellVoltage"], 3.280, 0.0, "min cell");
    assert_eq!(v["CellVoltageDiffStatus"], 1.0); // imbalance warning
    let v = j1939(&dbc, Message::Hves1D3, &t);
    close(v["HighestCellTemperature"], 31.2, 0.016, "t max");
    close(v["LowestCellTemperature"], -4.7, 0.016, "t min");
    close(v["AverageCellTemperature"], 13.25, 0.016, "t avg");
    let v = j1939(&dbc, Message::Hves1D5, &t);
    close(v["DischargeCurrentLimit"], -300.0, 0.025, "dcl");
    close(v["ChargeCurrentLimit"], 150.0, 0.025, "ccl");
    let v = j1939(&dbc, Message::Hves1D6, &t);
    close(v["BusVoltage"], 52.987, 0.025, "bus voltage");
    close(v["ElectronicsTemperature"], 45.1, 0.5, "mos temp");
    close(v["HvesTemperature"], 31.2, 0.5, "pack temp");
    let v = j1939(&dbc, Message::Hves1S1, &t);
    assert_eq!(v["PrechargeRelayState"], 0.0);
    assert_eq!(v["CellBalancingActive"], 1.0);
    assert_eq!(v["BusConnectionStatus"], 1.0);
    assert_eq!(v["OperationalStatus"], 6.0); // disabled by internal decision (fault)
    let v = j1939(&dbc, Message::Hves1D7, &t);
    close(
        v["DischargeEnergyCapacity"],
        178.3 * 53.123 / 1000.0,
        0.001,
        "dsg energy",
    );
    close(
        v["ChargeEnergyCapacity"],
        101.7 * 53.123 / 1000.0,
        0.001,
        "chg energy",
    );
    close(v["MaxChargeVoltageLimit"], 56.8, 0.025, "cvl");
}

#[test]
fn bms_dbc_agrees_with_proprietary_encoders() {
    let dbc = load("dbc/bms.dbc");
    let t = telemetry();
    let v = j1939(&dbc, Message::Temperatures, &t);
    close(v["Temperature1"], 31.2, 1e-6, "t1");
    close(v["Temperature2"], -4.7, 1e-6, "t2");
    close(v["MosfetTemperature"], 45.1, 1e-6, "mos");
    let v = j1939(&dbc, Message::Status, &t);
    assert_eq!(
        (v["ChargeFet"], v["DischargeFet"], v["PrechargeFet"]),
        (1.0, 1.0, 0.0)
    );
    assert_eq!(v["PowerMode"], 0.0);
    assert_eq!(v["CellCount"], 16.0);
    assert_eq!(v["BalanceMask"], f64::from(0b1010_0000_0000_0101u32));
    let v = j1939(&dbc, Message::Limits, &t);
    close(v["ChargeVoltageLimit"], 56.8, 1e-6, "cvl");
    close(v["ChargeCurrentLimit"], 150.0, 1e-6, "ccl");
    close(v["DischargeCurrentLimit"], 300.0, 1e-6, "dcl");
    close(v["DischargeVoltageLimit"], 44.8, 1e-6, "dvl");
    let v = j1939(&dbc, Message::Alarms, &t);
    for f in Fault::ALL {
        let camel: String = f
            .name()
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|h| h.to_ascii_uppercase())
                    .into_iter()
                    .chain(c)
                    .collect::<String>()
            })
            .collect();
        assert_eq!(
            v[&format!("Fault{camel}")],
            f64::from(u8::from(t.faults.contains(f))),
            "{f}"
        );
        assert_eq!(
            v[&format!("Warning{camel}")],
            f64::from(u8::from(t.warnings.contains(f))),
            "{f}"
        );
    }
    let v = j1939(&dbc, Message::Capacity, &t);
    close(v["StateOfHealth"], 94.2, 1e-6, "soh");
    assert_eq!(v["CycleCount"], 321.0);
    close(v["FullCapacity"], 280.0, 1e-6, "full");
    close(v["RemainingCapacity"], 178.3, 1e-6, "remaining");

    let mut cells = [0; CELL_VOLTAGES_LEN];
    encode_cell_voltages(&t, &mut cells);
    let id = J1939Id::new(6, Message::CellVoltages.pgn(), 0xFF, 0xF3).unwrap();
    let v = decode(&dbc, id.to_raw(), true, &cells);
    assert_eq!(v["CellCount"], 16.0);
    for i in 0..20 {
        let got = v[&format!("Cell{:02}Voltage", i + 1)];
        let want = if i < 16 {
            f64::from(3_280 + 7 * i) / 1000.0
        } else {
            65.535
        };
        close(got, want, 1e-9, "cell");
    }
}

#[test]
fn every_frame_the_node_sends_is_in_the_dbc() {
    let dbc = load("dbc/bms.dbc");
    let mut node = J1939Node::new(J1939Config::default());
    let mut t = telemetry();
    let mut seen = std::collections::BTreeSet::new();
    for step in 0..60u64 {
        let now = Instant::from_millis(step * 100);
        t.faults = if step > 20 {
            FaultSet::EMPTY
        } else {
            FaultSet::from_iter([Fault::ChgOt])
        };
        t.warnings = if step > 40 {
            FaultSet::EMPTY
        } else {
            t.warnings
        };
        node.update(now, &t);
        while let Some(f) = node.poll_transmit(now) {
            let (raw, ext) = f.raw_id();
            assert!(ext);
            let v = decode(&dbc, raw, true, f.data());
            if pgn_of(raw) == 0xFECA {
                // DM1 single frame: the one DTC (SPN 5922 FMI 16 = cell_ov warning) or none.
                let spn = v["DtcSpnLow"] as u32 | (v["DtcSpnHigh"] as u32) << 16;
                assert!(
                    matches!((spn, v["DtcFmi"] as u8), (5922, 16) | (0, 0)),
                    "{spn}"
                );
            }
            seen.insert(pgn_of(raw));
        }
    }
    // Address claim, TP.CM/DT, DM1 and every data PGN appeared.
    for pgn in [
        0xEE00, 0xEC00, 0xEB00, 0xFECA, 0xF090, 0xF0A0, 0xFF01, 0xFF05,
    ] {
        assert!(seen.contains(&pgn), "{pgn:X} never sent");
    }
}

#[test]
fn address_claim_decodes() {
    let dbc = load("dbc/bms.dbc");
    // Golden vector of the J1939 notes: 18EEFFF3#4523E1FF00800080.
    let v = decode(
        &dbc,
        0x18EE_FFF3,
        true,
        &[0x45, 0x23, 0xE1, 0xFF, 0x00, 0x80, 0x00, 0x80],
    );
    assert_eq!(v["IdentityNumber"], f64::from(0x12345));
    assert_eq!(v["ManufacturerCode"], f64::from(0x7FF));
    assert_eq!(v["Function"], 128.0);
    assert_eq!(v["ArbitraryAddressCapable"], 1.0);
}

#[test]
fn inverter_dbc_agrees_with_encoders() {
    let dbc = load("dbc/inverter.dbc");
    let t = telemetry();
    let c = InverterConfig::default();
    let frame = |id: u16| -> CanFrame { inverter::encode(id, &t, &c).unwrap() };
    let dec = |id: u16| {
        let f = frame(id);
        decode(&dbc, u32::from(id), false, f.data())
    };
    let v = dec(0x351);
    close(v["ChargeVoltageLimit"], 56.8, 1e-6, "cvl");
    close(v["ChargeCurrentLimit"], 150.0, 1e-6, "ccl");
    close(v["DischargeCurrentLimit"], 300.0, 1e-6, "dcl");
    close(v["DischargeVoltageLimit"], 44.8, 1e-6, "dvl");
    let v = dec(0x355);
    assert_eq!((v["StateOfCharge"], v["StateOfHealth"]), (64.0, 94.0));
    let v = dec(0x356);
    close(v["Voltage"], 53.12, 0.01, "voltage");
    close(v["Current"], 48.7, 0.1, "current (+ = charging)");
    close(v["Temperature"], 31.2, 1e-6, "temperature");
    let v = dec(0x359);
    assert_eq!(v["ProtectionHighTemperature"], 1.0); // chg_ot fault
    assert_eq!(v["ProtectionHighVoltage"], 0.0);
    assert_eq!(v["AlarmHighVoltage"], 1.0); // cell_ov warning
    assert_eq!(v["ModuleCount"], 1.0);
    assert_eq!(
        (v["MarkerP"], v["MarkerN"]),
        (f64::from(b'P'), f64::from(b'N'))
    );
    let v = dec(0x35C);
    assert_eq!((v["ChargeEnable"], v["DischargeEnable"]), (1.0, 1.0));
    let v = dec(0x35E);
    assert_eq!(v["ManufacturerChar0"], f64::from(b'P'));
    let v = dec(0x373);
    close(v["MinCellVoltage"], 3.280, 1e-9, "min cell");
    close(v["MaxCellVoltage"], 3.385, 1e-9, "max cell");
    assert_eq!(
        (v["MinCellTemperature"], v["MaxCellTemperature"]),
        (269.0, 304.0)
    );
    let v = dec(0x379);
    assert_eq!(v["InstalledCapacity"], 300.0);
    for id in [0x370, 0x371, 0x372] {
        dec(id);
    }
}
