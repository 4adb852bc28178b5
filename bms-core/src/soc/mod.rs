//! State of charge and state of health: coulomb counting anchored by the cell voltages.
//!
//! [`SocEstimator`] integrates the measured current losslessly in [`MilliAmpMillis`] and
//! corrects the count whenever the cells tell something trustworthy:
//!
//! - **Boot**: at rest, the SOC is read off the OCV table (and refined while the rest
//!   lasts); under load, a stored SOC is used, or else the OCV with the IR drop compensated.
//! - **Rest**: after `rest_time_ms` with `|I|` below the rest threshold, the relaxed cell
//!   voltages give an SOC that is weighed against the counted one by their uncertainties
//!   (a scalar Kalman step). The voltage's uncertainty in SOC is `sigma_v / (dV/dSOC)`: on
//!   LFP's plateau a few millivolts span many percent, so the correction there is small;
//!   on the steep ends it is nearly complete. The count's uncertainty grows with the charge
//!   moved since the last anchor (sensor gain) and the time spent under load (offset).
//! - **Full**: at the end of a CV charge (current tapered below the tail current with the
//!   highest cell at the charge voltage) the SOC is what the table gives for the cells'
//!   voltage less the small IR drop: 100 % when the charge voltage is the table's top.
//! - **Empty**: at cut-off (lowest cell at the empty voltage under a small load) it is 0 %.
//! - **Capacity**: the charge counted between a full and an empty calibration (either
//!   order) is the usable capacity; it is learned slowly and within bounds, SOH is its
//!   ratio to the nominal capacity.
//! - **Current offset**: readings below a dead band are not integrated, and the offset is
//!   learned whenever the caller says the current path is open (MOSFETs off).
//!
//! Everything is integer arithmetic; SOC is kept as remaining charge in mA·ms, so no
//! rounding accumulates however small the step.
//!
//! # Calling it from a control loop
//! 1. At start-up: `SocEstimator::new(pack.soc.clone(), pack.capacity, stored)` where
//!    `stored` is the last [`StoredSoc`] read back from flash (or `None`).
//! 2. Every step: `SocInput::from_measurements(&m, fets_both_off)`; with `Some(input)`
//!    call [`update`](SocEstimator::update) (or
//!    [`update_with_range`](SocEstimator::update_with_range) when the lowest and highest
//!    cell are already known, which spares two scans), with `None` (no current reading) call
//!    [`hold`](SocEstimator::hold); or, the same in one call that builds the input only when
//!    the step needs all of it, [`update_measurements`](SocEstimator::update_measurements).
//!    Then drain [`poll_event`](SocEstimator::poll_event) into the event log.
//! 3. Report [`soc`](SocEstimator::soc), [`soh`](SocEstimator::soh),
//!    [`remaining`](SocEstimator::remaining) and [`cycles`](SocEstimator::cycles) in the
//!    telemetry; [`cell_soc_range`](SocEstimator::cell_soc_range) for balancing and limits.
//! 4. Persist [`stored`](SocEstimator::stored) now and then (e.g. on every calibration
//!    event and before sleep).
//!
//! # Examples
//! ```
//! use bms_core::soc::{SocConfig, SocEstimator, SocInput};
//! use bms_core::{Instant, MilliAmpHours, MilliAmps, MilliVolts};
//!
//! let mut soc = SocEstimator::new(SocConfig::nmc(), MilliAmpHours::from_mah(100_000), None);
//! // 16 cells resting at the 50 % point of the NMC table: the SOC is read at boot.
//! let cells = [MilliVolts::from_mv(3_755); 16];
//! let out = soc.update(&SocInput::new(Instant::ZERO, MilliAmps::ZERO, &cells));
//! assert_eq!(out.soc.as_permille(), 500);
//! // One hour at 10 A takes 10 % out.
//! for s in 1..=3_600u64 {
//!     soc.update(&SocInput::new(Instant::from_millis(s * 1_000), MilliAmps::from_amps(10), &cells));
//! }
//! assert_eq!(soc.soc().as_permille(), 400);
//! ```

mod config;
mod ocv;

pub use config::{SocConfig, SocConfigError, OCV_POINTS};

use crate::band::Band;
use heapless::Deque;

use crate::measure::{Measurements, MAX_CELLS};
use crate::time::{Duration, Instant};
use crate::units::{
    DeciCelsius, MilliAmpHours, MilliAmpMillis, MilliAmps, MilliVolts, Permille, Soc,
};

use ocv::{
    fuse, ocv_at, sigma16, soc_and_segment, soc_from_ocv, soc_in_segment, soc_sigma, PPM_FULL,
};

/// mA·ms in one mAh.
const MAMS_PER_MAH: i64 = 3_600_000;
/// mA·ms in a two-thousandth of one mAh: `charge / (full_mah * this)` is the SOC in half
/// permille, i.e. `charge * 2000 / full_mams` without the overflow of the product.
const HALF_PERMILLE_MAMS_PER_MAH: i64 = MAMS_PER_MAH / 2_000;
/// Fixed-point scale of the filters: 2^20 per mV (or mA), so that a 100 ms step of a
/// 30 s filter still moves it by the exact fraction.
const FILTER_SHIFT: u32 = 20;
/// Fractional bits of the cell filter's gain.
const RECIP_SHIFT: u32 = 24;
/// Time constant of the per-cell voltage filter during a rest.
const CELL_FILTER_TAU_MS: i64 = 30_000;
/// Time constant of the current-offset learning filter.
const OFFSET_TAU_MS: i64 = 10_000;
/// Interval between refinements of a rest calibration.
const REFINE_EVERY: Duration = Duration::from_secs(1);
/// Uncertainty right after a full or empty calibration, ppm (1 %).
const ANCHOR_SIGMA_PPM: u32 = 10_000;
/// Uncertainty of an SOC derived under load from the OCV with IR compensation, floor, ppm.
const LOADED_BOOT_SIGMA_PPM: u32 = 100_000;
/// A count this uncertain (ppm; a boot under load with nothing stored) is corrected after
/// `relax_tau_ms` of rest already.
const QUICK_REST_SIGMA_PPM: u32 = LOADED_BOOT_SIGMA_PPM;
/// `refined_tc` before any refinement read the cells: no temperature correction is this.
const NO_TC: i32 = i32::MIN;
/// At most this many calibration events wait to be polled; older ones are dropped.
const EVENT_QUEUE: usize = 8;

/// One control step's worth of input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocInput<'a> {
    /// When the measurements were taken.
    pub now: Instant,
    /// Pack current, positive = discharge, as measured (offset not removed).
    pub current: MilliAmps,
    /// Cell voltages, cell 1 first (8..=20 cells; extra entries are ignored).
    pub cells: &'a [MilliVolts],
    /// Cell temperature (e.g. the mean of the NTCs); `None` = unknown, 25 °C is assumed.
    pub temperature: Option<DeciCelsius>,
    /// `true` when no current can flow (charge and discharge MOSFETs both off): any reading
    /// is then sensor offset, and is learned as such.
    pub current_path_open: bool,
}

impl<'a> SocInput<'a> {
    /// The input for one [`Measurements`] snapshot: its timestamp, current, valid cells
    /// (none if the cell monitor did not answer) and the mean of its readable cell NTCs.
    ///
    /// `None` when there is no current reading: call [`SocEstimator::hold`] instead.
    ///
    /// # Examples
    /// ```
    /// use bms_core::measure::Measurements;
    /// use bms_core::soc::SocInput;
    /// use bms_core::{Instant, MilliVolts};
    /// let m = Measurements::uniform(16, MilliVolts::from_mv(3_300), Instant::ZERO);
    /// let input = SocInput::from_measurements(&m, false).expect("current present");
    /// assert_eq!(input.cells.len(), 16);
    /// assert_eq!(input.temperature.map(|t| t.as_deci()), Some(250));
    /// ```
    #[inline]
    pub fn from_measurements(m: &'a Measurements, current_path_open: bool) -> Option<Self> {
        Some(Self::with_current(m, m.current?, current_path_open))
    }

    /// [`SocInput::from_measurements`] with the snapshot's current reading `current`.
    #[inline(always)]
    fn with_current(m: &'a Measurements, current: MilliAmps, current_path_open: bool) -> Self {
        SocInput {
            now: m.timestamp,
            current,
            cells: valid_cells(m),
            temperature: ntc_mean(m),
            current_path_open,
        }
    }

    /// An input at `now` with the path closed and the temperature unknown.
    pub const fn new(now: Instant, current: MilliAmps, cells: &'a [MilliVolts]) -> Self {
        SocInput {
            now,
            current,
            cells,
            temperature: None,
            current_path_open: false,
        }
    }
}

/// The cells of `m` a step reads: none if the cell monitor did not answer.
#[inline(always)]
fn valid_cells(m: &Measurements) -> &[MilliVolts] {
    if m.afe_ok {
        m.cells()
    } else {
        &[]
    }
}

/// The mean of the readable cell NTCs of `m`.
#[inline(always)]
fn ntc_mean(m: &Measurements) -> Option<DeciCelsius> {
    // The two NTCs as a pair: the mean of two is a halving, not a division by a count
    // (a library call on a Cortex-M0).
    const _: () = assert!(crate::measure::NTC_COUNT == 2);
    match m.cell_temps {
        [Some(a), Some(b)] => {
            let sum = i32::from(a.as_deci()) + i32::from(b.as_deci());
            Some(DeciCelsius::from_deci((sum / 2) as i16))
        }
        [Some(t), None] | [None, Some(t)] => Some(t),
        [None, None] => None,
    }
}

/// The inputs of one step as the quick steps read them: from a built [`SocInput`], or
/// field by field from a [`Measurements`] snapshot (see
/// [`SocEstimator::update_measurements`]), so that the common steps need not build the
/// input at all.
trait StepSource<'a>: Copy {
    fn now(self) -> Instant;
    fn current(self) -> MilliAmps;
    fn path_open(self) -> bool;
    fn cells(self) -> &'a [MilliVolts];
    fn temperature(self) -> Option<DeciCelsius>;
    /// The caller vouches that `cells` are those of the previous step (see `Snapshot`).
    fn repeat(self) -> bool;
    /// The full step over these inputs.
    fn full_step(
        self,
        est: &mut SocEstimator,
        range: Option<(MilliVolts, MilliVolts)>,
    ) -> SocOutput;
}

impl<'a> StepSource<'a> for &SocInput<'a> {
    #[inline(always)]
    fn now(self) -> Instant {
        self.now
    }
    #[inline(always)]
    fn current(self) -> MilliAmps {
        self.current
    }
    #[inline(always)]
    fn path_open(self) -> bool {
        self.current_path_open
    }
    #[inline(always)]
    fn cells(self) -> &'a [MilliVolts] {
        self.cells
    }
    #[inline(always)]
    fn temperature(self) -> Option<DeciCelsius> {
        self.temperature
    }
    #[inline(always)]
    fn repeat(self) -> bool {
        false
    }
    #[inline(always)]
    fn full_step(
        self,
        est: &mut SocEstimator,
        range: Option<(MilliVolts, MilliVolts)>,
    ) -> SocOutput {
        est.full_step(self, range)
    }
}

/// A snapshot with a current reading, and whether the current path was open.
#[derive(Clone, Copy)]
struct Snapshot<'a> {
    m: &'a Measurements,
    current: MilliAmps,
    path_open: bool,
    /// The valid cells of `m` are, in number and reading for reading, those of the last
    /// step with valid cells (see [`SocEstimator::update_snapshot`]).
    repeat: bool,
}

impl<'a> StepSource<'a> for Snapshot<'a> {
    #[inline(always)]
    fn now(self) -> Instant {
        self.m.timestamp
    }
    #[inline(always)]
    fn current(self) -> MilliAmps {
        self.current
    }
    #[inline(always)]
    fn path_open(self) -> bool {
        self.path_open
    }
    #[inline(always)]
    fn cells(self) -> &'a [MilliVolts] {
        valid_cells(self.m)
    }
    #[inline(always)]
    fn temperature(self) -> Option<DeciCelsius> {
        ntc_mean(self.m)
    }
    #[inline(always)]
    fn repeat(self) -> bool {
        self.repeat
    }
    #[inline(always)]
    fn full_step(
        self,
        est: &mut SocEstimator,
        range: Option<(MilliVolts, MilliVolts)>,
    ) -> SocOutput {
        est.full_step_of(self.m, self.current, self.path_open, range)
    }
}

/// What one step reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SocOutput {
    /// Pack state of charge (mean cell).
    pub soc: Soc,
    /// Charge left.
    pub remaining: MilliAmpHours,
    /// The pack is resting (current below the rest threshold or path open).
    pub at_rest: bool,
}

/// What the estimator needs across a power cycle; keep it in non-volatile storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StoredSoc {
    /// SOC at the time of storing.
    pub soc: Soc,
    /// Learned full capacity.
    pub full_capacity: MilliAmpHours,
    /// Equivalent full cycles so far.
    pub cycles: u32,
    /// Learned current-sensor offset.
    pub current_offset: MilliAmps,
}

/// Where the boot SOC came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BootSource {
    /// Cell voltages at rest (weighed against a stored SOC if there was one).
    Ocv,
    /// The stored SOC (the pack was under load at boot).
    Stored,
    /// Cell voltages under load, IR drop compensated (nothing stored).
    LoadedOcv,
}

