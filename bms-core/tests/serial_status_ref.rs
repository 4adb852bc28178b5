//! The status frames the crate emits (new protocol `0x11` and legacy 140-byte) are byte for
//! byte those of a plain reference encoder kept here: the field-by-field encoder the crate
//! used before its table-driven one, written with wide arithmetic and no shortcuts.
#![allow(clippy::unwrap_used)]

use bms_core::serial::faults::{fault_mask, mos_code, CHARGE_CODES, DISCHARGE_CODES};
use bms_core::serial::frame::MAX_FRAME_LEN;
use bms_core::serial::legacy::LegacyStatusRepr;
use bms_core::serial::registers::NoParameters;
use bms_core::serial::status::{BatteryType, StatusFrame, StatusOptions, StatusRepr};
use bms_core::serial::{SerialConfig, SerialSession};
use bms_core::{
    DeciCelsius, FaultSet, Instant, MilliAmpHours, MilliAmps, MilliVolts, Permille, PowerMode, Soc,
    Telemetry,
};
use proptest::prelude::*;

fn crc16_modbus(data: &[u8]) -> u16 {
    let mut c: u16 = 0xFFFF;
    for &b in data {
        c ^= b as u16;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xA001
            } else {
                c >> 1
            };
        }
    }
    c
}

/// `v / d` rounded half away from zero.
fn round_away(v: i64, d: i64) -> i64 {
    if v >= 0 {
        (v + d / 2) / d
    } else {
        (v - d / 2) / d
    }
}

fn sat16(v: i64) -> u16 {
    v.clamp(0, u16::MAX as i64) as u16
}

fn celsius(t: Option<DeciCelsius>) -> i16 {
    t.map_or(-40, |t| round_away(t.as_deci() as i64, 10) as i16)
}

/// Every field of both frames, computed plainly from the telemetry.
struct Reference {
    battery_status: u8,
    protection: u64,
    warning: u64,
    cells: Vec<u16>,
    t1: i16,
    t2: i16,
    mos_temp: i16,
    balancer_temp: i16,
    pack_cv: u16,
    pack_dv: u16,
    current_da: i64,
    soc: u16,
    soh: u16,
    dsg_mos: u8,
    chg_mos: u8,
    balancer: u8,
    design_uah: u32,
    remaining_uah: u32,
    cycle_mah: u32,
    power_w: i32,
    runtime_s: u32,
    balance_mask: u32,
    max: (u16, u16),
    min: (u16, u16),
    average: u16,
    dsg_ds: u16,
}

fn reference(t: &Telemetry) -> Reference {
    let n = (t.cell_count as usize).min(t.cells.len());
    let cells: Vec<u32> = t.cells[..n].iter().map(|c| c.as_mv()).collect();
    // Highest: the first strictly greater than the running maximum, starting from 0 mV.
    let (mut max, mut imax) = (0u32, 0usize);
    for (i, &c) in cells.iter().enumerate() {
        if c > max {
            (max, imax) = (c, i);
        }
    }
    let (mut min, mut imin) = (cells.first().copied().unwrap_or(0), 0usize);
    for (i, &c) in cells.iter().enumerate() {
        if c < min {
            (min, imin) = (c, i);
        }
    }
    let sum: u64 = cells.iter().map(|&c| c as u64).sum();
    let average = if n == 0 { 0 } else { sum / n as u64 };
    let ma = t.current.as_ma() as i64;
    let idle = ma.abs() < 1_500;
    let battery_status = if !t.faults.is_empty() && idle {
        5
    } else if !idle && ma < 0 {
        2
    } else if !idle {
        3
    } else if t.mode != PowerMode::Active {
        4
    } else {
        1
    };
    let pack = t.pack_voltage.as_mv() as i64;
    let load = t.load_voltage.as_mv() as i64;
    let power_w = round_away(pack * ma, 1_000_000).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    let (max16, min16) = (sat16(max as i64), sat16(min as i64));
    Reference {
        battery_status,
        protection: fault_mask(t.faults),
        warning: fault_mask(t.warnings),
        cells: cells.iter().map(|&c| sat16(c as i64)).collect(),
        t1: celsius(t.cell_temps[0]),
        t2: celsius(t.cell_temps[1]),
        mos_temp: celsius(t.mos_temp),
        balancer_temp: celsius(t.balance_temp),
        pack_cv: sat16(round_away(pack, 10)),
        pack_dv: sat16(round_away(pack, 100)),
        current_da: round_away(ma, 100),
        soc: (t.soc.as_permille() + 5) / 10,
        soh: round_away(t.soh.as_permille() as i64, 10) as u16,
        dsg_mos: mos_code(t.discharge_fet, t.faults, DISCHARGE_CODES),
        chg_mos: mos_code(t.charge_fet, t.faults, CHARGE_CODES),
        balancer: if t.balance_mask != 0 { 4 } else { 0 },
        design_uah: (t.nominal_capacity.as_mah() as u64 * 1000).min(u32::MAX as u64) as u32,
        remaining_uah: (t.remaining.as_mah() as u64 * 1000).min(u32::MAX as u64) as u32,
        cycle_mah: ((t.total_discharged.as_mah() as u64 + t.total_charged.as_mah() as u64) / 2)
            as u32,
        power_w,
        runtime_s: (t.now.as_millis() / 1000).min(u32::MAX as u64) as u32,
        balance_mask: t.balance_mask,
        max: (max16, imax as u16 + 1),
        min: (min16, imin as u16 + 1),
        average: average.min(u16::MAX as u64) as u16,
        dsg_ds: if pack >= load {
            sat16(round_away(pack - load, 100))
        } else {
            0
        },
    }
}

