//! Public types of the BQ76952 driver: errors, modes, typed status registers and settings.

use core::fmt;

use bitflags::bitflags;
use bms_core::units::{MilliAmps, MilliVolts};

/// Errors of the BQ76952 driver, generic over the I2C bus error `E`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error<E> {
    /// The I2C bus reported an error (NACK, arbitration loss, ...).
    I2c(E),
    /// A byte read with I2C CRC enabled did not match its CRC-8.
    Crc,
    /// The checksum or length of a subcommand transfer buffer did not match.
    Checksum,
    /// The device did not finish a subcommand or a mode change within the poll budget.
    Timeout,
    /// An argument is outside what the device can represent.
    InvalidInputData,
    /// The device answered with a value that makes no sense (e.g. a wrong subcommand echo).
    InvalidResponse,
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::I2c(e) => write!(f, "I2C error: {e:?}"),
            Error::Crc => f.write_str("I2C CRC mismatch"),
            Error::Checksum => f.write_str("transfer buffer checksum mismatch"),
            Error::Timeout => f.write_str("device did not respond in time"),
            Error::InvalidInputData => f.write_str("argument out of device range"),
            Error::InvalidResponse => f.write_str("unexpected device response"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// A failed typestate change: the error and the device, unchanged, so the caller keeps it.
#[derive(Debug)]
pub struct ModeChangeError<E, DEV> {
    /// What went wrong.
    pub error: E,
    /// The device, still in its previous mode.
    pub dev: DEV,
}

/// Device modes used as typestate markers.
pub mod mode {
    /// Normal operation: measurements, subcommands, FET and balancing control.
    #[derive(Debug)]
    pub struct Normal;
    /// CONFIG_UPDATE mode: data memory writes are allowed; protections and FETs are off.
    #[derive(Debug)]
    pub struct ConfigUpdate;
}

/// A cell input of one BQ76952, 1..=16 (VC1..VC16 measured against the input below).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CellIndex(u8);

impl CellIndex {
    /// Number of cell inputs of a BQ76952.
    pub const COUNT: u8 = 16;

    /// Cell input `n`, 1-based; `None` outside 1..=16.
    pub const fn new(n: u8) -> Option<Self> {
        if n >= 1 && n <= Self::COUNT {
            Some(CellIndex(n))
        } else {
            None
        }
    }

    /// The 1-based input number.
    pub const fn get(self) -> u8 {
        self.0
    }
}

bitflags! {
    /// Safety Alert A / Safety Status A (direct commands 0x02 / 0x03, TRM §12.1);
    /// the same layout as Settings: Protection: Enabled Protections A.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct SafetyA: u8 {
        /// Short circuit in discharge.
        const SCD = 1 << 7;
        /// Overcurrent in discharge, tier 2.
        const OCD2 = 1 << 6;
        /// Overcurrent in discharge, tier 1.
        const OCD1 = 1 << 5;
        /// Overcurrent in charge.
        const OCC = 1 << 4;
        /// Cell overvoltage.
        const COV = 1 << 3;
        /// Cell undervoltage.
        const CUV = 1 << 2;
    }
}

bitflags! {
    /// Safety Alert B / Safety Status B (direct commands 0x04 / 0x05, TRM §12.1).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct SafetyB: u8 {
        /// FET overtemperature.
        const OTF = 1 << 7;
        /// Internal die overtemperature.
        const OTINT = 1 << 6;
        /// Overtemperature in discharge.
        const OTD = 1 << 5;
        /// Overtemperature in charge.
        const OTC = 1 << 4;
        /// Internal die undertemperature.
        const UTINT = 1 << 2;
        /// Undertemperature in discharge.
        const UTD = 1 << 1;
        /// Undertemperature in charge.
        const UTC = 1 << 0;
    }
}

bitflags! {
    /// Safety Status C (direct command 0x07, TRM §12.1).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct SafetyC: u8 {
        /// Overcurrent in discharge, tier 3.
        const OCD3 = 1 << 7;
        /// Latched short circuit in discharge.
        const SCDL = 1 << 6;
        /// Latched overcurrent in discharge.
        const OCDL = 1 << 5;
        /// Latched cell overvoltage.
        const COVL = 1 << 4;
        /// Pre-charge timeout.
        const PTO = 1 << 2;
        /// Host watchdog fault.
        const HWDF = 1 << 1;
    }
}