/// A calibration or learning event, for the event log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SocEvent {
    /// The first SOC after boot.
    Boot {
        /// The SOC chosen.
        soc: Soc,
        /// How.
        source: BootSource,
    },
    /// Correction from the relaxed open-circuit voltage after a rest.
    OcvCalibration {
        /// SOC before.
        before: Soc,
        /// SOC after.
        after: Soc,
        /// Weight given to the voltage (1000 = fully).
        weight: Permille,
    },
    /// End of charge reached: SOC set from the charge voltage (100 % when it reaches the
    /// top of the OCV table).
    Full {
        /// SOC before.
        before: Soc,
        /// SOC after.
        after: Soc,
    },
    /// Cut-off reached: SOC set to 0 %.
    Empty {
        /// SOC before.
        before: Soc,
    },
    /// A new full capacity was learned between a full and an empty calibration.
    CapacityLearned {
        /// Previous value.
        old: MilliAmpHours,
        /// New value.
        new: MilliAmpHours,
    },
    /// A full-to-empty measurement was implausible and ignored.
    CapacityRejected {
        /// The charge measured between the calibrations.
        measured: MilliAmpHours,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RestKind {
    Boot,
    Rest,
}

/// A rest calibration in progress: the SOC before it, so that every refinement (as the
/// cells relax further) replaces the previous one instead of stacking on it.
#[derive(Clone, Copy, Debug)]
struct RestCal {
    kind: RestKind,
    /// SOC before, ppm (within 0..=PPM_FULL: i32 keeps the state small).
    prior: i32,
    prior_sigma: u32,
    /// Charge discharged since the calibration started (inside the dead band it is zero).
    moved: i64,
    before: Soc,
    applied: bool,
}

/// `q = x / unit` (floor, `x >= 0`) for the last `x` given, with `lo = q * unit`: while `x`
/// stays within `lo..lo + unit` the quotient is known without a division, and a step into
/// a neighbouring interval moves it by one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Quotient {
    q: i64,
    lo: i64,
}

impl Quotient {
    fn of(x: i64, unit: i64) -> Self {
        let q = x / unit;
        Quotient { q, lo: q * unit }
    }

    /// The quotient for `x`, exact for any `x >= 0` as long as `unit` stays the same (a
    /// new unit needs [`of`](Self::of)); `true` if it changed.
    fn follow(&mut self, x: i64, unit: i64) -> bool {
        let d = x - self.lo;
        if d >= 0 && d < unit {
            return false;
        }
        if d >= unit && d < 2 * unit {
            self.q += 1;
            self.lo += unit;
        } else if d < 0 && d >= -unit {
            self.q -= 1;
            self.lo -= unit;
        } else {
            *self = Quotient::of(x, unit);
        }
        true
    }
}

/// Everything a rest refinement's outcome depends on besides the configuration and the
/// full capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RefineKey {
    /// SOC the cells imply, ppm.
    mean: i32,
    /// Uncertainty of the voltage, 1/16 mV.
    s16: i32,
    prior: i32,
    prior_sigma: u32,
    moved: i64,
    charge: i64,
}

/// The outcome of a rest refinement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Refined {
    charge: i64,
    sigma: u32,
    gain: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Anchor {
    /// Counted discharge and SOC (ppm) at the calibration.
    Full {
        raw: i64,
        ppm: i32,
    },
    Empty {
        raw: i64,
        ppm: i32,
    },
}

/// The SOC / SOH estimator. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct SocEstimator {
    cfg: SocConfig,
    nominal_mah: u32,
    full_mah: u32,
    /// Remaining charge, `0..=full`. Written only by `set_charge`, which keeps the two
    /// quotients below in step.
    charge: i64,
    /// `charge / (full_mah * HALF_PERMILLE_MAMS_PER_MAH)`: the SOC in half permille. A new
    /// `full_mah` (only in `set_full`) rebuilds it.
    soc_half: Quotient,
    /// `charge / MAMS_PER_MAH`: the remaining mAh.
    remaining_mah: Quotient,
    /// The charges at which neither quotient above moves, `still.0..still.1`: set with them.
    still: (i64, i64),
    /// `soc_half` rounded to permille, and `remaining_mah`: set with them.
    soc: Soc,
    remaining: MilliAmpHours,
    /// `full_mah * 1000 / nominal_mah`, capped: set with `full_mah` in `set_full`.
    soh: Permille,
    /// Counted discharge since boot, never clamped (capacity learning).
    raw: i64,
    /// Uncertainty at the last anchor, ppm, and what has been added since.
    sigma_base: u32,
    throughput: i64,
    active_ms: u64,
    /// `charge` when `raw`, `throughput` and `cycle_acc` were last brought up to date: the
    /// quick counting steps (see `band`) move only `charge`, and `fold` adds the
    /// difference to them (exact: within a run every step moves the charge the same way,
    /// unclamped, so the sum of the saturating additions is one saturating addition).
    run_charge: i64,
    /// The charges a quick counting step may reach, `run_lo..run_end`: no clamp to
    /// `0..=full` and no completed cycle within (`still` lies within too).
    run_lo: i64,
    run_end: i64,
    /// The raw readings for which a step with the path closed and the cell count of the
    /// last one changes nothing but the count (`band_rest` false) or, resting, nothing but
    /// the clock (`band_rest` true, when the filters are idle for a step of `filt_gain.0`
    /// ms, the cells are those of the last pass and the refinement is not due): set by
    /// `plan` at the end of every full step, so that the common steps skip everything else.
    /// An empty band sends every step the full way.
    band: Band,
    band_rest: bool,
    /// The readings of the band within a calibration's current window: quick steps only
    /// when the caller's lowest and highest cell are within `cells_ok` (mV, inclusive),
    /// short of the window's voltage condition.
    window: Band,
    cells_ok: (u32, u32),
    /// When the rest calibration in progress (if any) was last refined.
    last_refine: Instant,
    /// Until this time (ms, exclusive) a due refinement in the rest band at the
    /// temperature `quiet_temp` changes nothing but `last_refine`: set by
    /// `rest_step`, cleared by every full step (which may count or move the filters).
    quiet_end: u64,
    quiet_temp: Option<DeciCelsius>,
    /// Learned current offset, mA << FILTER_SHIFT.
    offset_fx: i64,
    /// `offset_fx` rounded to mA: set with it (`new` and the open-path learning).
    offset_ma: i32,
    /// Dead band and rest threshold, mA: never negative.
    deadband_ma: i32,
    rest_ma: i32,
    tail_ma: i32,
    empty_ma: i32,
    /// The time of the last step; `clock_set` once there was one.
    last: Instant,
    clock_set: bool,
    /// The stored SOC until the boot uses it (the rest of `StoredSoc` is taken by `new`).
    stored_soc: Option<Soc>,
    booted: bool,
    /// When the rest in progress began, if `in_rest`.
    rest_since: Instant,
    in_rest: bool,
    rest_cal: Option<RestCal>,
    cells_n: u8,
    /// `cells_n` once booted with cells, else `u8::MAX`: the cell count of a common step.
    load_n: u8,
    /// Filtered cell voltages, mV << FILTER_SHIFT.
    cell_filt: [i64; MAX_CELLS],
    /// The readings of the filter's last pass.
    filt_in: [MilliVolts; MAX_CELLS],
    /// The largest gain with which a pass over `filt_in` moves no filter, or -1: a pass
    /// with the same readings and a gain no larger would change nothing (a positive
    /// difference `d` moves by `d * gain >> RECIP_SHIFT`, which is 0 for the smaller gain
    /// too; a negative one always moves), so it is skipped. Reset by every pass that moves.
    filt_idle_gain: i32,
    /// The cell filter's gain (Q24) for a step of `.0` ms: recomputed when the step changes.
    filt_gain: (u32, u32),
    /// The last rest refinement's inputs and outcome: a pure function of the key and the
    /// full capacity (the configuration is fixed), so never stale: `set_full` drops it.
    refined: Option<(RefineKey, Refined)>,
    /// A filtered cell voltage changed since the last rest refinement read them.
    filt_moved: bool,
    /// Temperature correction (1/16 mV) of the last refinement that read the cells.
    /// (`NO_TC` before the first; corrections lie within ±2^20.)
    refined_tc: i32,
    /// Each cell's SOC minus the mean at the last rest, ppm.
    cell_delta: [i32; MAX_CELLS],
    /// The OCV table segment each cell's reading fell strictly inside at the last
    /// `read_cells` (0: none, and always 0 unless `ocv_sorted`): a reading still inside it
    /// needs no search (see `ocv::soc_in_segment`).
    ocv_seg: [u8; MAX_CELLS],
    /// The OCV table segments of the last refinement's two look-ups at the voltage's sigma
    /// around the mean (`meas_sigma`), as `ocv_seg`: the next ones mostly fall in them too.
    sigma_seg: [u8; 2],
    /// The OCV table is non-decreasing (what `SocConfig::validate` requires; set in `new`,
    /// the configuration is fixed): only then is a segment exact for another reading.
    ocv_sorted: bool,
    /// SOC the cells implied at the last rest refinement, ppm.
    /// (Negative before the first: means lie within 0..=PPM_FULL.)
    last_ocv: i32,
    cv_seen: bool,
    full_latched: bool,
    empty_latched: bool,
    /// Since when the full (empty) condition holds, if `full_held` (`empty_held`).
    full_since: Instant,
    empty_since: Instant,
    full_held: bool,
    empty_held: bool,
    anchor: Option<Anchor>,
    cycles: u32,
    cycle_acc: i64,
    at_rest: bool,
    events: Deque<SocEvent, EVENT_QUEUE>,
}

fn per_ah(rate: u16, capacity_mah: u32) -> i32 {
    (u64::from(rate) * u64::from(capacity_mah) / 1_000).min(i32::MAX as u64) as i32
}

/// One step of a first-order low-pass filter with time constant `tau_ms`.
fn approach(x: i64, target: i64, dt_ms: i64, tau_ms: i64) -> i64 {
    x.saturating_add(mul_div(target.saturating_sub(x), dt_ms, tau_ms + dt_ms))
}

/// `a * b / c` rounded toward zero, saturated to `i64`; 0 when `c == 0`.
// Out of line: one copy of the 64-bit overflow check, which is long code on 32-bit targets.
#[inline(never)]
fn mul_div(a: i64, b: i64, c: i64) -> i64 {
    if c == 0 {
        return 0;
    }
    // 64-bit fast path (the usual case); i128 only when the product overflows.
    if let Some(q) = a.checked_mul(b).and_then(|ab| ab.checked_div(c)) {
        return q;
    }
    mul_div_wide(a, b, c)
}

// Out of line and cold: the rare 128-bit path keeps its temporaries off the callers' frames.
#[cold]
#[inline(never)]
fn mul_div_wide(a: i64, b: i64, c: i64) -> i64 {
    let n = u128::from(a.unsigned_abs()) * u128::from(b.unsigned_abs());
    let q = div_wide(n, c.unsigned_abs());
    if (a < 0) ^ (b < 0) ^ (c < 0) {
        i64::try_from(q).map_or(i64::MIN, |q| -q)
    } else {
        i64::try_from(q).unwrap_or(i64::MAX)
    }
}

/// `n / d` (floor, `d > 0`) saturated to `u64`, by binary long division: 32-bit targets
/// would otherwise inline a generic 128-bit division several times this size.
fn div_wide(n: u128, d: u64) -> u64 {
    let (hi, lo) = ((n >> 64) as u64, n as u64);
    if hi >= d {
        return u64::MAX;
    }
    // Invariant: the remainder `r < d`; a bit shifted out of `r` means `r >= d` as well.
    let (mut r, mut q) = (hi, 0u64);
    for i in (0..64).rev() {
        let carry = r >> 63;
        r = (r << 1) | ((lo >> i) & 1);
        q <<= 1;
        if carry != 0 || r >= d {
            r = r.wrapping_sub(d);
            q |= 1;
        }
    }
    q
}

/// `charge * PPM_FULL / full_mams` (floor, `charge >= 0`), reduced by 200_000 so that no
/// capacity overflows (a capacity of 0, possible only with 1 mAh nominal, has no charge).
// Out of line (as `ppm_charge`): one copy of the division for all callers.
#[inline(never)]
fn charge_ppm(charge: i64, full_mah: u32) -> i64 {
    // `charge` within `0..=full_mams`, below 2^56: no overflow.
    div_u64(charge.max(0) as u64 * 5, (u64::from(full_mah) * 18).max(1)) as i64
}

/// `ppm * full_mams / PPM_FULL` (floor) for `ppm` clamped to `0..=PPM_FULL`, reduced by
/// 200_000 so that no capacity overflows.
#[inline(never)]
fn ppm_charge(ppm: i64, full_mah: u32) -> i64 {
    // Without a 64-bit division (a library routine on a Cortex-M): with `full_mah = 5 a + b`,
    // `18 p full / 5 = 18 p a + 18 p b / 5`, where `18 p b < 2^27` and `18 p a < 2^55`.
    let p = ppm.clamp(0, PPM_FULL) as u32;
    let (a, b) = (full_mah / 5, full_mah % 5);
    (u64::from(p) * u64::from(a) * 18 + u64::from(p * 18 * b / 5)) as i64
}