/// The new-protocol status frame, field by field in offset order.
fn status_frame(t: &Telemetry, opts: &StatusOptions) -> Vec<u8> {
    let r = reference(t);
    let mut p = vec![0x05, r.battery_status, 2, r.cells.len() as u8];
    p.extend(r.protection.to_le_bytes());
    p.extend(r.warning.to_le_bytes());
    p.extend(0u64.to_le_bytes());
    for c in &r.cells {
        p.extend(c.to_le_bytes());
    }
    for v in [r.t1, r.t2, r.mos_temp, r.balancer_temp] {
        p.extend(v.to_le_bytes());
    }
    p.extend(r.pack_cv.to_le_bytes());
    p.extend((r.current_da.clamp(i16::MIN as i64, i16::MAX as i64) as i16).to_le_bytes());
    p.extend(r.soc.to_le_bytes());
    p.extend(r.soh.to_le_bytes());
    p.extend([r.dsg_mos, r.chg_mos, r.balancer, 0]);
    for v in [
        r.design_uah,
        r.remaining_uah,
        r.cycle_mah,
        r.power_w as u32,
        r.runtime_s,
        r.balance_mask,
    ] {
        p.extend(v.to_le_bytes());
    }
    for v in [
        r.max.0,
        r.max.1,
        r.min.0,
        r.min.1,
        r.max.0.saturating_sub(r.min.0),
        r.average,
        r.dsg_ds,
        0,
        0,
        0,
        u16::from(opts.battery_type),
    ] {
        p.extend(v.to_le_bytes());
    }
    for v in [
        t.total_discharged.as_mah(),
        t.total_charged.as_mah(),
        opts.total_discharge_time_s,
        opts.total_charge_time_s,
    ] {
        p.extend(v.to_le_bytes());
    }
    let mut f = vec![0x7E, 0xA1, 0x11, 0x00, 0x00, p.len() as u8];
    f.extend(p);
    let crc = crc16_modbus(&f[1..]);
    f.extend(crc.to_le_bytes());
    f.extend([0xAA, 0x55]);
    f
}

/// The legacy 140-byte status frame, field by field in offset order.
fn legacy_frame(t: &Telemetry) -> Vec<u8> {
    let r = reference(t);
    let mut f = vec![0xAA, 0x55, 0xAA, 0xFF];
    f.extend(r.pack_dv.to_be_bytes());
    for i in 0..32 {
        f.extend(r.cells.get(i).copied().unwrap_or(0).to_be_bytes());
    }
    f.extend((r.current_da as i32).to_be_bytes());
    f.push(r.soc as u8);
    for v in [r.design_uah, r.remaining_uah, r.cycle_mah, r.runtime_s] {
        f.extend(v.to_be_bytes());
    }
    for v in [r.mos_temp, r.balancer_temp, r.t1, r.t2, -40, -40] {
        f.extend(v.to_be_bytes());
    }
    f.extend([r.chg_mos, r.dsg_mos, r.balancer, 0, 0, 0, 0, 0]);
    f.extend(r.power_w.to_be_bytes());
    f.push(r.max.1 as u8);
    f.extend(r.max.0.to_be_bytes());
    f.push(r.min.1 as u8);
    f.extend(r.min.0.to_be_bytes());
    f.extend(r.average.to_be_bytes());
    f.push(r.cells.len() as u8);
    f.extend([0; 8]);
    f.extend(r.balance_mask.to_be_bytes());
    f.extend([0, 0]);
    let sum = f[4..].iter().fold(0u16, |a, &x| a.wrapping_add(x as u16));
    f.extend(sum.to_be_bytes());
    f
}

