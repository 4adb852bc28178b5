//! Hardware port traits: how a board feeds the core and applies its decisions.
//!
//! Each trait is small, has an associated `Error`, and states its units. A board
//! implements them over its peripherals (`bms-hal-stm32`) or over a simulation
//! (`bms-hal-mock`); [`Board`] bundles them for the controller. The [`asynch`] module
//! has the same traits with `async fn`, for boards run by an async executor.
//!
//! Contract for every port: a call either completes with a value in the stated unit or
//! returns `Err`; it never blocks for longer than the bus timeout of the implementation.
//! An `Err` from the cell monitor becomes the `afe_comm` fault; an `Err` from any other
//! sensor becomes a `sensor_fault`: both open the MOSFETs.

use crate::measure::NTC_COUNT;
use crate::time::Instant;
use crate::units::{DeciCelsius, MilliAmps, MilliVolts};

/// Desired state of the power switches. `true` = closed (conducting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FetState {
    /// Charge MOSFET.
    pub charge: bool,
    /// Discharge MOSFET.
    pub discharge: bool,
    /// Pre-charge path (resistor + small MOSFET in parallel with discharge).
    pub precharge: bool,
}

impl FetState {
    /// Everything open: no current can flow.
    pub const OPEN: FetState = FetState {
        charge: false,
        discharge: false,
        precharge: false,
    };
}

/// The cell monitor (analog front end): cell voltages, NTCs, balancing switches.
pub trait CellMonitor {
    /// Bus or device error.
    type Error: core::fmt::Debug;

    /// Reads the voltages of the first `out.len()` cells, cell 1 (next to B-) first.
    ///
    /// Implementations open the balancing switches for their settle time before
    /// measuring, so balancing current does not skew the reading.
    fn read_cells(&mut self, out: &mut [MilliVolts]) -> Result<(), Self::Error>;

    /// Reads the external NTCs T1, T2; `None` for a channel that is open or shorted.
    fn read_temperatures(
        &mut self,
        out: &mut [Option<DeciCelsius>; NTC_COUNT],
    ) -> Result<(), Self::Error>;

    /// Runs the open-wire check; bit `n` set = the sense wire of cell `n + 1` is open.
    fn check_open_wire(&mut self) -> Result<u32, Self::Error>;

    /// Sets the balancing switches, bit 0 = cell 1; `0` stops balancing.
    fn set_balancing(&mut self, mask: u32) -> Result<(), Self::Error>;
}

/// The pack current sensor (shunt amplifier, Hall sensor or the AFE's coulomb counter).
pub trait CurrentSensor {
    /// Read error.
    type Error: core::fmt::Debug;
    /// Pack current in mA, **positive = discharge**.
    fn read_current(&mut self) -> Result<MilliAmps, Self::Error>;
}

/// Pack- and load-side voltage dividers.
pub trait PackVoltage {
    /// Read error.
    type Error: core::fmt::Debug;
    /// Battery-side pack voltage.
    fn pack_voltage(&mut self) -> Result<MilliVolts, Self::Error>;
    /// Load-side voltage (after the MOSFETs), for pre-charge.
    fn load_voltage(&mut self) -> Result<MilliVolts, Self::Error>;
}

/// Board temperature sensors other than the cell NTCs.
pub trait BoardTemperature {
    /// Read error.
    type Error: core::fmt::Debug;
    /// MOSFET heatsink temperature.
    fn mos_temperature(&mut self) -> Result<DeciCelsius, Self::Error>;
    /// Balancing resistor area temperature; `Ok(None)` if the board has no such sensor.
    fn balance_temperature(&mut self) -> Result<Option<DeciCelsius>, Self::Error> {
        Ok(None)
    }
}

/// Charge, discharge and pre-charge switches.
pub trait PowerSwitches {
    /// Driver error.
    type Error: core::fmt::Debug;
    /// Drives the switches to `state`.
    fn set_fets(&mut self, state: FetState) -> Result<(), Self::Error>;
}

