//! Shared helpers for the BQ76952 driver tests. Addresses are written out again here from
//! the TRM so that a wrong address in the crate cannot pass.
#![allow(dead_code)]

use bms_hal_stm32::bq76952::{Bq76952, Config};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

pub const DEV: u8 = 0x08;

// Direct commands, TRM §12.1.
pub const SAFETY_ALERT_A: u8 = 0x02;
pub const SAFETY_STATUS_A: u8 = 0x03;
pub const SAFETY_STATUS_B: u8 = 0x05;
pub const SAFETY_STATUS_C: u8 = 0x07;
pub const BATTERY_STATUS: u8 = 0x12;
pub const CELL1: u8 = 0x14;
pub const CELL16: u8 = 0x32;
pub const STACK: u8 = 0x34;
pub const PACK: u8 = 0x36;
pub const LD: u8 = 0x38;
pub const CC2: u8 = 0x3A;
pub const SUBCMD: u8 = 0x3E;
pub const BUFFER: u8 = 0x40;
pub const CHECKSUM: u8 = 0x60;
pub const INT_TEMP: u8 = 0x68;
pub const TS1: u8 = 0x70;
pub const TS3: u8 = 0x74;
pub const FET_STATUS: u8 = 0x7F;

// Subcommands, TRM §12.2 / §12.3.
pub const DEVICE_NUMBER: u16 = 0x0001;
pub const EXIT_DEEPSLEEP: u16 = 0x000E;
pub const DEEPSLEEP: u16 = 0x000F;
pub const SHUTDOWN: u16 = 0x0010;
pub const FET_ENABLE: u16 = 0x0022;
pub const MFG_STATUS: u16 = 0x0057;
pub const CB_ACTIVE_CELLS: u16 = 0x0083;
pub const SET_CFGUPDATE: u16 = 0x0090;
pub const EXIT_CFGUPDATE: u16 = 0x0092;
pub const DSG_PDSG_OFF: u16 = 0x0093;
pub const CHG_PCHG_OFF: u16 = 0x0094;
pub const ALL_FETS_OFF: u16 = 0x0095;
pub const ALL_FETS_ON: u16 = 0x0096;
pub const FET_CONTROL: u16 = 0x0097;
pub const SLEEP_ENABLE: u16 = 0x0099;
pub const SLEEP_DISABLE: u16 = 0x009A;

// Data memory, TRM §13.3 / §13.6.
pub const VCELL_MODE: u16 = 0x9304;
pub const ENABLED_PROTECTIONS_A: u16 = 0x9261;
pub const CUV_THRESHOLD: u16 = 0x9275;
pub const CUV_DELAY: u16 = 0x9276;
pub const COV_THRESHOLD: u16 = 0x9278;
pub const COV_DELAY: u16 = 0x9279;
pub const OCC_THRESHOLD: u16 = 0x9280;
pub const OCC_DELAY: u16 = 0x9281;
pub const OCD1_THRESHOLD: u16 = 0x9282;
pub const OCD1_DELAY: u16 = 0x9283;
pub const SCD_THRESHOLD: u16 = 0x9286;
pub const SCD_DELAY: u16 = 0x9287;

pub fn new(transactions: &[T]) -> Bq76952<Mock> {
    Bq76952::new(Mock::new(transactions), Config::default())
}

pub fn new_crc(transactions: &[T]) -> Bq76952<Mock> {
    Bq76952::new(Mock::new(transactions), Config::default().with_crc(true))
}

pub fn destroy<M>(dev: Bq76952<Mock, M>) {
    dev.destroy().done();
}

/// CRC-8 poly 0x07, init 0, computed bit by bit.
pub fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0u8;
    for b in data {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Transfer buffer checksum: inverted byte sum of command and data.
pub fn checksum(cmd: u16, data: &[u8]) -> u8 {
    let mut s: u8 = (cmd & 0xFF) as u8;
    s = s.wrapping_add((cmd >> 8) as u8);
    for b in data {
        s = s.wrapping_add(*b);
    }
    !s
}

pub fn lo(cmd: u16) -> u8 {
    (cmd & 0xFF) as u8
}

pub fn hi(cmd: u16) -> u8 {
    (cmd >> 8) as u8
}

/// Command-only subcommand write.
pub fn cmd_only(cmd: u16) -> T {
    T::write(DEV, vec![SUBCMD, lo(cmd), hi(cmd)])
}

/// Transactions of a subcommand read answered at once with `data`.
pub fn subcmd_read(cmd: u16, data: &[u8]) -> Vec<T> {
    vec![
        cmd_only(cmd),
        T::write_read(DEV, vec![SUBCMD], vec![lo(cmd), hi(cmd)]),
        T::write_read(
            DEV,
            vec![CHECKSUM],
            vec![checksum(cmd, data), data.len() as u8 + 4],
        ),
        T::write_read(DEV, vec![BUFFER], data.to_vec()),
    ]
}

/// Transactions of a subcommand (or data memory) write with `data`, no CRC.
pub fn subcmd_write(cmd: u16, data: &[u8]) -> Vec<T> {
    let mut block = vec![SUBCMD, lo(cmd), hi(cmd)];
    block.extend_from_slice(data);
    vec![
        T::write(DEV, block),
        T::write(
            DEV,
            vec![CHECKSUM, checksum(cmd, data), data.len() as u8 + 4],
        ),
    ]
}

/// A two-byte direct read answer.
pub fn read16(reg: u8, v: u16) -> T {
    T::write_read(DEV, vec![reg], v.to_le_bytes().to_vec())
}
