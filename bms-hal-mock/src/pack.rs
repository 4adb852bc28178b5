//! [`SimPack`]: a physically plausible pack of 8..=20 cells in series, its MOSFETs,
//! balancing resistors and the load-side capacitance.
//!
//! Per cell: an equivalent circuit model (open-circuit voltage from a 21-point table,
//! series resistance R0, one RC pair R1/C1), its own capacity and charge, and a lumped
//! thermal node. The pack: charge/discharge/pre-charge MOSFETs that really cut the
//! current, a MOSFET thermal node (I²·Rds_on, body diode), balancing resistors that
//! bleed the selected cells (I = V/R) and heat the board, a load capacitance charged
//! through the pre-charge resistor, and an external world ([`Request`]: load current,
//! a CC-CV charger, ambient temperature, ACC).
//!
//! Floating point is fine here: this is the host simulation, not the control path. The
//! ports in [`crate::ports`] turn its values into the core's unit types.
//!
//! Conventions: currents in amps, **positive = discharge** (as in the core); voltages in
//! volts; temperatures in °C; cell indices 0-based (index `n` = cell `n + 1` = bit `n`).
//!
//! # Examples
//! ```
//! use bms_core::{ports::FetState, time::Duration};
//! use bms_hal_mock::pack::{PackParams, Request, SimPack};
//!
//! let mut pack = SimPack::new(PackParams::lfp(16)).unwrap();
//! pack.set_fets(FetState { charge: true, discharge: true, precharge: false });
//! let load = Request { load_a: 50.0, ..Request::rest(25.0) };
//! for _ in 0..600 {
//!     pack.step(Duration::from_millis(100), &load);
//! }
//! assert!((pack.current_a() - 50.0).abs() < 1e-9);
//! assert!(pack.true_soc() < 0.5); // started at 50 % by default
//! ```

use core::fmt;

use bms_core::measure::MAX_CELLS;
use bms_core::ports::FetState;
use bms_core::time::{Duration, Instant};

use crate::rng::XorShift64;

/// Number of points of an OCV table: 0 %, 5 %, ..., 100 % SOC.
pub const OCV_POINTS: usize = 21;

/// LFP open-circuit voltage at 25 °C, mV at 0..100 % SOC in 5 % steps (A123 26650 model,
/// the table of `shared/soc/lfp_cycle.json`).
pub const LFP_OCV_MV: [u16; OCV_POINTS] = [
    2223, 2832, 2997, 3122, 3172, 3188, 3209, 3235, 3254, 3263, 3266, 3268, 3269, 3270, 3274, 3294,
    3310, 3313, 3314, 3316, 3600,
];

/// NMC open-circuit voltage at 25 °C, mV at 0..100 % SOC in 5 % steps (LG M50 model,
/// the table of `shared/soc/nmc_cycle.json`).
pub const NMC_OCV_MV: [u16; OCV_POINTS] = [
    2545, 3118, 3302, 3436, 3486, 3530, 3583, 3630, 3668, 3706, 3752, 3799, 3841, 3890, 3948, 3995,
    4042, 4081, 4097, 4124, 4200,
];

/// Cell SOC bounds of the model: charge beyond them is physically refused (the cell is
/// destroyed long before); between 0/100 % and these bounds the voltage runs away.
pub const SOC_MIN: f64 = -0.05;
/// Upper SOC bound of the model; see [`SOC_MIN`].
pub const SOC_MAX: f64 = 1.05;

/// Voltage rise above the 100 % table point per unit of SOC beyond 100 % (V): 80 mV per %.
const OVERCHARGE_SLOPE_V: f64 = 8.0;
/// Voltage fall below the 0 % table point per unit of SOC below 0 % (V): 200 mV per %.
const OVERDISCHARGE_SLOPE_V: f64 = 20.0;
/// Seconds in the 30-day month of [`PackParams::self_discharge_per_month`].
const SECONDS_PER_MONTH: f64 = 30.0 * 86_400.0;
/// Highest cell voltage the model produces (V).
const CELL_V_CEILING: f64 = 5.0;

