//! Addresses of the BQ76952's three command spaces.
//!
//! Sources: *BQ76952 Technical Reference Manual* (TI SLUUBY2B): §12.1 "Direct Commands",
//! §12.2 "Command-only Subcommands", §12.3 "Subcommands with Data" and chapter 13 "Data
//! Memory" (§13.2 Calibration, §13.3 Settings, §13.4 Power, §13.6 Protections).

/// Direct commands: one-byte command codes read (or written) over I2C (TRM §12.1).
pub mod direct {
    /// Control Status, 2 bytes.
    pub const CONTROL_STATUS: u8 = 0x00;
    /// Safety Alert A, 1 byte.
    pub const SAFETY_ALERT_A: u8 = 0x02;
    /// Safety Status A, 1 byte.
    pub const SAFETY_STATUS_A: u8 = 0x03;
    /// Safety Alert B, 1 byte.
    pub const SAFETY_ALERT_B: u8 = 0x04;
    /// Safety Status B, 1 byte.
    pub const SAFETY_STATUS_B: u8 = 0x05;
    /// Safety Alert C, 1 byte.
    pub const SAFETY_ALERT_C: u8 = 0x06;
    /// Safety Status C, 1 byte.
    pub const SAFETY_STATUS_C: u8 = 0x07;
    /// Battery Status, 2 bytes.
    pub const BATTERY_STATUS: u8 = 0x12;
    /// Cell 1 Voltage (I2, mV); cell `n` is at `CELL1_VOLTAGE + 2 * (n - 1)`, up to 0x32.
    pub const CELL1_VOLTAGE: u8 = 0x14;
    /// Stack (top of stack) Voltage, user volts.
    pub const STACK_VOLTAGE: u8 = 0x34;
    /// PACK pin Voltage, user volts.
    pub const PACK_VOLTAGE: u8 = 0x36;
    /// LD pin Voltage, user volts.
    pub const LD_VOLTAGE: u8 = 0x38;
    /// CC2 Current (I2, user amps; positive = charge into the battery).
    pub const CC2_CURRENT: u8 = 0x3A;
    /// Subcommand / data memory address, low byte.
    pub const SUBCOMMAND_LOW: u8 = 0x3E;
    /// Subcommand / data memory address, high byte.
    pub const SUBCOMMAND_HIGH: u8 = 0x3F;
    /// Start of the 32-byte transfer buffer.
    pub const TRANSFER_BUFFER: u8 = 0x40;
    /// Transfer buffer checksum.
    pub const TRANSFER_CHECKSUM: u8 = 0x60;
    /// Transfer buffer length (data length + 4).
    pub const TRANSFER_LENGTH: u8 = 0x61;
    /// Alarm Status, 2 bytes.
    pub const ALARM_STATUS: u8 = 0x62;
    /// Internal die temperature, 0.1 K.
    pub const INT_TEMPERATURE: u8 = 0x68;
    /// CFETOFF pin thermistor, 0.1 K.
    pub const CFETOFF_TEMPERATURE: u8 = 0x6A;
    /// DFETOFF pin thermistor, 0.1 K.
    pub const DFETOFF_TEMPERATURE: u8 = 0x6C;
    /// ALERT pin thermistor, 0.1 K.
    pub const ALERT_TEMPERATURE: u8 = 0x6E;
    /// TS1 thermistor, 0.1 K.
    pub const TS1_TEMPERATURE: u8 = 0x70;
    /// TS2 thermistor, 0.1 K.
    pub const TS2_TEMPERATURE: u8 = 0x72;
    /// TS3 thermistor, 0.1 K.
    pub const TS3_TEMPERATURE: u8 = 0x74;
    /// HDQ pin thermistor, 0.1 K.
    pub const HDQ_TEMPERATURE: u8 = 0x76;
    /// DCHG pin thermistor, 0.1 K.
    pub const DCHG_TEMPERATURE: u8 = 0x78;
    /// DDSG pin thermistor, 0.1 K.
    pub const DDSG_TEMPERATURE: u8 = 0x7A;
    /// FET Status, 1 byte.
    pub const FET_STATUS: u8 = 0x7F;
}

