//! Passive cell balancing decisions: which bleed resistors to switch on, and for how long.
//!
//! [`Balancer`] turns one snapshot of the pack ([`BalanceInput`]) into a balancing mask
//! (bit 0 = cell 1, the [`CellMonitor::set_balancing`](crate::ports::CellMonitor::set_balancing)
//! contract). It is integer-only, allocation-free and deterministic: the same configuration,
//! inputs and times always give the same masks.
//!
//! # Rules (DESIGN.md section 6)
//! The mask is zero whenever any of these holds:
//! - balancing is disabled ([`BalanceConfig::enabled`]) or the current is unknown;
//! - the pack is neither charging (current below `-charge_current`) with
//!   [`BalanceConfig::while_charging`] set, nor at rest (`|I| <= rest_current`) with
//!   [`BalanceConfig::at_rest`] set;
//! - a fault is present ([`BalanceInput::faults_present`]);
//! - any cell is below the under-voltage warning ([`BalanceInput::uv_warning`]);
//! - the balance-board temperature is at or above [`BalanceConfig::hard_stop`] (or missing while
//!   [`BalanceConfig::require_board_temp`] is set);
//! - in [`SwitchTiming::Scheduled`] mode, inside the settle window before a measurement
//!   ([`Balancer::mask_at`]).
//!
//! Otherwise a cell is a *candidate* once it is at least [`BalanceConfig::start_delta`] above the
//! lowest cell and stays one until it is no more than [`BalanceConfig::stop_delta`] above it
//! (hysteresis). A candidate is bled only while its own voltage is at least
//! [`BalanceConfig::start_voltage`]. The lowest cell is never a candidate (its delta is zero).
//! The stop condition and the start voltage are checked on every update for every channel
//! that is on; new candidates are taken at the next full pass (see *Cost per step*).
//!
//! # Selection
//! At most `k` channels are on, where `k` is [`BalanceConfig::max_channels`], reduced linearly
//! by the board temperature between [`BalanceConfig::derate_start`] and
//! [`BalanceConfig::hard_stop`] ([`BalanceConfig::derated_channels`]). When more cells qualify
//! than `k` allows, or two qualifying cells are adjacent while
//! [`BalanceConfig::no_adjacent`] is set, the selection is greedy: take the highest remaining
//! cell (by voltage, or by SOC in SOC mode; ties go to the lower cell number), remove its
//! neighbours from the remaining set when adjacency is forbidden, and repeat until `k` cells are
//! chosen or none remain. Without the `k` limit this yields a maximal non-adjacent set.
//!
//! # Cost per step
//! The gates are O(1); a step that stays inhibited with every switch already open (e.g.
//! discharging) ends there, without touching the cells. Then one pass finds the lowest and
//! highest cell (skipped when the caller
//! passes [`BalanceInput::cell_range`]). A balanced pack (no candidate, spread below the start
//! delta) stops there. Otherwise a *full pass* (the branch-free hysteresis over every cell, then
//! the selection) runs when the channel count or the mode (voltage/SOC) changed, when a channel
//! that is on must go off, and at least every [`BalanceConfig::reselect_interval`] (so a bled
//! cell that has come down yields its channel to a higher one and a newly qualifying cell gets
//! one). Between full passes a step only re-checks the channels that are on: O(channels on),
//! no division anywhere per step (the bleed current uses a Q16 conductance and a saturation
//! voltage precomputed with the configuration).
//!
//! # Measurement window and how a controller schedules it
//! Balancing current through the sense wires skews the cell readings, so switches must be open
//! for a settle time before each measurement. Two modes ([`BalanceConfig::timing`]):
//!
//! - [`SwitchTiming::AfeManaged`] (default): the cell monitor opens the switches itself while it
//!   measures, which is the [`CellMonitor::read_cells`](crate::ports::CellMonitor::read_cells)
//!   contract. [`Balancer::update`] returns the mask to apply from now until the next
//!   measurement; `settle` is only used to discount the open time from the bled-charge
//!   accounting.
//! - [`SwitchTiming::Scheduled`]: the core owns the window. After [`Balancer::update`] at `t`,
//!   the next measurement is due at `t + measure_period`
//!   ([`Balancer::next_measurement`]) and the switches must open at
//!   `t + measure_period - settle` ([`Balancer::poll_timeout`]). A controller does:
//!
//! ```text
//! loop {
//!     read cells (switches are open)             -> cells
//!     mask = balancer.update(&input{now, cells..})
//!     afe.set_balancing(mask)
//!     if let Some(t) = balancer.poll_timeout() { sleep_until(t); afe.set_balancing(balancer.mask_at(t)) } // = 0
//!     sleep_until(balancer.next_measurement())
//! }
//! ```
//!
//! [`Balancer::mask_at`] is the pure form of the same rule: the decided mask before the window,
//! zero inside it.
//!
//! # Bled charge and time to balanced
//! Each channel bleeds `I = min(V_cell / R, current_limit)` ([`BalanceConfig::bleed_current`],
//! with a Q16 conductance precomputed so no division runs per cell). On every update the charge
//! bled during the previous interval (the time the switches were really on) is added per cell in
//! [`MilliAmpMillis`] without rounding; [`Balancer::bled`] reports it in mAh.
//! [`Balancer::time_to_balanced`] estimates the balancing time still needed from the last spread
//! (converted to charge with an OCV slope and the capacity, or directly from per-cell SOC), the
//! bleed current and the number of channels.
//!
//! # Physics bound for convergence
//! Passive balancing can only remove charge, at most `I_bleed` per channel, and only while it is
//! allowed. If `Q` is the charge to remove from the highest cell and `t_cycle` the time per
//! charge/discharge cycle during which balancing is allowed, no controller converges in fewer than
//!
//! ```text
//! cycles >= Q / (I_bleed * t_cycle)                         (one channel per cell)
//! cycles >= max(Q_max, sum(Q_i) / k) / (I_bleed * t_cycle)  (k channels shared by all cells)
//! ```
//!
//! For top balancing the charge to remove from cell `i` is how much less it needs to be full than
//! the emptiest cell: `Q_i = D_max - D_i` with `D_i = C_i (1 - SOC_i)`, i.e. about
//! `C * dSOC + dC * (1 - SOC)` (SOC spread plus the capacity spread seen from the SOC at which
//! the spread is measured). `t_cycle` is [`Balancer::allowed_time_ms`] divided by the number of
//! cycles: the time the highest cell was above the start voltage with balancing allowed. For the 16S imbalance scenario with a 5 % SOC spread, a 3 % capacity
//! spread, cells of capacity `C` and 100 mA channels, measured at 50 % SOC:
//! `Q ~= (0.05 + 0.03 * 0.5) C = 0.065 C`; with `C = 100 Ah` that is 6.5 Ah = 65 h of balancing,
//! i.e. 33 cycles at 2 h of balancing per cycle ([`cycles_bound`]). A linear spread over 16 cells
//! has `sum(Q_i) = 8 Q_max`, so at least 8 channels are needed for the channel limit not to
//! dominate; the presets allow 12. Once the cells are equal at the top, a capacity spread no
//! longer needs bleeding as long as every cycle reaches the top. `tests/balance_convergence.rs`
//! runs this scenario (10 Ah cells) in closed loop on the presets and checks convergence within
//! 1.5 times this bound.
//!
//! # Examples
//! ```
//! use bms_core::balance::{BalanceConfig, BalanceInput, Balancer};
//! use bms_core::time::Instant;
//! use bms_core::units::{MilliAmps, MilliVolts};
//!
//! let cfg = BalanceConfig::nmc();
//! cfg.validate()?;
//! let mut b = Balancer::new(cfg);
//! let mut cells = [MilliVolts::from_mv(4_050); 16];
//! cells[3] = MilliVolts::from_mv(4_080); // cell 4 is 30 mV high
//! let input = BalanceInput {
//!     now: Instant::from_millis(0),
//!     cells: &cells,
//!     current: Some(MilliAmps::from_ma(-5_000)), // charging at 5 A
//!     faults_present: false,
//!     uv_warning: MilliVolts::from_mv(3_000),
//!     board_temp: None,
//!     cell_soc: None,
//!     cell_range: None,
//! };
//! assert_eq!(b.update(&input), 1 << 3);
//! # Ok::<(), bms_core::balance::BalanceConfigError>(())
//! ```

use core::fmt;

use crate::bits::set_bits;
use crate::measure::{Measurements, MAX_CELLS};
use crate::time::{Duration, Instant};
use crate::units::{
    DeciCelsius, MilliAmpHours, MilliAmpMillis, MilliAmps, MilliOhms, MilliVolts, Permille, Soc,
};

/// Largest bleed current per channel allowed by the product specification (100 mA/channel).
pub const MAX_BLEED_CURRENT: MilliAmps = MilliAmps::from_ma(100);

/// Smallest accepted balancing resistor (1 Ω); it bounds the fixed-point conductance.
pub const MIN_RESISTOR: MilliOhms = MilliOhms::from_mohm(1_000);

/// Who opens the balancing switches before a cell measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum SwitchTiming {
    /// The cell monitor opens the switches while it measures (the `read_cells` port contract);
    /// the core outputs the mask for the time between measurements.
    #[default]
    AfeManaged,
    /// The core schedules the window: measurements every `measure_period`, switches open
    /// `settle` before each one.
    Scheduled,
}

/// Configuration of passive balancing (the `[balance]` TOML section).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct BalanceConfig {
    /// Master switch; `false` keeps every switch open.
    pub enabled: bool,
    /// Balance while charging (current below `-charge_current`).
    pub while_charging: bool,
    /// Balance at rest (`|current| <= rest_current`).
    pub at_rest: bool,
    /// Charge current magnitude above which the pack counts as charging.
    pub charge_current: MilliAmps,
    /// Current magnitude up to which the pack counts as at rest.
    pub rest_current: MilliAmps,
    /// A cell is bled only while its voltage is at least this.
    pub start_voltage: MilliVolts,
    /// A cell becomes a candidate at this much above the lowest cell.
    pub start_delta: MilliVolts,
    /// A candidate stops being one at this much (or less) above the lowest cell.
    pub stop_delta: MilliVolts,
    /// Maximum number of channels on at once (thermal budget), before derating.
    pub max_channels: u8,
    /// Never switch on two adjacent channels (BQ769x0 family; BQ769x2 autonomous balancing).
    pub no_adjacent: bool,
    /// Balancing resistor per channel (total resistance in the bleed path).
    pub resistor: MilliOhms,
    /// Per-channel current limit (programmable bleed current); at most [`MAX_BLEED_CURRENT`].
    pub current_limit: MilliAmps,
    /// Board temperature at and below which all `max_channels` may be on.
    pub derate_start: DeciCelsius,
    /// Board temperature at and above which no channel may be on.
    pub hard_stop: DeciCelsius,
    /// Inhibit balancing when the board has no balance temperature reading.
    pub require_board_temp: bool,
    /// Who opens the switches before a measurement.
    pub timing: SwitchTiming,
    /// Time the switches are open before a cell measurement.
    pub settle: Duration,
    /// Time between cell measurements ([`SwitchTiming::Scheduled`] only).
    pub measure_period: Duration,
    /// Time between full passes (hysteresis over every cell, then selection) while nothing
    /// forces one; a newly qualifying cell is picked up within it.
    pub reselect_interval: Duration,
    /// Balance on per-cell SOC when the caller supplies it ([`BalanceInput::cell_soc`]).
    pub soc_based: bool,
    /// SOC mode: a cell becomes a candidate at this SOC above the lowest cell.
    pub soc_start_delta: Permille,
    /// SOC mode: a candidate stops at this SOC (or less) above the lowest cell.
    pub soc_stop_delta: Permille,
}