/// Linear interpolation in a 21-point OCV table, volts at `soc` (0..=1), clamped to the
/// table's ends outside that range.
///
/// # Examples
/// ```
/// use bms_hal_mock::pack::{ocv_from_table, NMC_OCV_MV};
/// assert!((ocv_from_table(&NMC_OCV_MV, 0.5) - 3.752).abs() < 1e-12);
/// assert!((ocv_from_table(&NMC_OCV_MV, 0.525) - 3.7755).abs() < 1e-9);
/// ```
pub fn ocv_from_table(table: &[u16; OCV_POINTS], soc: f64) -> f64 {
    let x = soc.clamp(0.0, 1.0) * (OCV_POINTS - 1) as f64;
    let i = (x.floor() as usize).min(OCV_POINTS - 2);
    let frac = x - i as f64;
    let lo = f64::from(table[i]);
    let hi = f64::from(table[i + 1]);
    (lo + (hi - lo) * frac) / 1000.0
}

/// A cell chemistry: its OCV table and how the OCV moves with temperature.
#[derive(Clone, Debug, PartialEq)]
pub struct Chemistry {
    /// Open-circuit voltage at 25 °C, mV at 0..100 % SOC in 5 % steps.
    pub ocv_mv: [u16; OCV_POINTS],
    /// OCV change per kelvin away from 25 °C, mV/K (a lumped entropic coefficient).
    pub ocv_temp_coeff_mv_per_k: f64,
}

impl Chemistry {
    /// LFP with [`LFP_OCV_MV`].
    pub const LFP: Chemistry = Chemistry {
        ocv_mv: LFP_OCV_MV,
        ocv_temp_coeff_mv_per_k: -0.1,
    };
    /// NMC with [`NMC_OCV_MV`].
    pub const NMC: Chemistry = Chemistry {
        ocv_mv: NMC_OCV_MV,
        ocv_temp_coeff_mv_per_k: -0.2,
    };

    /// A chemistry from any 21-point table (mV at 0..100 % in 5 % steps, 25 °C).
    pub const fn from_table(ocv_mv: [u16; OCV_POINTS], ocv_temp_coeff_mv_per_k: f64) -> Self {
        Chemistry {
            ocv_mv,
            ocv_temp_coeff_mv_per_k,
        }
    }

    /// Open-circuit voltage (V) at `soc` (fraction; may be outside 0..=1, where the voltage
    /// runs away: up 80 mV per % above full, down 200 mV per % below empty) and `temp_c`.
    pub fn ocv(&self, soc: f64, temp_c: f64) -> f64 {
        let base = ocv_from_table(&self.ocv_mv, soc);
        let runaway = if soc > 1.0 {
            (soc - 1.0) * OVERCHARGE_SLOPE_V
        } else if soc < 0.0 {
            soc * OVERDISCHARGE_SLOPE_V
        } else {
            0.0
        };
        let thermal = (temp_c - 25.0) * self.ocv_temp_coeff_mv_per_k / 1000.0;
        (base + runaway + thermal).clamp(0.0, CELL_V_CEILING)
    }
}

