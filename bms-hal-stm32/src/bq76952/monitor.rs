//! [`bms_core::ports::CellMonitor`] over one BQ76952 (with a cell-to-input map) and over a
//! stack of two monitors for 17..=20 series cells.

use bms_core::measure::NTC_COUNT;
use bms_core::ports::{CellMonitor, CurrentSensor, PackVoltage};
use bms_core::units::{DeciCelsius, MilliAmps, MilliVolts};
use embedded_hal::i2c::I2c;

use super::types::{mode, Error, TempSensor};
use super::Bq76952;

/// Which cell input (VC1..VC16) carries each cell of the pack, cell 1 first.
///
/// A pack of fewer than 16 cells leaves some inputs unused (shorted to their neighbour on
/// the board); the map skips them so the core sees consecutive cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChannelMap {
    /// 1-based input numbers, strictly ascending; `len` valid entries.
    inputs: [u8; 16],
    len: u8,
}

impl ChannelMap {
    /// A map from explicit 1-based input numbers, cell 1 first.
    ///
    /// Returns `None` unless there are 1..=16 strictly ascending inputs within 1..=16.
    pub fn new(inputs: &[u8]) -> Option<Self> {
        if inputs.is_empty() || inputs.len() > 16 {
            return None;
        }
        let mut map = [0u8; 16];
        let mut prev = 0u8;
        for (slot, &n) in map.iter_mut().zip(inputs) {
            if n <= prev || n > 16 {
                return None;
            }
            *slot = n;
            prev = n;
        }
        Some(ChannelMap {
            inputs: map,
            len: inputs.len() as u8,
        })
    }

    /// The usual layout for `cells` (3..=16) cells: cells 1..n−1 on VC1..VC(n−1) and the top
    /// cell on VC16, unused inputs VCn..VC15 shorted together on the board. This keeps the
    /// bottom inputs and VC16 in use, as the BQ76952 data sheet's guidance for packs of
    /// fewer than 16 cells asks.
    ///
    /// # Examples
    /// ```
    /// use bms_hal_stm32::bq76952::ChannelMap;
    /// let m = ChannelMap::bottom_and_top(8).unwrap();
    /// assert_eq!(m.inputs(), &[1, 2, 3, 4, 5, 6, 7, 16]);
    /// assert_eq!(m.vcell_mode(), 0x807F);
    /// ```
    pub fn bottom_and_top(cells: u8) -> Option<Self> {
        if !(3..=16).contains(&cells) {
            return None;
        }
        let mut inputs = [0u8; 16];
        for (i, slot) in inputs.iter_mut().enumerate().take(usize::from(cells) - 1) {
            *slot = i as u8 + 1;
        }
        inputs[usize::from(cells) - 1] = 16;
        Some(ChannelMap { inputs, len: cells })
    }

    /// Number of cells mapped.
    pub fn cell_count(&self) -> u8 {
        self.len
    }

    /// The 1-based inputs, cell 1 first.
    pub fn inputs(&self) -> &[u8] {
        &self.inputs[..usize::from(self.len).min(16)]
    }

    /// The Vcell Mode data memory value for this map (bit 0 = VC1).
    pub fn vcell_mode(&self) -> u16 {
        self.inputs().iter().fold(0, |m, n| m | 1 << (n - 1))
    }

    /// Converts a cell mask (bit 0 = cell 1) to an input mask (bit 0 = VC1); cells past
    /// the map are dropped.
    pub fn cells_to_inputs(&self, cells: u32) -> u16 {
        self.inputs()
            .iter()
            .enumerate()
            .filter(|(i, _)| cells & (1 << i) != 0)
            .fold(0, |m, (_, n)| m | 1 << (n - 1))
    }
}

/// The two NTC channels T1, T2 of the core and the device input each one is wired to.
pub type TempSources = [Option<TempSensor>; NTC_COUNT];

/// Configuration of [`Bq76952Monitor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct MonitorConfig {
    /// Which input carries which cell.
    pub map: ChannelMap,
    /// The device inputs read as T1 and T2 (`None` = not fitted, always reads `None`).
    pub temps: TempSources,
    /// A cell reading below this is reported as an open sense wire.
    pub open_wire_below: MilliVolts,
    /// A cell reading above this is reported as an open sense wire.
    pub open_wire_above: MilliVolts,
    /// Lowest plausible NTC reading; below it the NTC is taken as open.
    pub temp_min: DeciCelsius,
    /// Highest plausible NTC reading; above it the NTC is taken as shorted.
    pub temp_max: DeciCelsius,
}