bitflags! {
    /// Battery Status (direct command 0x12, TRM §12.1).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct BatteryStatus: u16 {
        /// The device is in SLEEP mode.
        const SLEEP = 1 << 15;
        /// A shutdown was requested by command.
        const SD_CMD = 1 << 13;
        /// A permanent failure is active.
        const PF = 1 << 12;
        /// A safety fault is active.
        const SS = 1 << 11;
        /// The FUSE pin is being driven.
        const FUSE = 1 << 10;
        /// Security mode, bit 1.
        const SEC1 = 1 << 9;
        /// Security mode, bit 0.
        const SEC0 = 1 << 8;
        /// OTP writes are blocked.
        const OTPB = 1 << 7;
        /// OTP writes are pending.
        const OTPW = 1 << 6;
        /// A cell open-wire check is running.
        const COW_CHK = 1 << 5;
        /// The previous reset was caused by the internal watchdog.
        const WD = 1 << 4;
        /// A full reset has occurred since the last exit of CONFIG_UPDATE.
        const POR = 1 << 3;
        /// SLEEP mode is allowed.
        const SLEEP_EN = 1 << 2;
        /// The device is in pre-charge mode.
        const PCHG_MODE = 1 << 1;
        /// The device is in CONFIG_UPDATE mode.
        const CFGUPDATE = 1 << 0;
    }
}

bitflags! {
    /// FET Status (direct command 0x7F, TRM §12.1).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct FetStatus: u8 {
        /// ALERT pin asserted.
        const ALRT_PIN = 1 << 6;
        /// DDSG pin asserted.
        const DDSG_PIN = 1 << 5;
        /// DCHG pin asserted.
        const DCHG_PIN = 1 << 4;
        /// Pre-discharge FET on.
        const PDSG_FET = 1 << 3;
        /// Discharge FET on.
        const DSG_FET = 1 << 2;
        /// Pre-charge FET on.
        const PCHG_FET = 1 << 1;
        /// Charge FET on.
        const CHG_FET = 1 << 0;
    }
}

bitflags! {
    /// FET_CONTROL subcommand 0x0097 data byte (TRM §12.3): a set bit forces that driver off.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct FetControl: u8 {
        /// Pre-charge FET forced off.
        const PCHG_OFF = 1 << 3;
        /// Charge FET forced off.
        const CHG_OFF = 1 << 2;
        /// Pre-discharge FET forced off.
        const PDSG_OFF = 1 << 1;
        /// Discharge FET forced off.
        const DSG_OFF = 1 << 0;
    }
}

/// The chip's temperature inputs, each read as a direct command in 0.1 K (TRM §12.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TempSensor {
    /// Internal die sensor.
    Internal,
    /// TS1 pin.
    Ts1,
    /// TS2 pin.
    Ts2,
    /// TS3 pin.
    Ts3,
    /// CFETOFF pin configured as a thermistor input.
    CfetOff,
    /// DFETOFF pin configured as a thermistor input.
    DfetOff,
    /// ALERT pin configured as a thermistor input.
    Alert,
    /// HDQ pin configured as a thermistor input.
    Hdq,
    /// DCHG pin configured as a thermistor input.
    Dchg,
    /// DDSG pin configured as a thermistor input.
    Ddsg,
}

/// Unit of the CC2 current and the user-amps settings (DA Configuration USER_AMPS, TRM §13.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UserAmps {
    /// 0.1 mA per count.
    DeciMilliAmps,
    /// 1 mA per count (device default).
    #[default]
    MilliAmps,
    /// 10 mA per count.
    CentiAmps,
    /// 100 mA per count (for packs above 32 A).
    DeciAmps,
}

