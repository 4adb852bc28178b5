//! Direct commands and subcommands, legal in every mode, and the normal-mode controls.

use bms_core::units::{DeciCelsius, MilliAmps, MilliVolts};
use embedded_hal::i2c::I2c;

use super::interface::{self, MAX_BLOCK};
use super::register_address::{direct, subcommand};
use super::types::{
    mode, BatteryStatus, CellIndex, Error, FetControl, FetStatus, SafetyA, SafetyB, SafetyC,
    TempSensor,
};
use super::Bq76952;

/// Size of the subcommand transfer buffer at 0x40..=0x5F.
const TRANSFER_BUFFER_LEN: usize = 32;

/// Manufacturing Status FET_EN bit (TRM §12.3, MFG_STATUS).
const MFG_STATUS_FET_EN: u16 = 1 << 4;

/// Checksum of a transfer: the bitwise inverse of the byte sum of the command and data.
pub(crate) fn transfer_checksum(cmd: u16, data: &[u8]) -> u8 {
    let [lo, hi] = cmd.to_le_bytes();
    let sum = data
        .iter()
        .fold(lo.wrapping_add(hi), |acc, b| acc.wrapping_add(*b));
    !sum
}

impl<I2C: I2c, MODE> Bq76952<I2C, MODE> {
    pub(crate) fn read_block(&mut self, reg: u8, out: &mut [u8]) -> Result<(), Error<I2C::Error>> {
        interface::read(
            &mut self.i2c,
            self.config.address,
            self.config.crc,
            reg,
            out,
        )
    }

    pub(crate) fn write_block(&mut self, reg: u8, data: &[u8]) -> Result<(), Error<I2C::Error>> {
        interface::write(
            &mut self.i2c,
            self.config.address,
            self.config.crc,
            reg,
            data,
        )
    }

    fn read_u8(&mut self, reg: u8) -> Result<u8, Error<I2C::Error>> {
        let mut b = [0u8; 1];
        self.read_block(reg, &mut b)?;
        Ok(b[0])
    }

    fn read_u16(&mut self, reg: u8) -> Result<u16, Error<I2C::Error>> {
        let mut b = [0u8; 2];
        self.read_block(reg, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    fn read_i16(&mut self, reg: u8) -> Result<i16, Error<I2C::Error>> {
        self.read_u16(reg).map(|v| v as i16)
    }

    /// Voltage of one cell input (direct command 0x14 + 2 × (n − 1), I2 in mV).
    /// A negative reading (input shorted or reversed) reads as 0 mV.
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn cell_voltage(&mut self, cell: CellIndex) -> Result<MilliVolts, Error<I2C::Error>> {
        let reg = direct::CELL1_VOLTAGE + 2 * (cell.get() - 1);
        let raw = self.read_i16(reg)?;
        Ok(MilliVolts::from_mv(raw.max(0) as u32))
    }

    /// All 16 cell inputs in one block read (0x14..=0x33); `out[0]` = VC1.
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn cell_voltages(&mut self, out: &mut [MilliVolts; 16]) -> Result<(), Error<I2C::Error>> {
        let mut raw = [0u8; 32];
        self.read_block(direct::CELL1_VOLTAGE, &mut raw)?;
        for (o, pair) in out.iter_mut().zip(raw.chunks_exact(2)) {
            let v = i16::from_le_bytes([pair[0], pair[1]]);
            *o = MilliVolts::from_mv(v.max(0) as u32);
        }
        Ok(())
    }

    /// Top-of-stack voltage (direct command 0x34, user volts).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn stack_voltage(&mut self) -> Result<MilliVolts, Error<I2C::Error>> {
        let raw = self.read_i16(direct::STACK_VOLTAGE)?;
        Ok(self.config.user_volts.to_millivolts(raw))
    }

    /// PACK pin voltage (direct command 0x36, user volts).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn pack_voltage(&mut self) -> Result<MilliVolts, Error<I2C::Error>> {
        let raw = self.read_i16(direct::PACK_VOLTAGE)?;
        Ok(self.config.user_volts.to_millivolts(raw))
    }

