//! Driver for the TI BQ76952 3-16 series battery monitor and protector, over
//! `embedded_hal::i2c::I2c`.
//!
//! The device has three command spaces, kept apart here as in the *BQ76952 Technical
//! Reference Manual* (TI SLUUBY2B):
//! - **direct commands** (TRM §12.1): cell voltages ([`Bq76952::cell_voltage`],
//!   [`Bq76952::cell_voltages`]), [`Bq76952::stack_voltage`], [`Bq76952::pack_voltage`],
//!   [`Bq76952::ld_voltage`], the CC2 current ([`Bq76952::current`]), temperatures in 0.1 K
//!   converted to `DeciCelsius` ([`Bq76952::temperature`]), safety alerts and statuses A/B/C
//!   ([`Bq76952::safety_status_a`], ...), [`Bq76952::battery_status`], [`Bq76952::fet_status`];
//! - **subcommands** (TRM §12.2, §12.3), written to 0x3E/0x3F with data in the 0x40 buffer and
//!   a checksum (0x60) and length (0x61): balancing ([`Bq76952::set_balancing`]), FET control
//!   ([`Bq76952::set_fets`], [`Bq76952::all_fets_off`], [`Bq76952::fet_control`],
//!   [`Bq76952::set_autonomous_fets`]), power modes ([`Bq76952::sleep_enable`],
//!   [`Bq76952::enter_deep_sleep`], [`Bq76952::shutdown`]);
//! - **data memory** (TRM chapter 13), written only in CONFIG_UPDATE mode: the type system
//!   allows [`Bq76952::write_data_memory_u8`] and [`Bq76952::set_hw_protection`] only on a
//!   `Bq76952<I2C, mode::ConfigUpdate>`, obtained with [`Bq76952::into_config_update`];
//!   [`HwProtection::backstop`] derives the chip's own protections from a `PackConfig`.
//!
//! I2C CRC (CRC-8, polynomial 0x07) is used when [`Config::crc`] is set. Every failure is an
//! [`Error`], never a panic; a subcommand that does not complete within
//! [`Config::poll_attempts`] polls is [`Error::Timeout`].
//!
//! Sign convention: the device reports charge current as positive; [`Bq76952::current`]
//! returns the core's convention (positive = discharge).
//!
//! # Examples
//! ```
//! # use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
//! use bms_hal_stm32::bq76952::{Bq76952, CellIndex, Config};
//! # let i2c = Mock::new(&[Transaction::write_read(0x08, vec![0x14], vec![0xE4, 0x0C])]);
//! let mut afe = Bq76952::new(i2c, Config::default());
//! let v = afe.cell_voltage(CellIndex::new(1).unwrap())?;
//! assert_eq!(v.as_mv(), 3_300);
//! # afe.destroy().done();
//! # Ok::<(), bms_hal_stm32::bq76952::Error<embedded_hal::i2c::ErrorKind>>(())
//! ```
//!
//! Data memory can only be written in CONFIG_UPDATE mode; this does not compile:
//! ```compile_fail
//! # use embedded_hal_mock::eh1::i2c::Mock;
//! use bms_hal_stm32::bq76952::{Bq76952, Config};
//! let mut afe = Bq76952::new(Mock::new(&[]), Config::default());
//! afe.write_data_memory_u8(0x9261, 0xBC); // Enabled Protections A
//! ```
//! and balancing or FET commands are not available in CONFIG_UPDATE mode:
//! ```compile_fail
//! # use embedded_hal_mock::eh1::i2c::Mock;
//! use bms_hal_stm32::bq76952::{Bq76952, Config};
//! let afe = Bq76952::new(Mock::new(&[]), Config::default());
//! let mut cfg = afe.into_config_update().map_err(|e| e.error).unwrap();
//! cfg.set_balancing(0x0001);
//! ```

mod backstop;
mod config_update;
mod device_impl;
mod interface;
mod monitor;
pub mod register_address;
mod types;

use core::marker::PhantomData;

pub use interface::crc8;
pub use monitor::{Bq76952Monitor, ChannelMap, MonitorConfig, StackError, Stacked, TempSources};
pub use types::{
    mode, BatteryStatus, CellIndex, Config, Error, FetControl, FetStatus, HwProtection,
    HwProtectionRegisters, ModeChangeError, SafetyA, SafetyB, SafetyC, ScdThreshold,
    ShuntResistance, TempSensor, UserAmps, UserVolts,
};

/// A BQ76952 on an I2C bus, in device mode `MODE` ([`mode::Normal`] or [`mode::ConfigUpdate`]).
#[derive(Debug)]
pub struct Bq76952<I2C, MODE = mode::Normal> {
    i2c: I2C,
    config: Config,
    /// Shadow copy of the balancing mask last written (CB_ACTIVE_CELLS).
    balancing: u16,
    /// Shadow of the host FET requests `(charge, discharge)`; `None` until first set.
    host_fets: Option<(bool, bool)>,
    _mode: PhantomData<MODE>,
}

impl<I2C> Bq76952<I2C, mode::Normal> {
    /// A driver for a device in normal mode. No bus traffic.
    pub fn new(i2c: I2C, config: Config) -> Self {
        Bq76952 {
            i2c,
            config,
            balancing: 0,
            host_fets: None,
            _mode: PhantomData,
        }
    }
}

impl<I2C, MODE> Bq76952<I2C, MODE> {
    /// Gives the bus back.
    pub fn destroy(self) -> I2C {
        self.i2c
    }

    /// The driver configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The balancing mask last written with [`Bq76952::set_balancing`] (bit 0 = VC1).
    pub fn balancing_shadow(&self) -> u16 {
        self.balancing
    }

    fn into_mode<M>(self) -> Bq76952<I2C, M> {
        Bq76952 {
            i2c: self.i2c,
            config: self.config,
            balancing: self.balancing,
            host_fets: self.host_fets,
            _mode: PhantomData,
        }
    }
}