/// `n / d` (floor, `d > 0`), with 32-bit divisions only when `d` fits 32 bits (as in every
/// use at a usual capacity): the 64-bit division is a long library routine on a Cortex-M,
/// which divides 32 bits in hardware.
// Out of line: one copy for the rest refinement's divisions.
#[inline(never)]
fn div_u64(n: u64, d: u64) -> u64 {
    let Ok(d) = u32::try_from(d) else {
        return n / d;
    };
    let (hi, lo) = ((n >> 32) as u32, n as u32);
    if hi == 0 {
        return u64::from(lo / d);
    }
    let (q_hi, r) = (hi / d, hi % d);
    u64::from(q_hi) << 32 | u64::from(div_2by1(r, lo, d))
}

/// `(hi * 2^32 + lo) / d` (floor) for `hi < d` (so the quotient fits 32 bits), by long
/// division in two 16-bit digits, each estimated with one 32-bit division and corrected
/// (at most twice) as in Knuth's algorithm D (Hacker's Delight, `divlu`).
fn div_2by1(hi: u32, lo: u32, d: u32) -> u32 {
    const B: u32 = 1 << 16;
    // Normalised: the divisor's top bit set, so that each estimate is at most 2 too large.
    let s = d.leading_zeros();
    let v = d << s;
    let (v1, v0) = (v >> 16, v & 0xFFFF);
    // `hi < d` keeps the shifted-out bits of `hi` zero.
    let n32 = if s == 0 { hi } else { hi << s | lo >> (32 - s) };
    let u10 = lo << s;
    let (u1, u0) = (u10 >> 16, u10 & 0xFFFF);
    // One 16-bit digit of the quotient of `top * 2^16 + next` (below `v * 2^16`) by `v`:
    // estimated from the divisor's top half, then corrected.
    let digit = |top: u32, next: u32| -> u32 {
        let (mut q, mut r) = (top / v1, top % v1);
        while q >= B || q * v0 > (r << 16 | next) {
            q -= 1;
            r += v1;
            if r >= B {
                break;
            }
        }
        q
    };
    let q1 = digit(n32, u1);
    // The remainder after the first digit, below `v`: the wrapped arithmetic is exact.
    let u21 = (n32 << 16 | u1).wrapping_sub(q1.wrapping_mul(v));
    let q0 = digit(u21, u0);
    q1 << 16 | q0
}

/// `a + b`, saturated: an add and a branch in the usual case, shorter than the branch-free
/// saturation on every step.
#[inline(always)]
fn sat_add(a: i64, b: i64) -> i64 {
    match a.checked_add(b) {
        Some(sum) => sum,
        None => saturated_add(a, b),
    }
}

#[cold]
#[inline(never)]
fn saturated_add(a: i64, b: i64) -> i64 {
    a.saturating_add(b)
}

#[cold]
#[inline(never)]
fn saturated_sub(a: i32, b: i32) -> i32 {
    a.saturating_sub(b)
}

/// The remaining charge for the quotient `q` of mAh.
fn remaining_of(q: i64) -> MilliAmpHours {
    MilliAmpHours::from_mah(q.clamp(0, i64::from(u32::MAX)) as u32)
}

/// A filtered current (mA << FILTER_SHIFT) rounded to mA.
fn rounded_ma(fx: i64) -> i32 {
    let rounded = (fx + (1 << (FILTER_SHIFT - 1))) >> FILTER_SHIFT;
    rounded.clamp(i32::MIN.into(), i32::MAX.into()) as i32
}

/// The readings `lo..=hi` within `clip` (at most 2^32 - 1: no band takes every reading).
fn readings((lo, hi): (i64, i64), clip: (i64, i64)) -> Band {
    Band::inclusive(lo.max(clip.0), hi.min(clip.1))
}

/// `soc_from_ocv(table, mv16)`, trying the segment `seg` first (`soc_in_segment`) and
/// keeping the one the search found in it when the table is non-decreasing (`sorted`).
// Out of line: one copy for the cells' and the voltage sigma's look-ups.
#[inline(never)]
fn soc_hinted(table: &[u16; OCV_POINTS], mv16: i32, seg: &mut u8, sorted: bool) -> i64 {
    match soc_in_segment(table, mv16, *seg) {
        Some(p) => p,
        None => {
            let (p, at) = soc_and_segment(table, mv16);
            *seg = if sorted { at } else { 0 };
            p
        }
    }
}

/// Whether any of `a` differs from the same cell of `b`; without an early exit, so that the
/// compiler can vectorize it (a resting pack compares every step).
// Inline: into the quick rest step a call would cost more than the compare.
#[inline(always)]
fn differ(a: &[MilliVolts], b: &[MilliVolts]) -> bool {
    // An OR of XORs: lane-wise, where a fold of `!=` is not.
    let or_xor = |a: &[MilliVolts], b: &[MilliVolts]| {
        a.iter()
            .zip(b)
            .fold(0, |d, (x, y)| d | (x.as_mv() ^ y.as_mv()))
    };
    // A full pack at a known length: unrolled, with no loop and no scalar tail.
    if let (Ok(a), Some(b)) = (
        <&[MilliVolts; MAX_CELLS]>::try_from(a),
        b.first_chunk::<MAX_CELLS>(),
    ) {
        return or_xor(a, b) != 0;
    }
    or_xor(a, b) != 0
}

/// Whether `pred` holds for any cell; without an early exit, so that the compiler can
/// vectorize it (the scan runs every step of a discharge within the cut-off's window).
fn any_cell(cells: &[MilliVolts], pred: impl Fn(MilliVolts) -> bool) -> bool {
    cells.iter().fold(false, |hit, v| hit | pred(*v))
}

impl SocEstimator {
    /// A new estimator for a pack of `nominal` capacity.
    ///
    /// `stored` is what [`stored`](Self::stored) returned before the last power-down, if
    /// anything. The SOC itself is chosen at the first [`update`](Self::update), from the
    /// cell voltages if the pack rests then. A config that fails
    /// [`SocConfig::validate`] gives a bounded but meaningless SOC.
    pub fn new(cfg: SocConfig, nominal: MilliAmpHours, stored: Option<StoredSoc>) -> Self {
        let nominal_mah = nominal.as_mah().max(1);
        let full_mah = stored
            .map(|s| s.full_capacity.as_mah())
            .filter(|&f| f >= nominal_mah / 2 && f <= nominal_mah / 10 * 11)
            .unwrap_or(nominal_mah);
        let offset_fx = stored.map_or(0, |s| {
            let lim = per_ah(cfg.rest_current_ma_per_ah, nominal_mah);
            i64::from(s.current_offset.as_ma().clamp(-lim, lim)) << FILTER_SHIFT
        });
        let floor = cfg.deadband_min_ma.min(i32::MAX as u32 / 2) as i32;
        let deadband_ma = per_ah(cfg.deadband_ma_per_ah, nominal_mah).max(floor);
        let charge = i64::from(full_mah) * MAMS_PER_MAH / 2;
        let mut est = SocEstimator {
            deadband_ma,
            rest_ma: per_ah(cfg.rest_current_ma_per_ah, nominal_mah).max(floor / 2 * 3),
            tail_ma: per_ah(cfg.tail_current_ma_per_ah, nominal_mah)
                .max(deadband_ma.saturating_mul(2)),
            empty_ma: per_ah(cfg.empty_current_ma_per_ah, nominal_mah),
            cfg,
            nominal_mah,
            full_mah,
            charge,
            // Both set by `set_full` below.
            soc_half: Quotient::of(charge, 1),
            remaining_mah: Quotient::of(charge, MAMS_PER_MAH),
            still: (0, 0),
            soc: Soc::EMPTY,
            remaining: MilliAmpHours::from_mah(0),
            soh: Permille::from_permille(0),
            raw: 0,
            sigma_base: PPM_FULL as u32,
            throughput: 0,
            active_ms: 0,
            run_charge: charge,
            run_lo: i64::MIN,
            run_end: i64::MAX,
            band: Band::EMPTY,
            band_rest: false,
            window: Band::EMPTY,
            cells_ok: (0, 0),
            last_refine: Instant::ZERO,
            quiet_end: 0,
            quiet_temp: None,
            offset_fx,
            offset_ma: rounded_ma(offset_fx),
            last: Instant::ZERO,
            clock_set: false,
            stored_soc: stored.map(|s| s.soc),
            booted: false,
            rest_since: Instant::ZERO,
            in_rest: false,
            rest_cal: None,
            cells_n: 0,
            load_n: u8::MAX,
            cell_filt: [0; MAX_CELLS],
            filt_in: [MilliVolts::ZERO; MAX_CELLS],
            filt_idle_gain: -1,
            filt_gain: (0, 0),
            refined: None,
            filt_moved: true,
            refined_tc: NO_TC,
            cell_delta: [0; MAX_CELLS],
            ocv_seg: [0; MAX_CELLS],
            sigma_seg: [0; 2],
            ocv_sorted: false,
            last_ocv: -1,
            cv_seen: false,
            full_latched: false,
            empty_latched: false,
            full_since: Instant::ZERO,
            empty_since: Instant::ZERO,
            full_held: false,
            empty_held: false,
            anchor: None,
            cycles: stored.map_or(0, |s| s.cycles),
            cycle_acc: 0,
            at_rest: false,
            events: Deque::new(),
        };
        est.ocv_sorted = est.cfg.ocv_mv.windows(2).all(|w| w[0] <= w[1]);
        est.set_full(full_mah);
        est
    }

    /// The configuration in use.
    pub fn config(&self) -> &SocConfig {
        &self.cfg
    }

    fn full_mams(&self) -> i64 {
        i64::from(self.full_mah) * MAMS_PER_MAH
    }

    fn soc_ppm(&self) -> i64 {
        charge_ppm(self.charge, self.full_mah)
    }

    /// The unit of `soc_half`, mA·ms.
    fn soc_unit(&self) -> i64 {
        (i64::from(self.full_mah) * HALF_PERMILLE_MAMS_PER_MAH).max(1)
    }

    /// The cells' IR drop at `current_ma` (toward zero): below 2^48 before the division.
    fn ir_drop_mv(&self, current_ma: i64) -> i64 {
        current_ma * i64::from(self.cfg.resistance_mohm_ah) / i64::from(self.nominal_mah)
    }

    fn set_ppm(&mut self, ppm: i64) {
        self.set_charge(ppm_charge(ppm, self.full_mah));
    }

    /// The only writer of `charge` (`0..=full_mams`): keeps the SOC and remaining-mAh
    /// quotients in step, without a division while the charge moves less than their unit.
    // Inline: most steps stay within both quotients' intervals, two comparisons.
    #[inline(always)]
    fn set_charge(&mut self, charge: i64) {
        self.charge = charge;
        if charge < self.still.0 || charge >= self.still.1 {
            self.follow_charge(charge);
        }
    }

    /// The quotients' side of `set_charge`, once `charge` left `still`.
    #[inline(never)]
    fn follow_charge(&mut self, charge: i64) {
        // Mostly only the remaining mAh moves (a 100 ms step at 1 C moves it every few
        // steps, the SOC every few hundred): each output is rounded only when it moved.
        let unit = self.soc_unit();
        if self.soc_half.follow(charge, unit) {
            self.soc = Soc::from_permille_clamped(((self.soc_half.q + 1) / 2) as i32);
        }
        if self.remaining_mah.follow(charge, MAMS_PER_MAH) {
            self.remaining = remaining_of(self.remaining_mah.q);
        }
        self.set_still(unit);
    }

    /// `soc`, `remaining` and `still` from the quotients (`0..=2000` half permille,
    /// `0..=full_mah`).
    fn round_quotients(&mut self) {
        self.soc = Soc::from_permille_clamped(((self.soc_half.q + 1) / 2) as i32);
        self.remaining = remaining_of(self.remaining_mah.q);
        self.set_still(self.soc_unit());
    }

    /// `still`: where neither quotient moves, within `run_lo..run_end`.
    fn set_still(&mut self, soc_unit: i64) {
        let (soc, rem) = (self.soc_half.lo, self.remaining_mah.lo);
        self.still = (
            soc.max(rem).max(self.run_lo),
            (soc + soc_unit).min(rem + MAMS_PER_MAH).min(self.run_end),
        );
    }

    /// The only writer of `full_mah` (`1..`): recomputes what depends on it.
    fn set_full(&mut self, full_mah: u32) {
        self.full_mah = full_mah;
        self.refined = None;
        self.soc_half = Quotient::of(self.charge, self.soc_unit());
        self.round_quotients();
        let p = u64::from(full_mah) * 1_000 / u64::from(self.nominal_mah);
        self.soh = Permille::from_permille(p.min(u64::from(u16::MAX)) as u16);
    }

    fn reanchor(&mut self, sigma: u32) {
        self.sigma_base = sigma;
        self.throughput = 0;
        self.active_ms = 0;
    }

    // Out of line: one copy for the eight places that log an event.
    #[inline(never)]
    fn push(&mut self, e: SocEvent) {
        if self.events.is_full() {
            self.events.pop_front();
        }
        // Cannot fail: there is room now.
        let _ = self.events.push_back(e);
    }