impl UserAmps {
    /// Converts a raw count in this unit to mA (0.1 mA counts round toward zero).
    pub const fn to_milliamps(self, raw: i16) -> i32 {
        let raw = raw as i32;
        match self {
            UserAmps::DeciMilliAmps => raw / 10,
            UserAmps::MilliAmps => raw,
            UserAmps::CentiAmps => raw * 10,
            UserAmps::DeciAmps => raw * 100,
        }
    }

    /// The USER_AMPS field value (DA Configuration bits 1:0).
    pub const fn bits(self) -> u8 {
        match self {
            UserAmps::DeciMilliAmps => 0,
            UserAmps::MilliAmps => 1,
            UserAmps::CentiAmps => 2,
            UserAmps::DeciAmps => 3,
        }
    }
}

/// Unit of the stack, PACK and LD voltages (DA Configuration USER_VOLTS_CV, TRM §13.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UserVolts {
    /// 1 mV per count (only for stacks below 32.7 V).
    MilliVolts,
    /// 10 mV per count (device default).
    #[default]
    CentiVolts,
}

impl UserVolts {
    /// Converts a raw count in this unit to mV; negative counts read as 0.
    pub const fn to_millivolts(self, raw: i16) -> MilliVolts {
        let raw = if raw < 0 { 0 } else { raw as u32 };
        match self {
            UserVolts::MilliVolts => MilliVolts::from_mv(raw),
            UserVolts::CentiVolts => MilliVolts::from_mv(raw * 10),
        }
    }
}

/// Shunt resistance in micro-ohms (300 A boards use shunts well below 1 mΩ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ShuntResistance(u32);

impl ShuntResistance {
    /// A shunt of `uohm` micro-ohms.
    pub const fn from_micro_ohms(uohm: u32) -> Self {
        ShuntResistance(uohm)
    }
    /// Micro-ohms.
    pub const fn as_micro_ohms(self) -> u32 {
        self.0
    }
    /// Voltage across the shunt at `current`, in µV (magnitude), saturating.
    pub const fn microvolts_at(self, current: MilliAmps) -> u64 {
        // 1 mA through 1 µΩ is 1 nV.
        (current.unsigned_abs() as u64 * self.0 as u64) / 1_000
    }
}

/// Short-circuit-in-discharge threshold across the shunt: the 16 steps of
/// Protections: SCD: Threshold (TRM §13.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
#[allow(missing_docs)]
pub enum ScdThreshold {
    Mv10 = 0,
    Mv20,
    Mv40,
    Mv60,
    Mv80,
    Mv100,
    Mv125,
    Mv150,
    Mv175,
    Mv200,
    Mv250,
    Mv300,
    Mv350,
    Mv400,
    Mv450,
    Mv500,
}

impl ScdThreshold {
    const ALL: [ScdThreshold; 16] = [
        ScdThreshold::Mv10,
        ScdThreshold::Mv20,
        ScdThreshold::Mv40,
        ScdThreshold::Mv60,
        ScdThreshold::Mv80,
        ScdThreshold::Mv100,
        ScdThreshold::Mv125,
        ScdThreshold::Mv150,
        ScdThreshold::Mv175,
        ScdThreshold::Mv200,
        ScdThreshold::Mv250,
        ScdThreshold::Mv300,
        ScdThreshold::Mv350,
        ScdThreshold::Mv400,
        ScdThreshold::Mv450,
        ScdThreshold::Mv500,
    ];
    const MILLIVOLTS: [u32; 16] = [
        10, 20, 40, 60, 80, 100, 125, 150, 175, 200, 250, 300, 350, 400, 450, 500,
    ];

    /// The threshold across the shunt.
    pub const fn millivolts(self) -> MilliVolts {
        MilliVolts::from_mv(Self::MILLIVOLTS[self as usize])
    }

    /// The register value (0..=15).
    pub const fn bits(self) -> u8 {
        self as u8
    }