fn arb_telemetry() -> impl Strategy<Value = Telemetry> {
    (
        (
            0u8..=20,
            prop::collection::vec(any::<u32>(), 20),
            any::<bool>(),
        ),
        (any::<u32>(), any::<u32>(), any::<i32>()),
        prop::collection::vec(prop::option::of(any::<i16>()), 4),
        (0u16..=1000, any::<u16>(), 0usize..3),
        prop::collection::vec(any::<u32>(), 4),
        (
            any::<bool>(),
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        ),
        any::<u64>(),
    )
        .prop_map(|(cells, volts, temps, soc, caps, flags, now)| {
            let (n, mv, small) = cells;
            let mut t = Telemetry::empty(n);
            for (c, v) in t.cells.iter_mut().zip(mv) {
                // Half the cases in the realistic range, where ties and maxima repeat.
                *c = MilliVolts::from_mv(if small { 3_000 + v % 8 } else { v });
            }
            t.pack_voltage = MilliVolts::from_mv(volts.0);
            t.load_voltage = MilliVolts::from_mv(volts.1);
            t.current = MilliAmps::from_ma(volts.2);
            t.cell_temps = [
                temps[0].map(DeciCelsius::from_deci),
                temps[1].map(DeciCelsius::from_deci),
            ];
            t.mos_temp = temps[2].map(DeciCelsius::from_deci);
            t.balance_temp = temps[3].map(DeciCelsius::from_deci);
            t.soc = Soc::try_from_permille(soc.0).unwrap();
            t.soh = Permille::from_permille(soc.1);
            t.mode = [PowerMode::Active, PowerMode::Sleep, PowerMode::DeepSleep][soc.2];
            t.nominal_capacity = MilliAmpHours::from_mah(caps[0]);
            t.remaining = MilliAmpHours::from_mah(caps[1]);
            t.total_discharged = MilliAmpHours::from_mah(caps[2]);
            t.total_charged = MilliAmpHours::from_mah(caps[3]);
            t.charge_fet = flags.0;
            t.discharge_fet = flags.1;
            t.balance_mask = flags.2;
            t.faults = FaultSet::from_bits(flags.3);
            t.warnings = FaultSet::from_bits(flags.4);
            t.now = Instant::from_millis(now);
            t
        })
}

fn arb_options() -> impl Strategy<Value = StatusOptions> {
    (any::<u16>(), any::<u32>(), any::<u32>()).prop_map(|(ty, d, c)| StatusOptions {
        battery_type: BatteryType::from(ty),
        total_discharge_time_s: d,
        total_charge_time_s: c,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn status_frame_equals_the_reference(t in arb_telemetry(), opts in arb_options()) {
        let want = status_frame(&t, &opts);
        let mut buf = [0u8; MAX_FRAME_LEN];
        let n = StatusFrame::emit_with(&t, &opts, &mut buf).unwrap();
        prop_assert_eq!(&buf[..n], &want[..]);
        let repr = StatusRepr::from_telemetry(&t, &opts);
        let mut again = [0u8; MAX_FRAME_LEN];
        let m = repr.emit(&mut again).unwrap();
        prop_assert_eq!(&again[..m], &want[..]);
        // One byte short: refused, whatever the length.
        prop_assert!(StatusFrame::emit_with(&t, &opts, &mut buf[..n - 1]).is_err());
    }

    #[test]
    fn legacy_frame_equals_the_reference(t in arb_telemetry()) {
        let want = legacy_frame(&t);
        let repr = LegacyStatusRepr::from_telemetry(&t);
        let mut buf = [0u8; 140];
        prop_assert_eq!(repr.emit(&mut buf), Ok(140));
        prop_assert_eq!(&buf[..], &want[..]);
    }

    /// The session's answers to both status requests are the reference frames.
    #[test]
    fn session_status_answers_equal_the_reference(t in arb_telemetry(), opts in arb_options()) {
        let mut cfg = SerialConfig::new(b"12345678").unwrap();
        cfg.status = opts;
        let mut session = SerialSession::new(cfg);
        let now = Instant::from_millis(1);
        let mut params = NoParameters;
        session.handle_bytes(now, &[0x7E, 0xA1, 0x01, 0x00, 0x00, 0xBE, 0x18, 0x55, 0xAA, 0x55], &mut params);
        session.handle_bytes(now, &[0x5A, 0x5A, 0x00, 0x00, 0x01, 0x01], &mut params);
        let mut buf = [0u8; MAX_FRAME_LEN];
        let n = session.poll_transmit(now, &t, &params, &mut buf).unwrap();
        prop_assert_eq!(&buf[..n], &status_frame(&t, &opts)[..]);
        let n = session.poll_transmit(now, &t, &params, &mut buf).unwrap();
        prop_assert_eq!(&buf[..n], &legacy_frame(&t)[..]);
        prop_assert_eq!(session.poll_transmit(now, &t, &params, &mut buf), None);
        // A buffer one byte short drops the frame.
        session.handle_bytes(now, &[0x5A, 0x5A, 0x00, 0x00, 0x01, 0x01], &mut params);
        prop_assert_eq!(session.poll_transmit(now, &t, &params, &mut buf[..139]), None);
        prop_assert_eq!(session.stats().dropped, 1);
    }
}