impl Default for BalanceConfig {
    /// The NMC preset ([`BalanceConfig::nmc`]).
    fn default() -> Self {
        Self::nmc()
    }
}

impl BalanceConfig {
    const COMMON: BalanceConfig = BalanceConfig {
        enabled: true,
        while_charging: true,
        at_rest: true,
        charge_current: MilliAmps::from_ma(200),
        rest_current: MilliAmps::from_ma(200),
        start_voltage: MilliVolts::from_mv(3_900),
        start_delta: MilliVolts::from_mv(8),
        stop_delta: MilliVolts::from_mv(3),
        max_channels: 12,
        no_adjacent: false,
        resistor: MilliOhms::from_ohms(39),
        current_limit: MAX_BLEED_CURRENT,
        derate_start: DeciCelsius::from_celsius(55),
        hard_stop: DeciCelsius::from_celsius(75),
        require_board_temp: false,
        timing: SwitchTiming::AfeManaged,
        settle: Duration::from_millis(20),
        measure_period: Duration::from_millis(250),
        reselect_interval: Duration::from_secs(10),
        soc_based: false,
        soc_start_delta: Permille::from_permille(10),
        soc_stop_delta: Permille::from_permille(3),
    };

    /// NMC preset: balance during charge and rest above 3.9 V (top balancing: cells are
    /// compared near where the charge ends, about 65 % SOC and up, so a capacity spread does
    /// not pass for a SOC spread), start at 8 mV, stop at 3 mV, 12 channels,
    /// 39 Ω (100 mA from 3.9 V up).
    pub const fn nmc() -> Self {
        Self::COMMON
    }

    /// LFP preset: like [`BalanceConfig::nmc`] but only above 3.4 V, because the 3.2..3.35 V
    /// plateau hides SOC differences; start at 15 mV, stop at 5 mV; 33 Ω (100 mA at 3.3 V).
    pub const fn lfp() -> Self {
        BalanceConfig {
            start_voltage: MilliVolts::from_mv(3_400),
            start_delta: MilliVolts::from_mv(15),
            stop_delta: MilliVolts::from_mv(5),
            resistor: MilliOhms::from_ohms(33),
            ..Self::COMMON
        }
    }

    /// LTO preset: above 2.55 V, start at 8 mV, stop at 3 mV; 22 Ω (100 mA from 2.2 V up).
    pub const fn lto() -> Self {
        BalanceConfig {
            start_voltage: MilliVolts::from_mv(2_550),
            resistor: MilliOhms::from_ohms(22),
            ..Self::COMMON
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// The first [`BalanceConfigError`] found.
    ///
    /// # Examples
    /// ```
    /// use bms_core::balance::{BalanceConfig, BalanceConfigError};
    /// use bms_core::units::MilliVolts;
    /// let mut cfg = BalanceConfig::lfp();
    /// assert_eq!(cfg.validate(), Ok(()));
    /// cfg.stop_delta = cfg.start_delta;
    /// assert_eq!(cfg.validate(), Err(BalanceConfigError::StopDeltaNotBelowStart));
    /// ```
    pub const fn validate(&self) -> Result<(), BalanceConfigError> {
        if self.stop_delta.as_mv() >= self.start_delta.as_mv() {
            return Err(BalanceConfigError::StopDeltaNotBelowStart);
        }
        if self.soc_stop_delta.as_permille() >= self.soc_start_delta.as_permille() {
            return Err(BalanceConfigError::SocStopDeltaNotBelowStart);
        }
        if self.max_channels as usize > MAX_CELLS {
            return Err(BalanceConfigError::TooManyChannels);
        }
        if self.resistor.as_mohm() < MIN_RESISTOR.as_mohm() {
            return Err(BalanceConfigError::ResistorTooSmall);
        }
        if self.current_limit.as_ma() <= 0 || self.current_limit.as_ma() > MAX_BLEED_CURRENT.as_ma()
        {
            return Err(BalanceConfigError::CurrentLimitOutOfRange);
        }
        if self.charge_current.as_ma() < 0 || self.rest_current.as_ma() < 0 {
            return Err(BalanceConfigError::NegativeCurrentThreshold);
        }
        if self.derate_start.as_deci() >= self.hard_stop.as_deci() {
            return Err(BalanceConfigError::DerateStartNotBelowHardStop);
        }
        if matches!(self.timing, SwitchTiming::Scheduled)
            && self.settle.as_millis() >= self.measure_period.as_millis()
        {
            return Err(BalanceConfigError::SettleNotBelowPeriod);
        }
        if self.reselect_interval.as_millis() == 0 {
            return Err(BalanceConfigError::ZeroReselectInterval);
        }
        Ok(())
    }

    /// Q16 conductance in mA per mV; `R >= 1 Ω` keeps it at most `2^16`.
    const fn conductance_q16(&self) -> u32 {
        let r = if self.resistor.as_mohm() < MIN_RESISTOR.as_mohm() {
            MIN_RESISTOR.as_mohm()
        } else {
            self.resistor.as_mohm()
        };
        // I[mA] = V[mV] * 1000 / R[mΩ]; rounded to nearest. In 32 bits (no 64-bit division
        // routine): 1000 * 2^16 + u32::MAX / 2 still fits.
        ((1_000u32 << 16) + r / 2).wrapping_div(r)
    }

    const fn limit_ma(&self) -> u32 {
        let l = self.current_limit.as_ma();
        if l <= 0 {
            0
        } else if l > MAX_BLEED_CURRENT.as_ma() {
            MAX_BLEED_CURRENT.as_ma() as u32
        } else {
            l as u32
        }
    }

    /// The current one channel bleeds from a cell at `cell`: `min(V / R, current_limit)`.
    ///
    /// # Examples
    /// ```
    /// use bms_core::balance::BalanceConfig;
    /// use bms_core::units::{MilliOhms, MilliVolts};
    /// let mut cfg = BalanceConfig::nmc();
    /// cfg.resistor = MilliOhms::from_ohms(66);
    /// assert_eq!(cfg.bleed_current(MilliVolts::from_mv(3_300)).as_ma(), 50);
    /// assert_eq!(cfg.bleed_current(MilliVolts::from_mv(9_900)).as_ma(), 100); // capped
    /// ```
    pub const fn bleed_current(&self, cell: MilliVolts) -> MilliAmps {
        MilliAmps::from_ma(bleed_ma(cell, self.conductance_q16(), self.limit_ma()) as i32)
    }

    /// Heat in one channel's resistor at `cell`, in milliwatts (`V * I`).
    pub const fn channel_power_mw(&self, cell: MilliVolts) -> u32 {
        let i = bleed_ma(cell, self.conductance_q16(), self.limit_ma()) as u64;
        let v = if cell.as_mv() > u16::MAX as u32 {
            u16::MAX as u64
        } else {
            cell.as_mv() as u64
        };
        (v * i / 1_000) as u32
    }

    /// Channels allowed at board temperature `temp`: `max_channels` up to `derate_start`, then
    /// linearly fewer (rounded up, so at least one below `hard_stop`), none from `hard_stop`.
    /// `None` (no sensor) gives `max_channels`, or zero when `require_board_temp` is set.
    ///
    /// # Examples
    /// ```
    /// use bms_core::balance::BalanceConfig;
    /// use bms_core::units::DeciCelsius;
    /// let cfg = BalanceConfig::nmc(); // 12 channels, 55 °C .. 75 °C
    /// assert_eq!(cfg.derated_channels(Some(DeciCelsius::from_celsius(40))), 12);
    /// assert_eq!(cfg.derated_channels(Some(DeciCelsius::from_celsius(65))), 6);
    /// assert_eq!(cfg.derated_channels(Some(DeciCelsius::from_celsius(75))), 0);
    /// ```
    pub const fn derated_channels(&self, temp: Option<DeciCelsius>) -> u8 {
        let max = if self.max_channels as usize > MAX_CELLS {
            MAX_CELLS as u8
        } else {
            self.max_channels
        };
        let t = match temp {
            Some(t) => t.as_deci() as i32,
            None => return if self.require_board_temp { 0 } else { max },
        };
        let start = self.derate_start.as_deci() as i32;
        let stop = self.hard_stop.as_deci() as i32;
        if t >= stop {
            0
        } else if t <= start {
            max
        } else {
            // 0 < stop - t < stop - start here, so the result is within 1..=max.
            let span = (stop - start) as u32;
            let num = max as u32 * (stop - t) as u32;
            num.div_ceil(span) as u8
        }
    }
}

/// `min(round(V * G / 2^16), limit)`, with V clamped to 65 535 mV so the product fits a `u32`.
#[inline]
const fn bleed_ma(cell: MilliVolts, g_q16: u32, limit: u32) -> u32 {
    let v = if cell.as_mv() > u16::MAX as u32 {
        u16::MAX as u32
    } else {
        cell.as_mv()
    };
    // Rounded to nearest: 65_535 * 2^16 + 2^15 still fits a u32.
    let i = v.wrapping_mul(g_q16).wrapping_add(1 << 15) >> 16;
    if i > limit {
        limit
    } else {
        i
    }
}

/// An invalid [`BalanceConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum BalanceConfigError {
    /// `stop_delta >= start_delta`: the hysteresis would chatter.
    StopDeltaNotBelowStart,
    /// `soc_stop_delta >= soc_start_delta`.
    SocStopDeltaNotBelowStart,
    /// `max_channels` above [`MAX_CELLS`].
    TooManyChannels,
    /// `resistor` below [`MIN_RESISTOR`].
    ResistorTooSmall,
    /// `current_limit` not within `1..=100` mA.
    CurrentLimitOutOfRange,
    /// A negative `charge_current` or `rest_current`.
    NegativeCurrentThreshold,
    /// `derate_start >= hard_stop`.
    DerateStartNotBelowHardStop,
    /// Scheduled timing with `settle >= measure_period`: the switches would never close.
    SettleNotBelowPeriod,
    /// `reselect_interval` of zero.
    ZeroReselectInterval,
}

impl fmt::Display for BalanceConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::StopDeltaNotBelowStart => "balance stop_delta must be below start_delta",
            Self::SocStopDeltaNotBelowStart => {
                "balance soc_stop_delta must be below soc_start_delta"
            }
            Self::TooManyChannels => "balance max_channels above the cell capacity",
            Self::ResistorTooSmall => "balance resistor below 1 ohm",
            Self::CurrentLimitOutOfRange => "balance current_limit must be within 1..=100 mA",
            Self::NegativeCurrentThreshold => "balance current thresholds must not be negative",
            Self::DerateStartNotBelowHardStop => "balance derate_start must be below hard_stop",
            Self::SettleNotBelowPeriod => "balance settle must be shorter than measure_period",
            Self::ZeroReselectInterval => "balance reselect_interval must not be zero",
        })
    }
}