    /// The largest step that trips at or below `current` through `shunt`, so the hardware
    /// never trips later than asked; `None` when even the 10 mV step is above it.
    ///
    /// # Examples
    /// ```
    /// use bms_core::units::MilliAmps;
    /// use bms_hal_stm32::bq76952::{ScdThreshold, ShuntResistance};
    /// // 600 A through 250 µΩ is 150 mV.
    /// let shunt = ShuntResistance::from_micro_ohms(250);
    /// let t = ScdThreshold::at_or_below(MilliAmps::from_amps(600), shunt);
    /// assert_eq!(t, Some(ScdThreshold::Mv150));
    /// ```
    pub fn at_or_below(current: MilliAmps, shunt: ShuntResistance) -> Option<Self> {
        let uv = shunt.microvolts_at(current);
        let mut best = None;
        for (t, mv) in Self::ALL.iter().zip(Self::MILLIVOLTS.iter()) {
            if u64::from(*mv) * 1_000 <= uv {
                best = Some(*t);
            }
        }
        best
    }

    /// The smallest step that trips at or above `current` through `shunt`, so a pulse up to
    /// `current` never trips the hardware; `None` when even the 500 mV step is below it.
    ///
    /// # Examples
    /// ```
    /// use bms_core::units::MilliAmps;
    /// use bms_hal_stm32::bq76952::{ScdThreshold, ShuntResistance};
    /// // 300 A through 250 µΩ is 75 mV: the 80 mV step.
    /// let shunt = ShuntResistance::from_micro_ohms(250);
    /// let t = ScdThreshold::at_or_above(MilliAmps::from_amps(300), shunt);
    /// assert_eq!(t, Some(ScdThreshold::Mv80));
    /// ```
    pub fn at_or_above(current: MilliAmps, shunt: ShuntResistance) -> Option<Self> {
        let uv = shunt.microvolts_at(current);
        Self::ALL
            .iter()
            .zip(Self::MILLIVOLTS.iter())
            .find(|(_, mv)| u64::from(**mv) * 1_000 >= uv)
            .map(|(t, _)| *t)
    }
}

/// The chip's own hardware protections, as plain typed values (programmed by
/// [`Bq76952::set_hw_protection`](super::Bq76952::set_hw_protection) in CONFIG_UPDATE mode).
///
/// Thresholds that the device quantises are rounded so that the hardware trips no later
/// than the value given: COV rounds down, CUV rounds up, current thresholds round down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HwProtection {
    /// Sense resistor, used to turn currents into shunt voltages.
    pub shunt: ShuntResistance,
    /// Short circuit in discharge: threshold step across the shunt.
    pub scd_threshold: ScdThreshold,
    /// Short-circuit delay in µs, 0..=450 (15 µs steps; 0 = fastest).
    pub scd_delay_us: u16,
    /// Overcurrent in discharge (OCD1) trip current, positive.
    pub ocd: MilliAmps,
    /// OCD1 delay in ms, 10..=425 (3.3 ms steps).
    pub ocd_delay_ms: u16,
    /// Overcurrent in charge trip current, as a magnitude (positive).
    pub occ: MilliAmps,
    /// OCC delay in ms, 10..=425 (3.3 ms steps).
    pub occ_delay_ms: u16,
    /// Cell overvoltage threshold, 1012..=5566 mV (50.6 mV steps).
    pub cov: MilliVolts,
    /// Cell undervoltage threshold, 1012..=4554 mV (50.6 mV steps).
    pub cuv: MilliVolts,
    /// COV and CUV delay in ms, 10..=6762 (3.3 ms steps).
    pub cell_delay_ms: u16,
}

/// Register values computed from [`HwProtection`], as written to data memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HwProtectionRegisters {
    /// Protections: SCD: Threshold.
    pub scd_threshold: u8,
    /// Protections: SCD: Delay.
    pub scd_delay: u8,
    /// Protections: OCD1: Threshold.
    pub ocd1_threshold: u8,
    /// Protections: OCD1: Delay.
    pub ocd1_delay: u8,
    /// Protections: OCC: Threshold.
    pub occ_threshold: u8,
    /// Protections: OCC: Delay.
    pub occ_delay: u8,
    /// Protections: COV: Threshold.
    pub cov_threshold: u8,
    /// Protections: CUV: Threshold.
    pub cuv_threshold: u8,
    /// Protections: COV: Delay and CUV: Delay.
    pub cell_delay: u16,
}

