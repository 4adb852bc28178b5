//! [`Telemetry`]: what the BMS reports about itself after a step.
//!
//! Every wire protocol (J1939, the inverter protocol, the serial protocol, the event log)
//! encodes from this one struct, so that they all report the same numbers.

use crate::measure::MAX_CELLS;
use crate::protect::FaultSet;
use crate::time::Instant;
use crate::units::{DeciCelsius, MilliAmpHours, MilliAmps, MilliVolts, Permille, Soc};

/// Operating mode of the BMS (DESIGN.md section 4, power modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PowerMode {
    /// Normal operation.
    #[default]
    Active,
    /// Idle: MOSFETs kept as they are, slow measurement, wake on current, charger or ACC.
    Sleep,
    /// Long under-voltage: everything off, manual wake only.
    DeepSleep,
}

impl PowerMode {
    /// The contract name (`active`, `sleep`, `deep_sleep`).
    pub const fn name(self) -> &'static str {
        match self {
            PowerMode::Active => "active",
            PowerMode::Sleep => "sleep",
            PowerMode::DeepSleep => "deep_sleep",
        }
    }
}

impl core::fmt::Display for PowerMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The limits a charger, inverter or vehicle must respect now (already derated).
///
/// Currents are magnitudes (non-negative), whatever the direction they limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Limits {
    /// Charge voltage limit for the pack (CVL).
    pub charge_voltage: MilliVolts,
    /// Largest allowed charge current (CCL), magnitude.
    pub charge_current: MilliAmps,
    /// Largest allowed discharge current (DCL), magnitude.
    pub discharge_current: MilliAmps,
    /// Lowest pack voltage the load may draw to.
    pub discharge_voltage: MilliVolts,
}

/// A snapshot of the BMS state for reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Telemetry {
    /// Time of the step that produced this snapshot.
    pub now: Instant,
    /// Cells in series.
    pub cell_count: u8,
    /// Cell voltages, `cells[..cell_count]` valid, cell 1 first.
    pub cells: [MilliVolts; MAX_CELLS],
    /// Lowest and highest of [`cells`](Self::cells) where the producer has them at hand
    /// (`Bms::step` gives them whenever every reading was plausible), so that reports need
    /// not scan the cells again; `None`: not known, [`cell_extremes`](Self::cell_extremes)
    /// scans. Whoever changes `cells` sets this to `None` (or to the new extremes).
    pub cell_range: Option<(MilliVolts, MilliVolts)>,
    /// Pack voltage (battery side).
    pub pack_voltage: MilliVolts,
    /// Load-side voltage.
    pub load_voltage: MilliVolts,
    /// Pack current, positive = discharge.
    pub current: MilliAmps,
    /// External NTCs T1 and T2 (`None` = not readable).
    pub cell_temps: [Option<DeciCelsius>; 2],
    /// MOSFET temperature.
    pub mos_temp: Option<DeciCelsius>,
    /// Balancing circuit temperature, if the board measures it.
    pub balance_temp: Option<DeciCelsius>,
    /// State of charge.
    pub soc: Soc,
    /// State of health: learned capacity over nominal.
    pub soh: Permille,
    /// Remaining charge.
    pub remaining: MilliAmpHours,
    /// Learned full capacity.
    pub full_capacity: MilliAmpHours,
    /// Nominal (rated) capacity.
    pub nominal_capacity: MilliAmpHours,
    /// Equivalent full cycles.
    pub cycles: u32,
    /// Charge MOSFET closed (conducting).
    pub charge_fet: bool,
    /// Discharge MOSFET closed.
    pub discharge_fet: bool,
    /// Pre-charge path closed.
    pub precharge_fet: bool,
    /// Cells being bled, bit 0 = cell 1.
    pub balance_mask: u32,
    /// Active faults.
    pub faults: FaultSet,
    /// Active warnings (first tier below the fault thresholds).
    pub warnings: FaultSet,
    /// Power mode.
    pub mode: PowerMode,
    /// Derated limits for chargers, inverters and vehicles.
    pub limits: Limits,
    /// Lifetime charge into the pack.
    pub total_charged: MilliAmpHours,
    /// Lifetime charge out of the pack.
    pub total_discharged: MilliAmpHours,
}