/// Subcommand codes written to 0x3E/0x3F (TRM §12.2 and §12.3).
pub mod subcommand {
    /// DEVICE_NUMBER: reads 0x7695 on a BQ76952.
    pub const DEVICE_NUMBER: u16 = 0x0001;
    /// FW_VERSION.
    pub const FW_VERSION: u16 = 0x0002;
    /// EXIT_DEEPSLEEP.
    pub const EXIT_DEEPSLEEP: u16 = 0x000E;
    /// DEEPSLEEP: takes effect when sent twice in a row within 4 s.
    pub const DEEPSLEEP: u16 = 0x000F;
    /// SHUTDOWN: starts the shutdown sequence.
    pub const SHUTDOWN: u16 = 0x0010;
    /// RESET.
    pub const RESET: u16 = 0x0012;
    /// FET_ENABLE: toggles Manufacturing Status FET_EN (autonomous FET control).
    pub const FET_ENABLE: u16 = 0x0022;
    /// MFG_STATUS: Manufacturing Status (2 bytes; bit 4 = FET_EN).
    pub const MFG_STATUS: u16 = 0x0057;
    /// CB_ACTIVE_CELLS: read or write the host-controlled balancing mask.
    pub const CB_ACTIVE_CELLS: u16 = 0x0083;
    /// SET_CFGUPDATE: enter CONFIG_UPDATE mode.
    pub const SET_CFGUPDATE: u16 = 0x0090;
    /// EXIT_CFGUPDATE: leave CONFIG_UPDATE mode.
    pub const EXIT_CFGUPDATE: u16 = 0x0092;
    /// DSG_PDSG_OFF: host turns DSG and PDSG off.
    pub const DSG_PDSG_OFF: u16 = 0x0093;
    /// CHG_PCHG_OFF: host turns CHG and PCHG off.
    pub const CHG_PCHG_OFF: u16 = 0x0094;
    /// ALL_FETS_OFF.
    pub const ALL_FETS_OFF: u16 = 0x0095;
    /// ALL_FETS_ON: clears the host FET-off requests.
    pub const ALL_FETS_ON: u16 = 0x0096;
    /// FET_CONTROL: one byte, bits force individual FET drivers off.
    pub const FET_CONTROL: u16 = 0x0097;
    /// SLEEP_ENABLE.
    pub const SLEEP_ENABLE: u16 = 0x0099;
    /// SLEEP_DISABLE.
    pub const SLEEP_DISABLE: u16 = 0x009A;
}

/// Data memory addresses (TRM chapter 13); writable only in CONFIG_UPDATE mode.
pub mod data_memory {
    /// Calibration: Current: CC Gain (F4), TRM §13.2.
    pub const CC_GAIN: u16 = 0x91A8;
    /// Calibration: Current: Capacity Gain (F4), TRM §13.2.
    pub const CAPACITY_GAIN: u16 = 0x91AC;
    /// Settings: Configuration: DA Configuration (H1), TRM §13.3.
    pub const DA_CONFIGURATION: u16 = 0x9303;
    /// Settings: Configuration: Vcell Mode (H2), TRM §13.3.
    pub const VCELL_MODE: u16 = 0x9304;
    /// Settings: Protection: Enabled Protections A (H1), TRM §13.3.
    pub const ENABLED_PROTECTIONS_A: u16 = 0x9261;
    /// Settings: Cell Open-Wire: Check Time (U1, s), TRM §13.3.
    pub const OPEN_WIRE_CHECK_TIME: u16 = 0x9314;
    /// Protections: CUV: Threshold (U1, 50.6 mV), TRM §13.6.
    pub const CUV_THRESHOLD: u16 = 0x9275;
    /// Protections: CUV: Delay (U2, 3.3 ms), TRM §13.6.
    pub const CUV_DELAY: u16 = 0x9276;
    /// Protections: COV: Threshold (U1, 50.6 mV), TRM §13.6.
    pub const COV_THRESHOLD: u16 = 0x9278;
    /// Protections: COV: Delay (U2, 3.3 ms), TRM §13.6.
    pub const COV_DELAY: u16 = 0x9279;
    /// Protections: OCC: Threshold (U1, 2 mV across the shunt), TRM §13.6.
    pub const OCC_THRESHOLD: u16 = 0x9280;
    /// Protections: OCC: Delay (U1, 3.3 ms), TRM §13.6.
    pub const OCC_DELAY: u16 = 0x9281;
    /// Protections: OCD1: Threshold (U1, 2 mV across the shunt), TRM §13.6.
    pub const OCD1_THRESHOLD: u16 = 0x9282;
    /// Protections: OCD1: Delay (U1, 3.3 ms), TRM §13.6.
    pub const OCD1_DELAY: u16 = 0x9283;
    /// Protections: SCD: Threshold (U1, enumerated), TRM §13.6.
    pub const SCD_THRESHOLD: u16 = 0x9286;
    /// Protections: SCD: Delay (U1, 15 µs steps), TRM §13.6.
    pub const SCD_DELAY: u16 = 0x9287;
}
