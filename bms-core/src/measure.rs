//! [`Measurements`]: one snapshot of the pack, as the board read it.
//!
//! A reading that could not be taken is `None` (or `afe_ok == false` for the cell
//! monitor); the core turns missing, stale and implausible readings into faults.

use crate::time::Instant;
use crate::units::{DeciCelsius, MilliAmps, MilliVolts};

/// Compile-time capacity for cells in series; the runtime count is 8..=20.
pub const MAX_CELLS: usize = 20;
/// Smallest supported series count.
pub const MIN_CELLS: usize = 8;
/// Number of external NTC channels (T1, T2).
pub const NTC_COUNT: usize = 2;

/// One snapshot of every sensor of the pack.
///
/// Cells are `cells[..cell_count]`, cell 1 (next to B-) first.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Measurements {
    /// When the snapshot was taken.
    pub timestamp: Instant,
    /// Number of cells in series (valid entries of `cells`).
    pub cell_count: u8,
    /// Cell voltages; entries past `cell_count` are ignored.
    pub cells: [MilliVolts; MAX_CELLS],
    /// `false` when the cell monitor did not answer (communication error or timeout):
    /// `cells` and the open-wire mask are then not valid.
    pub afe_ok: bool,
    /// Open-wire mask from the cell monitor's check, bit 0 = cell 1.
    pub open_wire: u32,
    /// External NTCs T1 and T2; `None` = not readable (open or shorted NTC).
    pub cell_temps: [Option<DeciCelsius>; NTC_COUNT],
    /// MOSFET (power board) temperature.
    pub mos_temp: Option<DeciCelsius>,
    /// Balancing circuit temperature, where the board has a separate sensor.
    pub balance_temp: Option<DeciCelsius>,
    /// Pack voltage at the battery side of the MOSFETs.
    pub pack: Option<MilliVolts>,
    /// Voltage on the load side of the MOSFETs (pre-charge target).
    pub load: Option<MilliVolts>,
    /// Pack current, positive = discharge.
    pub current: Option<MilliAmps>,
    /// The ACC wake input is active.
    pub acc: bool,
    /// A charger is detected on the output terminals.
    pub charger_present: bool,
}

impl Measurements {
    /// A snapshot of `cell_count` cells all at `cell`, at 25 °C, no current, all sensors valid.
    ///
    /// Useful as a starting point in tests and simulations.
    ///
    /// # Examples
    /// ```
    /// use bms_core::{measure::Measurements, time::Instant, units::MilliVolts};
    /// let m = Measurements::uniform(16, MilliVolts::from_mv(3_300), Instant::ZERO);
    /// assert_eq!(m.cells().len(), 16);
    /// assert_eq!(m.pack.unwrap().as_mv(), 52_800);
    /// ```
    pub fn uniform(cell_count: u8, cell: MilliVolts, timestamp: Instant) -> Self {
        let n = (cell_count as usize).min(MAX_CELLS);
        let pack = MilliVolts::from_mv(cell.as_mv() * n as u32);
        let t = Some(DeciCelsius::from_celsius(25));
        Measurements {
            timestamp,
            cell_count: n as u8,
            cells: [cell; MAX_CELLS],
            afe_ok: true,
            open_wire: 0,
            cell_temps: [t; NTC_COUNT],
            mos_temp: t,
            balance_temp: None,
            pack: Some(pack),
            load: Some(pack),
            current: Some(MilliAmps::ZERO),
            acc: false,
            charger_present: false,
        }
    }

    /// The valid cell voltages.
    pub fn cells(&self) -> &[MilliVolts] {
        &self.cells[..(self.cell_count as usize).min(MAX_CELLS)]
    }

    /// The sum of the valid cell voltages.
    pub fn cell_sum(&self) -> MilliVolts {
        MilliVolts::from_mv(self.cells().iter().map(|c| c.as_mv()).sum())
    }
}