/// Everything that defines a simulated pack. Start from [`PackParams::lfp`] or
/// [`PackParams::nmc`] and change fields.
#[derive(Clone, Debug, PartialEq)]
pub struct PackParams {
    /// Cells in series, 8..=20.
    pub cells: usize,
    /// OCV table and temperature coefficient.
    pub chemistry: Chemistry,
    /// Nominal cell (parallel group) capacity, Ah.
    pub capacity_ah: f64,
    /// Relative standard deviation of the cell capacities (0.02 = 2 %), seeded.
    pub capacity_spread: f64,
    /// Mean initial cell SOC, 0..=1.
    pub initial_soc: f64,
    /// Standard deviation of the initial cell SOC (0.01 = 1 point), seeded.
    pub soc_spread: f64,
    /// Mean self-discharge per cell, fraction of capacity per 30 days (0.03 = 3 %/month);
    /// a constant leak current inside each cell, invisible to the current sensor.
    pub self_discharge_per_month: f64,
    /// Relative standard deviation of the self-discharge between cells, seeded.
    pub self_discharge_spread: f64,
    /// Series resistance R0 per cell at 25 °C, mΩ.
    pub r0_mohm: f64,
    /// RC-pair resistance R1 per cell at 25 °C, mΩ.
    pub r1_mohm: f64,
    /// RC-pair time constant R1·C1, s.
    pub tau1_s: f64,
    /// Arrhenius constant of R0 and R1 (K): R(T) = R(25 °C)·exp(k·(1/T − 1/298.15 K)).
    /// 3000 K makes them about 2.5x at 0 °C and 5x at -20 °C.
    pub resistance_activation_k: f64,
    /// Thermal mass of one cell, J/K.
    pub cell_heat_capacity_j_per_k: f64,
    /// Thermal conductance of one cell to ambient, W/K.
    pub cell_cooling_w_per_k: f64,
    /// On-resistance of the whole MOSFET path (charge + discharge FETs in series), mΩ.
    pub fet_rds_on_mohm: f64,
    /// Body-diode forward drop, V (used when one FET is open and its diode conducts).
    pub body_diode_v: f64,
    /// Thermal mass of the MOSFET heatsink, J/K.
    pub fet_heat_capacity_j_per_k: f64,
    /// Thermal conductance of the MOSFET heatsink to ambient, W/K.
    pub fet_cooling_w_per_k: f64,
    /// Balancing bleed resistor per channel, Ω (I = V_cell / R).
    pub balance_resistor_ohm: f64,
    /// Thermal mass of the balancing area of the board, J/K.
    pub board_heat_capacity_j_per_k: f64,
    /// Thermal conductance of the balancing area to ambient, W/K.
    pub board_cooling_w_per_k: f64,
    /// Capacitance on the load side (inverter DC link), µF.
    pub load_capacitance_uf: f64,
    /// Pre-charge resistor, Ω.
    pub precharge_resistor_ohm: f64,
    /// Bleed resistance across the load capacitance (discharges it when the FETs open), Ω.
    pub load_bleed_ohm: f64,
    /// The load (an inverter) starts drawing or feeding back only once its side is at
    /// least this fraction of the pack EMF (its DC bus is charged; always true through a
    /// closed discharge FET), so a load demand does not stall pre-charge.
    pub load_enable_fraction: f64,
    /// The load stops below this voltage (its under-voltage lockout), V.
    pub load_cutoff_v: f64,
    /// Initial temperature of every thermal node, °C.
    pub initial_temp_c: f64,
    /// Longest internal integration step, ms (1..=60000). Every model part is integrated
    /// exactly for a constant input or has time constants of tens of seconds, so 100 ms is
    /// accurate; raise it for months-long storage runs.
    pub max_substep_ms: u32,
    /// Seed for the capacity and SOC spread.
    pub seed: u64,
}

impl PackParams {
    /// A 100 Ah LFP pack of `cells` cells at 50 %, 1 % capacity spread, 0.5 point SOC spread.
    pub fn lfp(cells: usize) -> Self {
        PackParams {
            cells,
            chemistry: Chemistry::LFP,
            capacity_ah: 100.0,
            capacity_spread: 0.01,
            initial_soc: 0.5,
            soc_spread: 0.005,
            self_discharge_per_month: 0.0,
            self_discharge_spread: 0.3,
            r0_mohm: 0.5,
            r1_mohm: 0.3,
            tau1_s: 30.0,
            resistance_activation_k: 3000.0,
            cell_heat_capacity_j_per_k: 2_000.0,
            cell_cooling_w_per_k: 1.0,
            fet_rds_on_mohm: 1.0,
            body_diode_v: 0.7,
            fet_heat_capacity_j_per_k: 60.0,
            fet_cooling_w_per_k: 1.5,
            balance_resistor_ohm: 42.0,
            board_heat_capacity_j_per_k: 40.0,
            board_cooling_w_per_k: 0.5,
            load_capacitance_uf: 4_700.0,
            precharge_resistor_ohm: 100.0,
            load_bleed_ohm: 10_000.0,
            load_enable_fraction: 0.97,
            load_cutoff_v: 20.0,
            initial_temp_c: 25.0,
            max_substep_ms: 100,
            seed: 1,
        }
    }