impl MonitorConfig {
    /// A configuration for `map` with NTCs on TS1 and TS3, open-wire limits of 500 mV and
    /// 5000 mV and a plausible temperature range of −40..=125 °C.
    pub fn new(map: ChannelMap) -> Self {
        MonitorConfig {
            map,
            temps: [Some(TempSensor::Ts1), Some(TempSensor::Ts3)],
            open_wire_below: MilliVolts::from_mv(500),
            open_wire_above: MilliVolts::from_mv(5_000),
            temp_min: DeciCelsius::from_celsius(-40),
            temp_max: DeciCelsius::from_celsius(125),
        }
    }

    /// Sets the T1/T2 sources.
    pub fn with_temps(mut self, temps: TempSources) -> Self {
        self.temps = temps;
        self
    }

    /// Sets the open-wire limits.
    pub fn with_open_wire_limits(mut self, below: MilliVolts, above: MilliVolts) -> Self {
        self.open_wire_below = below;
        self.open_wire_above = above;
        self
    }
}

/// A BQ76952 seen as the core's [`CellMonitor`].
///
/// - `read_cells` reads all 16 inputs in one block and picks the mapped ones. The device
///   pauses balancing on a cell while its ADC measures it, so the switches need no
///   host-side opening around the read.
/// - `check_open_wire` uses the device's open-wire method: with Cell Open-Wire Check Time
///   set ([`Bq76952::set_open_wire_check_time`]) the device sinks a small current from each
///   input, so an input whose sense wire is open drifts low and its neighbour reads high.
///   A mapped cell outside [`MonitorConfig::open_wire_below`]..=
///   [`MonitorConfig::open_wire_above`] is reported open.
/// - `set_balancing` converts the cell mask to the input mask (CB_ACTIVE_CELLS).
#[derive(Debug)]
pub struct Bq76952Monitor<I2C> {
    dev: Bq76952<I2C, mode::Normal>,
    config: MonitorConfig,
}

impl<I2C: I2c> Bq76952Monitor<I2C> {
    /// Wraps a driver in normal mode.
    pub fn new(dev: Bq76952<I2C, mode::Normal>, config: MonitorConfig) -> Self {
        Bq76952Monitor { dev, config }
    }

    /// The driver, for the commands the port trait does not cover (FETs, sleep, status).
    pub fn device(&mut self) -> &mut Bq76952<I2C, mode::Normal> {
        &mut self.dev
    }

    /// Gives the driver back.
    pub fn release(self) -> Bq76952<I2C, mode::Normal> {
        self.dev
    }

    /// The configuration.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    fn mapped_cells(&mut self, out: &mut [MilliVolts]) -> Result<(), Error<I2C::Error>> {
        if out.len() > usize::from(self.config.map.cell_count()) {
            return Err(Error::InvalidInputData);
        }
        let mut all = [MilliVolts::ZERO; 16];
        self.dev.cell_voltages(&mut all)?;
        for (o, n) in out.iter_mut().zip(self.config.map.inputs()) {
            *o = all
                .get(usize::from(*n) - 1)
                .copied()
                .ok_or(Error::InvalidInputData)?;
        }
        Ok(())
    }
}

impl<I2C: I2c> CellMonitor for Bq76952Monitor<I2C> {
    type Error = Error<I2C::Error>;

    fn read_cells(&mut self, out: &mut [MilliVolts]) -> Result<(), Self::Error> {
        self.mapped_cells(out)
    }

    fn read_temperatures(
        &mut self,
        out: &mut [Option<DeciCelsius>; NTC_COUNT],
    ) -> Result<(), Self::Error> {
        for (o, src) in out.iter_mut().zip(self.config.temps) {
            *o = match src {
                None => None,
                Some(sensor) => {
                    let t = self.dev.temperature(sensor)?;
                    (self.config.temp_min..=self.config.temp_max)
                        .contains(&t)
                        .then_some(t)
                }
            };
        }
        Ok(())
    }

    fn check_open_wire(&mut self) -> Result<u32, Self::Error> {
        let mut cells = [MilliVolts::ZERO; 16];
        let n = usize::from(self.config.map.cell_count()).min(16);
        let cells = &mut cells[..n];
        self.mapped_cells(cells)?;
        let (lo, hi) = (self.config.open_wire_below, self.config.open_wire_above);
        Ok(cells
            .iter()
            .enumerate()
            .filter(|(_, v)| **v < lo || **v > hi)
            .fold(0, |m, (i, _)| m | 1 << i))
    }

    fn set_balancing(&mut self, mask: u32) -> Result<(), Self::Error> {
        if mask >> self.config.map.cell_count() != 0 {
            return Err(Error::InvalidInputData);
        }
        let inputs = self.config.map.cells_to_inputs(mask);
        self.dev.set_balancing(inputs)
    }
}