impl core::error::Error for BalanceConfigError {}

/// One step's inputs to [`Balancer::update`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceInput<'a> {
    /// When the cells were measured (switches open).
    pub now: Instant,
    /// Cell voltages, cell 1 first; at most [`MAX_CELLS`] are used.
    pub cells: &'a [MilliVolts],
    /// Pack current, positive = discharge; `None` (unknown) inhibits balancing.
    pub current: Option<MilliAmps>,
    /// Any protection fault is present; inhibits balancing.
    pub faults_present: bool,
    /// The cell under-voltage warning threshold; a cell below it inhibits balancing.
    pub uv_warning: MilliVolts,
    /// Balance-board temperature, `None` when the board has no such sensor.
    pub board_temp: Option<DeciCelsius>,
    /// Per-cell SOC estimates, used when [`BalanceConfig::soc_based`] is set and the slice has
    /// one entry per cell; otherwise balancing is on voltage.
    pub cell_soc: Option<&'a [Soc]>,
    /// The lowest and highest of `cells`, when the caller has them already (the protection
    /// pass does): saves one pass over the cells. It must be the exact range of `cells`. A
    /// wrong one never panics; it is detected at the next full pass (at most
    /// `reselect_interval` later, see the module docs) and replaced by the real one, but until
    /// then it may keep a channel on that should be off.
    pub cell_range: Option<(MilliVolts, MilliVolts)>,
}

impl<'a> BalanceInput<'a> {
    /// The inputs found in a measurement snapshot: its time, cells, current and
    /// balance-board temperature. A cell monitor that did not answer, or an open sense wire,
    /// counts as a fault; no SOC, no precomputed range.
    ///
    /// # Examples
    /// ```
    /// use bms_core::balance::BalanceInput;
    /// use bms_core::measure::Measurements;
    /// use bms_core::time::Instant;
    /// use bms_core::units::MilliVolts;
    /// let mut m = Measurements::uniform(16, MilliVolts::from_mv(3_300), Instant::ZERO);
    /// let input = BalanceInput::from_measurements(&m, false, MilliVolts::from_mv(2_900));
    /// assert_eq!(input.cells.len(), 16);
    /// assert!(!input.faults_present);
    /// m.open_wire = 1 << 4;
    /// assert!(BalanceInput::from_measurements(&m, false, MilliVolts::from_mv(2_900)).faults_present);
    /// ```
    pub fn from_measurements(
        m: &'a Measurements,
        faults_present: bool,
        uv_warning: MilliVolts,
    ) -> Self {
        BalanceInput {
            now: m.timestamp,
            cells: m.cells(),
            current: m.current,
            faults_present: faults_present || !m.afe_ok || m.open_wire != 0,
            uv_warning,
            board_temp: m.balance_temp,
            cell_soc: None,
            cell_range: None,
        }
    }
}

/// The fields of a [`BalanceInput`] that the settled shortcut of [`Balancer::update`]
/// compares with those of the update that found the pack balanced (see
/// [`Balancer::update_unread`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettledInput {
    /// [`BalanceInput::uv_warning`].
    pub uv_warning: MilliVolts,
    /// [`BalanceInput::board_temp`].
    pub board_temp: Option<DeciCelsius>,
    /// [`BalanceInput::cell_range`].
    pub cell_range: Option<(MilliVolts, MilliVolts)>,
}

/// Why the balancer keeps every switch open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Inhibit {
    /// [`BalanceConfig::enabled`] is off, or no channel is configured, or no cells.
    Disabled,
    /// The pack current is unknown.
    CurrentUnknown,
    /// Neither charging nor at rest in an allowed way (e.g. discharging).
    NotAllowedState,
    /// A fault is present.
    Fault,
    /// A cell is below the under-voltage warning.
    UnderVoltage,
    /// The board is at or above the hard stop (or its required sensor is missing).
    BoardTemperature,
}

impl fmt::Display for Inhibit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Inhibit::Disabled => "disabled",
            Inhibit::CurrentUnknown => "current_unknown",
            Inhibit::NotAllowedState => "not_allowed_state",
            Inhibit::Fault => "fault",
            Inhibit::UnderVoltage => "under_voltage",
            Inhibit::BoardTemperature => "board_temperature",
        })
    }
}

/// What the balancer decided at its last update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BalanceStatus {
    /// No update yet.
    Idle,
    /// Allowed, but no cell needs (or may get) bleeding.
    Balanced,
    /// At least one channel is on.
    Balancing,
    /// Kept off for this reason.
    Inhibited(Inhibit),
}

impl BalanceStatus {
    /// `true` when at least one channel is on.
    pub const fn is_balancing(self) -> bool {
        matches!(self, BalanceStatus::Balancing)
    }
}

impl fmt::Display for BalanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BalanceStatus::Idle => f.write_str("idle"),
            BalanceStatus::Balanced => f.write_str("balanced"),
            BalanceStatus::Balancing => f.write_str("balancing"),
            BalanceStatus::Inhibited(why) => write!(f, "inhibited ({why})"),
        }
    }
}

/// An open-circuit-voltage slope, in microvolts per permille of SOC, to turn a voltage spread
/// into a charge ([`Balancer::time_to_balanced`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OcvSlope(u32);

impl OcvSlope {
    /// A slope of `uv` µV per permille SOC (an LG M50 NMC OCV table gives 320 between 85 and
    /// 90 % SOC and 1 520 between 95 and 100 %).
    pub const fn from_uv_per_permille(uv: u32) -> Self {
        OcvSlope(uv)
    }
    /// A slope of `mv` mV per percent SOC (= `100 * mv` µV per permille).
    pub const fn from_mv_per_percent(mv: u32) -> Self {
        OcvSlope(mv.saturating_mul(100))
    }
    /// Microvolts per permille SOC.
    pub const fn as_uv_per_permille(self) -> u32 {
        self.0
    }
}

/// The inputs of an update that found the pack balanced on voltage, from the caller's cell
/// range: an update with the same ones decides the same (see [`Balancer::update`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Settled {
    range: (MilliVolts, MilliVolts),
    uv: MilliVolts,
    cells: u8,
}

/// What the spread of the last decision was measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpreadOn {
    /// No decision has measured it yet.
    Nothing,
    /// Millivolts.
    Voltage,
    /// Permille SOC.
    Soc,
}

/// The passive balancing state machine. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Balancer {
    cfg: BalanceConfig,
    // Constants derived from `cfg` once (`set_config`), so no step divides or re-derives them.
    /// Q16 conductance in mA per mV.
    g_q16: u32,
    /// From this cell voltage up a channel bleeds `cap_ma` (the current limit, or the current
    /// at 65 535 mV): one compare per channel instead of two clamps.
    cap_mv: u16,
    cap_ma: u8,
    /// `!enabled || max_channels == 0`.
    disabled: bool,
    /// Charging is a current below this (`i32::MIN`: charging is not allowed).
    charge_below: i32,
    /// At rest is a current magnitude below this (0: rest is not allowed).
    rest_below: u32,
    /// Board temperature and channel count of the last derating computation.
    derate_temp: Option<DeciCelsius>,
    derate_k: u8,

    /// Hysteresis state: cells currently counted as above the start delta.
    candidates: u32,
    mask: u32,
    status: BalanceStatus,
    /// Channel count the current mask was selected with; zero forces a full pass.
    selected_k: u8,
    /// The current mask was selected on SOC.
    selected_soc: bool,
    /// When the current selection was made.
    selected_at: Instant,
    /// The time of the last update (unused before the first one: nothing is on and there was
    /// no opportunity).
    last_update: Instant,
    /// The interval after the last update counts as balancing opportunity.
    opportunity: bool,
    /// The measurement period at the last update: the next measurement is due this long
    /// after it, while `scheduled` (4 bytes instead of a stored instant).
    period: Duration,
    scheduled: bool,
    bled: [MilliAmpMillis; MAX_CELLS],
    /// Charge bled by each channel of `lazy_mask` not yet added to `bled` (see
    /// [`Balancer::book`]).
    lazy_q: MilliAmpMillis,
    lazy_mask: u32,
    // The spread at the last decision, for the estimate: highest minus lowest, sum over cells
    // of (cell minus lowest), the cell count and the highest cell voltage.
    spread_on: SpreadOn,
    spread_cells: u8,
    spread_max: u32,
    spread_sum: u64,
    spread_top: MilliVolts,
    allowed_ms: u64,
    /// Set by an update that found the pack balanced (voltage rules, caller's range).
    settled: Option<Settled>,
    /// `Some(why)` when the last update was a steady inhibit for `why` (see
    /// `steady_inhibit`) and nothing changed since what that wrote but the
    /// time: another one for the same reason need only move `last_update`.
    /// Cleared by `set_config` and `update_slow`, the only other writers of those fields.
    steady: Option<Inhibit>,
}

impl Balancer {
    /// A balancer with every switch open. `cfg` should have passed
    /// [`BalanceConfig::validate`]; an invalid one still never panics, and the safety rules
    /// still hold.
    pub fn new(cfg: BalanceConfig) -> Self {
        let mut b = Balancer {
            cfg,
            g_q16: 0,
            cap_mv: 0,
            cap_ma: 0,
            disabled: true,
            charge_below: i32::MIN,
            rest_below: 0,
            derate_temp: None,
            derate_k: 0,
            candidates: 0,
            mask: 0,
            status: BalanceStatus::Idle,
            selected_k: 0,
            selected_soc: false,
            selected_at: Instant::ZERO,
            last_update: Instant::ZERO,
            opportunity: false,
            period: Duration::ZERO,
            scheduled: false,
            bled: [MilliAmpMillis::ZERO; MAX_CELLS],
            lazy_q: MilliAmpMillis::ZERO,
            lazy_mask: 0,
            spread_on: SpreadOn::Nothing,
            spread_cells: 0,
            spread_max: 0,
            spread_sum: 0,
            spread_top: MilliVolts::ZERO,
            allowed_ms: 0,
            settled: None,
            steady: None,
        };
        b.set_config(cfg);
        b
    }