impl Telemetry {
    /// An all-zero snapshot for `cell_count` cells (before the first step).
    pub fn empty(cell_count: u8) -> Self {
        Telemetry {
            now: Instant::ZERO,
            cell_count: cell_count.min(MAX_CELLS as u8),
            cells: [MilliVolts::ZERO; MAX_CELLS],
            cell_range: None,
            pack_voltage: MilliVolts::ZERO,
            load_voltage: MilliVolts::ZERO,
            current: MilliAmps::ZERO,
            cell_temps: [None; 2],
            mos_temp: None,
            balance_temp: None,
            soc: Soc::EMPTY,
            soh: Permille::FULL,
            remaining: MilliAmpHours::from_mah(0),
            full_capacity: MilliAmpHours::from_mah(0),
            nominal_capacity: MilliAmpHours::from_mah(0),
            cycles: 0,
            charge_fet: false,
            discharge_fet: false,
            precharge_fet: false,
            balance_mask: 0,
            faults: FaultSet::EMPTY,
            warnings: FaultSet::EMPTY,
            mode: PowerMode::Active,
            limits: Limits::default(),
            total_charged: MilliAmpHours::from_mah(0),
            total_discharged: MilliAmpHours::from_mah(0),
        }
    }

    /// The valid cell voltages.
    pub fn cells(&self) -> &[MilliVolts] {
        &self.cells[..(self.cell_count as usize).min(MAX_CELLS)]
    }

    /// Lowest and highest cell voltage (`None` without cells): [`cell_range`](Self::cell_range)
    /// when known, else one scan of the cells.
    ///
    /// ```
    /// use bms_core::{MilliVolts, Telemetry};
    /// let mut t = Telemetry::empty(3);
    /// t.cells[..3].copy_from_slice(&[3_301, 3_299, 3_305].map(MilliVolts::from_mv));
    /// let mv = MilliVolts::from_mv;
    /// assert_eq!(t.cell_extremes(), Some((mv(3_299), mv(3_305))));
    /// ```
    pub fn cell_extremes(&self) -> Option<(MilliVolts, MilliVolts)> {
        debug_assert!(
            self.cell_range.is_none() || self.cell_range == scan_extremes(self.cells()),
            "Telemetry::cell_range out of step with the cells"
        );
        self.cell_range.or_else(|| scan_extremes(self.cells()))
    }

    /// Highest cell voltage and its 0-based index (`(0 mV, 0)` with no cells).
    pub fn max_cell(&self) -> (MilliVolts, usize) {
        self.cells()
            .iter()
            .enumerate()
            .fold(
                (MilliVolts::ZERO, 0),
                |acc, (i, &v)| if v > acc.0 { (v, i) } else { acc },
            )
    }

    /// Lowest cell voltage and its 0-based index (`(0 mV, 0)` with no cells).
    pub fn min_cell(&self) -> (MilliVolts, usize) {
        let mut it = self.cells().iter().enumerate();
        let first = match it.next() {
            Some((_, &v)) => (v, 0),
            None => return (MilliVolts::ZERO, 0),
        };
        it.fold(first, |acc, (i, &v)| if v < acc.0 { (v, i) } else { acc })
    }

    /// Highest and lowest readable NTC temperature, if any.
    pub fn temp_range(&self) -> Option<(DeciCelsius, DeciCelsius)> {
        let mut it = self.cell_temps.iter().flatten().copied();
        let first = it.next()?;
        Some(it.fold((first, first), |(hi, lo), t| (hi.max(t), lo.min(t))))
    }
}

/// Lowest and highest of `cells` in one pass (`None` without cells).
fn scan_extremes(cells: &[MilliVolts]) -> Option<(MilliVolts, MilliVolts)> {
    let (first, rest) = cells.split_first()?;
    Some(
        rest.iter()
            .fold((*first, *first), |(lo, hi), &c| (lo.min(c), hi.max(c))),
    )
}
