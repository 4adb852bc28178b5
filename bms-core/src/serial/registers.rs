//! Setting registers (read with `0x02`, written with `0x22`) and the [`ParameterAccess`]
//! contract the integrator implements over `PackConfig`.
//!
//! [`REGISTERS`] lists every register address the protocol notes name, with its wire unit and
//! a *protocol sanity range*. The session rejects values outside that range before calling
//! [`ParameterAccess::write`]; the chemistry limits and cross-field rules are the
//! implementation's job.
//!
//! # The `ParameterAccess` contract
//! - `read(reg)` returns the current value in the register's wire unit ([`Register::unit`]), or
//!   [`ParamError::UnknownRegister`] for a register the implementation does not map.
//! - `write(reg, value)` is called only for an authenticated write of a register in
//!   [`REGISTERS`] whose value is inside `min..=max`. It must be atomic: either the new value
//!   is range-checked against the chemistry limits, the resulting configuration passes
//!   `PackConfig::validate()`, is persisted and logged, and `Ok(())` is returned, or nothing
//!   changes and an error is returned ([`ParamError::OutOfRange`] for chemistry limits,
//!   [`ParamError::Invalid`] when `validate()` fails, [`ParamError::Storage`] when persisting
//!   fails, [`ParamError::ReadOnly`] for registers it will not let a client change).
//! - Neither method may block for long: the session calls them from its receive path.
//!
//! # Examples
//! ```
//! use bms_core::serial::registers::{lookup, ParamError, ParameterAccess};
//! struct Cfg { cell_ov_mv: u32 }
//! impl ParameterAccess for Cfg {
//!     fn read(&self, reg: u16) -> Result<u32, ParamError> {
//!         match reg { 0x0000 => Ok(self.cell_ov_mv), _ => Err(ParamError::UnknownRegister) }
//!     }
//!     fn write(&mut self, reg: u16, value: u32) -> Result<(), ParamError> {
//!         match reg {
//!             // LFP: never above 3.75 V (the chemistry limit lives here, not in the table)
//!             0x0000 if value <= 3_750 => { self.cell_ov_mv = value; Ok(()) }
//!             0x0000 => Err(ParamError::OutOfRange),
//!             _ => Err(ParamError::ReadOnly),
//!         }
//!     }
//! }
//! let r = lookup(0x0000).unwrap();
//! assert_eq!(r.name, "cell_ov_protect");
//! assert!(r.contains(3_650));
//! ```

use core::fmt;

/// The unit of a register's raw value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Unit {
    /// Millivolts.
    MilliVolts,
    /// Tenths of a volt.
    DeciVolts,
    /// Tenths of an amp.
    DeciAmps,
    /// Amps.
    Amps,
    /// Milliamps.
    MilliAmps,
    /// Seconds.
    Seconds,
    /// Milliseconds.
    Millis,
    /// Microseconds.
    Micros,
    /// Percent.
    Percent,
    /// Micro-amp-hours (assumed: the status frame's capacity scale; no capture confirms it).
    MicroAmpHours,
    /// Millimetres.
    Millimetres,
    /// A count.
    Count,
    /// A device-specific code.
    Code,
}

/// One setting register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Register {
    /// Register address.
    pub addr: u16,
    /// Stable snake_case name.
    pub name: &'static str,
    /// Unit of the raw value.
    pub unit: Unit,
    /// Width on the wire, bytes (2 or 4).
    pub width: u8,
    /// Smallest value the protocol layer accepts.
    pub min: u32,
    /// Largest value the protocol layer accepts.
    pub max: u32,
}

impl Register {
    /// `true` when `value` is within `min..=max`.
    pub const fn contains(&self, value: u32) -> bool {
        value >= self.min && value <= self.max
    }
}

const fn r(addr: u16, name: &'static str, unit: Unit, min: u32, max: u32) -> Register {
    Register {
        addr,
        name,
        unit,
        width: 2,
        min,
        max,
    }
}
const fn r4(addr: u16, name: &'static str, unit: Unit, min: u32, max: u32) -> Register {
    Register {
        addr,
        name,
        unit,
        width: 4,
        min,
        max,
    }
}