    /// The configuration.
    pub fn config(&self) -> &BalanceConfig {
        &self.cfg
    }

    /// Replaces the configuration (a parameter write at run time). The bled-charge counters
    /// and the time base are kept; the next update makes a full decision with the new values.
    pub fn set_config(&mut self, cfg: BalanceConfig) {
        let g = cfg.conductance_q16();
        let limit = cfg.limit_ma();
        // The smallest voltage whose rounded current reaches the limit: V * G + 2^15 >= L * 2^16.
        let cap_mv = if g == 0 || limit == 0 {
            0
        } else {
            ((limit << 16) - (1 << 15)).div_ceil(g).min(u16::MAX as u32)
        };
        self.g_q16 = g;
        self.cap_mv = cap_mv as u16;
        self.cap_ma = bleed_ma(MilliVolts::from_mv(cap_mv), g, limit) as u8;
        self.disabled = !cfg.enabled || cfg.max_channels == 0;
        self.charge_below = if cfg.while_charging {
            // Wraps like the negation it replaces: a threshold of i32::MIN never counts.
            cfg.charge_current.as_ma().wrapping_neg()
        } else {
            i32::MIN
        };
        self.rest_below = if cfg.at_rest {
            cfg.rest_current.unsigned_abs() + 1
        } else {
            0
        };
        self.derate_temp = None;
        self.derate_k = cfg.derated_channels(None);
        self.cfg = cfg;
        self.selected_k = 0;
        self.candidates = 0;
        self.settled = None;
        // `mark` stores values of the configuration.
        self.steady = None;
    }

    /// Processes one measurement and returns the balancing mask (bit 0 = cell 1) to apply from
    /// `input.now` until the next measurement (or until [`Balancer::poll_timeout`] in
    /// [`SwitchTiming::Scheduled`] mode).
    ///
    /// Call it once per cell measurement, right after the cells were read with the switches
    /// open. It also books the charge bled since the previous call.
    // Inline: a settled step (a balanced pack at rest with the same inputs) is then a few
    // compares in the caller, which need not even build the whole input; the rest is one
    // out-of-line copy.
    #[inline(always)]
    pub fn update(&mut self, input: &BalanceInput<'_>) -> u32 {
        if let Some(s) = self.settled {
            if self.gate(input).is_ok() && self.still_settled(s, input) {
                self.settled_step(input.now);
                return 0;
            }
        }
        self.update_full(input)
    }

    /// The update when the last one found the pack balanced from the same inputs (see
    /// `still_settled`), so this one decides the same: only the clock moves (nothing is
    /// on, so nothing is booked). `account` and `mark` reduced to what they change: the
    /// measurement window was marked with the same configuration (a new one clears
    /// `settled`).
    #[inline(always)]
    fn settled_step(&mut self, now: Instant) {
        if self.opportunity {
            let dt = now.duration_since(self.last_update);
            self.allowed_ms = self.allowed_ms.saturating_add(dt.as_millis() as u64);
        }
        self.last_update = now;
    }

    /// [`Balancer::update_idle`] and, past its gates, the settled shortcut of
    /// [`Balancer::update`], for a caller that has not built its [`BalanceInput`] yet (nor
    /// read its cells): `Some(0)` when either decides (all an update with an input of these
    /// fields, any cell readings whose lowest and highest are those of `settled`, and no
    /// `cell_soc`, would do is move the clock and record why), `None` otherwise, and then
    /// nothing happened: call [`Balancer::update`] (or [`Balancer::update_full`]).
    /// `settled` is called only when the gates pass and the last update found the pack
    /// balanced.
    ///
    /// ```
    /// use bms_core::balance::{BalanceConfig, BalanceInput, Balancer, SettledInput};
    /// use bms_core::{Instant, MilliAmps, MilliVolts};
    /// let mut b = Balancer::new(BalanceConfig::default());
    /// let cells = [MilliVolts::from_mv(3_300); 16];
    /// let mut input = BalanceInput {
    ///     now: Instant::ZERO,
    ///     cells: &cells,
    ///     current: Some(MilliAmps::ZERO),
    ///     faults_present: false,
    ///     uv_warning: MilliVolts::from_mv(2_900),
    ///     board_temp: None,
    ///     cell_soc: None,
    ///     cell_range: Some((cells[0], cells[0])),
    /// };
    /// let settled = || SettledInput {
    ///     uv_warning: input.uv_warning,
    ///     board_temp: input.board_temp,
    ///     cell_range: input.cell_range,
    /// };
    /// // The first update at rest decides from the cells: a balanced pack.
    /// assert_eq!(b.update_unread(input.now, 16, input.current, false, settled), None);
    /// assert_eq!(b.update(&input), 0);
    /// // The next with the same range decides the same without the cells.
    /// let later = Instant::from_millis(100);
    /// assert_eq!(b.update_unread(later, 16, input.current, false, settled), Some(0));
    /// ```
    #[inline(always)]
    pub fn update_unread(
        &mut self,
        now: Instant,
        cells: usize,
        current: Option<MilliAmps>,
        faults_present: bool,
        settled: impl FnOnce() -> SettledInput,
    ) -> Option<u32> {
        match self.gate_parts(cells == 0, faults_present, current) {
            Err(why) => self.inhibited_idle(now, why),
            Ok(()) => {
                let s = self.settled?;
                let q = settled();
                let n = cells.min(MAX_CELLS);
                if !self.settled_on(s, n, q.cell_range, q.uv_warning, q.board_temp, false) {
                    return None;
                }
                self.settled_step(now);
                Some(0)
            }
        }
    }

    /// [`Balancer::update`] without its shortcuts: the same decision the long way, for a
    /// caller that knows they do not apply (its [`Balancer::update_unread`] with these
    /// inputs just returned `None`), which spares it their second check.
    #[inline(never)] // One copy; the callers stay small.
    pub fn update_full(&mut self, input: &BalanceInput<'_>) -> u32 {
        let gate = self.gate(input);
        self.settled = None;
        if let Err(why) = gate {
            if self.mask == 0 && !self.opportunity {
                self.steady_inhibit(input.now, why);
                return 0;
            }
        }
        self.update_slow(input, gate)
    }

    /// The update for a caller that has not built its [`BalanceInput`] yet, as far as the
    /// gates that need no cell readings decide it: `Some(0)` when they keep every switch
    /// open and nothing was on (all an [`Balancer::update`] with these inputs would do is
    /// move the clock and record why), `None` otherwise, and then nothing happened: call
    /// [`Balancer::update`].
    ///
    /// `cells` is the number of cells; the other arguments are the [`BalanceInput`] fields
    /// of the same names.
    ///
    /// ```
    /// use bms_core::balance::{BalanceConfig, BalanceStatus, Balancer, Inhibit};
    /// use bms_core::{Instant, MilliAmps};
    /// let mut b = Balancer::new(BalanceConfig::default());
    /// // Discharging: nothing to decide from the cells.
    /// let discharge = Some(MilliAmps::from_amps(10));
    /// assert_eq!(b.update_idle(Instant::ZERO, 16, discharge, false), Some(0));
    /// assert_eq!(b.status(), BalanceStatus::Inhibited(Inhibit::NotAllowedState));
    /// // At rest the cells decide: build the input and call `update`.
    /// assert_eq!(b.update_idle(Instant::ZERO, 16, Some(MilliAmps::ZERO), false), None);
    /// ```
    pub fn update_idle(
        &mut self,
        now: Instant,
        cells: usize,
        current: Option<MilliAmps>,
        faults_present: bool,
    ) -> Option<u32> {
        // The steady-inhibit shortcut of `update`, which reads nothing else.
        let why = self.gate_parts(cells == 0, faults_present, current).err()?;
        self.inhibited_idle(now, why)
    }

    /// [`Balancer::update_idle`] past gates that failed for `why`.
    #[inline(always)]
    fn inhibited_idle(&mut self, now: Instant, why: Inhibit) -> Option<u32> {
        // The last update was this one for the same reason (e.g. every step of a
        // discharge): all but the time is already what it would store.
        if self.steady == Some(why) {
            self.last_update = now;
            return Some(0);
        }
        self.idle_changed(now, why)
    }

    /// [`Balancer::update_idle`] past the shortcut for the reason of the last update.
    #[inline(never)] // Once per run of inhibits: the callers stay small.
    fn idle_changed(&mut self, now: Instant, why: Inhibit) -> Option<u32> {
        if self.mask != 0 || self.opportunity {
            return None;
        }
        self.steady_inhibit(now, why);
        Some(0)
    }

    /// Steady inhibit (e.g. discharging) with no channel on and the last interval no
    /// opportunity (`mask == 0 && !opportunity`, which stay so): there is nothing to count
    /// or book, and `opportunity` is already false.
    #[inline(always)]
    fn steady_inhibit(&mut self, now: Instant, why: Inhibit) {
        self.settled = None;
        self.mark(now);
        self.selected_k = 0;
        self.status = BalanceStatus::Inhibited(why);
        self.steady = Some(why);
    }

    /// The gates passed and the inputs the decision reads are those of `s`: the same
    /// channel count (same board temperature), cell range, UV warning and cell count, and
    /// no SOC-based decision.
    #[inline(always)]
    fn still_settled(&self, s: Settled, input: &BalanceInput<'_>) -> bool {
        let n = input.cells.len().min(MAX_CELLS);
        let soc = input.cell_soc.is_some_and(|c| c.len() == n);
        self.settled_on(
            s,
            n,
            input.cell_range,
            input.uv_warning,
            input.board_temp,
            soc,
        )
    }

    /// `still_settled` over the fields it reads: `n` cells (at most `MAX_CELLS`), `soc`
    /// when there is a SOC per cell.
    #[inline(always)]
    fn settled_on(
        &self,
        s: Settled,
        n: usize,
        range: Option<(MilliVolts, MilliVolts)>,
        uv: MilliVolts,
        board_temp: Option<DeciCelsius>,
        soc: bool,
    ) -> bool {
        range == Some(s.range)
            && uv == s.uv
            && n == usize::from(s.cells)
            && board_temp == self.derate_temp
            && !(self.cfg.soc_based && soc)
    }