/// The CC2 current of the device (positive = discharge), for boards that use the BQ76952's
/// coulomb counter as the pack current sensor.
impl<I2C: I2c> CurrentSensor for Bq76952Monitor<I2C> {
    type Error = Error<I2C::Error>;

    fn read_current(&mut self) -> Result<MilliAmps, Self::Error> {
        self.dev.current()
    }
}

/// Battery side = top-of-stack voltage (0x34); load side = LD pin voltage (0x38).
impl<I2C: I2c> PackVoltage for Bq76952Monitor<I2C> {
    type Error = Error<I2C::Error>;

    fn pack_voltage(&mut self) -> Result<MilliVolts, Self::Error> {
        self.dev.stack_voltage()
    }

    fn load_voltage(&mut self) -> Result<MilliVolts, Self::Error> {
        self.dev.ld_voltage()
    }
}

/// Error of a [`Stacked`] monitor: which of the two devices failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StackError<L, U> {
    /// The lower monitor (cell 1 upwards).
    Lower(L),
    /// The upper monitor.
    Upper(U),
    /// A request beyond the cells of both monitors.
    InvalidInputData,
}

/// Two cell monitors stacked in series, for 17..=20 cells (e.g. two BQ76952s, each on its
/// own bus or address): cells `1..=lower_cells` on `lower`, the rest on `upper`.
/// T1 is the lower monitor's T1, T2 is the upper monitor's T1.
#[derive(Debug)]
pub struct Stacked<L, U> {
    lower: L,
    upper: U,
    lower_cells: u8,
    upper_cells: u8,
}

impl<L: CellMonitor, U: CellMonitor> Stacked<L, U> {
    /// Stacks `lower` (carrying `lower_cells` cells) under `upper` (carrying `upper_cells`).
    pub fn new(lower: L, lower_cells: u8, upper: U, upper_cells: u8) -> Self {
        Stacked {
            lower,
            upper,
            lower_cells,
            upper_cells,
        }
    }

    /// Total cells.
    pub fn cell_count(&self) -> u8 {
        self.lower_cells.saturating_add(self.upper_cells)
    }

    /// The two monitors.
    pub fn parts(&mut self) -> (&mut L, &mut U) {
        (&mut self.lower, &mut self.upper)
    }

    /// Gives the two monitors back.
    pub fn into_parts(self) -> (L, U) {
        (self.lower, self.upper)
    }
}

impl<L: CellMonitor, U: CellMonitor> CellMonitor for Stacked<L, U> {
    type Error = StackError<L::Error, U::Error>;

    fn read_cells(&mut self, out: &mut [MilliVolts]) -> Result<(), Self::Error> {
        if out.len() > usize::from(self.cell_count()) {
            return Err(StackError::InvalidInputData);
        }
        let split = usize::from(self.lower_cells).min(out.len());
        let (lo, hi) = out.split_at_mut(split);
        self.lower.read_cells(lo).map_err(StackError::Lower)?;
        if !hi.is_empty() {
            self.upper.read_cells(hi).map_err(StackError::Upper)?;
        }
        Ok(())
    }

    fn read_temperatures(
        &mut self,
        out: &mut [Option<DeciCelsius>; NTC_COUNT],
    ) -> Result<(), Self::Error> {
        let mut lo = [None; NTC_COUNT];
        let mut hi = [None; NTC_COUNT];
        self.lower
            .read_temperatures(&mut lo)
            .map_err(StackError::Lower)?;
        self.upper
            .read_temperatures(&mut hi)
            .map_err(StackError::Upper)?;
        *out = [lo[0], hi[0]];
        Ok(())
    }

    fn check_open_wire(&mut self) -> Result<u32, Self::Error> {
        let lo = self.lower.check_open_wire().map_err(StackError::Lower)?;
        let hi = self.upper.check_open_wire().map_err(StackError::Upper)?;
        let lo_mask = low_mask(self.lower_cells);
        Ok(lo & lo_mask | hi.checked_shl(u32::from(self.lower_cells)).unwrap_or(0))
    }

    fn set_balancing(&mut self, mask: u32) -> Result<(), Self::Error> {
        if mask & !low_mask(self.cell_count()) != 0 {
            return Err(StackError::InvalidInputData);
        }
        let lo = mask & low_mask(self.lower_cells);
        let hi = mask.checked_shr(u32::from(self.lower_cells)).unwrap_or(0);
        self.lower.set_balancing(lo).map_err(StackError::Lower)?;
        self.upper.set_balancing(hi).map_err(StackError::Upper)
    }
}

fn low_mask(bits: u8) -> u32 {
    1u32.checked_shl(u32::from(bits))
        .map_or(u32::MAX, |b| b - 1)
}
