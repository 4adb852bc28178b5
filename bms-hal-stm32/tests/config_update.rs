//! CONFIG_UPDATE mode changes, data memory writes and the hardware protection settings.
#![allow(clippy::unwrap_used)]
mod common;

use bms_core::units::{MilliAmps, MilliVolts};
use bms_hal_stm32::bq76952::{Bq76952, Config, Error, HwProtection, ScdThreshold, ShuntResistance};
use common::*;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

fn enter() -> Vec<T> {
    vec![
        cmd_only(SET_CFGUPDATE),
        read16(BATTERY_STATUS, 0x0000),
        read16(BATTERY_STATUS, 0x0001),
    ]
}

fn leave() -> Vec<T> {
    vec![cmd_only(EXIT_CFGUPDATE), read16(BATTERY_STATUS, 0x0000)]
}

fn protection() -> HwProtection {
    HwProtection {
        // 250 µΩ shunt.
        shunt: ShuntResistance::from_micro_ohms(250),
        scd_threshold: ScdThreshold::Mv150,
        scd_delay_us: 60,
        // 200 A * 250 µΩ = 50 mV -> 25 steps of 2 mV.
        ocd: MilliAmps::from_amps(200),
        ocd_delay_ms: 100,
        // 100 A -> 25 mV -> 12 steps.
        occ: MilliAmps::from_amps(100),
        occ_delay_ms: 330,
        // 3650 mV / 50.6 = 72.1 -> 72 (rounded down).
        cov: MilliVolts::from_mv(3_650),
        // 2500 mV / 50.6 = 49.4 -> 50 (rounded up).
        cuv: MilliVolts::from_mv(2_500),
        cell_delay_ms: 1_000,
    }
}

#[test]
fn enter_write_leave() {
    let mut t = enter();
    t.extend(subcmd_write(VCELL_MODE, &[0x7F, 0x80]));
    t.extend(leave());
    let dev = new(&t);
    let mut cfg = dev.into_config_update().unwrap();
    cfg.set_vcell_mode(0x807F).unwrap();
    let dev = cfg.into_normal().unwrap();
    destroy(dev);
}

#[test]
fn failed_entry_gives_the_device_back() {
    let t = vec![
        cmd_only(SET_CFGUPDATE),
        read16(BATTERY_STATUS, 0x0000),
        read16(BATTERY_STATUS, 0x0000),
        // The device is still usable in normal mode afterwards.
        cmd_only(ALL_FETS_OFF),
    ];
    let dev = Bq76952::new(Mock::new(&t), Config::default().with_poll_attempts(2));
    let err = dev.into_config_update().unwrap_err();
    assert_eq!(err.error, Error::Timeout);
    let mut dev = err.dev;
    dev.all_fets_off().unwrap();
    destroy(dev);
}

#[test]
fn nack_on_entry_gives_the_device_back() {
    let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
    let dev = new(&[cmd_only(SET_CFGUPDATE).with_error(nack)]);
    let err = dev.into_config_update().unwrap_err();
    assert_eq!(err.error, Error::I2c(nack));
    destroy(err.dev);
}

#[test]
fn hw_protection_register_values() {
    let r = protection().registers::<()>().unwrap();
    assert_eq!(r.scd_threshold, 7);
    // 60 µs = 4 steps of 15 µs, register = steps + 1.
    assert_eq!(r.scd_delay, 5);
    assert_eq!(r.ocd1_threshold, 25);
    assert_eq!(r.occ_threshold, 12);
    // 100 ms / 3.3 ms = 30 periods, minus the 2 fixed ones.
    assert_eq!(r.ocd1_delay, 28);
    assert_eq!(r.occ_delay, 98);
    assert_eq!(r.cov_threshold, 72);
    assert_eq!(r.cuv_threshold, 50);
    assert_eq!(r.cell_delay, 301);
}

#[test]
fn hw_protection_written_in_config_update() {
    let mut t = enter();
    for (addr, data) in [
        (SCD_THRESHOLD, vec![7u8]),
        (SCD_DELAY, vec![5]),
        (OCD1_THRESHOLD, vec![25]),
        (OCD1_DELAY, vec![28]),
        (OCC_THRESHOLD, vec![12]),
        (OCC_DELAY, vec![98]),
        (COV_THRESHOLD, vec![72]),
        (COV_DELAY, 301u16.to_le_bytes().to_vec()),
        (CUV_THRESHOLD, vec![50]),
        (CUV_DELAY, 301u16.to_le_bytes().to_vec()),
        // SCD | OCD1 | OCC | COV | CUV.
        (ENABLED_PROTECTIONS_A, vec![0xBC]),
    ] {
        t.extend(subcmd_write(addr, &data));
    }
    let dev = new(&t);
    let mut cfg = dev.into_config_update().unwrap();
    cfg.set_hw_protection(&protection()).unwrap();
    destroy(cfg);
}