    /// [`Balancer::update`] past the steady-inhibit shortcut.
    #[inline(never)] // Keeps the common inhibited step a few compares and a return.
    fn update_slow(&mut self, input: &BalanceInput<'_>, gate: Result<(), Inhibit>) -> u32 {
        self.steady = None;
        let cells = &input.cells[..input.cells.len().min(MAX_CELLS)];
        let prev = self.mask;
        let mut on_ms = self.account(input.now);
        self.begin(input.now);
        let mask = match gate {
            Err(why) => self.stop(BalanceStatus::Inhibited(why)),
            Ok(()) => self.decide(input, cells, &mut on_ms),
        };
        // The fresh path books while it checks the channels (and zeroes `on_ms`); every other
        // path books here.
        if on_ms != 0 {
            let _ = self.book(prev, cells, on_ms);
        }
        mask
    }

    /// Starts an update at `now`: the time base and the measurement window.
    #[inline(always)]
    fn begin(&mut self, now: Instant) {
        self.opportunity = false;
        self.mark(now);
    }

    /// Records the time of this update and the measurement window that follows it.
    #[inline(always)]
    fn mark(&mut self, now: Instant) {
        self.last_update = now;
        self.scheduled = matches!(self.cfg.timing, SwitchTiming::Scheduled);
        // Read only while `scheduled`; stored always, which is cheaper than a branch.
        self.period = self.cfg.measure_period;
    }

    /// The O(1) gates before the temperature one, in the order of the inhibit reasons.
    #[inline(always)]
    fn gate(&self, input: &BalanceInput<'_>) -> Result<(), Inhibit> {
        self.gate_parts(input.cells.is_empty(), input.faults_present, input.current)
    }

    /// [`Balancer::gate`] from the inputs it reads.
    #[inline(always)]
    fn gate_parts(
        &self,
        no_cells: bool,
        faults_present: bool,
        current: Option<MilliAmps>,
    ) -> Result<(), Inhibit> {
        if self.disabled || no_cells {
            return Err(Inhibit::Disabled);
        }
        if faults_present {
            return Err(Inhibit::Fault);
        }
        let i = current.ok_or(Inhibit::CurrentUnknown)?.as_ma();
        if i < self.charge_below || i.unsigned_abs() < self.rest_below {
            Ok(())
        } else {
            Err(Inhibit::NotAllowedState)
        }
    }

    /// Channels allowed at board temperature `temp`.
    #[inline(always)]
    fn channels(&mut self, temp: Option<DeciCelsius>) -> u8 {
        if self.derate_temp != temp {
            self.derate(temp);
        }
        self.derate_k
    }

    fn derate(&mut self, temp: Option<DeciCelsius>) {
        self.derate_temp = temp;
        self.derate_k = self.cfg.derated_channels(temp);
    }

    /// The decision once the O(1) gates passed: the temperature and the under-voltage
    /// warning, then the voltage or SOC rules. The voltage rules look for a balanced pack
    /// (with the caller's range) before the fresh check, the SOC rules after it.
    #[inline(always)]
    fn decide(&mut self, input: &BalanceInput<'_>, cells: &[MilliVolts], on_ms: &mut u32) -> u32 {
        let n = cells.len();
        let k = self.channels(input.board_temp).min(n as u8);
        if k == 0 {
            return self.stop(BalanceStatus::Inhibited(Inhibit::BoardTemperature));
        }
        // Lowest and highest cell: the caller's, or one pass here. A caller's range is checked
        // against the cells at every full pass.
        let (vmin, vmax) = match input.cell_range {
            Some((lo, hi)) => (lo.as_mv(), hi.as_mv()),
            None => extremes(volts(cells)),
        };
        let uv = input.uv_warning.as_mv();
        if vmin < uv {
            return self.stop(BalanceStatus::Inhibited(Inhibit::UnderVoltage));
        }
        let start_v = self.cfg.start_voltage.as_mv();
        self.opportunity = vmax >= start_v;
        let valid = low_bits(n);
        let soc = match input.cell_soc {
            Some(s) if self.cfg.soc_based && s.len() == n => Some(s),
            _ => None,
        };
        let (kind, mmin, mmax, stop) = match soc {
            Some(s) => {
                let (smin, smax) = extremes(socs(s));
                let stop = self.cfg.soc_stop_delta.as_permille() as u32;
                (SpreadOn::Soc, smin, smax, stop)
            }
            None => {
                let start = self.cfg.start_delta.as_mv();
                let stop = self.cfg.stop_delta.as_mv();
                if self.candidates & valid == 0 && vmax.saturating_sub(vmin) < start {
                    let d = vmax.saturating_sub(vmin);
                    self.settled = input.cell_range.map(|range| Settled {
                        range,
                        uv: input.uv_warning,
                        cells: n as u8,
                    });
                    return self.balanced(SpreadOn::Voltage, d, n, vmax);
                }
                (SpreadOn::Voltage, vmin, vmax, stop)
            }
        };
        // Between full passes (at most `reselect_interval` apart, with the same channel count)
        // only the channels that are on are checked again: each must stay at least the start
        // voltage and more than the stop delta above the lowest.
        if self.fresh(input.now, k, soc.is_some()) {
            let on = self.mask;
            // Booked here (not after the decision) to read each channel once.
            let lowest = self.book(on, cells, core::mem::take(on_ms));
            let keep = on == 0
                || (on >> n == 0
                    && lowest >= start_v
                    && match soc {
                        // Voltage: the lowest channel decides.
                        None => lowest.saturating_sub(vmin) > stop,
                        Some(s) => set_bits(on).all(|i| {
                            let m = s.get(i).map_or(0, |p| p.as_permille() as u32);
                            m.saturating_sub(mmin) > stop
                        }),
                    });
            if keep {
                if self.spread_on == kind {
                    self.spread_max = mmax.saturating_sub(mmin);
                    self.spread_top = MilliVolts::from_mv(vmax);
                }
                return self.mask;
            }
        }
        self.full_pass(input, cells, soc, k, (vmin, vmax), (mmin, mmax))
    }

    /// The current selection may stand (see [`Balancer::decide`]).
    #[inline(always)]
    fn fresh(&self, now: Instant, k: u8, soc: bool) -> bool {
        k == self.selected_k
            && soc == self.selected_soc
            && now.duration_since(self.selected_at) < self.cfg.reselect_interval
    }

    /// The full pass: the voltages (checking the caller's range), then the hysteresis over
    /// every cell and the selection, on voltage or on SOC (`(smin, smax)` its range).
    fn full_pass(
        &mut self,
        input: &BalanceInput<'_>,
        cells: &[MilliVolts],
        soc: Option<&[Soc]>,
        k: u8,
        (vmin, vmax): (u32, u32),
        (smin, smax): (u32, u32),
    ) -> u32 {
        let n = cells.len();
        let start_v = self.cfg.start_voltage.as_mv();
        let cand = self.candidates;
        let (mut start, mut stop) = (self.cfg.start_delta.as_mv(), self.cfg.stop_delta.as_mv());
        // On voltage this is already the hysteresis pass; on SOC only the voltages matter.
        let volts = match soc {
            None => Pass::run(cand, Metric::Volts(cells), vmin, start, stop, start_v),
            Some(_) => Pass::run(0, Metric::Volts(cells), 0, u32::MAX, 0, start_v),
        };
        // Both unchanged when the caller's range was right.
        if volts.min < input.uv_warning.as_mv() {
            return self.stop(BalanceStatus::Inhibited(Inhibit::UnderVoltage));
        }
        self.opportunity = volts.max >= start_v;
        let (kind, max, pass, metric) = match soc {
            Some(s) => {
                start = self.cfg.soc_start_delta.as_permille() as u32;
                stop = self.cfg.soc_stop_delta.as_permille() as u32;
                if cand & low_bits(n) == 0 && smax - smin < start {
                    return self.balanced(SpreadOn::Soc, smax - smin, n, volts.max);
                }
                let m = Metric::Soc(s);
                (
                    SpreadOn::Soc,
                    smax - smin,
                    Pass::run(cand, m, smin, start, stop, u32::MAX),
                    m,
                )
            }
            None => {
                let m = Metric::Volts(cells);
                let pass = if volts.min != vmin || volts.max != vmax {
                    // The caller's range was wrong: redo with the real one.
                    Pass::run(cand, m, volts.min, start, stop, start_v)
                } else {
                    volts
                };
                (SpreadOn::Voltage, volts.max - volts.min, pass, m)
            }
        };
        self.set_spread(kind, max, pass.sum, n, volts.max);
        self.candidates = pass.cand;
        let eligible = pass.cand & volts.hot & low_bits(n);
        let mask = self.select(eligible, k, metric);
        self.mask = mask;
        self.selected_k = k;
        self.selected_soc = soc.is_some();
        self.selected_at = input.now;
        self.status = if mask != 0 {
            BalanceStatus::Balancing
        } else {
            BalanceStatus::Balanced
        };
        mask
    }

    /// A balanced pack: nothing is a candidate and the spread is below the start delta.
    fn balanced(&mut self, on: SpreadOn, spread: u32, cells: usize, top: u32) -> u32 {
        self.set_spread(on, spread, spread as u64, cells, top);
        self.candidates = 0;
        self.stop(BalanceStatus::Balanced)
    }

    fn set_spread(&mut self, on: SpreadOn, max: u32, sum: u64, cells: usize, top: u32) {
        self.spread_on = on;
        self.spread_max = max;
        self.spread_sum = sum;
        self.spread_cells = cells as u8;
        self.spread_top = MilliVolts::from_mv(top);
    }

    /// The current one channel bleeds from a cell at `mv`; the same as
    /// [`BalanceConfig::bleed_current`], from the precomputed constants.
    #[inline(always)]
    fn bleed(&self, mv: u32) -> u32 {
        if mv >= u32::from(self.cap_mv) {
            u32::from(self.cap_ma)
        } else {
            // Below the cap: V < 65 535 mV, so the product fits and the limit is not reached.
            mv.wrapping_mul(self.g_q16).wrapping_add(1 << 15) >> 16
        }
    }