use Unit::*;
const CELL: (u32, u32) = (1_000, 5_000);
const PACK: (u32, u32) = (50, 1_000);
const AMPS: (u32, u32) = (0, 6_000);

/// Every register the protocol notes name, in address order.
pub const REGISTERS: &[Register] = &[
    r(0x00, "cell_ov_protect", MilliVolts, CELL.0, CELL.1),
    r(0x02, "cell_ov_recover", MilliVolts, CELL.0, CELL.1),
    r(0x04, "cell_ov2_protect", MilliVolts, CELL.0, CELL.1),
    r(0x06, "cell_ov2_recover", MilliVolts, CELL.0, CELL.1),
    r(0x08, "pack_ov_protect", DeciVolts, PACK.0, PACK.1),
    r(0x0A, "pack_ov_recover", DeciVolts, PACK.0, PACK.1),
    r(0x0C, "cell_uv_protect", MilliVolts, CELL.0, CELL.1),
    r(0x0E, "cell_uv_recover", MilliVolts, CELL.0, CELL.1),
    r(0x10, "cell_uv2_protect", MilliVolts, CELL.0, CELL.1),
    r(0x12, "cell_uv2_recover", MilliVolts, CELL.0, CELL.1),
    r(0x14, "pack_uv_protect", DeciVolts, PACK.0, PACK.1),
    r(0x16, "pack_uv_recover", DeciVolts, PACK.0, PACK.1),
    r(0x18, "cell_delta_protect", MilliVolts, 0, 2_000),
    r(0x1A, "cell_delta_recover", MilliVolts, 0, 2_000),
    r(0x20, "cell_ov_warning", MilliVolts, CELL.0, CELL.1),
    r(0x22, "cell_ov_warning_recover", MilliVolts, CELL.0, CELL.1),
    r(0x24, "pack_ov_warning", DeciVolts, PACK.0, PACK.1),
    r(0x26, "pack_ov_warning_recover", DeciVolts, PACK.0, PACK.1),
    r(0x28, "cell_uv_warning", MilliVolts, CELL.0, CELL.1),
    r(0x2A, "cell_uv_warning_recover", MilliVolts, CELL.0, CELL.1),
    r(0x2C, "pack_uv_warning", DeciVolts, PACK.0, PACK.1),
    r(0x2E, "pack_uv_warning_recover", DeciVolts, PACK.0, PACK.1),
    r(0x30, "cell_delta_warning", MilliVolts, 0, 2_000),
    r(0x32, "cell_delta_warning_recover", MilliVolts, 0, 2_000),
    r(0x68, "chg_oc_protect", DeciAmps, AMPS.0, AMPS.1),
    r(0x6A, "chg_oc_delay", Seconds, 0, 600),
    r(0x6C, "dsg_oc_protect", DeciAmps, AMPS.0, AMPS.1),
    r(0x6E, "dsg_oc_delay", Seconds, 0, 600),
    r(0x70, "dsg_oc2_protect", DeciAmps, AMPS.0, AMPS.1),
    r(0x72, "dsg_oc2_delay", Millis, 0, 60_000),
    r(0x74, "sc_protect", Amps, 0, 3_000),
    r(0x76, "sc_delay", Micros, 0, 65_535),
    r(0x7C, "chg_oc_warning", DeciAmps, AMPS.0, AMPS.1),
    r(0x7E, "chg_oc_warning_recover", DeciAmps, AMPS.0, AMPS.1),
    r(0x80, "dsg_oc_warning", DeciAmps, AMPS.0, AMPS.1),
    r(0x82, "dsg_oc_warning_recover", DeciAmps, AMPS.0, AMPS.1),
    r(0x84, "soc_low_warning1", Percent, 0, 100),
    r(0x86, "soc_low_warning2", Percent, 0, 100),
    r(0x8C, "balance_voltage", MilliVolts, CELL.0, CELL.1),
    r(0x8E, "balance_start", MilliVolts, CELL.0, CELL.1),
    r(0x90, "balance_delta_on", MilliVolts, 0, 1_000),
    r(0x92, "balance_delta_off", MilliVolts, 0, 1_000),
    r(0x94, "balance_current", MilliAmps, 0, 2_000),
    r(0x96, "balance_charge_current", DeciAmps, AMPS.0, AMPS.1),
    r(0x98, "cell_type", Code, 0, 255),
    r(
        0x9A,
        "cell_count",
        Count,
        crate::measure::MIN_CELLS as u32,
        crate::measure::MAX_CELLS as u32,
    ),
    r(0x9C, "ir_calibration", Code, 0, 65_535),
    r(0x9E, "shutdown_voltage", MilliVolts, CELL.0, CELL.1),
    r(0xA0, "request_charge_current", DeciAmps, AMPS.0, AMPS.1),
    r4(0xA2, "nominal_capacity", MicroAmpHours, 0, u32::MAX),
    r4(0xA6, "remaining_capacity", MicroAmpHours, 0, u32::MAX),
    r4(0xAA, "cycle_capacity", MicroAmpHours, 0, u32::MAX),
    r(0xC4, "soc_method", Code, 0, 255),
    r(0x17A, "tyre_length", Millimetres, 0, 65_535),
    r(0x17C, "pulses_per_week", Count, 0, 65_535),
    r(0x17E, "secondary_module_number", Count, 0, 255),
];