/// The three digital outputs DO1..DO3 and the wake inputs.
pub trait DigitalIo {
    /// Sets DO1..DO3 (`true` = active).
    fn set_outputs(&mut self, outputs: [bool; 3]);
    /// The ACC wake input is active.
    fn acc_active(&mut self) -> bool;
    /// A charger is detected on the output terminals.
    fn charger_present(&mut self) -> bool;
}

/// A monotonic clock.
pub trait Clock {
    /// Now; never goes backwards.
    fn now(&mut self) -> Instant;
}

/// A whole board: every port the controller needs.
pub trait Board {
    /// The cell monitor.
    type Afe: CellMonitor;
    /// The current sensor.
    type Current: CurrentSensor;
    /// The pack voltage dividers.
    type Voltage: PackVoltage;
    /// Board temperatures.
    type Temp: BoardTemperature;
    /// Power switches.
    type Switches: PowerSwitches;
    /// Digital outputs and wake inputs.
    type Io: DigitalIo;
    /// The clock.
    type Clock: Clock;

    /// The cell monitor.
    fn afe(&mut self) -> &mut Self::Afe;
    /// The current sensor.
    fn current(&mut self) -> &mut Self::Current;
    /// The pack voltage dividers.
    fn voltage(&mut self) -> &mut Self::Voltage;
    /// Board temperatures.
    fn temperature(&mut self) -> &mut Self::Temp;
    /// Power switches.
    fn switches(&mut self) -> &mut Self::Switches;
    /// Digital outputs and wake inputs.
    fn io(&mut self) -> &mut Self::Io;
    /// The clock.
    fn clock(&mut self) -> &mut Self::Clock;
}

/// Async twins of the port traits, for boards driven by an async executor (e.g. embassy).
///
/// Same contracts and units as the blocking traits.
pub mod asynch {
    use super::*;

    /// Async [`super::CellMonitor`].
    #[allow(async_fn_in_trait)]
    pub trait CellMonitor {
        /// Bus or device error.
        type Error: core::fmt::Debug;
        /// See [`super::CellMonitor::read_cells`].
        async fn read_cells(&mut self, out: &mut [MilliVolts]) -> Result<(), Self::Error>;
        /// See [`super::CellMonitor::read_temperatures`].
        async fn read_temperatures(
            &mut self,
            out: &mut [Option<DeciCelsius>; NTC_COUNT],
        ) -> Result<(), Self::Error>;
        /// See [`super::CellMonitor::check_open_wire`].
        async fn check_open_wire(&mut self) -> Result<u32, Self::Error>;
        /// See [`super::CellMonitor::set_balancing`].
        async fn set_balancing(&mut self, mask: u32) -> Result<(), Self::Error>;
    }

    /// Async [`super::CurrentSensor`].
    #[allow(async_fn_in_trait)]
    pub trait CurrentSensor {
        /// Read error.
        type Error: core::fmt::Debug;
        /// See [`super::CurrentSensor::read_current`].
        async fn read_current(&mut self) -> Result<MilliAmps, Self::Error>;
    }

    /// Async [`super::PackVoltage`].
    #[allow(async_fn_in_trait)]
    pub trait PackVoltage {
        /// Read error.
        type Error: core::fmt::Debug;
        /// See [`super::PackVoltage::pack_voltage`].
        async fn pack_voltage(&mut self) -> Result<MilliVolts, Self::Error>;
        /// See [`super::PackVoltage::load_voltage`].
        async fn load_voltage(&mut self) -> Result<MilliVolts, Self::Error>;
    }

    /// Async [`super::PowerSwitches`].
    #[allow(async_fn_in_trait)]
    pub trait PowerSwitches {
        /// Driver error.
        type Error: core::fmt::Debug;
        /// See [`super::PowerSwitches::set_fets`].
        async fn set_fets(&mut self, state: FetState) -> Result<(), Self::Error>;
    }
}