    /// Books `on_ms` of bleeding for the channels of `mask` at the voltages `cells` (the
    /// readings just taken with the switches open) and returns the lowest of those voltages
    /// (`u32::MAX` without any); channels beyond `cells` are skipped. One step per channel
    /// on, not per cell.
    ///
    /// While the same channels stay on, all at or above `cap_mv`, they all bleed `cap_ma`:
    /// the charge is then added once to `lazy_q` instead of to each counter, and moved to
    /// the counters when the channels change. The increments are never negative, so the
    /// saturating sums are the same either way.
    fn book(&mut self, mask: u32, cells: &[MilliVolts], on_ms: u32) -> u32 {
        let mut lowest = u32::MAX;
        let mut bits = mask;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(c) = cells.get(i) {
                lowest = lowest.min(c.as_mv());
            }
        }
        if on_ms == 0 {
            return lowest;
        }
        let on = i64::from(on_ms);
        if mask >> cells.len() == 0 && lowest >= u32::from(self.cap_mv) {
            if mask != self.lazy_mask {
                self.settle();
                self.lazy_mask = mask;
            }
            self.lazy_q += MilliAmpMillis::from_raw(i64::from(self.cap_ma) * on);
            return lowest;
        }
        self.settle();
        let mut bits = mask;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(c) = cells.get(i) {
                let q = MilliAmpMillis::from_raw(i64::from(self.bleed(c.as_mv())) * on);
                // `cells` has at most `MAX_CELLS` entries, so this is always `Some`.
                if let Some(acc) = self.bled.get_mut(i) {
                    *acc += q;
                }
            }
        }
        lowest
    }

    /// Moves the shared charge `lazy_q` into the counters of `lazy_mask`.
    #[inline(never)] // Only when the channels change; one copy (flash).
    fn settle(&mut self) {
        let q = core::mem::take(&mut self.lazy_q);
        let mut bits = self.lazy_mask;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(acc) = self.bled.get_mut(i) {
                *acc += q;
            }
        }
    }

    /// Greedy selection of at most `k` cells of `eligible`, highest `metric` first, skipping
    /// neighbours of chosen cells when adjacency is forbidden.
    #[inline(never)] // One copy for the voltage and SOC rules (flash).
    fn select(&self, eligible: u32, k: u8, metric: Metric<'_>) -> u32 {
        let contended = eligible.count_ones() > k as u32
            || (self.cfg.no_adjacent && eligible & (eligible >> 1) != 0);
        if !contended {
            return eligible;
        }
        let mut remaining = eligible;
        let mut mask = 0u32;
        let mut count = 0u8;
        while count < k && remaining != 0 {
            let mut best = remaining.trailing_zeros();
            let mut best_m = metric.get(best as usize);
            let mut rest = remaining & (remaining - 1);
            while rest != 0 {
                let i = rest.trailing_zeros();
                rest &= rest - 1;
                let m = metric.get(i as usize);
                if m > best_m {
                    best = i;
                    best_m = m;
                }
            }
            let bit = 1u32 << best;
            mask |= bit;
            remaining &= !bit;
            if self.cfg.no_adjacent {
                remaining &= !((bit << 1) | (bit >> 1));
            }
            count += 1;
        }
        mask
    }

    /// Counts the allowed time of the last interval; returns how long its channels were on.
    fn account(&mut self, now: Instant) -> u32 {
        let dt = now.duration_since(self.last_update);
        if self.opportunity {
            self.allowed_ms = self.allowed_ms.saturating_add(dt.as_millis() as u64);
        }
        if self.mask == 0 {
            return 0;
        }
        let settle = self.cfg.settle;
        match self.cfg.timing {
            SwitchTiming::AfeManaged => dt.saturating_sub(settle),
            SwitchTiming::Scheduled => dt.min(self.cfg.measure_period.saturating_sub(settle)),
        }
        .as_millis()
    }

    fn stop(&mut self, status: BalanceStatus) -> u32 {
        self.mask = 0;
        self.selected_k = 0;
        self.status = status;
        0
    }

    /// The mask decided at the last update (what [`Balancer::update`] returned).
    pub fn mask(&self) -> u32 {
        self.mask
    }

    /// The mask to apply at `now`: the decided mask, or zero from `settle` before the next
    /// scheduled measurement ([`SwitchTiming::Scheduled`]). In
    /// [`SwitchTiming::AfeManaged`] mode it is always the decided mask.
    pub fn mask_at(&self, now: Instant) -> u32 {
        match self.next_measurement() {
            Some(t) if now.saturating_add(self.cfg.settle) >= t => 0,
            _ => self.mask,
        }
    }

    /// When the switches must next open for a measurement: `Some(next_measurement - settle)`
    /// while channels are on in [`SwitchTiming::Scheduled`] mode, else `None`. The value stays
    /// the same until the next update; from it on, [`Balancer::mask_at`] is zero.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.mask == 0 {
            return None;
        }
        self.next_measurement().map(|t| {
            Instant::from_millis(
                t.as_millis()
                    .saturating_sub(self.cfg.settle.as_millis() as u64),
            )
        })
    }

    /// When the next cell measurement is due ([`SwitchTiming::Scheduled`] mode, after an
    /// update), else `None`.
    pub fn next_measurement(&self) -> Option<Instant> {
        self.scheduled.then(|| self.last_update + self.period)
    }

    /// What the last update decided.
    pub fn status(&self) -> BalanceStatus {
        self.status
    }

    /// Heat in the balancing resistors with the current mask at `cells`, in milliwatts.
    pub fn power_mw(&self, cells: &[MilliVolts]) -> u32 {
        let mut p = 0u32;
        let mut bits = self.mask;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(c) = cells.get(i) {
                p = p.saturating_add(self.cfg.channel_power_mw(*c));
            }
        }
        p
    }

    /// Charge bled from cell `index + 1` (index 0 = cell 1) since start or the last
    /// [`Balancer::reset_bled`], whole mAh; zero for an index out of range.
    pub fn bled(&self, index: usize) -> MilliAmpHours {
        let mah = self.bled_exact(index).as_mah();
        MilliAmpHours::from_mah(mah.clamp(0, u32::MAX as i64) as u32)
    }

    /// [`Balancer::bled`] without rounding.
    pub fn bled_exact(&self, index: usize) -> MilliAmpMillis {
        let Some(&booked) = self.bled.get(index) else {
            return MilliAmpMillis::ZERO;
        };
        if self.lazy_mask & (1 << index) != 0 {
            booked + self.lazy_q
        } else {
            booked
        }
    }

    /// Clears the bled-charge counters and [`Balancer::allowed_time_ms`].
    pub fn reset_bled(&mut self) {
        self.bled = [MilliAmpMillis::ZERO; MAX_CELLS];
        self.lazy_q = MilliAmpMillis::ZERO;
        self.allowed_ms = 0;
    }

    /// Total time, in milliseconds, during which balancing was allowed (all gates passed, no
    /// cell below the UV warning) and the highest cell was at or above the start voltage:
    /// the time the highest cell could be bled. Divided by the number of cycles it is the
    /// balancing time per cycle of [`cycles_bound`].
    pub fn allowed_time_ms(&self) -> u64 {
        self.allowed_ms
    }

    /// Estimated balancing time still needed to bring every cell down to the lowest, from the
    /// spread at the last full pass (a balanced pack counts only its highest cell): per-cell SOC where it was used,
    /// otherwise the voltage spread divided by `slope`, times `capacity`. The time is
    /// `max(Q_max, sum(Q_i) / k) / I_bleed` with `k` the channels usable at once
    /// (`max_channels`, halved by the adjacency rule) and `I_bleed` at the highest cell. It
    /// counts only time in which balancing is allowed; a good estimate needs the slope of the
    /// region where balancing happens. `Some(ZERO)` when balanced; `None` before any spread
    /// is known, or with a zero slope or bleed current.
    pub fn time_to_balanced(&self, capacity: MilliAmpHours, slope: OcvSlope) -> Option<Duration> {
        // Charge in mA·ms of one permille SOC is capacity[mAh] * 3600.
        let mams_per_permille = capacity.as_mah() as u64 * 3_600;
        let (max_q, sum_q) = match self.spread_on {
            SpreadOn::Nothing => return None,
            SpreadOn::Voltage => {
                let s = slope.as_uv_per_permille() as u64;
                if s == 0 {
                    return None;
                }
                let q = |mv: u64| mv.saturating_mul(1_000).saturating_mul(mams_per_permille) / s;
                (q(self.spread_max as u64), q(self.spread_sum))
            }
            SpreadOn::Soc => (
                self.spread_max as u64 * mams_per_permille,
                self.spread_sum.saturating_mul(mams_per_permille),
            ),
        };
        let i = self.bleed(self.spread_top.as_mv()) as u64;
        if i == 0 {
            return None;
        }
        let cells = self.spread_cells as u64;
        let mut k = (self.cfg.max_channels as u64).min(cells);
        if self.cfg.no_adjacent {
            k = k.min(cells.div_ceil(2));
        }
        let k = k.max(1);
        let q = max_q.max(sum_q / k);
        let ms = q / i;
        Some(Duration::from_millis(ms.min(u32::MAX as u64) as u32))
    }
}

/// The cells as millivolts (one iterator type, so one copy of each pass over them).
fn volts(cells: &[MilliVolts]) -> impl Iterator<Item = u32> + '_ {
    cells.iter().map(|c| c.as_mv())
}

/// Per-cell SOC as permille.
fn socs(s: &[Soc]) -> impl Iterator<Item = u32> + '_ {
    s.iter().map(|p| p.as_permille() as u32)
}

/// The per-cell value a full pass works on: one non-generic type, so each pass over it
/// exists once in flash.
#[derive(Clone, Copy)]
enum Metric<'a> {
    /// Cell voltages in millivolts.
    Volts(&'a [MilliVolts]),
    /// Per-cell SOC in permille.
    Soc(&'a [Soc]),
}

impl Metric<'_> {
    fn len(self) -> usize {
        match self {
            Metric::Volts(c) => c.len(),
            Metric::Soc(s) => s.len(),
        }
    }

    /// The value of cell `i + 1`, zero out of range.
    fn get(self, i: usize) -> u32 {
        match self {
            Metric::Volts(c) => c.get(i).map_or(0, |c| c.as_mv()),
            Metric::Soc(s) => s.get(i).map_or(0, |p| p.as_permille() as u32),
        }
    }
}

/// `(min, max)` of a non-empty sequence.
#[inline]
fn extremes(values: impl Iterator<Item = u32>) -> (u32, u32) {
    let mut min = u32::MAX;
    let mut max = 0u32;
    for v in values {
        min = min.min(v);
        max = max.max(v);
    }
    (min.min(max), max)
}

/// The result of one hysteresis pass over a per-cell metric.
#[derive(Clone, Copy)]
struct Pass {
    /// The new candidate set.
    cand: u32,
    /// Cells whose metric is at least the floor.
    hot: u32,
    /// The real lowest and highest metric.
    min: u32,
    max: u32,
    /// Sum over cells of `metric - min` (as given).
    sum: u64,
}