    /// Advances the estimator by one control step.
    ///
    /// Call it at any rate (every 100 ms or every second both work): the charge is
    /// integrated over the time since the previous call, capped at `max_step_ms`.
    pub fn update(&mut self, input: &SocInput<'_>) -> SocOutput {
        self.update_with_range(input, None)
    }

    /// [`update`](Self::update) with the lowest and highest of `input.cells` known to the
    /// caller (e.g. from its summary of the snapshot), which spares the estimator its own
    /// scans of the cells. `None` when not known; with `Some`, they must be exactly the
    /// minimum and maximum of `input.cells`.
    // Inline: the common steps are a few compares, and a caller that ignores the output
    // (`Bms::step`) does not pay for returning it.
    #[inline(always)]
    pub fn update_with_range(
        &mut self,
        input: &SocInput<'_>,
        range: Option<(MilliVolts, MilliVolts)>,
    ) -> SocOutput {
        self.step_from(input, range)
    }

    /// [`update_with_range`](Self::update_with_range) over the input
    /// [`SocInput::from_measurements`] makes of `m`, without making it unless the step needs
    /// it all; `None` (and then it [`hold`](Self::hold)s) when `m` has no current reading.
    /// `range`, if known, must be exactly the lowest and highest cell of the input's cells
    /// (none when `m.afe_ok` is false).
    // Inline: the common steps read a few fields of the snapshot (see `update_with_range`).
    #[inline(always)]
    pub fn update_measurements(
        &mut self,
        m: &Measurements,
        current_path_open: bool,
        range: Option<(MilliVolts, MilliVolts)>,
    ) -> Option<SocOutput> {
        self.update_snapshot(m, current_path_open, range, false)
    }

    /// [`update_measurements`](Self::update_measurements), told by `repeat` that the valid
    /// cells of `m` are, in number and reading for reading, those of the last step that had
    /// valid cells (the last `update*` with some; `repeat` is ignored up to the first such
    /// step after a [`hold`](Self::hold) or a [`set_soc`](Self::set_soc)): a settled rest
    /// then skips its comparison of the cells (`Bms::step`'s summary has compared them
    /// already). A wrong `true` may take a changed reading for the last one.
    // Inline: as `update_measurements`.
    #[inline(always)]
    pub(crate) fn update_snapshot(
        &mut self,
        m: &Measurements,
        current_path_open: bool,
        range: Option<(MilliVolts, MilliVolts)>,
        repeat: bool,
    ) -> Option<SocOutput> {
        let Some(current) = m.current else {
            self.hold(m.timestamp);
            return None;
        };
        let snapshot = Snapshot {
            m,
            current,
            path_open: current_path_open,
            repeat,
        };
        Some(self.step_from(snapshot, range))
    }

