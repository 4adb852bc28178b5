//! # bms-hal-stm32
//!
//! The real board behind `bms-core`:
//! - [`bq76952`]: a driver for the TI BQ76952 battery monitor over `embedded_hal::i2c::I2c`,
//!   hardware independent and host-testable, with a [`bms_core::ports::CellMonitor`] adapter
//!   ([`bq76952::Bq76952Monitor`]) and a two-device stack for 17..=20 cells
//!   ([`bq76952::Stacked`]);
//! - [`ntc`]: integer NTC conversion (10 kΩ, B 3435 K) with open/short detection;
//! - [`ports`]: MOSFET, digital I/O and ADC-scale ports over `embedded-hal` pins, used by
//!   the STM32 firmware (`examples/stm32-firmware`), which adds the MCU-specific ADC,
//!   CAN, UART, flash and watchdog glue. Nothing here depends on an MCU HAL, so the host
//!   build of the workspace never compiles one.
//!
//! ## Minimum supported Rust version
//! Rust 1.85 (edition 2021), as the workspace.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub mod bq76952;
pub mod ntc;
pub mod ports;