    /// A 100 Ah NMC pack of `cells` cells; as [`PackParams::lfp`] with the NMC table and
    /// slightly higher resistance.
    pub fn nmc(cells: usize) -> Self {
        PackParams {
            chemistry: Chemistry::NMC,
            r0_mohm: 0.8,
            r1_mohm: 0.4,
            ..PackParams::lfp(cells)
        }
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ParamError`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), ParamError> {
        let positive = [
            ("capacity_ah", self.capacity_ah),
            ("r0_mohm", self.r0_mohm),
            ("r1_mohm", self.r1_mohm),
            ("tau1_s", self.tau1_s),
            (
                "cell_heat_capacity_j_per_k",
                self.cell_heat_capacity_j_per_k,
            ),
            ("fet_rds_on_mohm", self.fet_rds_on_mohm),
            ("fet_heat_capacity_j_per_k", self.fet_heat_capacity_j_per_k),
            ("balance_resistor_ohm", self.balance_resistor_ohm),
            (
                "board_heat_capacity_j_per_k",
                self.board_heat_capacity_j_per_k,
            ),
            ("load_capacitance_uf", self.load_capacitance_uf),
            ("precharge_resistor_ohm", self.precharge_resistor_ohm),
            ("load_bleed_ohm", self.load_bleed_ohm),
        ];
        if !(8..=MAX_CELLS).contains(&self.cells) {
            return Err(ParamError("cells"));
        }
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(ParamError(name));
            }
        }
        let non_negative = [
            ("capacity_spread", self.capacity_spread),
            ("soc_spread", self.soc_spread),
            ("self_discharge_per_month", self.self_discharge_per_month),
            ("self_discharge_spread", self.self_discharge_spread),
            ("resistance_activation_k", self.resistance_activation_k),
            ("cell_cooling_w_per_k", self.cell_cooling_w_per_k),
            ("body_diode_v", self.body_diode_v),
            ("fet_cooling_w_per_k", self.fet_cooling_w_per_k),
            ("board_cooling_w_per_k", self.board_cooling_w_per_k),
            ("load_cutoff_v", self.load_cutoff_v),
        ];
        for (name, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ParamError(name));
            }
        }
        if !(0.0..=1.0).contains(&self.load_enable_fraction) {
            return Err(ParamError("load_enable_fraction"));
        }
        if !(0.0..=1.0).contains(&self.initial_soc) {
            return Err(ParamError("initial_soc"));
        }
        if !(1..=60_000).contains(&self.max_substep_ms) {
            return Err(ParamError("max_substep_ms"));
        }
        if !(-40.0..=100.0).contains(&self.initial_temp_c) {
            return Err(ParamError("initial_temp_c"));
        }
        Ok(())
    }
}

/// A [`PackParams`] field out of range; the payload is the field name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamError(pub &'static str);

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pack parameter `{}` out of range", self.0)
    }
}

impl std::error::Error for ParamError {}

/// A CC-CV charger on the output terminals. It regulates on the voltage it sees (the pack
/// terminals through closed FETs), so its current tapers once that voltage reaches the limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Charger {
    /// Constant-current limit, A (positive).
    pub current_limit_a: f64,
    /// Constant-voltage limit, V.
    pub voltage_limit_v: f64,
}

/// The external world during one step: what the load and the charger ask for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    /// Load current demand, A: positive = the load draws (discharge), negative = the load
    /// feeds back (regeneration). Flows only if the MOSFET path allows it.
    pub load_a: f64,
    /// A charger connected to the output terminals, or `None`.
    pub charger: Option<Charger>,
    /// Ambient temperature, °C.
    pub ambient_c: f64,
    /// The ACC (key) input is active.
    pub acc: bool,
}

impl Request {
    /// No load, no charger, ACC off, at `ambient_c`.
    pub const fn rest(ambient_c: f64) -> Self {
        Request {
            load_a: 0.0,
            charger: None,
            ambient_c,
            acc: false,
        }
    }
}

impl Default for Request {
    fn default() -> Self {
        Request::rest(25.0)
    }
}

/// One cell: charge, RC-pair voltage, temperature.
#[derive(Clone, Debug, PartialEq)]
struct Cell {
    /// Capacity, A·s.
    capacity_as: f64,
    /// Charge held, A·s (`soc * capacity`).
    charge_as: f64,
    /// Voltage across the RC pair, V (positive while discharging).
    v1: f64,
    /// Temperature, °C.
    temp_c: f64,
    /// Bleed current of the last step, A.
    bleed_a: f64,
    /// Self-discharge current, A.
    leak_a: f64,
}

/// The simulated pack. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct SimPack {
    params: PackParams,
    cells: Vec<Cell>,
    fets: FetState,
    balance_mask: u32,
    fet_temp_c: f64,
    board_temp_c: f64,
    load_v: f64,
    load_enabled: bool,
    current_a: f64,
    charger_current_a: f64,
    ambient_c: f64,
    request: Request,
    quiescent_a: f64,
    throughput_as: f64,
    now: Instant,
}

/// A thermal node after `h` seconds with constant heat input `heat` (W), conductance `g`
/// (W/K) to `ambient` and heat capacity `c` (J/K): exact for a constant input, so stable
/// for any step length.
fn relax(temp: f64, ambient: f64, heat: f64, g: f64, c: f64, h: f64) -> f64 {
    if g > 0.0 {
        let target = ambient + heat / g;
        target + (temp - target) * (-h * g / c).exp()
    } else {
        temp + h * heat / c
    }
}

/// An RC node from `v0` towards `v_inf` with time constant `tau` over `h` seconds:
/// `(voltage at the end, mean voltage over the step)`, both exact.
fn rc_step(v0: f64, v_inf: f64, tau: f64, h: f64) -> (f64, f64) {
    if h <= 0.0 {
        return (v0, v0);
    }
    let decay = (-h / tau).exp();
    let end = v_inf + (v0 - v_inf) * decay;
    let mean = v_inf + (v0 - v_inf) * tau / h * (1.0 - decay);
    (end, mean)
}

/// Arrhenius factor of a resistance at `temp_c` relative to 25 °C.
fn arrhenius(activation_k: f64, temp_c: f64) -> f64 {
    let t = (temp_c + 273.15).max(150.0);
    (activation_k * (1.0 / t - 1.0 / 298.15)).exp()
}

impl SimPack {
    /// A pack from `params`, with the capacity and SOC spread drawn from `params.seed`.
    /// All MOSFETs start open, the load side at 0 V, the clock at [`Instant::ZERO`].
    ///
    /// # Errors
    /// [`ParamError`] from [`PackParams::validate`].
    pub fn new(params: PackParams) -> Result<Self, ParamError> {
        params.validate()?;
        let mut rng = XorShift64::new(params.seed);
        let mut cells: Vec<Cell> = (0..params.cells)
            .map(|_| {
                let cap =
                    params.capacity_ah * 3600.0 * (1.0 + params.capacity_spread * rng.gauss());
                let cap = cap.max(params.capacity_ah * 360.0);
                let soc = (params.initial_soc + params.soc_spread * rng.gauss()).clamp(0.0, 1.0);
                Cell {
                    capacity_as: cap,
                    charge_as: soc * cap,
                    v1: 0.0,
                    temp_c: params.initial_temp_c,
                    bleed_a: 0.0,
                    leak_a: 0.0,
                }
            })
            .collect();
        // Drawn after the spreads above, so adding self-discharge keeps a seed's pack.
        for c in &mut cells {
            let rate = params.self_discharge_per_month
                * (1.0 + params.self_discharge_spread * rng.gauss()).max(0.0);
            c.leak_a = rate * c.capacity_as / SECONDS_PER_MONTH;
        }
        Ok(SimPack {
            fet_temp_c: params.initial_temp_c,
            board_temp_c: params.initial_temp_c,
            ambient_c: params.initial_temp_c,
            request: Request::rest(params.initial_temp_c),
            params,
            cells,
            fets: FetState::OPEN,
            balance_mask: 0,
            load_v: 0.0,
            load_enabled: false,
            current_a: 0.0,
            charger_current_a: 0.0,
            quiescent_a: 0.0,
            throughput_as: 0.0,
            now: Instant::ZERO,
        })
    }

    /// The parameters the pack was built from.
    pub fn params(&self) -> &PackParams {
        &self.params
    }

    /// Number of cells in series.
    pub fn cell_count(&self) -> usize {
        self.cells.len()
    }

    /// Simulated time: the sum of every `dt` given to [`SimPack::step`].
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Drives the MOSFETs; takes effect from the next step.
    pub fn set_fets(&mut self, fets: FetState) {
        self.fets = fets;
    }

    /// The MOSFET state.
    pub fn fets(&self) -> FetState {
        self.fets
    }

    /// Closes the balancing switches of the cells in `mask` (bit 0 = cell 1); bits past the
    /// cell count are ignored.
    pub fn set_balance_mask(&mut self, mask: u32) {
        let valid = if self.cells.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << self.cells.len()) - 1
        };
        self.balance_mask = mask & valid;
    }

    /// The balancing switches that are closed.
    pub fn balance_mask(&self) -> u32 {
        self.balance_mask
    }

    /// Sets the BMS's own supply current drawn from the whole stack, mA (e.g. 10 mA active,
    /// 5 mA sleep, 0.02 mA deep sleep). It drains every cell but bypasses the current sensor.
    pub fn set_quiescent_ma(&mut self, ma: f64) {
        self.quiescent_a = ma.max(0.0) / 1000.0;
    }

    /// Overrides the SOC of cell `index` (0-based), clamped to the model bounds; out-of-range
    /// indices are ignored. For building imbalanced packs.
    pub fn set_cell_soc(&mut self, index: usize, soc: f64) {
        if let Some(c) = self.cells.get_mut(index) {
            c.charge_as = soc.clamp(SOC_MIN, SOC_MAX) * c.capacity_as;
        }
    }

    /// Overrides the capacity of cell `index` (0-based, Ah), keeping its SOC; out-of-range
    /// indices and non-positive capacities are ignored.
    pub fn set_cell_capacity_ah(&mut self, index: usize, ah: f64) {
        if let Some(c) = self.cells.get_mut(index) {
            if ah > 0.0 && ah.is_finite() {
                let soc = c.charge_as / c.capacity_as;
                c.capacity_as = ah * 3600.0;
                c.charge_as = soc * c.capacity_as;
            }
        }
    }

    /// Sets every thermal node (cells, MOSFET, board) to `temp_c`, e.g. a pack stored cold.
    pub fn set_all_temperatures(&mut self, temp_c: f64) {
        for c in &mut self.cells {
            c.temp_c = temp_c;
        }
        self.fet_temp_c = temp_c;
        self.board_temp_c = temp_c;
    }

    /// The request of the last step (the world as the board's inputs see it).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Pack current through the terminals during the last step, A, positive = discharge
    /// (pre-charge current included; bleed and quiescent currents excluded).
    pub fn current_a(&self) -> f64 {
        self.current_a
    }

    /// Current the charger delivered during the last step, A (positive).
    pub fn charger_current_a(&self) -> f64 {
        self.charger_current_a
    }

    /// Integral of [`SimPack::current_a`] over time since creation, A·s (positive = net
    /// discharge). Every cell's charge changes by exactly this, plus its own bleed,
    /// quiescent and self-discharge currents.
    pub fn throughput_as(&self) -> f64 {
        self.throughput_as
    }

    /// SOC of cell `index` (fraction; between [`SOC_MIN`] and [`SOC_MAX`]), `None` past the end.
    pub fn cell_soc(&self, index: usize) -> Option<f64> {
        self.cells.get(index).map(|c| c.charge_as / c.capacity_as)
    }

    /// Capacity of cell `index`, Ah.
    pub fn cell_capacity_ah(&self, index: usize) -> Option<f64> {
        self.cells.get(index).map(|c| c.capacity_as / 3600.0)
    }

    /// Charge held by cell `index`, A·s.
    pub fn cell_charge_as(&self, index: usize) -> Option<f64> {
        self.cells.get(index).map(|c| c.charge_as)
    }

    /// Pack SOC as the mean cell SOC, clamped to 0..=1 (the ground truth of `trace.csv`).
    pub fn true_soc(&self) -> f64 {
        let n = self.cells.len().max(1) as f64;
        (self
            .cells
            .iter()
            .map(|c| c.charge_as / c.capacity_as)
            .sum::<f64>()
            / n)
            .clamp(0.0, 1.0)
    }

    /// [`SimPack::true_soc`] in permille, rounded.
    pub fn true_soc_permille(&self) -> u16 {
        (self.true_soc() * 1000.0).round() as u16
    }

    /// Open-circuit voltage of cell `index` at its SOC and temperature, V.
    pub fn cell_ocv_v(&self, index: usize) -> Option<f64> {
        self.cells.get(index).map(|c| {
            self.params
                .chemistry
                .ocv(c.charge_as / c.capacity_as, c.temp_c)
        })
    }

    fn r0(&self, c: &Cell) -> f64 {
        self.params.r0_mohm / 1000.0 * arrhenius(self.params.resistance_activation_k, c.temp_c)
    }

    fn ocv(&self, c: &Cell) -> f64 {
        self.params
            .chemistry
            .ocv(c.charge_as / c.capacity_as, c.temp_c)
    }

    /// Terminal voltage of cell `index`, V, with the pack current and its bleed current.
    pub fn cell_voltage_v(&self, index: usize) -> Option<f64> {
        self.cells.get(index).map(|c| {
            (self.ocv(c) - c.v1 - (self.current_a + c.bleed_a) * self.r0(c))
                .clamp(0.0, CELL_V_CEILING)
        })
    }

    /// Voltage of cell `index` as a cell monitor measures it, V: with the balancing switch
    /// open for the measurement, so the bleed current does not drop across R0.
    pub fn cell_sense_v(&self, index: usize) -> Option<f64> {
        self.cells
            .get(index)
            .map(|c| (self.ocv(c) - c.v1 - self.current_a * self.r0(c)).clamp(0.0, CELL_V_CEILING))
    }

    /// Battery-side pack voltage (sum of the cell terminal voltages), V.
    pub fn pack_voltage_v(&self) -> f64 {
        (0..self.cells.len())
            .filter_map(|i| self.cell_voltage_v(i))
            .sum()
    }

    /// Load-side voltage (after the MOSFETs), V.
    pub fn load_voltage_v(&self) -> f64 {
        self.load_v
    }

    /// Temperature of cell `index`, °C.
    pub fn cell_temp_c(&self, index: usize) -> Option<f64> {
        self.cells.get(index).map(|c| c.temp_c)
    }

    /// MOSFET heatsink temperature, °C.
    pub fn fet_temp_c(&self) -> f64 {
        self.fet_temp_c
    }

    /// Balancing area temperature, °C.
    pub fn board_temp_c(&self) -> f64 {
        self.board_temp_c
    }

    /// Ambient temperature of the last step, °C.
    pub fn ambient_c(&self) -> f64 {
        self.ambient_c
    }

    /// Self-discharge current of cell `index`, A.
    pub fn cell_self_discharge_a(&self, index: usize) -> Option<f64> {
        self.cells.get(index).map(|c| c.leak_a)
    }

    /// Bleed current of cell `index` during the last step, A.
    pub fn cell_bleed_a(&self, index: usize) -> Option<f64> {
        self.cells.get(index).map(|c| c.bleed_a)
    }

    /// Advances the physics by `dt` under `request` (in internal steps of at most 10 ms).
    pub fn step(&mut self, dt: Duration, request: &Request) {
        self.request = *request;
        self.ambient_c = request.ambient_c;
        let mut left = dt.as_millis();
        while left > 0 {
            let h = left.min(self.params.max_substep_ms.max(1));
            self.substep(f64::from(h) / 1000.0, request);
            left -= h;
        }
        self.now += dt;
    }

    /// One explicit step of `h` seconds.
    fn substep(&mut self, h: f64, req: &Request) {
        let p = &self.params;
        let r_fet = p.fet_rds_on_mohm / 1000.0;
        // Cell EMFs and resistances at the start of the step.
        // Per cell: OCV, R0, R1 at the start of the step.
        let mut start = [(0.0, 0.0, 0.0); MAX_CELLS];
        let mut emf = 0.0;
        let mut r_cells = 0.0;
        for (c, slot) in self.cells.iter().zip(start.iter_mut()) {
            let arr = arrhenius(p.resistance_activation_k, c.temp_c);
            let ocv = p.chemistry.ocv(c.charge_as / c.capacity_as, c.temp_c);
            *slot = (ocv, p.r0_mohm / 1000.0 * arr, p.r1_mohm / 1000.0 * arr);
            emf += ocv - c.v1;
            r_cells += slot.1;
        }
        let r_path = r_cells + r_fet;

        // The load switches on once its side is charged (at once through a closed discharge
        // FET) and off below its lockout voltage.
        let v_seen = if self.fets.discharge {
            emf
        } else {
            self.load_v
        };
        if v_seen >= p.load_enable_fraction * emf {
            self.load_enabled = true;
        } else if v_seen < p.load_cutoff_v {
            self.load_enabled = false;
        }
        let load = if self.load_enabled { req.load_a } else { 0.0 };

        // Tied case: the load node is the battery through closed FETs.
        let charger = req.charger.map(|ch| {
            let c = load + (ch.voltage_limit_v - emf) / r_path;
            (ch, c.clamp(0.0, ch.current_limit_a.max(0.0)))
        });
        let charge_a = charger.map_or(0.0, |(_, c)| c);
        let tied = load - charge_a;
        let allowed = if tied > 0.0 {
            self.fets.discharge
        } else if tied < 0.0 {
            self.fets.charge
        } else {
            // With no current the load side follows the pack only through a closed discharge
            // FET; through the charge FET alone (discharge body diode blocking) it floats.
            self.fets.discharge
        };

        let current;
        let mut fet_heat;
        if allowed {
            current = tied;
            self.charger_current_a = charge_a;
            self.load_v = (emf - current * r_path).max(0.0);
            fet_heat = current * current * r_fet;
            // The open FET's body diode carries half the path.
            let diode =
                (current > 0.0 && !self.fets.charge) || (current < 0.0 && !self.fets.discharge);
            if diode {
                fet_heat = current * current * r_fet / 2.0 + p.body_diode_v * current.abs();
            }
        } else {
            // Decoupled: the load capacitance sees the pre-charge path, the bleed resistor,
            // the load and the charger.
            let c_load = p.load_capacitance_uf * 1e-6;
            let pre = self.fets.precharge;
            let r_pre = p.precharge_resistor_ohm;
            let ch_holds = charger.is_some_and(|(ch, _)| load.max(0.0) <= ch.current_limit_a);
            let v_mean = match charger {
                Some((ch, _)) if ch_holds => {
                    // The charger holds the node at its voltage limit.
                    self.load_v = ch.voltage_limit_v.max(0.0);
                    self.charger_current_a =
                        (load.max(0.0) + self.load_v / p.load_bleed_ohm).min(ch.current_limit_a);
                    self.load_v
                }
                _ => {
                    let mut g = 1.0 / p.load_bleed_ohm;
                    let mut j = 0.0;
                    if pre {
                        g += 1.0 / r_pre;
                        j += emf / r_pre;
                    }
                    let tau = c_load / g;
                    let v0 = self.load_v;
                    let draw = load.max(0.0);
                    self.charger_current_a = 0.0;
                    // With the load drawing, the node falls towards (j - draw) / g; when it
                    // crosses the lockout the load stops and the rest of the step runs
                    // without it. Both pieces are exact exponentials.
                    let v_inf_on = (j - draw) / g;
                    let (v_end, mean) = rc_step(v0, v_inf_on, tau, h);
                    if draw > 0.0 && v_end < p.load_cutoff_v {
                        let t1 = if v0 > p.load_cutoff_v {
                            tau * ((v0 - v_inf_on) / (p.load_cutoff_v - v_inf_on)).ln()
                        } else {
                            0.0
                        };
                        let t1 = t1.clamp(0.0, h);
                        let (_, mean1) = rc_step(v0, v_inf_on, tau, t1);
                        let (v2, mean2) = rc_step(v0.min(p.load_cutoff_v), j / g, tau, h - t1);
                        self.load_enabled = false;
                        self.load_v = v2.max(0.0);
                        (mean1 * t1 + mean2 * (h - t1)) / h
                    } else {
                        self.load_v = v_end.max(0.0);
                        mean
                    }
                }
            };
            // The pre-charge path conducts discharge current only.
            current = if pre {
                ((emf - v_mean) / r_pre).max(0.0)
            } else {
                0.0
            };
            fet_heat = 0.0;
        }
        self.current_a = current;
        self.throughput_as += current * h;

        // Cells: charge, RC pair, bleed, heat.
        let r_bal = p.balance_resistor_ohm;
        let tau1 = p.tau1_s;
        let (c_th, g_th) = (p.cell_heat_capacity_j_per_k, p.cell_cooling_w_per_k);
        let amb = req.ambient_c;
        let mut board_heat = 0.0;
        let decay1 = (-h / tau1).exp();
        for (i, (c, &(ocv, r0, r1))) in self.cells.iter_mut().zip(start.iter()).enumerate() {
            c.bleed_a = if self.balance_mask & (1 << i) != 0 {
                ((ocv - c.v1 - current * r0) / (r_bal + r0)).max(0.0)
            } else {
                0.0
            };
            board_heat += c.bleed_a * c.bleed_a * r_bal;
            let i_cell = current + c.bleed_a + self.quiescent_a + c.leak_a;
            c.charge_as =
                (c.charge_as - i_cell * h).clamp(SOC_MIN * c.capacity_as, SOC_MAX * c.capacity_as);
            let heat = i_cell * i_cell * r0 + c.v1 * c.v1 / r1;
            c.v1 = i_cell * r1 + (c.v1 - i_cell * r1) * decay1;
            c.temp_c = relax(c.temp_c, amb, heat, g_th, c_th, h);
        }
        self.fet_temp_c = relax(
            self.fet_temp_c,
            amb,
            fet_heat,
            p.fet_cooling_w_per_k,
            p.fet_heat_capacity_j_per_k,
            h,
        );
        self.board_temp_c = relax(
            self.board_temp_c,
            amb,
            board_heat,
            p.board_cooling_w_per_k,
            p.board_heat_capacity_j_per_k,
            h,
        );
    }
}
