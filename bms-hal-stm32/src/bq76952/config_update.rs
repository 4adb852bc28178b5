//! Entering and leaving CONFIG_UPDATE mode, and the data memory writes only legal there.

use embedded_hal::i2c::I2c;

use super::register_address::{data_memory, subcommand};
use super::types::{
    mode, BatteryStatus, Error, HwProtection, ModeChangeError, SafetyA, ShuntResistance,
};
use super::Bq76952;

impl<I2C: I2c> Bq76952<I2C, mode::Normal> {
    /// Enters CONFIG_UPDATE mode (SET_CFGUPDATE, 0x0090) and waits until Battery Status
    /// reports CFGUPDATE. The device turns its FETs off and stops protecting while in this
    /// mode: leave it again with [`Bq76952::into_normal`].
    ///
    /// # Errors
    /// On a bus error or when CFGUPDATE does not appear within the poll budget, the
    /// [`ModeChangeError`] carries the error and gives the device back in normal mode.
    #[allow(clippy::type_complexity)]
    pub fn into_config_update(
        mut self,
    ) -> Result<Bq76952<I2C, mode::ConfigUpdate>, ModeChangeError<Error<I2C::Error>, Self>> {
        let result = self
            .subcommand(subcommand::SET_CFGUPDATE)
            .and_then(|()| self.wait_status(BatteryStatus::CFGUPDATE, true));
        match result {
            Ok(()) => Ok(self.into_mode()),
            Err(error) => Err(ModeChangeError { error, dev: self }),
        }
    }
}

impl<I2C: I2c> Bq76952<I2C, mode::ConfigUpdate> {
    /// Leaves CONFIG_UPDATE mode (EXIT_CFGUPDATE, 0x0092) and waits until CFGUPDATE clears.
    ///
    /// # Errors
    /// The [`ModeChangeError`] gives the device back, still in CONFIG_UPDATE mode.
    #[allow(clippy::type_complexity)]
    pub fn into_normal(
        mut self,
    ) -> Result<Bq76952<I2C, mode::Normal>, ModeChangeError<Error<I2C::Error>, Self>> {
        let result = self
            .subcommand(subcommand::EXIT_CFGUPDATE)
            .and_then(|()| self.wait_status(BatteryStatus::CFGUPDATE, false));
        match result {
            Ok(()) => Ok(self.into_mode()),
            Err(error) => Err(ModeChangeError { error, dev: self }),
        }
    }

    /// Writes `data` (little-endian, 1..=32 bytes) to data memory at `address`.
    ///
    /// # Errors
    /// [`Error::InvalidInputData`] for an empty or too long `data`; bus or CRC errors.
    pub fn write_data_memory(
        &mut self,
        address: u16,
        data: &[u8],
    ) -> Result<(), Error<I2C::Error>> {
        self.subcommand_write(address, data)
    }

    /// Writes a one-byte (U1/I1/H1) data memory value.
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn write_data_memory_u8(&mut self, address: u16, v: u8) -> Result<(), Error<I2C::Error>> {
        self.subcommand_write(address, &[v])
    }

    /// Writes a two-byte (U2/I2/H2) data memory value.
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn write_data_memory_u16(&mut self, address: u16, v: u16) -> Result<(), Error<I2C::Error>> {
        self.subcommand_write(address, &v.to_le_bytes())
    }

    /// Selects which cell inputs carry a cell (Settings: Configuration: Vcell Mode, 0x9304):
    /// bit 0 = VC1. Unused inputs are then ignored by the cell protections.
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn set_vcell_mode(&mut self, mask: u16) -> Result<(), Error<I2C::Error>> {
        self.write_data_memory_u16(data_memory::VCELL_MODE, mask)
    }

    /// Sets the interval of the device's cell open-wire check in seconds; 0 disables it
    /// (Settings: Cell Open-Wire: Check Time, 0x9314).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn set_open_wire_check_time(&mut self, seconds: u8) -> Result<(), Error<I2C::Error>> {
        self.write_data_memory_u8(data_memory::OPEN_WIRE_CHECK_TIME, seconds)
    }

    /// Writes the CC gain and capacity gain for `shunt` (Calibration: Current, 0x91A8 and
    /// 0x91AC, IEEE-754 F4): CC Gain = 7.4768 / R(mΩ), Capacity Gain = CC Gain × 298261.6178.
    /// Floating point is used only here, once, at configuration time.
    ///
    /// # Errors
    /// [`Error::InvalidInputData`] for a zero shunt; bus or CRC errors.
    pub fn set_shunt(&mut self, shunt: ShuntResistance) -> Result<(), Error<I2C::Error>> {
        if shunt.as_micro_ohms() == 0 {
            return Err(Error::InvalidInputData);
        }
        let cc_gain = 7.4768_f32 * 1000.0 / shunt.as_micro_ohms() as f32;
        let capacity_gain = cc_gain * 298_261.6;
        self.write_data_memory(data_memory::CC_GAIN, &cc_gain.to_le_bytes())?;
        self.write_data_memory(data_memory::CAPACITY_GAIN, &capacity_gain.to_le_bytes())
    }

    /// Programs the chip's own protections (TRM §13.6): SCD threshold and delay (the
    /// hardware short-circuit trip, within microseconds), OCD1, OCC, COV, CUV, and enables
    /// them in Enabled Protections A.
    ///
    /// # Errors
    /// [`Error::InvalidInputData`] when a value is outside the device range (nothing is
    /// written then); bus or CRC errors.
    pub fn set_hw_protection(&mut self, p: &HwProtection) -> Result<(), Error<I2C::Error>> {
        let r = p.registers()?;
        self.write_data_memory_u8(data_memory::SCD_THRESHOLD, r.scd_threshold)?;
        self.write_data_memory_u8(data_memory::SCD_DELAY, r.scd_delay)?;
        self.write_data_memory_u8(data_memory::OCD1_THRESHOLD, r.ocd1_threshold)?;
        self.write_data_memory_u8(data_memory::OCD1_DELAY, r.ocd1_delay)?;
        self.write_data_memory_u8(data_memory::OCC_THRESHOLD, r.occ_threshold)?;
        self.write_data_memory_u8(data_memory::OCC_DELAY, r.occ_delay)?;
        self.write_data_memory_u8(data_memory::COV_THRESHOLD, r.cov_threshold)?;
        self.write_data_memory_u16(data_memory::COV_DELAY, r.cell_delay)?;
        self.write_data_memory_u8(data_memory::CUV_THRESHOLD, r.cuv_threshold)?;
        self.write_data_memory_u16(data_memory::CUV_DELAY, r.cell_delay)?;
        let enabled = SafetyA::SCD | SafetyA::OCD1 | SafetyA::OCC | SafetyA::COV | SafetyA::CUV;
        self.write_data_memory_u8(data_memory::ENABLED_PROTECTIONS_A, enabled.bits())
    }
}