    /// LD pin (load detect) voltage (direct command 0x38, user volts).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn ld_voltage(&mut self) -> Result<MilliVolts, Error<I2C::Error>> {
        let raw = self.read_i16(direct::LD_VOLTAGE)?;
        Ok(self.config.user_volts.to_millivolts(raw))
    }

    /// CC2 current (direct command 0x3A), converted to the core's convention:
    /// **positive = discharge** (the device reports charge as positive).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn current(&mut self) -> Result<MilliAmps, Error<I2C::Error>> {
        let raw = self.read_i16(direct::CC2_CURRENT)?;
        Ok(MilliAmps::from_ma(-self.config.user_amps.to_milliamps(raw)))
    }

    /// One temperature input (0.1 K on the wire), in tenths of a degree Celsius.
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn temperature(&mut self, sensor: TempSensor) -> Result<DeciCelsius, Error<I2C::Error>> {
        let reg = match sensor {
            TempSensor::Internal => direct::INT_TEMPERATURE,
            TempSensor::Ts1 => direct::TS1_TEMPERATURE,
            TempSensor::Ts2 => direct::TS2_TEMPERATURE,
            TempSensor::Ts3 => direct::TS3_TEMPERATURE,
            TempSensor::CfetOff => direct::CFETOFF_TEMPERATURE,
            TempSensor::DfetOff => direct::DFETOFF_TEMPERATURE,
            TempSensor::Alert => direct::ALERT_TEMPERATURE,
            TempSensor::Hdq => direct::HDQ_TEMPERATURE,
            TempSensor::Dchg => direct::DCHG_TEMPERATURE,
            TempSensor::Ddsg => direct::DDSG_TEMPERATURE,
        };
        let raw = self.read_i16(reg)?;
        Ok(DeciCelsius::from_deci_kelvin(raw.max(0) as u16))
    }

    /// Safety Alert A (0x02): protections whose threshold is exceeded, before the delay.
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn safety_alert_a(&mut self) -> Result<SafetyA, Error<I2C::Error>> {
        self.read_u8(direct::SAFETY_ALERT_A)
            .map(SafetyA::from_bits_truncate)
    }

    /// Safety Status A (0x03): tripped protections.
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn safety_status_a(&mut self) -> Result<SafetyA, Error<I2C::Error>> {
        self.read_u8(direct::SAFETY_STATUS_A)
            .map(SafetyA::from_bits_truncate)
    }

    /// Safety Alert B (0x04).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn safety_alert_b(&mut self) -> Result<SafetyB, Error<I2C::Error>> {
        self.read_u8(direct::SAFETY_ALERT_B)
            .map(SafetyB::from_bits_truncate)
    }

    /// Safety Status B (0x05).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn safety_status_b(&mut self) -> Result<SafetyB, Error<I2C::Error>> {
        self.read_u8(direct::SAFETY_STATUS_B)
            .map(SafetyB::from_bits_truncate)
    }

    /// Safety Alert C (0x06).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn safety_alert_c(&mut self) -> Result<SafetyC, Error<I2C::Error>> {
        self.read_u8(direct::SAFETY_ALERT_C)
            .map(SafetyC::from_bits_truncate)
    }

    /// Safety Status C (0x07).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn safety_status_c(&mut self) -> Result<SafetyC, Error<I2C::Error>> {
        self.read_u8(direct::SAFETY_STATUS_C)
            .map(SafetyC::from_bits_truncate)
    }

    /// Battery Status (0x12).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn battery_status(&mut self) -> Result<BatteryStatus, Error<I2C::Error>> {
        self.read_u16(direct::BATTERY_STATUS)
            .map(BatteryStatus::from_bits_truncate)
    }

    /// FET Status (0x7F).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn fet_status(&mut self) -> Result<FetStatus, Error<I2C::Error>> {
        self.read_u8(direct::FET_STATUS)
            .map(FetStatus::from_bits_truncate)
    }

    /// Sends a command-only subcommand (TRM §12.2): its code is written to 0x3E/0x3F.
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn subcommand(&mut self, cmd: u16) -> Result<(), Error<I2C::Error>> {
        self.write_block(direct::SUBCOMMAND_LOW, &cmd.to_le_bytes())
    }

    /// Sends a subcommand (or data memory address) and reads its response into `out`.
    ///
    /// Polls 0x3E/0x3F until the device echoes `cmd` (it reads 0xFF while busy), then reads
    /// the length (0x61) and checksum (0x60) and the data from 0x40, and checks them.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the echo does not come within the poll budget,
    /// [`Error::Checksum`] on a checksum mismatch, [`Error::InvalidResponse`] when the
    /// device returns fewer bytes than `out` holds, bus or CRC errors.
    pub fn subcommand_read(&mut self, cmd: u16, out: &mut [u8]) -> Result<(), Error<I2C::Error>> {
        if out.len() > TRANSFER_BUFFER_LEN {
            return Err(Error::InvalidInputData);
        }
        self.subcommand(cmd)?;
        self.wait_echo(cmd)?;
        let mut chk_len = [0u8; 2];
        self.read_block(direct::TRANSFER_CHECKSUM, &mut chk_len)?;
        let [checksum, length] = chk_len;
        let data_len = usize::from(length)
            .checked_sub(4)
            .filter(|n| *n <= TRANSFER_BUFFER_LEN)
            .ok_or(Error::InvalidResponse)?;
        if data_len < out.len() {
            return Err(Error::InvalidResponse);
        }
        let mut data = [0u8; TRANSFER_BUFFER_LEN];
        let data = &mut data[..data_len];
        if !data.is_empty() {
            self.read_block(direct::TRANSFER_BUFFER, data)?;
        }
        if transfer_checksum(cmd, data) != checksum {
            return Err(Error::Checksum);
        }
        out.copy_from_slice(&data[..out.len()]);
        Ok(())
    }

    /// Sends a subcommand with data: `cmd` and `data` in one block from 0x3E, then the
    /// checksum and length to 0x60/0x61 (TRM §12.3).
    pub(crate) fn subcommand_write(
        &mut self,
        cmd: u16,
        data: &[u8],
    ) -> Result<(), Error<I2C::Error>> {
        if data.is_empty() || data.len() > TRANSFER_BUFFER_LEN {
            return Err(Error::InvalidInputData);
        }
        let mut block = [0u8; MAX_BLOCK];
        let [lo, hi] = cmd.to_le_bytes();
        block[0] = lo;
        block[1] = hi;
        block[2..2 + data.len()].copy_from_slice(data);
        self.write_block(direct::SUBCOMMAND_LOW, &block[..2 + data.len()])?;
        let checksum = transfer_checksum(cmd, data);
        self.write_block(direct::TRANSFER_CHECKSUM, &[checksum, data.len() as u8 + 4])
    }

    fn wait_echo(&mut self, cmd: u16) -> Result<(), Error<I2C::Error>> {
        for _ in 0..self.config.poll_attempts {
            let mut echo = [0u8; 2];
            self.read_block(direct::SUBCOMMAND_LOW, &mut echo)?;
            if u16::from_le_bytes(echo) == cmd {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }

    pub(crate) fn wait_status(
        &mut self,
        flag: BatteryStatus,
        set: bool,
    ) -> Result<(), Error<I2C::Error>> {
        for _ in 0..self.config.poll_attempts {
            if self.battery_status()?.contains(flag) == set {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }

    /// Reads `out.len()` bytes of data memory at `address` (TRM chapter 13), legal in any mode.
    ///
    /// # Errors
    /// As [`Bq76952::subcommand_read`].
    pub fn read_data_memory(
        &mut self,
        address: u16,
        out: &mut [u8],
    ) -> Result<(), Error<I2C::Error>> {
        self.subcommand_read(address, out)
    }

    /// The DEVICE_NUMBER subcommand (0x0001): 0x7695 on a BQ76952.
    ///
    /// # Errors
    /// As [`Bq76952::subcommand_read`].
    pub fn device_number(&mut self) -> Result<u16, Error<I2C::Error>> {
        let mut b = [0u8; 2];
        self.subcommand_read(subcommand::DEVICE_NUMBER, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// The host-controlled balancing mask read back from the device (CB_ACTIVE_CELLS, 0x0083).
    ///
    /// # Errors
    /// As [`Bq76952::subcommand_read`].
    pub fn balancing(&mut self) -> Result<u16, Error<I2C::Error>> {
        let mut b = [0u8; 2];
        self.subcommand_read(subcommand::CB_ACTIVE_CELLS, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
}

impl<I2C: I2c> Bq76952<I2C, mode::Normal> {
    /// Starts host-controlled balancing on the cell inputs in `mask` (bit 0 = VC1), or stops
    /// it with `0` (CB_ACTIVE_CELLS, 0x0083). The device enforces its own limits (adjacent
    /// inputs, maximum count, temperatures) on top of the mask.
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn set_balancing(&mut self, mask: u16) -> Result<(), Error<I2C::Error>> {
        self.subcommand_write(subcommand::CB_ACTIVE_CELLS, &mask.to_le_bytes())?;
        self.balancing = mask;
        Ok(())
    }

    /// Turns every FET off (ALL_FETS_OFF, 0x0095) until [`Bq76952::all_fets_on`].
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn all_fets_off(&mut self) -> Result<(), Error<I2C::Error>> {
        self.host_fets = None;
        self.subcommand(subcommand::ALL_FETS_OFF)?;
        self.host_fets = Some((false, false));
        Ok(())
    }

    /// Clears the host FET-off requests (ALL_FETS_ON, 0x0096); the device's own protections
    /// still decide.
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn all_fets_on(&mut self) -> Result<(), Error<I2C::Error>> {
        self.host_fets = None;
        self.subcommand(subcommand::ALL_FETS_ON)?;
        self.host_fets = Some((true, true));
        Ok(())
    }

    /// Sets the host's request for the charge and discharge paths with the command-only
    /// subcommands ALL_FETS_ON (0x0096), ALL_FETS_OFF (0x0095), CHG_PCHG_OFF (0x0094) and
    /// DSG_PDSG_OFF (0x0093); the device's own protections still decide on top.
    ///
    /// The driver remembers the last request and sends only what changes it. The commands
    /// cannot switch one path on while keeping the other off, so that transition clears both
    /// requests (ALL_FETS_ON) and then turns the other path off again: for the length of one
    /// I2C write the other path is allowed too. Boards that AND the AFE's FET outputs with
    /// MCU enables (as `examples/stm32-firmware` does) do not see that window.
    ///
    /// # Errors
    /// Bus or CRC errors; the remembered request is then unknown and the next call sends
    /// the full sequence.
    pub fn set_fets(&mut self, charge: bool, discharge: bool) -> Result<(), Error<I2C::Error>> {
        let prev = self.host_fets.take();
        if prev == Some((charge, discharge)) {
            self.host_fets = prev;
            return Ok(());
        }
        match (charge, discharge) {
            (false, false) => self.all_fets_off()?,
            (true, true) => self.all_fets_on()?,
            (true, false) => {
                if prev != Some((true, true)) {
                    self.all_fets_on()?;
                }
                self.subcommand(subcommand::DSG_PDSG_OFF)?;
            }
            (false, true) => {
                if prev != Some((true, true)) {
                    self.all_fets_on()?;
                }
                self.subcommand(subcommand::CHG_PCHG_OFF)?;
            }
        }
        self.host_fets = Some((charge, discharge));
        Ok(())
    }

    /// Forces individual FET drivers off (FET_CONTROL, 0x0097; TRM §12.3).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn fet_control(&mut self, off: FetControl) -> Result<(), Error<I2C::Error>> {
        self.subcommand_write(subcommand::FET_CONTROL, &[off.bits()])
    }

    /// Enables (`true`) or disables the device's autonomous FET control (Manufacturing
    /// Status FET_EN). FET_ENABLE (0x0022) toggles the bit, so the status is read first and
    /// the toggle is sent only when needed.
    ///
    /// # Errors
    /// As [`Bq76952::subcommand_read`].
    pub fn set_autonomous_fets(&mut self, enable: bool) -> Result<(), Error<I2C::Error>> {
        let mut b = [0u8; 2];
        self.subcommand_read(subcommand::MFG_STATUS, &mut b)?;
        let enabled = u16::from_le_bytes(b) & MFG_STATUS_FET_EN != 0;
        if enabled != enable {
            self.subcommand(subcommand::FET_ENABLE)?;
        }
        Ok(())
    }

    /// Allows the device to enter SLEEP when the current is low (SLEEP_ENABLE, 0x0099).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn sleep_enable(&mut self) -> Result<(), Error<I2C::Error>> {
        self.subcommand(subcommand::SLEEP_ENABLE)
    }

    /// Keeps the device out of SLEEP (SLEEP_DISABLE, 0x009A).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn sleep_disable(&mut self) -> Result<(), Error<I2C::Error>> {
        self.subcommand(subcommand::SLEEP_DISABLE)
    }

    /// Enters DEEPSLEEP: the DEEPSLEEP subcommand (0x000F) sent twice in a row, as the device
    /// requires (within 4 s).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn enter_deep_sleep(&mut self) -> Result<(), Error<I2C::Error>> {
        self.subcommand(subcommand::DEEPSLEEP)?;
        self.subcommand(subcommand::DEEPSLEEP)
    }

    /// Leaves DEEPSLEEP (EXIT_DEEPSLEEP, 0x000E).
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn exit_deep_sleep(&mut self) -> Result<(), Error<I2C::Error>> {
        self.subcommand(subcommand::EXIT_DEEPSLEEP)
    }

    /// Starts the shutdown sequence (SHUTDOWN, 0x0010): FETs off, then the device powers down.
    ///
    /// # Errors
    /// Bus or CRC errors.
    pub fn shutdown(&mut self) -> Result<(), Error<I2C::Error>> {
        self.subcommand(subcommand::SHUTDOWN)
    }
}