    /// The step over `input`, quick when it can be.
    #[inline(always)]
    fn step_from<'a>(
        &mut self,
        input: impl StepSource<'a>,
        range: Option<(MilliVolts, MilliVolts)>,
    ) -> SocOutput {
        // One call site of the full step: a snapshot's builds the input there.
        match self.quick_step(input, range) {
            Some(out) => out,
            None => input.full_step(self, range),
        }
    }

    /// The common steps (a steady load, a settled rest) within the band `plan` set: `None`
    /// (and nothing changed) when the step must be the full one.
    #[inline(always)]
    fn quick_step<'a>(
        &mut self,
        input: impl StepSource<'a>,
        range: Option<(MilliVolts, MilliVolts)>,
    ) -> Option<SocOutput> {
        let measured = input.current().as_ma();
        if !self.band.contains(measured)
            || input.path_open()
            || input.cells().len().min(MAX_CELLS) != usize::from(self.load_n)
        {
            return None;
        }
        let now = input.now().as_millis();
        // The band is set only by a full step, which set `last`.
        let dt = match now.checked_sub(self.last.as_millis()) {
            Some(d) => d.min(u64::from(self.cfg.max_step_ms.as_millis())) as u32,
            None => 0,
        };
        if self.band_rest {
            // The filters stay idle (the band holds the rest and the idle gain). A repeat
            // needs no comparison: its cells are those of the last step with cells, which a
            // rest band keeps in `filt_in`. The full step that planned the band rested, so
            // it passed its cells through the filters, which keeps them there (or found them
            // there), and every quick rest step since found its own there; a full step
            // without cells keeps `filt_in`, and keeps the band only in a rest that a step
            // with cells began (`in_rest`). A hold or `set_soc` leaves no rest band.
            if dt != self.filt_gain.0 || !input.repeat() && differ(input.cells(), &self.filt_in) {
                return None;
            }
            self.last = input.now();
            // A refinement that is due is all the full step would do, and with the key of
            // the last one it changes nothing but its time (see `quiet_end`).
            if now.saturating_sub(self.last_refine.as_millis())
                >= u64::from(REFINE_EVERY.as_millis())
            {
                if now >= self.quiet_end || input.temperature() != self.quiet_temp {
                    return Some(self.refine_at_rest(input.now(), input.temperature()));
                }
                self.last_refine = input.now();
            }
            return Some(self.output(true));
        }
        // Within a calibration's current window the extremes (of these cells: the full step
        // ignores them otherwise) must keep the cells out of it.
        if self.window.contains(measured) {
            match range.filter(|_| input.cells().len() <= MAX_CELLS) {
                Some((lo, hi))
                    if lo.as_mv() >= self.cells_ok.0 && hi.as_mv() <= self.cells_ok.1 => {}
                _ => return None,
            }
        }
        // Within the band the reading less the offset neither overflows nor falls in the
        // dead band.
        let dq = i64::from(measured - self.offset_ma) * i64::from(dt);
        // Wrapping: a charge step (dq < 0) that overflows ends far below `run_lo` (>= 0).
        let charge = self.charge.wrapping_sub(dq);
        let crossed = charge < self.still.0 || charge >= self.still.1;
        if crossed && (charge < self.run_lo || charge >= self.run_end) {
            return None;
        }
        self.last = input.now();
        // `dt == 0` exactly when `dq == 0`: the sum is that of the full step.
        self.active_ms = self.active_ms.saturating_add(u64::from(dt));
        self.charge = charge;
        if crossed {
            // `set_charge` without its test: every few steps at most.
            self.follow_charge(charge);
        }
        Some(self.output(false))
    }

    /// What a step reports.
    #[inline(always)]
    fn output(&self, at_rest: bool) -> SocOutput {
        SocOutput {
            soc: self.soc,
            remaining: self.remaining,
            at_rest,
        }
    }

    /// The end of a quick rest step with a refinement due.
    #[inline(never)]
    fn refine_at_rest(&mut self, now: Instant, temperature: Option<DeciCelsius>) -> SocOutput {
        self.rest_step(now, temperature);
        // It keeps the band (the calibration stays applied), moves no filter, and sets the
        // charge without counting it.
        self.run_charge = self.charge;
        self.output(true)
    }

    /// Adds the charge counted by quick steps since `run_charge` to the accumulators that
    /// they leave alone (see `run_charge`).
    fn fold(&mut self) {
        let d = self.run_charge - self.charge;
        // Nothing counted since (a full step after a full step, e.g. at rest with moving
        // readings): adding zero changes nothing, and the saturating 64-bit sums are long
        // code on 32-bit targets.
        if d == 0 {
            return;
        }
        self.raw = self.raw.saturating_add(d);
        self.throughput = self.throughput.saturating_add(d.abs());
        // Below `full_mams` by `run_lo`: no overflow.
        self.cycle_acc += d.max(0);
        self.run_charge = self.charge;
    }

    /// `throughput` with what `fold` would add: the value between steps.
    fn throughput(&self) -> i64 {
        self.throughput
            .saturating_add((self.run_charge - self.charge).abs())
    }

    /// The band of the next quick steps (see `band`) and the charges they may reach,
    /// from the state a full step left (with nothing to `fold`).
    // Out of line: one copy for the full step and `set_soc`.
    #[inline(never)]
    fn plan(&mut self) {
        self.run_charge = self.charge;
        let offset = i64::from(self.offset_ma);
        let (min, max) = (i64::from(i32::MIN), i64::from(i32::MAX));
        let full = self.full_mams();
        // Readings of the quick steps and of their calibration window, charges they reach.
        let mut band = (0, -1);
        let mut window = (0, -1);
        let mut run = (i64::MIN, i64::MAX);
        // `corrected` within the bands below never overflows: from `min + offset` to
        // `max + offset`.
        let (lowest, highest) = (min.max(min + offset), max.min(max + offset));
        // Beyond the rest threshold and the dead band.
        let load = i64::from(self.rest_ma.max(self.deadband_ma));
        if !self.full_held && !self.empty_held {
            match (self.at_rest, self.in_rest, self.rest_cal) {
                // A settled rest: within the dead band (no count) and the rest threshold.
                (true, true, Some(rc))
                    if rc.applied
                        && i64::from(self.filt_gain.1) <= i64::from(self.filt_idle_gain) =>
                {
                    let m = i64::from(self.deadband_ma.min(self.rest_ma));
                    band = (offset - m + 1, offset + m - 1);
                    self.band_rest = true;
                }
                // A discharge short of the next cycle: clears `cv_seen` and the full latch,
                // which stay clear; within the cut-off's current window the lowest cell
                // must be above the empty threshold.
                (false, false, None) if !self.cv_seen && !self.full_latched => {
                    let to_cycle = full - self.cycle_acc;
                    if to_cycle > 0 {
                        band = (offset + load + 1, highest);
                        if !self.empty_latched {
                            window = (min, offset + i64::from(self.empty_ma));
                            self.cells_ok = (
                                self.cfg.empty_threshold().as_mv().saturating_add(1),
                                u32::MAX,
                            );
                        }
                        self.band_rest = false;
                        run = ((self.charge - to_cycle + 1).max(0), full + 1);
                    }
                }
                // A charge with the empty latch open (which it keeps open), and beyond the
                // tail current only once `cv_seen` (which it sets); within the taper's
                // current window the highest cell must be below the full threshold.
                (false, false, None) if !self.empty_latched => {
                    let tail = offset - i64::from(self.tail_ma);
                    band = (if self.cv_seen { lowest } else { tail }, offset - load - 1);
                    if self.cv_seen && !self.full_latched {
                        window = (tail, max);
                        self.cells_ok = match self.cfg.full_threshold().as_mv().checked_sub(1) {
                            Some(below) => (0, below),
                            None => (u32::MAX, 0),
                        };
                    }
                    self.band_rest = false;
                    run = (0, full + 1);
                }
                _ => {}
            }
        }
        self.band = readings(band, (lowest, highest));
        self.window = readings(window, (min, max));
        // `soc` and `remaining` are always those of the quotients (`set_charge`, `set_full`)
        // and `still` those of the quotients and the run: only a new run moves `still`
        // (a rest plans the same unbounded run at every step).
        if (self.run_lo, self.run_end) != run {
            (self.run_lo, self.run_end) = run;
            self.set_still(self.soc_unit());
        }
    }

    /// The full step over the input [`SocInput::from_measurements`] makes of `m` (which has
    /// the reading `current`).
    // Inline: the caller builds the input only on its way to the full step, and a call
    // more would cost every full step (e.g. at rest with moving readings).
    #[inline(always)]
    fn full_step_of(
        &mut self,
        m: &Measurements,
        current: MilliAmps,
        current_path_open: bool,
        range: Option<(MilliVolts, MilliVolts)>,
    ) -> SocOutput {
        self.full_step(
            &SocInput::with_current(m, current, current_path_open),
            range,
        )
    }

    /// The full step: everything `update_with_range` says.
    // Out of line: the quick steps do without its frame.
    #[inline(never)]
    fn full_step(
        &mut self,
        input: &SocInput<'_>,
        range: Option<(MilliVolts, MilliVolts)>,
    ) -> SocOutput {
        self.fold();
        self.quiet_end = 0;
        let now = input.now;
        // `now.duration_since(prev)` (saturated to u32) capped at `max_step_ms`, shorter.
        let dt = match now.as_millis().checked_sub(self.last.as_millis()) {
            Some(d) if self.clock_set => d.min(u64::from(self.cfg.max_step_ms.as_millis())) as u32,
            _ => 0,
        };
        self.last = now;
        self.clock_set = true;
        let measured = input.current.as_ma();

        // Current: offset learning while the path is open, dead band otherwise.
        // With the path open, a reading within the rest threshold is offset and is learned;
        // a larger one is a real current after all (body diode, pre-charge path, a stale
        // switch state) and is counted like any other.
        // The thresholds are never negative (see `new`): `as u32` is their magnitude.
        let path_open = input.current_path_open && measured.unsigned_abs() <= self.rest_ma as u32;
        let corrected = if path_open {
            self.learn_offset(measured, dt);
            0
        } else {
            // A subtraction and a branch: shorter than the branch-free saturation.
            match measured.checked_sub(self.offset_ma) {
                Some(c) => c,
                None => saturated_sub(measured, self.offset_ma),
            }
        };
        let effective = if corrected.unsigned_abs() < self.deadband_ma as u32 {
            0
        } else {
            corrected
        };
        let resting = path_open || corrected.unsigned_abs() < self.rest_ma as u32;
        self.at_rest = resting;

        // Coulomb counting, lossless.
        let dq = i64::from(effective) * i64::from(dt);
        if dq != 0 {
            self.count(dq, dt);
        }

        // Under load with the same cells as before and booted, the voltage side has only the
        // rest to cancel: done here, without the call. (A settled rest takes the quick step.)
        let n = input.cells.len().min(MAX_CELLS);
        if resting || n != usize::from(self.load_n) {
            self.voltage_side(input, dt, corrected, resting);
        } else {
            self.in_rest = false;
            self.rest_cal = None;
        }

        // Full and empty calibrations: the latches here, the rest only within the current
        // windows where they can happen (the cells are looked at there only).
        // The caller's extremes stand for the cells only if it saw the same ones.
        let range = range.filter(|_| input.cells.len() <= MAX_CELLS);
        let cells = &input.cells[..n];
        if corrected < -self.tail_ma {
            self.cv_seen = true;
        }
        if corrected > self.rest_ma {
            self.cv_seen = false;
            self.full_latched = false;
        }
        if self.cv_seen
            && !self.full_latched
            && corrected < -self.deadband_ma
            && corrected >= -self.tail_ma
            && range.is_none_or(|(_, hi)| hi >= self.cfg.full_threshold())
        {
            self.end_of_charge(now, corrected, cells, range.map(|r| r.1));
        } else {
            self.full_held = false;
        }
        if corrected < -self.rest_ma {
            self.empty_latched = false;
        }
        if !self.empty_latched
            && corrected > self.deadband_ma
            && corrected <= self.empty_ma
            && range.is_none_or(|(lo, _)| lo <= self.cfg.empty_threshold())
        {
            self.cut_off(now, cells, range.map(|r| r.0));
        } else {
            self.empty_held = false;
        }
        self.plan();

        SocOutput {
            soc: self.soc(),
            remaining: self.remaining(),
            at_rest: resting,
        }
    }

    /// One step of the current-offset filter towards the open-path reading `measured`.
    // Out of line: runs only while the switches are open.
    #[inline(never)]
    fn learn_offset(&mut self, measured: i32, dt: u32) {
        let target = i64::from(measured) << FILTER_SHIFT;
        self.offset_fx = approach(self.offset_fx, target, i64::from(dt), OFFSET_TAU_MS);
        self.offset_ma = rounded_ma(self.offset_fx);
    }

    /// Counts `dq` (non-zero) mA·ms discharged over `dt` ms.
    // Inline: it is most of the common step's work, a call would add to it.
    #[inline(always)]
    fn count(&mut self, dq: i64, dt: u32) {
        // `full_mams() >= 0`: no `clamp` (with its check of the bounds' order) needed.
        let charge = sat_add(self.charge, -dq);
        self.set_charge(if charge < 0 {
            0
        } else {
            charge.min(self.full_mams())
        });
        self.raw = sat_add(self.raw, dq);
        // `|dq| < 2^31 * 2^32`: neither the negation above nor `abs` overflows.
        self.throughput = sat_add(self.throughput, dq.abs());
        self.active_ms = self.active_ms.saturating_add(u64::from(dt));
        if let Some(rc) = self.rest_cal.as_mut() {
            rc.moved = rc.moved.saturating_add(dq);
        }
        if dq > 0 {
            self.cycle_acc = sat_add(self.cycle_acc, dq);
            if self.cycle_acc >= self.full_mams() {
                self.cycle_acc -= self.full_mams();
                self.cycles = self.cycles.saturating_add(1);
            }
        }
    }

    /// The cell-voltage side of a step: the rest filters, the boot and the rest calibration.
    // Out of line: the common step under load does not need it (see `update_with_range`).
    #[inline(never)]
    fn voltage_side(&mut self, input: &SocInput<'_>, dt: u32, corrected: i32, resting: bool) {
        let n = input.cells.len().min(MAX_CELLS);
        let now = input.now;
        let cells = &input.cells[..n];
        // Cell voltages: filtered while resting. No cells (monitor not answering) leaves
        // the voltage side as it was; only the count goes on.
        if n > 0 && n != usize::from(self.cells_n) {
            // At most MAX_CELLS.
            self.cells_n = n as u8;
            self.cell_delta = [0; MAX_CELLS];
            self.in_rest = false;
            self.rest_cal = None;
        }
        if n == 0 {
            if !resting {
                self.in_rest = false;
                self.rest_cal = None;
            }
        } else if resting && self.in_rest {
            let dt_ms = i64::from(dt);
            // The filter gain dt / (tau + dt) as a Q24 reciprocal, divided out only when the
            // step length changes.
            if self.filt_gain.0 != dt {
                // Below 2^24: fits the u32 that keeps the state small.
                let gain = (dt_ms << RECIP_SHIFT) / (CELL_FILTER_TAU_MS + dt_ms);
                self.filt_gain = (dt, gain as u32);
            }
            let gain = self.filt_gain.1;
            // A settled filter with the same readings has nothing to do (see `filt_idle_gain`).
            if i64::from(gain) > i64::from(self.filt_idle_gain) || differ(cells, &self.filt_in) {
                self.filter_cells(cells, gain);
            }
        } else if resting {
            // The filter is read only while resting, so it is seeded when a rest starts: a
            // gain of 1 (Q24) sets every filter to its reading (differences below 2^36).
            self.filter_cells(cells, 1 << RECIP_SHIFT);
            // Every filter sits on its reading: no gain moves it.
            self.filt_idle_gain = i32::MAX;
            self.filt_moved = true;
            self.rest_since = now;
            self.in_rest = true;
        } else {
            self.in_rest = false;
            self.rest_cal = None;
        }

        // Boot needs cell voltages unless a stored SOC is at hand.
        if !self.booted && (n > 0 || self.stored_soc.is_some()) {
            self.booted = true;
            self.boot(input, corrected, resting);
        }

        // Between refinements of an applied calibration a rest step has nothing to do: the
        // cadence is checked here, without the call.
        let waiting = matches!(self.rest_cal,
            Some(rc) if rc.applied && now.duration_since(self.last_refine) < REFINE_EVERY);
        if resting && n > 0 && !waiting {
            self.rest_step(now, input.temperature);
        }
        self.load_n = if self.booted && self.cells_n > 0 {
            self.cells_n
        } else {
            u8::MAX
        };
    }

    /// One step of the per-cell rest filters towards `cells` with the Q24 gain `gain`.
    fn filter_cells(&mut self, cells: &[MilliVolts], gain: u32) {
        // Filter values and targets lie in 0..=2^36, so `diff * gain` < 2^61 fits i64; the
        // gain as an unsigned word makes that a 64x32-bit product (two multiplies on a
        // Cortex-M instead of three).
        let g = i64::from(gain);
        let mut moved = 0;
        // Each reading is kept for the next step's comparison in the same pass.
        let kept = self.filt_in.iter_mut();
        for ((f, v), last) in self.cell_filt.iter_mut().zip(cells).zip(kept) {
            *last = *v;
            let target = i64::from(v.as_mv().min(u32::from(u16::MAX))) << FILTER_SHIFT;
            let step = ((target - *f) * g) >> RECIP_SHIFT;
            *f += step;
            moved |= step;
        }
        self.filt_moved |= moved != 0;
        // A gain is at most 1 << RECIP_SHIFT: fits i32.
        self.filt_idle_gain = if moved == 0 { gain as i32 } else { -1 };
    }

    // Out of line: its locals stay off the stack frame of `update` (smaller worst case).
    #[inline(never)]
    fn boot(&mut self, input: &SocInput<'_>, corrected: i32, resting: bool) {
        let stored = self.stored_soc.take();
        if resting && self.cells_n > 0 {
            let (prior, prior_sigma) = match stored {
                Some(soc) => (
                    i64::from(soc.as_permille()) * 1_000,
                    u32::from(self.cfg.stored_sigma_permille) * 1_000,
                ),
                // Nothing known: the voltage decides alone.
                None => (PPM_FULL / 2, u32::MAX),
            };
            self.set_ppm(prior);
            self.rest_cal = Some(RestCal {
                kind: RestKind::Boot,
                prior: prior as i32,
                prior_sigma,
                moved: 0,
                before: self.soc(),
                applied: false,
            });
            self.last_refine = input.now;
            // The first refinement runs in this same step and logs the boot event.
            return;
        }
        if let Some(soc) = stored {
            self.set_ppm(i64::from(soc.as_permille()) * 1_000);
            self.reanchor(u32::from(self.cfg.stored_sigma_permille) * 1_000);
            self.push(SocEvent::Boot {
                soc: self.soc(),
                source: BootSource::Stored,
            });
            return;
        }
        // Under load, nothing stored: OCV = V + I·R, trusted only loosely.
        let ir_mv = self.ir_drop_mv(i64::from(corrected));
        let n = usize::from(self.cells_n);
        if n > 0 {
            let mut sum = 0i64;
            for v in input.cells.iter().take(n) {
                let mv16 = (i64::from(v.as_mv()) + ir_mv).clamp(0, i64::from(i32::MAX / 16)) * 16;
                sum += soc_from_ocv(&self.cfg.ocv_mv, mv16 as i32);
            }
            let ppm = sum / n as i64;
            self.set_ppm(ppm);
            let sigma_uv = (u32::from(self.cfg.ocv_sigma_mv) + (ir_mv.unsigned_abs() as u32) / 2)
                .saturating_mul(1_000);
            let mv16 = ocv_at(&self.cfg.ocv_mv, ppm);
            let sigma =
                soc_sigma(&self.cfg.ocv_mv, mv16, sigma16(sigma_uv)).max(LOADED_BOOT_SIGMA_PPM);
            self.reanchor(sigma);
        } else {
            self.reanchor(PPM_FULL as u32);
        }
        self.push(SocEvent::Boot {
            soc: self.soc(),
            source: BootSource::LoadedOcv,
        });
    }

    /// The relaxed-OCV correction: starts at boot or after `rest_time_ms` of rest, then is
    /// refined from the same prior as the cells relax further.
    // Out of line: its locals stay off the stack frame of `update` (smaller worst case).
    #[inline(never)]
    fn rest_step(&mut self, now: Instant, temperature: Option<DeciCelsius>) {
        if !self.in_rest {
            return;
        }
        let since = self.rest_since;
        let rested = now.duration_since(since);
        if self.rest_cal.is_none() {
            // A poor count (booted under load, set by hand, long without an anchor) does not
            // wait for full relaxation: the relaxation term of the voltage's uncertainty
            // keeps an early reading's weight honest.
            // The cheap comparisons first: `sigma_ppm` divides.
            if rested < self.rest_time(temperature)
                && (rested < self.cfg.relax_tau_ms || self.sigma_ppm() < QUICK_REST_SIGMA_PPM)
            {
                return;
            }
            self.rest_cal = Some(RestCal {
                kind: RestKind::Rest,
                prior: self.soc_ppm() as i32,
                prior_sigma: self.sigma_ppm(),
                moved: 0,
                before: self.soc(),
                applied: false,
            });
        }
        // Due: `update` calls this only when no applied calibration waits for its cadence.
        let Some(mut rc) = self.rest_cal else {
            return;
        };
        self.last_refine = now;

        // Temperature: reference the reading to 25 °C and widen its uncertainty.
        let t_deci = temperature.map_or(250, |t| i32::from(t.as_deci()));
        let dt_deci = t_deci - 250;
        // µV/K * K/10 * 16 / 1000 = coeff * dt_deci / 625: in 32 bits (at most 32_768 *
        // 33_018 before the division).
        let tc_x16 = (i32::from(self.cfg.ocv_temp_coeff_uv_per_k) * dt_deci / 625)
            .clamp(-(1 << 20), 1 << 20);

        // Unchanged filtered cells and temperature give the same per-cell SOCs: reuse the
        // mean and the deltas of the last refinement instead of 20 table look-ups.
        let mean = if self.last_ocv >= 0 && !self.filt_moved && self.refined_tc == tc_x16 {
            i64::from(self.last_ocv)
        } else {
            self.read_cells(tc_x16)
        };

        // In 32 bits: at most 65_535 * 33_018 (a 64-bit division by a constant is long code
        // on 32-bit targets).
        let temp_uv =
            u64::from(u32::from(self.cfg.ocv_temp_sigma_uv_per_k) * dt_deci.unsigned_abs() / 10);
        let key = RefineKey {
            // Means and priors are SOCs within 0..=PPM_FULL: i32 keeps the memo small.
            mean: mean as i32,
            s16: self.voltage_s16(rested, temp_uv),
            prior: rc.prior,
            prior_sigma: rc.prior_sigma,
            moved: rc.moved,
            charge: self.charge,
        };
        // While the rest lasts the inputs change rarely (the voltage's sigma in steps of
        // 1/16 mV): the memo spares the table look-ups, the Kalman step and the divisions.
        let f = match self.refined {
            Some((k, f)) if k == key => f,
            _ => {
                let f = self.refine(&key);
                self.refined = Some((key, f));
                f
            }
        };
        // A mean of SOCs within 0..=PPM_FULL: fits i32.
        self.last_ocv = mean as i32;
        // At a fixed point of the charge, the next refinements with the same cells and
        // temperature find this key in the memo again (and change nothing but
        // `last_refine`) as long as the voltage's sigma stays at `key.s16`.
        self.quiet_end =
            if f.charge != self.charge || self.quiet_passes(key.s16, temp_uv, now, since, rested) {
                // Not quiet, or quiet only until the next refinement is due, which `0` says as
                // well: the end is compared only with the time of a due refinement.
                0
            } else {
                let until = self.relax_until(key.s16, temp_uv);
                if until >= u64::from(u32::MAX) {
                    u64::MAX
                } else {
                    since.as_millis().saturating_add(until + 1)
                }
            };
        self.quiet_temp = temperature;
        self.set_charge(f.charge);
        self.reanchor(f.sigma);
        if !rc.applied {
            rc.applied = true;
            let ev = match rc.kind {
                RestKind::Boot => SocEvent::Boot {
                    soc: self.soc(),
                    source: BootSource::Ocv,
                },
                RestKind::Rest => SocEvent::OcvCalibration {
                    before: rc.before,
                    after: self.soc(),
                    weight: Permille::from_permille((f.gain / 1_000).min(1_000) as u16),
                },
            };
            self.push(ev);
            // Only `applied` changed (nothing above writes `rest_cal`): stored only then.
            self.rest_cal = Some(rc);
        }
    }

    /// The uncertainty (1/16 mV) of a relaxed cell voltage after a rest of `rested`, with
    /// `temp_uv` for the temperature: the table's, the relaxation's, the temperature's.
    fn voltage_s16(&self, rested: Duration, temp_uv: u64) -> i32 {
        let tau = u64::from(self.cfg.relax_tau_ms.as_millis()).max(1);
        let relax_uv = div_u64(
            u64::from(self.cfg.relax_sigma_mv) * 1_000 * tau,
            tau + u64::from(rested.as_millis()),
        );
        let sigma_uv = (u64::from(self.cfg.ocv_sigma_mv) * 1_000 + relax_uv + temp_uv)
            .min(u64::from(u32::MAX));
        sigma16(sigma_uv as u32)
    }

    /// The longest rest (ms, `u64::MAX` for any) up to which the voltage's uncertainty is
    /// still `s16` (1/16 mV, as `rest_step` derives it) with `temp_uv` for the
    /// temperature: it only shrinks as the relaxation term `A / (tau + rested)` decays,
    /// and stays at least `s16` while that term is at least the `x` it lacks, i.e. while
    /// `tau + rested <= A / x`.
    fn relax_until(&self, s16: i32, temp_uv: u64) -> u64 {
        // `sigma16` never goes below 1.
        if s16 <= 1 {
            return u64::MAX;
        }
        // The least sigma, µV, that still gives `s16`.
        let need = (1_000 * u64::from(s16.unsigned_abs())).div_ceil(16);
        let x = need.saturating_sub(u64::from(self.cfg.ocv_sigma_mv) * 1_000 + temp_uv);
        if x == 0 {
            return u64::MAX;
        }
        let tau = u64::from(self.cfg.relax_tau_ms.as_millis()).max(1);
        div_u64(u64::from(self.cfg.relax_sigma_mv) * 1_000 * tau, x).saturating_sub(tau)
    }

    /// Whether the quiet end `relax_until` gives (`since + until + 1`) is at most
    /// `now + REFINE_EVERY`, the earliest next due refinement (`rested` is
    /// `now.duration_since(since)`): then that refinement is not quiet whatever the end, and
    /// the division is spared (`false` where this cannot tell with 32-bit factors). With
    /// `r = rested + REFINE_EVERY`, `until + 1 <= r` is `a / x <= tau + r - 1`, i.e.
    /// `a < (tau + r) x`, one multiplication.
    fn quiet_passes(
        &self,
        s16: i32,
        temp_uv: u64,
        now: Instant,
        since: Instant,
        rested: Duration,
    ) -> bool {
        // In 32 bits (64-bit arithmetic is long code on 32-bit targets); `false` beyond.
        // `rested` exact (not saturated) and `until` below `u32::MAX` (else the end is never).
        let Some(r) = rested.as_millis().checked_add(REFINE_EVERY.as_millis()) else {
            return false;
        };
        if now < since || r == u32::MAX || s16 <= 1 || s16 >= 1 << 25 {
            return false;
        }
        // As in `relax_until`: `need = ceil(1000 s16 / 16) = ceil(125 s16 / 2)`, below 2^32.
        let need = (125 * s16 as u32).div_ceil(2);
        let base = u64::from(self.cfg.ocv_sigma_mv) * 1_000 + temp_uv;
        let x = match u32::try_from(base) {
            Ok(base) if base < need => need - base,
            _ => return false,
        };
        let tau = self.cfg.relax_tau_ms.as_millis().max(1);
        let a = u64::from(u32::from(self.cfg.relax_sigma_mv) * 1_000) * u64::from(tau);
        tau.checked_add(r)
            .is_some_and(|t| a < u64::from(t) * u64::from(x))
    }

    /// The mean SOC (ppm) of the filtered cells referenced to 25 °C by `tc_x16` (1/16 mV),
    /// with each cell's offset from it in `cell_delta`.
    // Out of line: its loop runs only when the filters moved.
    #[inline(never)]
    fn read_cells(&mut self, tc_x16: i32) -> i64 {
        let n = usize::from(self.cells_n);
        // At most MAX_CELLS SOCs of at most PPM_FULL: 32 bits hold the sum, and the mean is a
        // 32-bit division (a 64-bit one is a library routine on 32-bit targets).
        let mut sum = 0i32;
        // Each cell's SOC (within 0..=PPM_FULL) first, its offset from the mean after.
        let table = &self.cfg.ocv_mv;
        let cells = self.cell_delta.iter_mut().zip(&self.cell_filt[..n]);
        for ((d, f), seg) in cells.zip(&mut self.ocv_seg) {
            let mv16 = (f >> (FILTER_SHIFT - 4)).clamp(0, i64::from(i32::MAX)) as i32;
            let mv16 = mv16.saturating_sub(tc_x16);
            // A resting cell mostly stays within the segment of its last reading: then the
            // interpolation alone, without the table search.
            *d = soc_hinted(table, mv16, seg, self.ocv_sorted) as i32;
            sum += *d;
        }
        let mean = i64::from(sum / n.max(1) as i32);
        for d in &mut self.cell_delta[..n] {
            *d = (i64::from(*d) - mean).clamp(-PPM_FULL, PPM_FULL) as i32;
        }
        self.filt_moved = false;
        self.refined_tc = tc_x16;
        mean
    }

    /// A rest refinement's outcome: the Kalman step from the calibration's prior, less the
    /// charge moved since, kept between the present SOC and the voltage's, so that no step
    /// moves the SOC away from what the cells say. It replaces the previous refinement.
    fn refine(&mut self, k: &RefineKey) -> Refined {
        let (mean, prior) = (i64::from(k.mean), i64::from(k.prior));
        let meas_sigma = self.meas_sigma(ocv_at(&self.cfg.ocv_mv, mean), k.s16);
        let f = fuse(prior, k.prior_sigma, mean, meas_sigma);
        // `moved * PPM_FULL / full_mams`, reduced by 200_000 (rounded toward zero); beyond
        // twice the capacity the target is clamped to the same bound whatever the amount.
        let full = self.full_mams();
        // Nothing moved (a rest inside the dead band, the usual case): 0 without the 64-bit
        // division, a library routine on 32-bit targets.
        let moved_ppm = if k.moved == 0 {
            0
        } else {
            k.moved.clamp(-2 * full, 2 * full) * 5 / (i64::from(self.full_mah) * 18).max(1)
        };
        let now_ppm = charge_ppm(k.charge, self.full_mah);
        let target = (f.soc - moved_ppm).clamp(now_ppm.min(mean), now_ppm.max(mean));
        Refined {
            charge: ppm_charge(target, self.full_mah),
            sigma: f.sigma,
            gain: f.gain,
        }
    }

    /// `soc_sigma` at `mv16` with `s16`, its two look-ups first within the segments of the
    /// last ones (`sigma_seg`): exact, as in `read_cells`.
    fn meas_sigma(&mut self, mv16: i32, s16: i32) -> u32 {
        let hi = self.soc_at(mv16.saturating_add(s16), 0);
        let lo = self.soc_at(mv16.saturating_sub(s16), 1);
        ((hi - lo) / 2).clamp(1, PPM_FULL) as u32
    }

    /// `soc_from_ocv` at `mv16`, with `sigma_seg[which]` as the segment to try first.
    fn soc_at(&mut self, mv16: i32, which: usize) -> i64 {
        soc_hinted(
            &self.cfg.ocv_mv,
            mv16,
            &mut self.sigma_seg[which],
            self.ocv_sorted,
        )
    }

    /// The end-of-charge calibration within the taper's current window (and with the
    /// full latch open); `highest` is the highest of `cells` if known.
    // Out of line: called only while a charge tapers.
    #[inline(never)]
    fn end_of_charge(
        &mut self,
        now: Instant,
        current: i32,
        cells: &[MilliVolts],
        highest: Option<MilliVolts>,
    ) {
        let tapering = match highest {
            Some(hi) => hi >= self.cfg.full_threshold(),
            None => any_cell(cells, |v| v >= self.cfg.full_threshold()),
        };
        if !tapering {
            self.full_held = false;
            return;
        }
        if !self.full_held {
            self.full_since = now;
            self.full_held = true;
        }
        let since = self.full_since;
        if now.duration_since(since) < self.cfg.calibration_hold_ms {
            return;
        }
        // At the end of the taper the cells sit at the charge voltage with a small current:
        // their OCV is that voltage less the IR drop, which the table turns into the SOC
        // (100 % only if the charge voltage reaches the table's top).
        let n = cells.len().max(1) as i64;
        let mean_mv = cells.iter().map(|v| i64::from(v.as_mv())).sum::<i64>() / n;
        let ir_mv = self.ir_drop_mv(i64::from(current.unsigned_abs()));
        let ocv16 = ((mean_mv - ir_mv) * 16).clamp(0, i64::from(i32::MAX)) as i32;
        let full_ppm = soc_from_ocv(&self.cfg.ocv_mv, ocv16);
        let before = self.soc();
        self.set_ppm(full_ppm);
        self.reanchor(ANCHOR_SIGMA_PPM);
        self.rest_cal = None;
        self.full_latched = true;
        self.full_held = false;
        self.push(SocEvent::Full {
            before,
            after: self.soc(),
        });
        if let Some(Anchor::Empty { raw, ppm }) = self.anchor {
            self.learn_capacity(raw.saturating_sub(self.raw), full_ppm - i64::from(ppm));
        }
        self.anchor = Some(Anchor::Full {
            raw: self.raw,
            // Within 0..=PPM_FULL.
            ppm: full_ppm as i32,
        });
    }

    /// The cut-off calibration within its current window (and with the empty latch open);
    /// `lowest` is the lowest of `cells` if known.
    // Out of line: called only while discharging at a small current.
    #[inline(never)]
    fn cut_off(&mut self, now: Instant, cells: &[MilliVolts], lowest: Option<MilliVolts>) {
        let at_cut_off = match lowest {
            Some(lo) => lo <= self.cfg.empty_threshold(),
            None => any_cell(cells, |v| v <= self.cfg.empty_threshold()),
        };
        if !at_cut_off {
            self.empty_held = false;
            return;
        }
        if !self.empty_held {
            self.empty_since = now;
            self.empty_held = true;
        }
        let since = self.empty_since;
        if now.duration_since(since) < self.cfg.calibration_hold_ms {
            return;
        }
        let before = self.soc();
        self.set_charge(0);
        self.reanchor(ANCHOR_SIGMA_PPM);
        self.rest_cal = None;
        self.empty_latched = true;
        self.empty_held = false;
        self.push(SocEvent::Empty { before });
        if let Some(Anchor::Full { raw, ppm }) = self.anchor {
            self.learn_capacity(self.raw.saturating_sub(raw), i64::from(ppm));
        }
        self.anchor = Some(Anchor::Empty {
            raw: self.raw,
            ppm: 0,
        });
    }

    /// One full-to-empty (or empty-to-full) measurement: `moved_mams` counted between
    /// calibrations `span_ppm` of SOC apart (at least half the range), scaled to 100 %.
    /// Accepted if within 50..120 % of nominal, then blended in with a weight of 1/4 and at
    /// most 5 % of nominal per cycle, and kept within 50..110 % of nominal.
    // Out of line: its locals stay off the stack frame of `update` (smaller worst case).
    #[inline(never)]
    fn learn_capacity(&mut self, moved_mams: i64, span_ppm: i64) {
        if span_ppm < PPM_FULL / 2 {
            return;
        }
        // `moved * PPM_FULL / span / MAMS_PER_MAH` (toward zero) reduced by 200_000: for
        // beyond 10^18 mA·ms it exceeds u32::MAX as well, hence the clamp.
        let moved = moved_mams.clamp(-1_000_000_000_000_000_000, 1_000_000_000_000_000_000);
        let measured = (moved * 5 / (span_ppm * 18)).clamp(0, i64::from(u32::MAX)) as u32;
        let nominal = u64::from(self.nominal_mah);
        let m = u64::from(measured);
        if m * 2 < nominal || m * 5 > nominal * 6 {
            self.push(SocEvent::CapacityRejected {
                measured: MilliAmpHours::from_mah(measured),
            });
            return;
        }
        let old = i64::from(self.full_mah);
        // 32-bit divisions: a 64-bit one by a constant is long code on 32-bit targets.
        let n32 = self.nominal_mah;
        let step_limit = i64::from(n32 / 20);
        let step = ((i64::from(measured) - old) / 4).clamp(-step_limit, step_limit);
        // nominal * 11 / 10, exactly.
        let upper = (nominal + u64::from(n32 / 10)).min(u64::from(u32::MAX)) as i64;
        let new = (old + step).clamp(i64::from(n32 / 2), upper) as u32;
        let ppm = self.soc_ppm();
        self.set_full(new.max(1));
        self.set_ppm(ppm);
        self.push(SocEvent::CapacityLearned {
            old: MilliAmpHours::from_mah(old as u32),
            new: MilliAmpHours::from_mah(self.full_mah),
        });
    }

    /// The rest time in effect at `temperature`: `rest_time_ms` at 15 °C and above, doubled
    /// for every 10 K below (diffusion, hence relaxation, slows about that much), at most 8x.
    fn rest_time(&self, temperature: Option<DeciCelsius>) -> Duration {
        let t = temperature.map_or(250, |t| i32::from(t.as_deci()));
        let doublings = ((150 - t).max(0) + 99) / 100;
        let factor = 1u32 << doublings.min(3);
        Duration::from_millis(self.cfg.rest_time_ms.as_millis().saturating_mul(factor))
    }

    /// Advances the clock without a current reading (sensor fault): nothing is integrated
    /// for the time up to `now`, and the rest in progress, if any, is abandoned.
    pub fn hold(&mut self, now: Instant) {
        // The rest band's rest ends: the next step is a full one.
        self.band = Band::EMPTY;
        self.last = now;
        self.clock_set = true;
        self.in_rest = false;
        self.rest_cal = None;
    }

    /// Overrides the SOC (e.g. set by the user over the serial protocol). It is trusted as
    /// much as a stored SOC, so the next rest can still correct it.
    pub fn set_soc(&mut self, soc: Soc) {
        self.fold();
        self.set_ppm(i64::from(soc.as_permille()) * 1_000);
        self.reanchor(u32::from(self.cfg.stored_sigma_permille) * 1_000);
        self.rest_cal = None;
        self.plan();
    }

    /// Pack state of charge (mean cell), rounded to the nearest permille.
    pub fn soc(&self) -> Soc {
        // Kept by `set_charge` and `set_full`.
        self.soc
    }

    /// One-sigma uncertainty of [`soc`](Self::soc), permille.
    pub fn uncertainty(&self) -> Permille {
        Permille::from_permille((self.sigma_ppm_with(self.throughput()) / 1_000).min(1_000) as u16)
    }

    /// The uncertainty, ppm, within a full step (nothing to `fold`).
    fn sigma_ppm(&self) -> u32 {
        self.sigma_ppm_with(self.throughput)
    }

    fn sigma_ppm_with(&self, throughput: i64) -> u32 {
        // Each term saturates past PPM_FULL, so saturating products change nothing.
        let full = self.full_mams().max(1);
        let gain_ppm = i64::from(self.cfg.gain_sigma_permille) * 1_000;
        let gain = mul_div(throughput, gain_ppm, full);
        let active_ms = i64::try_from(self.active_ms).unwrap_or(i64::MAX);
        let offset = mul_div(
            active_ms.saturating_mul(i64::from(self.deadband_ma)),
            PPM_FULL,
            full,
        );
        let sum = i64::from(self.sigma_base)
            .saturating_add(gain)
            .saturating_add(offset);
        sum.clamp(0, PPM_FULL) as u32
    }

    /// State of health: learned full capacity over nominal capacity.
    pub fn soh(&self) -> Permille {
        self.soh
    }

    /// Charge left.
    pub fn remaining(&self) -> MilliAmpHours {
        // `charge / MAMS_PER_MAH`, kept by `set_charge`; at most `full_mah`.
        self.remaining
    }

    /// Charge left in the lossless accumulator unit.
    pub fn remaining_charge(&self) -> MilliAmpMillis {
        MilliAmpMillis::from_raw(self.charge)
    }

    /// Learned full capacity.
    pub fn full_capacity(&self) -> MilliAmpHours {
        MilliAmpHours::from_mah(self.full_mah)
    }

    /// Nominal capacity given at construction.
    pub fn nominal_capacity(&self) -> MilliAmpHours {
        MilliAmpHours::from_mah(self.nominal_mah)
    }

    /// `(lowest cell, mean, highest cell)` SOC: the pack SOC shifted by each cell's offset
    /// from the mean as measured at the last rest. The lowest limits discharge, the
    /// highest limits charge, their spread drives balancing.
    pub fn cell_soc_range(&self) -> (Soc, Soc, Soc) {
        let n = usize::from(self.cells_n).min(MAX_CELLS);
        let d = &self.cell_delta[..n];
        let lo = d.iter().copied().min().unwrap_or(0);
        let hi = d.iter().copied().max().unwrap_or(0);
        (self.shifted(lo), self.soc(), self.shifted(hi))
    }

    /// The pack SOC moved by `delta` ppm, rounded to permille.
    fn shifted(&self, delta: i32) -> Soc {
        let ppm = self.soc_ppm() + i64::from(delta);
        Soc::from_permille_clamped(((ppm + 500).div_euclid(1_000)).clamp(-1, 1_001) as i32)
    }

    /// SOC of cell `index` (0 = cell 1), as in [`cell_soc_range`](Self::cell_soc_range).
    pub fn cell_soc(&self, index: usize) -> Option<Soc> {
        let d = *self
            .cell_delta
            .get(..usize::from(self.cells_n))?
            .get(index)?;
        Some(self.shifted(d))
    }

    /// Equivalent full cycles (discharged charge over full capacity).
    pub fn cycles(&self) -> u32 {
        self.cycles
    }

    /// Learned current-sensor offset (subtracted from every reading).
    pub fn current_offset(&self) -> MilliAmps {
        MilliAmps::from_ma(self.offset_ma)
    }

    /// The SOC the relaxed cell voltages implied at the last rest calibration (mean of the
    /// cells, temperature-corrected), before weighing it against the count.
    pub fn ocv_soc(&self) -> Option<Soc> {
        (self.last_ocv >= 0).then(|| Soc::from_permille_clamped((self.last_ocv + 500) / 1_000))
    }

    /// `true` when the last step was a rest.
    pub fn at_rest(&self) -> bool {
        self.at_rest
    }

    /// What to persist for the next boot.
    pub fn stored(&self) -> StoredSoc {
        StoredSoc {
            soc: self.soc(),
            full_capacity: self.full_capacity(),
            cycles: self.cycles,
            current_offset: self.current_offset(),
        }
    }

    /// The next calibration event, oldest first. Poll after every
    /// [`update`](Self::update) until `None`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SocEvent> {
        self.events.pop_front()
    }

    /// Whether an event waits for [`poll_event`](Self::poll_event) (shorter than a
    /// `poll_event` that finds none).
    pub fn has_event(&self) -> bool {
        !self.events.is_empty()
    }

    /// OCV of one cell at the present SOC and 25 °C, from the table.
    pub fn expected_ocv(&self) -> MilliVolts {
        MilliVolts::from_mv((ocv_at(&self.cfg.ocv_mv, self.soc_ppm()) / 16).max(0) as u32)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// The per-Ah currents saturate at the extremes of the configuration instead of
    /// overflowing (twice the dead band once wrapped to a negative charge-tail threshold).
    #[test]
    fn extreme_per_ah_currents_saturate() {
        let cfg = SocConfig {
            deadband_ma_per_ah: u16::MAX,
            rest_current_ma_per_ah: u16::MAX,
            tail_current_ma_per_ah: u16::MAX,
            ..SocConfig::lfp()
        };
        let e = SocEstimator::new(cfg, MilliAmpHours::from_mah(u32::MAX), None);
        assert_eq!(e.deadband_ma, i32::MAX);
        assert_eq!(e.tail_ma, i32::MAX);
    }

    /// One thing that can happen to the estimator.
    #[derive(Clone, Debug)]
    enum Op {
        /// `repeat` steps `dt_ms` apart at `ma` with 16 cells around `mv`.
        Step {
            dt_ms: u32,
            ma: i32,
            mv: u32,
            spread: u32,
            temp: Option<i16>,
            open: bool,
            repeat: u16,
        },
        /// A CV charge tapering at the full threshold, then held there.
        Full,
        /// A small discharge with the cells at the empty threshold, held there.
        Empty,
        /// `permille` of the nominal capacity out (negative: in) at 1 C.
        Move(i32),
        Hold(u32),
        SetSoc(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        let step = (
            prop_oneof![Just(100u32), 0u32..5_000, Just(u32::MAX)],
            prop_oneof![
                Just(0i32),
                -3_000i32..3_000,
                -300_000i32..300_000,
                any::<i32>()
            ],
            0u32..5_000,
            0u32..6,
            prop::option::of(-400i16..700),
            any::<bool>(),
            1u16..300,
        )
            .prop_map(|(dt_ms, ma, mv, spread, temp, open, repeat)| Op::Step {
                dt_ms,
                ma,
                mv,
                spread,
                temp,
                open,
                repeat,
            });
        prop_oneof![
            8 => step,
            2 => Just(Op::Full),
            2 => Just(Op::Empty),
            3 => prop_oneof![-1_100i32..1_100, 850i32..1_100, -1_100i32..-850].prop_map(Op::Move),
            1 => (0u32..100_000).prop_map(Op::Hold),
            1 => (0u16..=1_000).prop_map(Op::SetSoc),
        ]
    }

    /// The steps (dt ms, mA, mV of all 16 cells) that an `Op::Full`/`Empty`/`Move` stands for.
    fn scripted(est: &SocEstimator, op: &Op) -> Vec<(u32, i32, u32)> {
        let full_mv = est.cfg.full_threshold().as_mv();
        let empty_mv = est.cfg.empty_threshold().as_mv();
        let mid_mv = u32::from(est.cfg.ocv_mv[10]);
        let taper = -(est.deadband_ma / 2 + est.tail_ma / 2);
        let cut_off = est.deadband_ma / 2 + est.empty_ma / 2 + 1;
        let one_c = est.nominal_mah.min(i32::MAX as u32) as i32;
        match *op {
            Op::Full => core::iter::once((1_000, est.tail_ma.saturating_mul(-2), full_mv))
                .chain((0..12).map(|_| (1_000, taper, full_mv)))
                .collect(),
            Op::Empty => (0..12).map(|_| (1_000, cut_off, empty_mv)).collect(),
            Op::Move(permille) => {
                let ma = if permille > 0 { one_c } else { -one_c };
                (0..permille.unsigned_abs() * 60 / 1_000)
                    .map(|_| (60_000, ma, mid_mv))
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Dividends and divisors of every width, and the edges of the 16-bit digits.
    fn wide_u64() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            (0u32..64, any::<u64>()).prop_map(|(bits, v)| v >> bits),
            (0u32..64).prop_map(|bits| 1u64 << bits),
            (0u32..64).prop_map(|bits| (1u64 << bits) - 1),
        ]
    }

    fn wide_u32() -> impl Strategy<Value = u32> {
        prop_oneof![
            any::<u32>(),
            (0u32..32, any::<u32>()).prop_map(|(bits, v)| (v >> bits).max(1)),
            (0u32..32).prop_map(|bits| 1u32 << bits),
            (1u32..32).prop_map(|bits| (1u32 << bits) - 1),
            Just(u32::MAX),
            Just(1 << 16 | 1),
        ]
    }

    #[test]
    fn div_u64_is_exact_at_the_edges() {
        let edges = [
            0u64,
            1,
            2,
            0xFFFF,
            1 << 16,
            1 << 31,
            (1 << 32) - 1,
            1 << 32,
            u64::MAX,
        ];
        for n in edges
            .iter()
            .flat_map(|&e| [e, e.wrapping_sub(1), e.wrapping_add(1)])
        {
            for d in edges
                .iter()
                .flat_map(|&e| [e, e.wrapping_sub(1), e.wrapping_add(1)])
            {
                if d != 0 {
                    assert_eq!(div_u64(n, d), n / d, "{n} / {d}");
                }
            }
        }
    }

    /// Exact multiples and their neighbours, for divisors of every width: they reach the
    /// bounds of a digit's correction (a corrected remainder of exactly 2^16, a zero
    /// partial remainder), which random dividends seldom do.
    #[test]
    fn div_u64_is_exact_on_exact_multiples() {
        for shift in 0..32 {
            for d in [
                1u64 << shift,
                (1 << shift) + 1,
                (3 << shift) / 2 + 7,
                u64::from(u32::MAX) >> shift,
            ] {
                let d = d.clamp(1, u64::from(u32::MAX));
                for k in [1u64 << 32, (1 << 32) + 1, 0x1234_5678_9ABC, u64::MAX / d] {
                    let n = k.saturating_mul(d);
                    for n in [n, n - 1, n.saturating_add(1)] {
                        assert_eq!(div_u64(n, d), n / d, "{n} / {d}");
                    }
                }
            }
        }
    }

    proptest! {
        /// The 32-bit long division is the 64-bit one, for 32-bit divisors (and the
        /// fallback for wider ones).
        #[test]
        fn div_u64_is_the_64_bit_division(
            n in wide_u64(),
            d in prop_oneof![wide_u32().prop_map(u64::from), wide_u64().prop_map(|d| d.max(1))],
        ) {
            prop_assert_eq!(div_u64(n, d), n / d);
        }

        /// A quotient's digits from dividends near multiples of the divisor (where the
        /// estimates need their corrections).
        #[test]
        fn div_u64_is_exact_near_multiples(
            d in wide_u32(),
            q in wide_u64(),
            r in -3i64..=3,
        ) {
            let n = (q / u64::from(d).max(1)).wrapping_mul(u64::from(d)).wrapping_add_signed(r);
            prop_assert_eq!(div_u64(n, u64::from(d)), n / u64::from(d));
        }

        /// The SOC's conversions are the 64-bit formulas they replace, at any capacity.
        #[test]
        fn ppm_conversions_are_the_64_bit_formulas(
            full_mah in prop_oneof![any::<u32>(), 0u32..1_000_000, Just(u32::MAX / 18), Just(u32::MAX / 18 + 1)],
            frac in 0u64..=1_000_000,
            ppm in prop_oneof![-1_000i64..1_001_000, 0i64..=1_000_000],
        ) {
            let full = i64::from(full_mah) * MAMS_PER_MAH;
            let charge = (full as u64 / 1_000_000 * frac) as i64;
            prop_assert_eq!(charge_ppm(charge, full_mah), charge * 5 / (i64::from(full_mah) * 18).max(1));
            prop_assert_eq!(charge_ppm(full, full_mah), full * 5 / (i64::from(full_mah) * 18).max(1));
            prop_assert_eq!(ppm_charge(ppm, full_mah), ppm.clamp(0, PPM_FULL) * i64::from(full_mah) * 18 / 5);
        }

        /// The 64-bit path with its 128-bit fallback is the 128-bit formula, saturated.
        #[test]
        fn mul_div_is_the_wide_formula(
            a in prop_oneof![any::<i64>(), -1i64 << 40..1 << 40],
            b in prop_oneof![any::<i64>(), -1i64 << 30..1 << 30],
            c in any::<i64>(),
        ) {
            let want = if c == 0 {
                0
            } else {
                (i128::from(a) * i128::from(b) / i128::from(c)).clamp(i64::MIN.into(), i64::MAX.into()) as i64
            };
            prop_assert_eq!(mul_div(a, b, c), want);
        }
    }

    /// At an exact quotient (`a = (tau + r) x`) the quiet end lies one past
    /// `now + REFINE_EVERY`: the boundary the random cases seldom reach.
    #[test]
    fn quiet_passes_at_an_exact_quotient() {
        let cfg = SocConfig {
            ocv_sigma_mv: 0,
            relax_sigma_mv: 10,
            relax_tau_ms: Duration::from_millis(1_000),
            ..SocConfig::lfp()
        };
        let e = SocEstimator::new(cfg, MilliAmpHours::from_mah(100_000), None);
        // x = ceil(1000 * 16 / 16) = 1000 µV and a = 10 mV * 1000 ms: 10 s, less tau.
        assert_eq!(e.relax_until(16, 0), 9_000);
        let since = Instant::from_millis(5_000);
        for rested in [7_999, 8_000, 8_001] {
            let now = Instant::from_millis(5_000 + u64::from(rested));
            let passes = e.quiet_passes(16, 0, now, since, Duration::from_millis(rested));
            // The end, `since + 9001`, is at most `now + 1000` from a rest of 8001 ms on.
            assert_eq!(passes, rested >= 8_001, "rested {rested} ms");
        }
    }

    /// An estimator over the relaxation parameters `relax_until` and `quiet_passes` read
    /// (small, usual values and any).
    fn relaxing() -> impl Strategy<Value = SocEstimator> {
        (
            prop_oneof![0u16..20, any::<u16>()],
            prop_oneof![0u16..100, any::<u16>()],
            prop_oneof![0u32..1_000_000, any::<u32>()],
        )
            .prop_map(|(ocv_sigma_mv, relax_sigma_mv, relax_tau_ms)| {
                let cfg = SocConfig {
                    ocv_sigma_mv,
                    relax_sigma_mv,
                    relax_tau_ms: Duration::from_millis(relax_tau_ms),
                    ..SocConfig::lfp()
                };
                SocEstimator::new(cfg, MilliAmpHours::from_mah(100_000), None)
            })
    }

    proptest! {
        /// `relax_until` is the last rest at which `voltage_s16` still gives the value it
        /// gave at a shorter rest: the next millisecond gives less.
        #[test]
        fn relax_until_is_where_the_voltage_sigma_steps(
            e in relaxing(),
            temp_uv in prop_oneof![0u64..20_000, 0u64..=u64::from(u32::MAX)],
            rested in prop_oneof![0u32..10_000_000, any::<u32>()],
        ) {
            let s16 = e.voltage_s16(Duration::from_millis(rested), temp_uv);
            let until = e.relax_until(s16, temp_uv);
            prop_assert!(until >= u64::from(rested));
            if until < u64::from(u32::MAX) {
                let at = |ms: u64| e.voltage_s16(Duration::from_millis(ms as u32), temp_uv);
                prop_assert_eq!(at(until), s16);
                prop_assert!(at(until + 1) < s16);
            } else {
                prop_assert_eq!(e.voltage_s16(Duration::MAX, temp_uv), s16);
            }
        }

        /// `quiet_passes` says exactly whether the quiet end `relax_until` gives lies within
        /// `REFINE_EVERY` of now where its 32-bit arithmetic reaches (as at a usual
        /// configuration), and never wrongly beyond: tried mostly right at that boundary.
        #[test]
        fn quiet_passes_is_the_division(
            e in relaxing(),
            temp_uv in prop_oneof![0u64..20_000, 0u64..=u64::from(u32::MAX)],
            rested in prop_oneof![0u32..10_000_000, any::<u32>()],
            since in prop_oneof![0u64..1_000_000, any::<u64>()],
            s16 in prop_oneof![-2i32..3, 0i32..100_000, any::<i32>()],
            kind in 0u8..3,
            delta in -3i64..=3,
        ) {
            // The sigma a refinement at this rest derives (or any), and a rest at `rested`
            // or right where the end of that sigma is `REFINE_EVERY` away.
            let s16 = if kind == 0 { s16 } else { e.voltage_s16(Duration::from_millis(rested), temp_uv) };
            let until = e.relax_until(s16, temp_uv);
            let rested = if kind == 2 {
                (until as i64 + 1 - 1_000 + delta).clamp(0, i64::from(u32::MAX)) as u32
            } else {
                rested
            };
            let since = Instant::from_millis(since);
            let now = Instant::from_millis(since.as_millis().wrapping_add(u64::from(rested)));
            let rested = now.duration_since(since);
            let end = if until >= u64::from(u32::MAX) {
                u64::MAX
            } else {
                since.as_millis().saturating_add(until + 1)
            };
            let passes = e.quiet_passes(s16, temp_uv, now, since, rested);
            let r = u64::from(rested.as_millis()) + 1_000;
            let need = (1_000 * u64::from(s16.unsigned_abs())).div_ceil(16);
            let x = need.saturating_sub(u64::from(e.cfg.ocv_sigma_mv) * 1_000 + temp_uv);
            let tau = u64::from(e.cfg.relax_tau_ms.as_millis().max(1));
            let reach = now >= since
                && r < u64::from(u32::MAX)
                && s16 > 1
                && s16 < 1 << 25
                && x > 0
                && tau + r <= u64::from(u32::MAX);
            if reach {
                prop_assert_eq!(passes, end <= now.as_millis() + 1_000);
            } else {
                prop_assert!(!passes);
            }
        }
    }

    /// One planned update: dt ms, mA, cells, temperature, path open.
    type Planned = (u32, i32, Vec<MilliVolts>, Option<i16>, bool);

    /// Every cached value equals the direct computation from the state it caches.
    fn check_caches(e: &SocEstimator) -> Result<(), TestCaseError> {
        let full = i128::from(e.full_mah) * i128::from(MAMS_PER_MAH);
        let charge = i128::from(e.charge);
        let div = |a: i128, b: i128| if b == 0 { 0 } else { a / b };
        let half_permille = div(charge * 2_000, full);
        let soc = Soc::from_permille_clamped(((half_permille + 1) / 2) as i32);
        prop_assert_eq!(e.soc(), soc);
        let mah = (charge / i128::from(MAMS_PER_MAH)).clamp(0, u32::MAX.into()) as u32;
        prop_assert_eq!(e.remaining(), MilliAmpHours::from_mah(mah));
        let soh = u64::from(e.full_mah) * 1_000 / u64::from(e.nominal_mah);
        prop_assert_eq!(e.soh().as_permille(), soh.min(u64::from(u16::MAX)) as u16);
        prop_assert_eq!(i128::from(e.soc_ppm()), div(charge * 1_000_000, full));
        let rounded = (i128::from(e.offset_fx) + (1 << (FILTER_SHIFT - 1))) >> FILTER_SHIFT;
        let rounded = rounded.clamp(i32::MIN.into(), i32::MAX.into()) as i32;
        prop_assert_eq!(e.current_offset(), MilliAmps::from_ma(rounded));
        // The uncertainty, as the 128-bit formula gives it.
        let f = full.max(1);
        let gain = i128::from(e.throughput()) * i128::from(e.cfg.gain_sigma_permille) * 1_000 / f;
        let offset = i128::from(e.active_ms) * i128::from(e.deadband_ma) * 1_000_000 / f;
        let sigma = (i128::from(e.sigma_base) + gain + offset).clamp(0, 1_000_000);
        prop_assert_eq!(i128::from(e.sigma_ppm_with(e.throughput())), sigma);
        // The filter's idle gain: a pass over the same readings would move nothing.
        if e.filt_idle_gain >= 0 {
            let g = i64::from(e.filt_idle_gain).min(1 << RECIP_SHIFT);
            for (f, v) in e.cell_filt.iter().zip(&e.filt_in[..usize::from(e.cells_n)]) {
                let target = i64::from(v.as_mv().min(u32::from(u16::MAX))) << FILTER_SHIFT;
                prop_assert_eq!(((target - f) * g) >> RECIP_SHIFT, 0);
            }
        }
        // The refinement memo is what the refinement computes for its key.
        if let Some((k, out)) = e.refined {
            prop_assert_eq!(e.clone().refine(&k), out);
        }
        // The segment hints change no look-up, and the quotient's SOC is the direct one.
        let (mut a, mut b) = (e.clone(), e.clone());
        b.sigma_seg = [0; 2];
        for (mv16, s16) in [(52_800, 16), (52_800, 560), (40_000, 1), (60_000, 3_000)] {
            prop_assert_eq!(a.meas_sigma(mv16, s16), soc_sigma(&e.cfg.ocv_mv, mv16, s16));
            prop_assert_eq!(b.meas_sigma(mv16, s16), soc_sigma(&e.cfg.ocv_mv, mv16, s16));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// After any sequence of steps, holds, overrides, calibrations and capacity
        /// learning, from a stored state or not, every cached value is the direct one.
        #[test]
        fn caches_equal_the_direct_formulas(
            chem in 0usize..3,
            stored in prop::option::of((0u16..=1_000, 0u32..300_000, -3_000i32..3_000)),
            cap in prop_oneof![Just(100_000u32), 1u32..2_000_000, Just(1), any::<u32>()],
            ops in prop::collection::vec(op(), 1..40),
        ) {
            let cfg = [SocConfig::lfp(), SocConfig::nmc(), SocConfig::lto()][chem];
            let stored = stored.map(|(soc, full, offset)| StoredSoc {
                soc: Soc::from_permille_clamped(soc.into()),
                full_capacity: MilliAmpHours::from_mah(full),
                cycles: 0,
                current_offset: MilliAmps::from_ma(offset),
            });
            let mut e = SocEstimator::new(cfg, MilliAmpHours::from_mah(cap), stored);
            check_caches(&e)?;
            let mut t = 0u64;
            for op in &ops {
                let mut steps: Vec<Planned> = Vec::new();
                match *op {
                    Op::Step { dt_ms, ma, mv, spread, temp, open, repeat } => {
                        let cells = (0..16)
                            .map(|k| MilliVolts::from_mv(mv + k * 7 % (spread + 1)))
                            .collect::<Vec<_>>();
                        for _ in 0..repeat {
                            steps.push((dt_ms, ma, cells.clone(), temp, open));
                        }
                    }
                    Op::Hold(dt) => {
                        t = t.saturating_add(u64::from(dt));
                        e.hold(Instant::from_millis(t));
                    }
                    Op::SetSoc(p) => e.set_soc(Soc::from_permille_clamped(p.into())),
                    _ => {
                        for (dt, ma, mv) in scripted(&e, op) {
                            steps.push((dt, ma, [MilliVolts::from_mv(mv); 16].to_vec(), None, false));
                        }
                    }
                }
                for (dt, ma, cells, temp, open) in &steps {
                    t = t.saturating_add(u64::from(*dt));
                    let out = e.update(&SocInput {
                        now: Instant::from_millis(t),
                        current: MilliAmps::from_ma(*ma),
                        cells,
                        temperature: temp.map(DeciCelsius::from_deci),
                        current_path_open: *open,
                    });
                    while e.poll_event().is_some() {}
                    prop_assert_eq!(out.soc, e.soc());
                    prop_assert_eq!(out.remaining, e.remaining());
                    check_caches(&e)?;
                }
                check_caches(&e)?;
            }
        }
    }
}
