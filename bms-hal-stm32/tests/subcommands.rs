//! Subcommands: transfer protocol, balancing, FETs, power modes; timeout and checksum errors.
#![allow(clippy::unwrap_used)]
mod common;

use bms_hal_stm32::bq76952::{Bq76952, Config, Error, FetControl};
use common::*;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

#[test]
fn device_number_after_busy_polls() {
    let mut t = vec![
        cmd_only(DEVICE_NUMBER),
        // Busy: the device reads 0xFF until the subcommand completes.
        T::write_read(DEV, vec![SUBCMD], vec![0xFF, 0xFF]),
        T::write_read(DEV, vec![SUBCMD], vec![0xFF, 0xFF]),
    ];
    t.extend(
        subcmd_read(DEVICE_NUMBER, &[0x95, 0x76])
            .into_iter()
            .skip(1),
    );
    let mut dev = new(&t);
    assert_eq!(dev.device_number().unwrap(), 0x7695);
    destroy(dev);
}

#[test]
fn subcommand_timeout_is_an_error() {
    let mut t = vec![cmd_only(DEVICE_NUMBER)];
    for _ in 0..3 {
        t.push(T::write_read(DEV, vec![SUBCMD], vec![0xFF, 0xFF]));
    }
    let i2c = Mock::new(&t);
    let mut dev = Bq76952::new(i2c, Config::default().with_poll_attempts(3));
    assert_eq!(dev.device_number(), Err(Error::Timeout));
    destroy(dev);
}

#[test]
fn subcommand_bad_checksum_is_an_error() {
    let data = [0x95, 0x76];
    let mut dev = new(&[
        cmd_only(DEVICE_NUMBER),
        T::write_read(
            DEV,
            vec![SUBCMD],
            vec![lo(DEVICE_NUMBER), hi(DEVICE_NUMBER)],
        ),
        T::write_read(
            DEV,
            vec![CHECKSUM],
            vec![checksum(DEVICE_NUMBER, &data) ^ 0x10, 6],
        ),
        T::write_read(DEV, vec![BUFFER], data.to_vec()),
    ]);
    assert_eq!(dev.device_number(), Err(Error::Checksum));
    destroy(dev);
}

#[test]
fn subcommand_short_length_is_an_error() {
    let mut dev = new(&[
        cmd_only(DEVICE_NUMBER),
        T::write_read(
            DEV,
            vec![SUBCMD],
            vec![lo(DEVICE_NUMBER), hi(DEVICE_NUMBER)],
        ),
        T::write_read(DEV, vec![CHECKSUM], vec![0x00, 3]),
    ]);
    assert_eq!(dev.device_number(), Err(Error::InvalidResponse));
    destroy(dev);
}

#[test]
fn subcommand_nack_is_an_error() {
    let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data);
    let mut dev = new(&[cmd_only(ALL_FETS_OFF).with_error(nack)]);
    assert_eq!(dev.all_fets_off(), Err(Error::I2c(nack)));
    destroy(dev);
}

#[test]
fn balancing_write_and_read_back() {
    let mut t = subcmd_write(CB_ACTIVE_CELLS, &[0x05, 0x80]);
    t.extend(subcmd_read(CB_ACTIVE_CELLS, &[0x05, 0x80]));
    t.extend(subcmd_write(CB_ACTIVE_CELLS, &[0x00, 0x00]));
    let mut dev = new(&t);
    dev.set_balancing(0x8005).unwrap();
    assert_eq!(dev.balancing_shadow(), 0x8005);
    assert_eq!(dev.balancing().unwrap(), 0x8005);
    dev.set_balancing(0).unwrap();
    assert_eq!(dev.balancing_shadow(), 0);
    destroy(dev);
}

#[test]
fn balancing_write_with_crc() {
    let block = [SUBCMD, lo(CB_ACTIVE_CELLS), hi(CB_ACTIVE_CELLS), 0x03, 0x00];
    let chk = checksum(CB_ACTIVE_CELLS, &[0x03, 0x00]);
    let first = crc8(&[DEV << 1, SUBCMD, block[1]]);
    let mut bytes = vec![SUBCMD, block[1], first];
    for b in &block[2..] {
        bytes.push(*b);
        bytes.push(crc8(&[*b]));
    }
    let chk_bytes = vec![
        CHECKSUM,
        chk,
        crc8(&[DEV << 1, CHECKSUM, chk]),
        6,
        crc8(&[6]),
    ];
    let mut dev = new_crc(&[T::write(DEV, bytes), T::write(DEV, chk_bytes)]);
    dev.set_balancing(0x0003).unwrap();
    destroy(dev);
}

#[test]
fn fet_commands_send_only_changes() {
    let mut t = vec![
        // (off, off)
        cmd_only(ALL_FETS_OFF),
        // (on, on)
        cmd_only(ALL_FETS_ON),
        // (on, on) again: nothing
        // (on, off) from (on, on): only discharge off
        cmd_only(DSG_PDSG_OFF),
        // (off, on) from (on, off): clear, then charge off
        cmd_only(ALL_FETS_ON),
        cmd_only(CHG_PCHG_OFF),
    ];
    t.extend(subcmd_write(FET_CONTROL, &[0x05]));
    let mut dev = new(&t);
    dev.set_fets(false, false).unwrap();
    dev.set_fets(true, true).unwrap();
    dev.set_fets(true, true).unwrap();
    dev.set_fets(true, false).unwrap();
    dev.set_fets(false, true).unwrap();
    dev.fet_control(FetControl::CHG_OFF | FetControl::DSG_OFF)
        .unwrap();
    destroy(dev);
}

#[test]
fn fet_command_failure_forgets_the_state() {
    let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data);
    let mut dev = new(&[
        cmd_only(ALL_FETS_ON).with_error(nack),
        // Unknown state: the full sequence again.
        cmd_only(ALL_FETS_ON),
        cmd_only(DSG_PDSG_OFF),
    ]);
    assert_eq!(dev.set_fets(true, true), Err(Error::I2c(nack)));
    dev.set_fets(true, false).unwrap();
    destroy(dev);
}

#[test]
fn autonomous_fets_toggles_only_when_needed() {
    let mut t = subcmd_read(MFG_STATUS, &[0x00, 0x00]);
    t.push(cmd_only(FET_ENABLE));
    t.extend(subcmd_read(MFG_STATUS, &[0x10, 0x00]));
    let mut dev = new(&t);
    dev.set_autonomous_fets(true).unwrap();
    // Already enabled: no toggle.
    dev.set_autonomous_fets(true).unwrap();
    destroy(dev);
}

#[test]
fn power_modes() {
    let mut dev = new(&[
        cmd_only(SLEEP_ENABLE),
        cmd_only(SLEEP_DISABLE),
        cmd_only(DEEPSLEEP),
        cmd_only(DEEPSLEEP),
        cmd_only(EXIT_DEEPSLEEP),
        cmd_only(SHUTDOWN),
    ]);
    dev.sleep_enable().unwrap();
    dev.sleep_disable().unwrap();
    dev.enter_deep_sleep().unwrap();
    dev.exit_deep_sleep().unwrap();
    dev.shutdown().unwrap();
    destroy(dev);
}