const _: () = {
    let mut i = 1;
    while i < REGISTERS.len() {
        assert!(
            REGISTERS[i - 1].addr < REGISTERS[i].addr,
            "REGISTERS not sorted"
        );
        assert!(REGISTERS[i].min <= REGISTERS[i].max);
        i += 1;
    }
};

/// The register at `addr`, if the table has it.
pub fn lookup(addr: u16) -> Option<&'static Register> {
    REGISTERS
        .binary_search_by_key(&addr, |r| r.addr)
        .ok()
        .and_then(|i| REGISTERS.get(i))
}

/// Why a parameter read or write failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ParamError {
    /// The register is not mapped.
    UnknownRegister,
    /// The value is outside the allowed range (protocol range or chemistry limits).
    OutOfRange,
    /// The value would make the configuration invalid (`PackConfig::validate()` failed).
    Invalid,
    /// The register cannot be written over this link.
    ReadOnly,
    /// Persisting the new value failed; nothing changed.
    Storage,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamError::UnknownRegister => "unknown register",
            ParamError::OutOfRange => "value out of range",
            ParamError::Invalid => "configuration would be invalid",
            ParamError::ReadOnly => "register is read-only",
            ParamError::Storage => "storing the value failed",
        })
    }
}

impl core::error::Error for ParamError {}

/// Read and write access to setting registers, implemented by the integrator over
/// `PackConfig` (see the module docs for the contract).
pub trait ParameterAccess {
    /// The current value of `reg`, in its wire unit.
    ///
    /// # Errors
    /// [`ParamError::UnknownRegister`] for a register the implementation does not map.
    fn read(&self, reg: u16) -> Result<u32, ParamError>;

    /// Sets `reg` to `value`: validated, persisted and logged, or nothing changes.
    ///
    /// # Errors
    /// Any [`ParamError`]; on error nothing may have changed.
    fn write(&mut self, reg: u16, value: u32) -> Result<(), ParamError>;
}

/// A [`ParameterAccess`] that maps nothing: every read and write is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoParameters;

impl ParameterAccess for NoParameters {
    fn read(&self, _reg: u16) -> Result<u32, ParamError> {
        Err(ParamError::UnknownRegister)
    }
    fn write(&mut self, _reg: u16, _value: u32) -> Result<(), ParamError> {
        Err(ParamError::ReadOnly)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    #[test]
    fn lookup_finds_table_entries_only() {
        assert_eq!(lookup(0xA2).map(|r| r.width), Some(4));
        assert_eq!(lookup(0x9A).map(|r| (r.min, r.max)), Some((8, 20)));
        assert!(lookup(0x01).is_none());
        assert!(lookup(0x026C).is_none());
    }
}