impl Pass {
    /// One branch-free pass over `metric` (bit 0 first, at most 32 values) with lowest `min`:
    /// sets the bits of values at least `start` above `min`, clears those at most `stop` above
    /// it (or below it), keeps the others from `cand`, and marks values at least `floor`.
    #[inline(never)] // One copy for the voltage and SOC passes (flash).
    fn run(cand: u32, metric: Metric<'_>, min: u32, start: u32, stop: u32, floor: u32) -> Pass {
        let mut add = 0u32;
        let mut clear = 0u32;
        let mut hot = 0u32;
        let mut bit = 1u32;
        let mut lo = u32::MAX;
        let mut hi = 0u32;
        let mut sum = 0u64;
        for i in 0..metric.len().min(32) {
            let m = metric.get(i);
            let d = m.saturating_sub(min);
            add |= if d >= start { bit } else { 0 };
            clear |= if d <= stop { bit } else { 0 };
            hot |= if m >= floor { bit } else { 0 };
            lo = lo.min(m);
            hi = hi.max(m);
            sum += d as u64;
            bit <<= 1;
        }
        Pass {
            cand: (cand & !clear) | add,
            hot,
            min: lo.min(hi),
            max: hi,
            sum,
        }
    }
}

/// A mask of the low `n` bits (`n <= 32`).
const fn low_bits(n: usize) -> u32 {
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n) - 1
    }
}

/// Charge to remove from a cell of `capacity` that is `spread` SOC above the lowest.
///
/// # Examples
/// ```
/// use bms_core::balance::charge_to_remove;
/// use bms_core::units::{MilliAmpHours, Permille};
/// let q = charge_to_remove(MilliAmpHours::from_mah(100_000), Permille::from_permille(50));
/// assert_eq!(q.as_mah(), 5_000);
/// ```
pub const fn charge_to_remove(capacity: MilliAmpHours, spread: Permille) -> MilliAmpHours {
    MilliAmpHours::from_mah(spread.of(capacity.as_mah()))
}

/// The physics bound on convergence: the least number of cycles in which passive balancing at
/// `bleed` per channel, allowed for `per_cycle` each cycle, can remove `charge` from the
/// highest cell, rounded up. With `k` channels shared by all cells pass
/// `max(Q_max, sum(Q_i) / k)` as `charge` (see the [module docs](self)).
///
/// `None` when `bleed` or `per_cycle` is zero (never converges).
///
/// # Examples
/// The imbalance scenario: 16S, 100 Ah cells, 5 % SOC spread plus a 3 % capacity spread seen
/// from 50 % SOC (6.5 Ah), 100 mA channels, 2 h of balancing per cycle:
/// ```
/// use bms_core::balance::{charge_to_remove, cycles_bound};
/// use bms_core::time::Duration;
/// use bms_core::units::{MilliAmpHours, MilliAmps, Permille};
/// let q = charge_to_remove(MilliAmpHours::from_mah(100_000), Permille::from_permille(65));
/// assert_eq!(q.as_mah(), 6_500); // 65 h at 100 mA
/// let cycles = cycles_bound(q, MilliAmps::from_ma(100), Duration::from_mins(120));
/// assert_eq!(cycles, Some(33));
/// ```
pub const fn cycles_bound(
    charge: MilliAmpHours,
    bleed: MilliAmps,
    per_cycle: Duration,
) -> Option<u32> {
    let per = bleed.as_ma() as i64 * per_cycle.as_millis() as i64;
    if per <= 0 {
        return None;
    }
    let q = charge.to_mams().as_raw();
    let c = (q + per - 1) / per;
    Some(if c > u32::MAX as i64 {
        u32::MAX
    } else {
        c as u32
    })
}

#[cfg(test)]
mod test {
    use super::*;

