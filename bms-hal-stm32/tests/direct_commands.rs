//! Direct commands: voltages, current, temperatures, status registers; CRC and bus errors.
#![allow(clippy::unwrap_used)]
mod common;

use bms_hal_stm32::bq76952::{
    BatteryStatus, CellIndex, Error, FetStatus, SafetyA, SafetyB, SafetyC, TempSensor,
};
use common::*;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::i2c::Transaction as T;

#[test]
fn cell_voltage_reads_its_own_register() {
    let mut dev = new(&[read16(CELL1, 3_300), read16(CELL16, 4_150)]);
    assert_eq!(
        dev.cell_voltage(CellIndex::new(1).unwrap())
            .unwrap()
            .as_mv(),
        3_300
    );
    assert_eq!(
        dev.cell_voltage(CellIndex::new(16).unwrap())
            .unwrap()
            .as_mv(),
        4_150
    );
    destroy(dev);
}

#[test]
fn negative_cell_reading_is_zero() {
    let mut dev = new(&[read16(CELL1, (-12i16) as u16)]);
    assert_eq!(
        dev.cell_voltage(CellIndex::new(1).unwrap())
            .unwrap()
            .as_mv(),
        0
    );
    destroy(dev);
}

#[test]
fn cell_index_rejects_out_of_range() {
    assert!(CellIndex::new(0).is_none());
    assert!(CellIndex::new(17).is_none());
}

#[test]
fn all_cells_in_one_block() {
    let raw: Vec<u8> = (0..16u16).flat_map(|i| (3_000 + i).to_le_bytes()).collect();
    let mut dev = new(&[T::write_read(DEV, vec![CELL1], raw)]);
    let mut out = [bms_core::units::MilliVolts::ZERO; 16];
    dev.cell_voltages(&mut out).unwrap();
    for (i, v) in out.iter().enumerate() {
        assert_eq!(v.as_mv(), 3_000 + i as u32);
    }
    destroy(dev);
}

#[test]
fn stack_pack_ld_in_user_volts() {
    // Default unit is 10 mV.
    let mut dev = new(&[read16(STACK, 5_280), read16(PACK, 5_279), read16(LD, 100)]);
    assert_eq!(dev.stack_voltage().unwrap().as_mv(), 52_800);
    assert_eq!(dev.pack_voltage().unwrap().as_mv(), 52_790);
    assert_eq!(dev.ld_voltage().unwrap().as_mv(), 1_000);
    destroy(dev);
}

#[test]
fn current_sign_is_discharge_positive() {
    // The device reports charge as positive.
    let mut dev = new(&[read16(CC2, 2_000), read16(CC2, (-1_500i16) as u16)]);
    assert_eq!(dev.current().unwrap().as_ma(), -2_000);
    assert_eq!(dev.current().unwrap().as_ma(), 1_500);
    destroy(dev);
}

#[test]
fn temperatures_from_deci_kelvin() {
    // 2982 = 298.2 K = 25.0 °C; 2532 = -20.0 °C (offset 273.2 K).
    let mut dev = new(&[read16(TS1, 2_982), read16(INT_TEMP, 2_532)]);
    assert_eq!(dev.temperature(TempSensor::Ts1).unwrap().as_deci(), 250);
    assert_eq!(
        dev.temperature(TempSensor::Internal).unwrap().as_deci(),
        -200
    );
    destroy(dev);
}

#[test]
fn safety_registers() {
    let mut dev = new(&[
        T::write_read(DEV, vec![SAFETY_ALERT_A], vec![0x08]),
        T::write_read(DEV, vec![SAFETY_STATUS_A], vec![0x84]),
        T::write_read(DEV, vec![SAFETY_STATUS_B], vec![0x21]),
        T::write_read(DEV, vec![SAFETY_STATUS_C], vec![0x40]),
    ]);
    assert_eq!(dev.safety_alert_a().unwrap(), SafetyA::COV);
    assert_eq!(dev.safety_status_a().unwrap(), SafetyA::SCD | SafetyA::CUV);
    assert_eq!(dev.safety_status_b().unwrap(), SafetyB::OTD | SafetyB::UTC);
    assert_eq!(dev.safety_status_c().unwrap(), SafetyC::SCDL);
    destroy(dev);
}

#[test]
fn battery_and_fet_status() {
    let mut dev = new(&[
        read16(BATTERY_STATUS, 0x8001),
        T::write_read(DEV, vec![FET_STATUS], vec![0x05]),
    ]);
    assert_eq!(
        dev.battery_status().unwrap(),
        BatteryStatus::SLEEP | BatteryStatus::CFGUPDATE
    );
    assert_eq!(
        dev.fet_status().unwrap(),
        FetStatus::CHG_FET | FetStatus::DSG_FET
    );
    destroy(dev);
}

#[test]
fn nack_is_an_error() {
    let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
    let mut dev = new(&[T::write_read(DEV, vec![CELL1], vec![0, 0]).with_error(nack)]);
    assert_eq!(
        dev.cell_voltage(CellIndex::new(1).unwrap()),
        Err(Error::I2c(nack))
    );
    destroy(dev);
}

#[test]
fn crc_read_checks_every_byte() {
    // 3300 mV = E4 0C; first CRC covers addr_w, cmd, addr_r, data.
    let c0 = crc8(&[DEV << 1, CELL1, (DEV << 1) | 1, 0xE4]);
    let c1 = crc8(&[0x0C]);
    let mut dev = new_crc(&[T::write_read(DEV, vec![CELL1], vec![0xE4, c0, 0x0C, c1])]);
    assert_eq!(
        dev.cell_voltage(CellIndex::new(1).unwrap())
            .unwrap()
            .as_mv(),
        3_300
    );
    destroy(dev);
}

#[test]
fn bad_crc_is_an_error() {
    let c0 = crc8(&[DEV << 1, CELL1, (DEV << 1) | 1, 0xE4]);
    let bad = crc8(&[0x0C]) ^ 0x01;
    let mut dev = new_crc(&[T::write_read(DEV, vec![CELL1], vec![0xE4, c0, 0x0C, bad])]);
    assert_eq!(
        dev.cell_voltage(CellIndex::new(1).unwrap()),
        Err(Error::Crc)
    );
    destroy(dev);
}

#[test]
fn bad_crc_on_first_byte_is_an_error() {
    let mut dev = new_crc(&[T::write_read(
        DEV,
        vec![FET_STATUS],
        vec![0x05, crc8(&[0x05])],
    )]);
    assert_eq!(dev.fet_status(), Err(Error::Crc));
    destroy(dev);
}