impl HwProtection {
    /// Quantises the settings into register values (TRM §13.6 units and ranges).
    ///
    /// # Errors
    /// [`Error::InvalidInputData`] when a value is outside the device's range.
    pub fn registers<E>(&self) -> Result<HwProtectionRegisters, Error<E>> {
        // SCD delay: register n gives (n - 1) * 15 µs, n in 1..=31.
        if self.scd_delay_us > 450 {
            return Err(Error::InvalidInputData);
        }
        let scd_delay = (self.scd_delay_us / 15) as u8 + 1;
        // OCD1 / OCC thresholds: 2 mV steps across the shunt.
        let ocd_uv = self.shunt.microvolts_at(self.ocd);
        let ocd1_threshold = range_u8(ocd_uv / 2_000, 2, 100)?;
        let occ_uv = self.shunt.microvolts_at(self.occ);
        let occ_threshold = range_u8(occ_uv / 2_000, 2, 62)?;
        let ocd1_delay = range_u8(delay_steps(self.ocd_delay_ms), 1, 127)?;
        let occ_delay = range_u8(delay_steps(self.occ_delay_ms), 1, 127)?;
        // Cell thresholds: 50.6 mV steps.
        let cov_steps = u64::from(self.cov.as_mv()) * 10 / 506;
        let cov_threshold = range_u8(cov_steps, 20, 110)?;
        let cuv_steps = (u64::from(self.cuv.as_mv()) * 10).div_ceil(506);
        let cuv_threshold = range_u8(cuv_steps, 20, 90)?;
        let cell_delay = delay_steps(self.cell_delay_ms);
        if !(1..=2047).contains(&cell_delay) {
            return Err(Error::InvalidInputData);
        }
        Ok(HwProtectionRegisters {
            scd_threshold: self.scd_threshold.bits(),
            scd_delay,
            ocd1_threshold,
            ocd1_delay,
            occ_threshold,
            occ_delay,
            cov_threshold,
            cuv_threshold,
            cell_delay: cell_delay as u16,
        })
    }
}

/// Delay register value for a 3.3 ms step counter whose delay is (n + 2) × 3.3 ms.
fn delay_steps(ms: u16) -> u64 {
    (u64::from(ms) * 10 / 33).saturating_sub(2)
}

fn range_u8<E>(v: u64, min: u8, max: u8) -> Result<u8, Error<E>> {
    if v < u64::from(min) || v > u64::from(max) {
        Err(Error::InvalidInputData)
    } else {
        Ok(v as u8)
    }
}

/// Driver configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Config {
    /// 7-bit I2C address (device default 0x08).
    pub address: u8,
    /// The device has I2C CRC enabled (Settings: Configuration: Comm Type = I2C with CRC).
    pub crc: bool,
    /// How many times to poll a subcommand echo or a status bit before [`Error::Timeout`].
    pub poll_attempts: u16,
    /// Unit of the CC2 current (must match DA Configuration).
    pub user_amps: UserAmps,
    /// Unit of stack, PACK and LD voltages (must match DA Configuration).
    pub user_volts: UserVolts,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: 0x08,
            crc: false,
            poll_attempts: 32,
            user_amps: UserAmps::MilliAmps,
            user_volts: UserVolts::CentiVolts,
        }
    }
}

impl Config {
    /// Sets the I2C address.
    pub const fn with_address(mut self, address: u8) -> Self {
        self.address = address;
        self
    }
    /// Enables or disables I2C CRC.
    pub const fn with_crc(mut self, crc: bool) -> Self {
        self.crc = crc;
        self
    }
    /// Sets the poll budget.
    pub const fn with_poll_attempts(mut self, n: u16) -> Self {
        self.poll_attempts = n;
        self
    }
    /// Sets the current unit.
    pub const fn with_user_amps(mut self, u: UserAmps) -> Self {
        self.user_amps = u;
        self
    }
    /// Sets the voltage unit.
    pub const fn with_user_volts(mut self, u: UserVolts) -> Self {
        self.user_volts = u;
        self
    }
}