    fn input(now: u64, cells: &[MilliVolts]) -> BalanceInput<'_> {
        BalanceInput {
            now: Instant::from_millis(now),
            cells,
            current: Some(MilliAmps::from_ma(-2_000)),
            faults_present: false,
            uv_warning: MilliVolts::from_mv(3_000),
            board_temp: Some(DeciCelsius::from_celsius(30)),
            cell_soc: None,
            cell_range: None,
        }
    }

    fn mv(v: &[u32]) -> heapless::Vec<MilliVolts, MAX_CELLS> {
        v.iter().map(|&x| MilliVolts::from_mv(x)).collect()
    }

    #[test]
    fn presets_validate() {
        assert_eq!(BalanceConfig::nmc().validate(), Ok(()));
        assert_eq!(BalanceConfig::lfp().validate(), Ok(()));
        assert_eq!(BalanceConfig::lto().validate(), Ok(()));
        assert_eq!(BalanceConfig::default(), BalanceConfig::nmc());
    }

    #[test]
    fn validate_reports_each_error() {
        let ok = BalanceConfig::nmc();
        type Case = (fn(&mut BalanceConfig), BalanceConfigError);
        let cases: [Case; 9] = [
            (
                |c| c.stop_delta = c.start_delta,
                BalanceConfigError::StopDeltaNotBelowStart,
            ),
            (
                |c| c.soc_stop_delta = c.soc_start_delta,
                BalanceConfigError::SocStopDeltaNotBelowStart,
            ),
            (|c| c.max_channels = 21, BalanceConfigError::TooManyChannels),
            (
                |c| c.resistor = MilliOhms::from_mohm(999),
                BalanceConfigError::ResistorTooSmall,
            ),
            (
                |c| c.current_limit = MilliAmps::from_ma(101),
                BalanceConfigError::CurrentLimitOutOfRange,
            ),
            (
                |c| c.rest_current = MilliAmps::from_ma(-1),
                BalanceConfigError::NegativeCurrentThreshold,
            ),
            (
                |c| c.hard_stop = c.derate_start,
                BalanceConfigError::DerateStartNotBelowHardStop,
            ),
            (
                |c| {
                    c.timing = SwitchTiming::Scheduled;
                    c.settle = c.measure_period;
                },
                BalanceConfigError::SettleNotBelowPeriod,
            ),
            (
                |c| c.reselect_interval = Duration::ZERO,
                BalanceConfigError::ZeroReselectInterval,
            ),
        ];
        for (edit, err) in cases {
            let mut c = ok;
            edit(&mut c);
            assert_eq!(c.validate(), Err(err));
        }
    }

    #[test]
    fn bleed_current_is_v_over_r_capped() {
        let mut c = BalanceConfig::nmc();
        c.resistor = MilliOhms::from_ohms(40);
        assert_eq!(c.bleed_current(MilliVolts::from_mv(3_600)).as_ma(), 90);
        assert_eq!(c.bleed_current(MilliVolts::from_mv(4_200)).as_ma(), 100);
        assert_eq!(c.channel_power_mw(MilliVolts::from_mv(3_600)), 324);
        c.current_limit = MilliAmps::from_ma(50);
        assert_eq!(c.bleed_current(MilliVolts::from_mv(3_600)).as_ma(), 50);
        assert_eq!(c.bleed_current(MilliVolts::from_mv(u32::MAX)).as_ma(), 50);
    }

    #[test]
    fn precomputed_bleed_matches_bleed_current_at_every_voltage() {
        let resistors = [
            0, 999, 1_000, 1_001, 22_000, 33_000, 39_000, 41_000, 65_535_000,
        ];
        let limits = [-1, 0, 1, 37, 99, 100, 101];
        for r in resistors.into_iter().chain([u32::MAX, 100_000_000]) {
            for l in limits {
                let mut cfg = BalanceConfig::nmc();
                cfg.resistor = MilliOhms::from_mohm(r);
                cfg.current_limit = MilliAmps::from_ma(l);
                let b = Balancer::new(cfg);
                let volts = (0..70_000).chain([u32::MAX - 1, u32::MAX]);
                for mv in volts {
                    let want = cfg.bleed_current(MilliVolts::from_mv(mv)).as_ma() as u32;
                    assert_eq!(b.bleed(mv), want, "R {r} mΩ, limit {l} mA, {mv} mV");
                }
            }
        }
    }

    #[test]
    fn hysteresis_starts_at_start_delta_and_stops_at_stop_delta() {
        let mut cfg = BalanceConfig::nmc();
        cfg.start_delta = MilliVolts::from_mv(10);
        cfg.stop_delta = MilliVolts::from_mv(4);
        let mut b = Balancer::new(cfg);
        let c = mv(&[4_000, 4_009, 4_000, 4_000, 4_000, 4_000, 4_000, 4_000]);
        assert_eq!(b.update(&input(0, &c)), 0, "9 mV is below the start delta");
        let c = mv(&[4_000, 4_010, 4_000, 4_000, 4_000, 4_000, 4_000, 4_000]);
        assert_eq!(b.update(&input(100, &c)), 0b10);
        let c = mv(&[4_000, 4_005, 4_000, 4_000, 4_000, 4_000, 4_000, 4_000]);
        assert_eq!(
            b.update(&input(200, &c)),
            0b10,
            "5 mV: still inside the hysteresis"
        );
        assert_eq!(b.status(), BalanceStatus::Balancing);
        let c = mv(&[4_000, 4_004, 4_000, 4_000, 4_000, 4_000, 4_000, 4_000]);
        assert_eq!(b.update(&input(300, &c)), 0, "4 mV: stop");
        let c = mv(&[4_000, 4_008, 4_000, 4_000, 4_000, 4_000, 4_000, 4_000]);
        assert_eq!(
            b.update(&input(400, &c)),
            0,
            "8 mV: not restarted below start"
        );
        assert_eq!(b.status(), BalanceStatus::Balanced);
    }

    #[test]
    fn start_voltage_gates_each_cell() {
        let mut b = Balancer::new(BalanceConfig::lfp()); // 3400 mV
        let c = mv(&[3_300, 3_380, 3_420, 3_300, 3_300, 3_300, 3_300, 3_300]);
        assert_eq!(b.update(&input(0, &c)), 0b100);
    }

    #[test]
    fn derating_is_linear_and_reduces_channels() {
        let mut cfg = BalanceConfig::nmc();
        cfg.max_channels = 4;
        cfg.derate_start = DeciCelsius::from_celsius(50);
        cfg.hard_stop = DeciCelsius::from_celsius(70);
        let k = |c: i16| cfg.derated_channels(Some(DeciCelsius::from_celsius(c)));
        assert_eq!(
            [k(20), k(50), k(55), k(60), k(65), k(69), k(70), k(90)],
            [4, 4, 3, 2, 1, 1, 0, 0]
        );
        assert_eq!(cfg.derated_channels(None), 4);
        cfg.require_board_temp = true;
        assert_eq!(cfg.derated_channels(None), 0);

        cfg.require_board_temp = false;
        let mut b = Balancer::new(cfg);
        let c = mv(&[4_000, 4_050, 4_040, 4_030, 4_020, 4_000, 4_000, 4_000]);
        let mut i = input(0, &c);
        assert_eq!(b.update(&i), 0b11110);
        i.board_temp = Some(DeciCelsius::from_celsius(60));
        i.now = Instant::from_millis(100);
        assert_eq!(b.update(&i), 0b00110, "two highest at 60 °C");
        i.board_temp = Some(DeciCelsius::from_celsius(70));
        i.now = Instant::from_millis(200);
        assert_eq!(b.update(&i), 0);
        assert_eq!(
            b.status(),
            BalanceStatus::Inhibited(Inhibit::BoardTemperature)
        );
    }

    #[test]
    fn greedy_skips_neighbours_of_the_highest() {
        let mut cfg = BalanceConfig::nmc();
        cfg.no_adjacent = true;
        let mut b = Balancer::new(cfg);
        // Cells 2,3,4 high; 3 is highest: pick 3, skip 2 and 4; 6 is free.
        let c = mv(&[4_000, 4_030, 4_050, 4_040, 4_000, 4_020, 4_000, 4_000]);
        assert_eq!(b.update(&input(0, &c)), 0b100100);
    }

    #[test]
    fn bled_charge_accumulates_only_while_on() {
        let mut cfg = BalanceConfig::nmc();
        cfg.resistor = MilliOhms::from_ohms(41); // 4100 mV -> 100 mA
        cfg.settle = Duration::ZERO;
        let mut b = Balancer::new(cfg);
        let c = mv(&[4_000, 4_100, 4_000, 4_000, 4_000, 4_000, 4_000, 4_000]);
        assert_eq!(b.update(&input(0, &c)), 0b10);
        // One hour in 100 ms steps at 100 mA = 100 mAh.
        let mut t = 0;
        for _ in 0..36_000 {
            t += 100;
            b.update(&input(t, &c));
        }
        assert_eq!(b.bled(1), MilliAmpHours::from_mah(100));
        assert_eq!(b.bled_exact(1).as_raw(), 100 * 3_600_000);
        assert_eq!(b.bled(0), MilliAmpHours::from_mah(0));
        assert_eq!(b.bled(99), MilliAmpHours::from_mah(0));
        // Inhibited: no more accounting after the interval that was on.
        let mut i = input(t + 100, &c);
        i.faults_present = true;
        b.update(&i);
        i.now = Instant::from_millis(t + 3_600_000);
        b.update(&i);
        assert_eq!(b.bled_exact(1).as_raw(), 100 * 3_600_000 + 100 * 100);
        b.reset_bled();
        assert_eq!(b.bled_exact(1).as_raw(), 0);
    }

    #[test]
    fn bled_charge_discounts_settle_time() {
        let mut cfg = BalanceConfig::nmc();
        cfg.resistor = MilliOhms::from_ohms(41);
        cfg.settle = Duration::from_millis(20);
        let mut b = Balancer::new(cfg);
        let c = mv(&[4_000, 4_100, 4_000, 4_000, 4_000, 4_000, 4_000, 4_000]);
        b.update(&input(0, &c));
        b.update(&input(100, &c));
        assert_eq!(b.bled_exact(1).as_raw(), 100 * 80);

        cfg.timing = SwitchTiming::Scheduled;
        cfg.measure_period = Duration::from_millis(250);
        let mut b = Balancer::new(cfg);
        b.update(&input(0, &c));
        b.update(&input(1_000, &c)); // late: switches were open from 230 ms
        assert_eq!(b.bled_exact(1).as_raw(), 100 * 230);
    }

    #[test]
    fn scheduled_window_opens_switches_before_measurement() {
        let mut cfg = BalanceConfig::nmc();
        cfg.timing = SwitchTiming::Scheduled;
        cfg.measure_period = Duration::from_millis(1_000);
        cfg.settle = Duration::from_millis(50);
        let mut b = Balancer::new(cfg);
        let c = mv(&[4_000, 4_100, 4_000, 4_000, 4_000, 4_000, 4_000, 4_000]);
        assert_eq!(b.update(&input(10_000, &c)), 0b10);
        assert_eq!(b.next_measurement(), Some(Instant::from_millis(11_000)));
        assert_eq!(b.poll_timeout(), Some(Instant::from_millis(10_950)));
        assert_eq!(b.mask_at(Instant::from_millis(10_949)), 0b10);
        assert_eq!(b.mask_at(Instant::from_millis(10_950)), 0);
        assert_eq!(b.mask_at(Instant::from_millis(11_000)), 0);

        let mut b = Balancer::new(BalanceConfig::nmc());
        b.update(&input(10_000, &c));
        assert_eq!(b.poll_timeout(), None);
        assert_eq!(b.mask_at(Instant::from_millis(99_999)), 0b10);
    }

    #[test]
    fn soc_mode_balances_on_soc() {
        let mut cfg = BalanceConfig::lfp();
        cfg.soc_based = true;
        cfg.start_voltage = MilliVolts::from_mv(3_000);
        let mut b = Balancer::new(cfg);
        let c = mv(&[3_300; 8]);
        let soc: [Soc; 8] =
            [500, 520, 500, 505, 500, 500, 530, 500].map(Soc::from_permille_clamped);
        let mut i = input(0, &c);
        i.cell_soc = Some(&soc);
        assert_eq!(b.update(&i), 0b1000010);
        // Wrong length: falls back to voltage (all equal: nothing to do).
        i.cell_soc = Some(&soc[..7]);
        i.now = Instant::from_millis(100);
        assert_eq!(b.update(&i), 0);
    }

    #[test]
    fn time_to_balanced_from_voltage_and_soc() {
        let mut cfg = BalanceConfig::nmc();
        cfg.max_channels = 1;
        cfg.resistor = MilliOhms::from_ohms(40);
        let mut b = Balancer::new(cfg);
        assert_eq!(
            b.time_to_balanced(
                MilliAmpHours::from_mah(1_000),
                OcvSlope::from_mv_per_percent(10)
            ),
            None
        );
        // Cell 2 is 100 mV (= 10 % at 10 mV/%) high: 100 mAh of 1 Ah at 100 mA = 1 h.
        let c = mv(&[4_000, 4_100, 4_000, 4_000, 4_000, 4_000, 4_000, 4_000]);
        b.update(&input(0, &c));
        let t = b.time_to_balanced(
            MilliAmpHours::from_mah(1_000),
            OcvSlope::from_mv_per_percent(10),
        );
        assert_eq!(t, Some(Duration::from_secs(3_600)));
        // Two cells high, one channel: twice as long (seen at the next full pass).
        let c = mv(&[4_000, 4_100, 4_100, 4_000, 4_000, 4_000, 4_000, 4_000]);
        b.update(&input(20_000, &c));
        let t = b.time_to_balanced(
            MilliAmpHours::from_mah(1_000),
            OcvSlope::from_mv_per_percent(10),
        );
        assert_eq!(t, Some(Duration::from_secs(7_200)));
        assert_eq!(
            b.time_to_balanced(
                MilliAmpHours::from_mah(1_000),
                OcvSlope::from_uv_per_permille(0)
            ),
            None
        );
    }

    #[test]
    fn allowed_time_counts_only_allowed_intervals_above_start_voltage() {
        let mut b = Balancer::new(BalanceConfig::nmc()); // start voltage 3900 mV
        let low = mv(&[3_800; 8]);
        let high = mv(&[4_000; 8]);
        b.update(&input(0, &low));
        b.update(&input(1_000, &high)); // interval after a low reading: not counted
        assert_eq!(b.allowed_time_ms(), 0);
        b.update(&input(3_000, &high)); // counted: 2 s
        let mut i = input(4_000, &high); // counted: 1 s; then discharging
        i.current = Some(MilliAmps::from_ma(5_000));
        b.update(&i);
        b.update(&input(9_000, &high)); // not counted
        assert_eq!(b.allowed_time_ms(), 3_000);
        b.reset_bled();
        assert_eq!(b.allowed_time_ms(), 0);
    }

    #[test]
    fn set_config_takes_effect_at_the_next_update() {
        let mut b = Balancer::new(BalanceConfig::nmc());
        let c = mv(&[4_000, 4_050, 4_000, 4_040, 4_000, 4_000, 4_000, 4_000]);
        assert_eq!(b.update(&input(0, &c)), 0b1010);
        let mut cfg = BalanceConfig::nmc();
        cfg.max_channels = 1;
        b.set_config(cfg);
        assert_eq!(b.update(&input(100, &c)), 0b10);
        cfg.start_voltage = MilliVolts::from_mv(4_100);
        b.set_config(cfg);
        assert_eq!(b.update(&input(200, &c)), 0);
    }

    #[test]
    fn inhibit_reasons() {
        let mut b = Balancer::new(BalanceConfig::nmc());
        let c = mv(&[4_000, 4_050, 4_000, 4_000, 4_000, 4_000, 4_000, 4_000]);
        let base = input(0, &c);
        let cases: [(BalanceInput<'_>, Inhibit); 5] = [
            (
                BalanceInput {
                    faults_present: true,
                    ..base
                },
                Inhibit::Fault,
            ),
            (
                BalanceInput {
                    current: None,
                    ..base
                },
                Inhibit::CurrentUnknown,
            ),
            (
                BalanceInput {
                    current: Some(MilliAmps::from_ma(1_000)),
                    ..base
                },
                Inhibit::NotAllowedState,
            ),
            (
                BalanceInput {
                    uv_warning: MilliVolts::from_mv(4_001),
                    ..base
                },
                Inhibit::UnderVoltage,
            ),
            (BalanceInput { cells: &[], ..base }, Inhibit::Disabled),
        ];
        for (i, why) in cases {
            assert_eq!(b.update(&base), 0b10);
            assert_eq!(b.update(&i), 0);
            assert_eq!(b.status(), BalanceStatus::Inhibited(why));
        }
        // Discharging is allowed nowhere; rest only when configured.
        let mut cfg = BalanceConfig::nmc();
        cfg.at_rest = false;
        let mut b = Balancer::new(cfg);
        assert_eq!(
            b.update(&BalanceInput {
                current: Some(MilliAmps::ZERO),
                ..base
            }),
            0
        );
        assert_eq!(b.update(&base), 0b10);
    }

    #[test]
    fn cycles_bound_rounds_up() {
        let q = MilliAmpHours::from_mah(5_000);
        assert_eq!(
            cycles_bound(q, MilliAmps::from_ma(100), Duration::from_mins(60)),
            Some(50)
        );
        assert_eq!(
            cycles_bound(q, MilliAmps::from_ma(100), Duration::from_mins(61)),
            Some(50)
        );
        assert_eq!(
            cycles_bound(q, MilliAmps::from_ma(100), Duration::from_mins(59)),
            Some(51)
        );
        assert_eq!(
            cycles_bound(q, MilliAmps::ZERO, Duration::from_mins(60)),
            None
        );
    }
}