#[test]
fn out_of_range_protection_writes_nothing() {
    let mut p = protection();
    p.cov = MilliVolts::from_mv(6_000);
    let dev = new(&enter());
    let mut cfg = dev.into_config_update().unwrap();
    assert_eq!(cfg.set_hw_protection(&p), Err(Error::InvalidInputData));
    let mut p = protection();
    p.scd_delay_us = 451;
    assert_eq!(cfg.set_hw_protection(&p), Err(Error::InvalidInputData));
    let mut p = protection();
    p.ocd = MilliAmps::from_amps(1_000); // 250 mV across the shunt: above 200 mV.
    assert_eq!(cfg.set_hw_protection(&p), Err(Error::InvalidInputData));
    destroy(cfg);
}

#[test]
fn scd_step_from_current() {
    let shunt = ShuntResistance::from_micro_ohms(500);
    // 500 A * 500 µΩ = 250 mV exactly.
    assert_eq!(
        ScdThreshold::at_or_below(MilliAmps::from_amps(500), shunt),
        Some(ScdThreshold::Mv250)
    );
    // 499 A -> 249.5 mV -> the 200 mV step.
    assert_eq!(
        ScdThreshold::at_or_below(MilliAmps::from_amps(499), shunt),
        Some(ScdThreshold::Mv200)
    );
    assert_eq!(
        ScdThreshold::at_or_below(MilliAmps::from_amps(10), shunt),
        None
    );
    assert_eq!(ScdThreshold::Mv450.millivolts().as_mv(), 450);
}

#[test]
fn scd_step_at_or_above_current() {
    let shunt = ShuntResistance::from_micro_ohms(250);
    // 300 A -> 75 mV -> 80 mV step; 400 A -> 100 mV exactly.
    assert_eq!(
        ScdThreshold::at_or_above(MilliAmps::from_amps(300), shunt),
        Some(ScdThreshold::Mv80)
    );
    assert_eq!(
        ScdThreshold::at_or_above(MilliAmps::from_amps(400), shunt),
        Some(ScdThreshold::Mv100)
    );
    // 2100 A -> 525 mV: beyond the largest step.
    assert_eq!(
        ScdThreshold::at_or_above(MilliAmps::from_amps(2_100), shunt),
        None
    );
}

#[test]
fn backstop_from_presets_is_programmable() {
    use bms_core::config::{Chemistry, PackConfig, Port, Variant};
    let shunt = ShuntResistance::from_micro_ohms(250);
    for (cells, amps) in [(8u8, 80u16), (16, 300), (20, 300)] {
        for chem in [Chemistry::Lfp, Chemistry::Nmc, Chemistry::Lto] {
            let cfg = PackConfig::preset(Variant::new(cells, amps, Port::Can).unwrap(), chem);
            let hw = HwProtection::backstop(&cfg, shunt);
            let ov = cfg.protection.get(bms_core::Fault::CellOv).trip as u32;
            let uv = cfg.protection.get(bms_core::Fault::CellUv).trip as u32;
            assert!(
                hw.cov.as_mv() > ov && hw.cuv.as_mv() < uv,
                "{cells}S {amps} A {chem:?}"
            );
            // Every backstop of a preset fits the device's ranges.
            let r = hw.registers::<()>();
            assert!(r.is_ok(), "{cells}S {amps} A {chem:?}: {r:?}");
        }
    }
}

#[test]
fn backstop_16s_300a_lfp_registers() {
    use bms_core::config::{Chemistry, PackConfig, Port, Variant};
    let cfg = PackConfig::preset(Variant::new(16, 300, Port::Can).unwrap(), Chemistry::Lfp);
    let hw = HwProtection::backstop(&cfg, ShuntResistance::from_micro_ohms(250));
    let r = hw.registers::<()>().unwrap();
    // 450 A * 250 µΩ = 112.5 mV -> 125 mV step (index 6).
    assert_eq!(r.scd_threshold, 6);
    // OCD1 at 300 A = 75 mV = 37 steps of 2 mV.
    assert_eq!(r.ocd1_threshold, 37);
    // OCC at 1.5 * 120 A = 180 A = 45 mV = 22 steps.
    assert_eq!(r.occ_threshold, 22);
    // COV 3750 mV -> 74 steps (rounded down); CUV 2300 mV -> 46 steps (rounded up).
    assert_eq!(r.cov_threshold, 74);
    assert_eq!(r.cuv_threshold, 46);
}
