//! `Bms::step` over arbitrary measurement sequences (any values, any cell count, any
//! timestamps, sensors appearing and vanishing), then every encoder over the telemetry.
#![no_main]

use bms_core::bms::Switches;
use bms_core::config::{Chemistry, PackConfig, Port, Variant};
use bms_core::event_log::{EventKind, EventRecord};
use bms_core::inverter::{self, InverterConfig};
use bms_core::j1939::messages::{encode_cell_voltages, Message, CELL_VOLTAGES_LEN};
use bms_core::serial::status::{StatusFrame, StatusOptions};
use bms_core::serial::{LegacyStatusRepr, StatusRepr};
use bms_core::units::{DeciCelsius, MilliAmps, MilliVolts, Soc};
use bms_core::{Bms, Instant, Measurements, Telemetry, MAX_CELLS};
use bms_fuzz::Bytes;
use libfuzzer_sys::fuzz_target;

fn opt_temp(b: &mut Bytes<'_>) -> Option<DeciCelsius> {
    let v = b.i16();
    (v & 1 == 0).then(|| DeciCelsius::from_deci(v))
}

fn measurements(b: &mut Bytes<'_>, now: u64) -> Measurements {
    let mut cells = [MilliVolts::from_mv(0); MAX_CELLS];
    for c in &mut cells {
        // Mostly near a real cell voltage, sometimes anything.
        let raw = b.u16();
        *c = MilliVolts::from_mv(if raw & 0x8000 != 0 {
            u32::from(raw & 0x7FFF)
        } else {
            2_000 + u32::from(raw % 2_400)
        });
    }
    let flags = b.u8();
    Measurements {
        timestamp: Instant::from_millis(now),
        cell_count: b.u8(),
        cells,
        afe_ok: flags & 1 == 0,
        open_wire: if flags & 2 != 0 { b.u32() } else { 0 },
        cell_temps: [opt_temp(b), opt_temp(b)],
        mos_temp: opt_temp(b),
        balance_temp: opt_temp(b),
        pack: (flags & 4 == 0).then(|| MilliVolts::from_mv(b.u32() % 200_000)),
        load: (flags & 8 == 0).then(|| MilliVolts::from_mv(b.u32())),
        current: (flags & 16 == 0).then(|| MilliAmps::from_ma(b.i32())),
        acc: flags & 32 != 0,
        charger_present: flags & 64 != 0,
    }
}

fn encode_all(t: &Telemetry) {
    for m in Message::SINGLE_FRAME {
        let _ = m.encode(t);
    }
    let mut cv = [0u8; CELL_VOLTAGES_LEN];
    encode_cell_voltages(t, &mut cv);

    let mut buf = [0u8; StatusFrame::MAX_LEN];
    let n = StatusFrame::emit(t, &mut buf).expect("status frame fits MAX_LEN");
    let s = StatusFrame::parse(&buf[..n]).expect("own status frame decodes");
    assert_eq!(
        s,
        StatusRepr::from_telemetry(t, &StatusOptions::default()),
        "status from telemetry round trip"
    );

    let legacy = LegacyStatusRepr::from_telemetry(t);
    let mut lb = [0u8; 140];
    legacy.emit(&mut lb).expect("legacy status fits 140 bytes");
    assert_eq!(
        LegacyStatusRepr::parse(&lb),
        Ok(legacy),
        "legacy from telemetry round trip"
    );

    let rec = EventRecord::from_telemetry(EventKind::from_raw(1, 0), t);
    assert_eq!(
        EventRecord::decode(&rec.encode()),
        Ok(rec),
        "record from telemetry round trip"
    );

    let ic = InverterConfig::default();
    for id in 0x351..=0x379u16 {
        let _ = inverter::encode(id, t, &ic);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let cells = 8 + b.u8() % 13;
    let pulse = [80u16, 300][usize::from(b.u8() & 1)];
    let chemistry = match b.u8() % 3 {
        0 => Chemistry::Lfp,
        1 => Chemistry::Nmc,
        _ => Chemistry::Lto,
    };
    let Ok(variant) = Variant::new(cells, pulse, Port::Can) else {
        return;
    };
    let cfg = PackConfig::preset(variant, chemistry);
    let Ok(mut bms) = Bms::new(cfg) else {
        return;
    };
    let mut now = u64::from(b.u32());
    while !b.is_empty() {
        let op = b.u8();
        // Timestamps: forward by any amount, sometimes backwards or repeated.
        let dt = u64::from(b.u16());
        now = match op & 0x03 {
            0 => now.saturating_sub(dt),
            1 => now,
            _ => now.saturating_add(dt),
        };
        match op >> 5 {
            0 => bms.set_soc(Soc::from_permille_clamped(i32::from(b.i16()))),
            1 => bms.reset_faults(Instant::from_millis(now)),
            2 => bms.set_switches(Switches {
                charge: b.bool(),
                discharge: b.bool(),
                balance: b.bool(),
            }),
            _ => {}
        }
        let m = measurements(&mut b, now);
        let out = bms.step(&m);
        let n = u32::from(bms.telemetry().cell_count);
        if n < 32 {
            assert_eq!(
                out.balance_mask >> n,
                0,
                "balancing a cell that does not exist"
            );
        }
        while bms.poll_event().is_some() {}
        let _ = bms.stored_soc();
    }
    encode_all(bms.telemetry());
});
