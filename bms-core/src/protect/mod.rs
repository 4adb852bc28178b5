//! Protection: fault detectors, the MOSFET decision, pre-charge and power modes.
//!
//! [`Protection::step`] is a pure function of the configuration, the measurements, time and
//! its own state. Per step it:
//! 1. turns the [`Summary`] into one value per fault (unit per [`Quantity`]);
//! 2. debounces every fault and warning against its [`ProtectionRule`] ([`Detectors`]);
//! 3. allows charging unless an active fault's [`Action`] blocks it, and likewise
//!    discharging; deep sleep blocks both;
//! 4. runs the pre-charge sequence ([`Precharge`]) before closing discharge;
//! 5. applies the body-diode rule: while only single-direction faults block a MOSFET,
//!    current in the other direction of at least `limits.body_diode_current` re-closes it
//!    so its body diode does not carry (and overheat on) that current;
//! 6. decides the power mode and the digital outputs.
//!
//! Unknown input opens both MOSFETs: an unanswered cell monitor is `afe_comm`, any
//! implausible or missing reading is `sensor_fault` (with [`SensorCauses`] saying which),
//! an open sense wire is `open_wire`. Values that cannot be computed (cell faults while the
//! AFE is silent) hold their state rather than release.

mod detector;
mod fault;
pub mod limits;
pub mod outputs;
mod power;
mod precharge;
pub mod rules;
mod summary;

pub use detector::{Detectors, ReleaseConditions, Transition, RETRY_WINDOW};
pub use fault::{Fault, FaultSet};
pub use power::{PowerInput, PowerModes};
pub use precharge::{Precharge, PrechargeOutput};
pub use rules::{Action, Direction, Latch, ProtectionRule, ProtectionTable, Quantity, RuleError};
pub(crate) use summary::CellMemo;
pub use summary::{SensorCauses, StuckDetector, Summary};

use crate::band::Band;
use crate::config::PackConfig;
use crate::measure::Measurements;
use crate::ports::FetState;
use crate::telemetry::PowerMode;
use crate::time::Instant;
use crate::units::MilliVolts;

/// The result of one protection step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Decision {
    /// The switch states to apply.
    pub fets: FetState,
    /// No active fault blocks charging (and not in deep sleep).
    pub charge_allowed: bool,
    /// No active fault blocks discharging (and not in deep sleep).
    pub discharge_allowed: bool,
    /// Power mode.
    pub mode: PowerMode,
    /// DO1..DO3.
    pub digital: [bool; 3],
    /// Why `sensor_fault` is (or would be) set in this step.
    pub sensor_causes: SensorCauses,
}

/// What a fault's value is read from; faults of one quantity and side share a reading
/// (both pack faults the pack voltage, the discharge over-currents and the short circuit
/// the discharge current).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    CellHigh,
    CellLow,
    Pack,
    ChargeCurrent,
    DischargeCurrent,
    TempHigh,
    TempLow,
    MosTemp,
    CellSpread,
    OpenWires,
    AfeSilent,
    Implausible,
    PrechargeTimeout,
}

const READINGS: usize = Reading::PrechargeTimeout as usize + 1;

/// The faults judged on each reading.
const READING_FAULTS: [FaultSet; READINGS] = {
    let mut t = [FaultSet::EMPTY; READINGS];
    let mut r = 0;
    while r < READINGS {
        t[r] = Reading::faults(r);
        r += 1;
    }
    t
};

impl Reading {
    /// The faults judged on reading number `r`.
    const fn faults(r: usize) -> FaultSet {
        let mut bits = 0;
        let mut i = 0;
        while i < Fault::COUNT {
            if Reading::of(Fault::ALL[i]) as usize == r {
                bits |= 1 << i;
            }
            i += 1;
        }
        FaultSet::from_bits(bits)
    }

    /// The reading `fault` is judged on (an exhaustive match: a new fault must pick one).
    const fn of(fault: Fault) -> Reading {
        match fault {
            Fault::CellOv => Reading::CellHigh,
            Fault::CellUv => Reading::CellLow,
            Fault::PackOv | Fault::PackUv => Reading::Pack,
            Fault::ChgOc => Reading::ChargeCurrent,
            Fault::DsgOc1 | Fault::DsgOc2 | Fault::Sc => Reading::DischargeCurrent,
            Fault::ChgOt | Fault::DsgOt => Reading::TempHigh,
            Fault::ChgUt | Fault::DsgUt => Reading::TempLow,
            Fault::MosOt => Reading::MosTemp,
            Fault::CellImbalance => Reading::CellSpread,
            Fault::OpenWire => Reading::OpenWires,
            Fault::AfeComm => Reading::AfeSilent,
            Fault::SensorFault => Reading::Implausible,
            Fault::PrechargeFail => Reading::PrechargeTimeout,
        }
    }
}

/// Per reading, the interval inside which no enabled fault's first threshold (the less
/// extreme of warning and trip) is reached: while every reading is inside it and no detector
/// is busy, no detector has anything to do, so the step skips them all. Compiled from the
/// [`ProtectionTable`] when the configuration is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Envelope {
    /// The quiet values per reading (one subtract and one unsigned compare each).
    quiet: [Band; READINGS],
    /// The currents `i` (mA, + = discharge) at which both current readings (`max(i, 0)` and
    /// `max(-i, 0)`) are quiet, so [`Protection::quiet`] tests the current once, as it
    /// comes.
    current: Band,
    /// The four 0/1 and count readings (open wires, AFE silent, implausible, pre-charge
    /// timeout) are all quiet at 0, their usual value: [`Protection::quiet`] then tests
    /// them as one condition.
    flags_quiet_at_zero: bool,
}

impl Envelope {
    fn of(table: &ProtectionTable) -> Envelope {
        // Open interval (below, above); every reading is at least -32768 (temperatures) or
        // 0, so `i32::MIN` is "no lower bound".
        let mut bounds = [(i32::MIN, i32::MAX); READINGS];
        for (fault, rule) in table.iter().filter(|(_, r)| r.enabled) {
            let (below, above) = &mut bounds[Reading::of(fault) as usize];
            let first = detector::first_threshold(fault.direction(), rule);
            match fault.direction() {
                Direction::Above => *above = (*above).min(first),
                Direction::Below => *below = (*below).max(first),
            }
        }
        let mut r = 0;
        let quiet = bounds.map(|(below, above)| {
            // A reading in mV is tested as its `u32` (see `MV_READINGS`): its values are
            // `0..=i32::MAX` and `above <= i32::MAX` is never quiet, so the quiet `u32`
            // values are `max(lo, 0)..above`, the same set with no clamp to test.
            let lo = if MV_READINGS & 1 << r != 0 {
                below.saturating_add(1).max(0)
            } else {
                below.saturating_add(1)
            };
            r += 1;
            Band::inclusive(i64::from(lo), i64::from(above) - 1)
        });
        let mut envelope = Envelope {
            quiet,
            current: Band::EMPTY,
            flags_quiet_at_zero: false,
        };
        envelope.current = envelope.current_band();
        envelope.flags_quiet_at_zero = [
            Reading::OpenWires,
            Reading::AfeSilent,
            Reading::Implausible,
            Reading::PrechargeTimeout,
        ]
        .iter()
        .all(|&r| envelope.outside(r as usize, 0) == 0);
        envelope
    }

    /// The currents at which both current readings are quiet (see `current`): the two
    /// preimages of the quiet value ranges, met. In `i64`, so no bound overflows.
    fn current_band(&self) -> Band {
        // Quiet values `[a, b)`, within the values the readings take (`0..=i32::MAX`;
        // `b <= i32::MAX` always, so the saturated `i32::MAX` of `i32::MIN` is never quiet).
        let quiet = |r: Reading| {
            let (lo, len) = self.quiet[r as usize].parts();
            let a = i64::from(lo);
            (a.max(0), a + i64::from(len))
        };
        let (min, max) = (i64::from(i32::MIN), i64::from(i32::MAX));
        let (a, b) = quiet(Reading::DischargeCurrent);
        // `max(i, 0)`: every `i <= 0` gives 0, a positive `i` itself.
        let discharge = if a == 0 && b > 0 { (min, b) } else { (a, b) };
        let (a, b) = quiet(Reading::ChargeCurrent);
        // `max(-i, 0)`: every `i >= 0` gives 0, a negative `i` gives `-i`.
        let charge = if a == 0 && b > 0 {
            (1 - b, max + 1)
        } else {
            (1 - b, 1 - a)
        };
        let (lo, hi) = (discharge.0.max(charge.0), discharge.1.min(charge.1));
        // `lo` lies in `i32` and the length is below 2^32: the discharge range ends at
        // `b <= i32::MAX`.
        Band::inclusive(lo, hi - 1)
    }

    /// Whether both current readings of current `i` are quiet.
    #[inline(always)]
    fn current_inside(&self, i: i32) -> bool {
        self.current.contains(i)
    }

    /// Whether `value` of `r` reaches no first threshold.
    #[inline(always)]
    fn inside(&self, r: Reading, value: i32) -> bool {
        self.quiet[r as usize].contains(value)
    }

    /// `1 << r` if `value` of [`Reading`] `r` reaches a first threshold, else `0`.
    #[inline(always)]
    fn outside(&self, r: usize, value: i32) -> u32 {
        u32::from(!self.quiet[r].contains(value)) << r
    }
}

/// The readings in mV (bit `r` = [`Reading`] `r`): stored as `i32` (clamped at
/// `i32::MAX`, see `mv`) but tested against the envelope as their `u32` bits.
const MV_READINGS: u32 = 1 << Reading::CellHigh as u32
    | 1 << Reading::CellLow as u32
    | 1 << Reading::Pack as u32
    | 1 << Reading::CellSpread as u32;

/// The sources of the readings of the last step that was not quiet, as they came: every
/// [`Reading`] is derived from them when read ([`get`](Self::get)), so 28 bytes hold what
/// one `i32` per reading took 56 for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Readings {
    /// Highest and lowest cell, pack voltage (mV).
    high_cell: MilliVolts,
    low_cell: MilliVolts,
    pack: MilliVolts,
    /// Current (mA, + = discharge).
    current: i32,
    /// Hottest NTC, coldest NTC, MOSFET (0.1 °C).
    temps: [i16; 3],
    open_wires: u8,
    /// `FLAG_*` bits.
    flags: u8,
    /// `MISSING_*` bits: sources with no value (their readings are missing).
    missing: u8,
}

const FLAG_AFE_SILENT: u8 = 1 << 0;
const FLAG_IMPLAUSIBLE: u8 = 1 << 1;
const FLAG_PRECHARGE_TIMEOUT: u8 = 1 << 2;

const MISSING_HIGH_CELL: u8 = 1 << 0;
const MISSING_LOW_CELL: u8 = 1 << 1;
const MISSING_PACK: u8 = 1 << 2;
const MISSING_CURRENT: u8 = 1 << 3;
/// `MISSING_TEMP << k` for `temps[k]`.
const MISSING_TEMP: u8 = 1 << 4;
const MISSING_OPEN_WIRES: u8 = 1 << 7;

impl Readings {
    const NONE: Readings = Readings {
        high_cell: MilliVolts::ZERO,
        low_cell: MilliVolts::ZERO,
        pack: MilliVolts::ZERO,
        current: 0,
        temps: [0; 3],
        open_wires: 0,
        flags: 0,
        missing: u8::MAX,
    };

    /// The value of reading `r` (`None`: missing).
    // Always inlined: a call per busy detector costs more than the derivation.
    #[inline(always)]
    fn get(&self, r: Reading) -> Option<i32> {
        let has = |bits: u8| self.missing & bits == 0;
        let flag = |bit: u8| Some(i32::from(self.flags & bit != 0));
        let temp = |k: usize| has(MISSING_TEMP << k).then_some(i32::from(self.temps[k]));
        match r {
            Reading::CellHigh => has(MISSING_HIGH_CELL).then(|| mv(self.high_cell)),
            Reading::CellLow => has(MISSING_LOW_CELL).then(|| mv(self.low_cell)),
            Reading::Pack => has(MISSING_PACK).then(|| mv(self.pack)),
            Reading::ChargeCurrent => {
                has(MISSING_CURRENT).then(|| self.current.saturating_neg().max(0))
            }
            Reading::DischargeCurrent => has(MISSING_CURRENT).then(|| self.current.max(0)),
            Reading::TempHigh => temp(0),
            Reading::TempLow => temp(1),
            Reading::MosTemp => temp(2),
            Reading::CellSpread => has(MISSING_HIGH_CELL | MISSING_LOW_CELL)
                .then(|| mv(self.high_cell - self.low_cell)),
            Reading::OpenWires => has(MISSING_OPEN_WIRES).then_some(i32::from(self.open_wires)),
            Reading::AfeSilent => flag(FLAG_AFE_SILENT),
            Reading::Implausible => flag(FLAG_IMPLAUSIBLE),
            Reading::PrechargeTimeout => flag(FLAG_PRECHARGE_TIMEOUT),
        }
    }
}

/// The protection state machine.
#[derive(Clone, Debug)]
pub struct Protection {
    detectors: Detectors,
    envelope: Envelope,
    stuck: StuckDetector,
    precharge: Precharge,
    precharge_timed_out: bool,
    power: PowerModes,
    readings: Readings,
    last: Decision,
}

fn mv(x: MilliVolts) -> i32 {
    x.as_mv().min(i32::MAX as u32) as i32
}

impl Protection {
    /// A fresh state for `table`: no faults, MOSFETs open, pre-charge not started.
    pub fn new(table: &ProtectionTable) -> Self {
        Protection {
            detectors: Detectors::default(),
            envelope: Envelope::of(table),
            stuck: StuckDetector::default(),
            precharge: Precharge::default(),
            precharge_timed_out: false,
            power: PowerModes::default(),
            readings: Readings::NONE,
            last: Decision::default(),
        }
    }

    /// Takes a new protection table into use (the state machines keep their state). Every
    /// later [`step`](Self::step) must be given a configuration with this table.
    pub fn set_table(&mut self, table: &ProtectionTable) {
        self.envelope = Envelope::of(table);
    }

    /// Active faults.
    pub const fn faults(&self) -> FaultSet {
        self.detectors.active()
    }

    /// Active warnings.
    pub const fn warnings(&self) -> FaultSet {
        self.detectors.warnings()
    }

    /// Faults that need an explicit [`reset`](Self::reset).
    pub const fn latched(&self) -> FaultSet {
        self.detectors.latched()
    }

    /// The last decision.
    pub const fn decision(&self) -> &Decision {
        &self.last
    }

    /// The pre-charge state.
    pub const fn precharge(&self) -> Precharge {
        self.precharge
    }

    /// One protection step over a snapshot and its [`Summary`]. Every fault or warning
    /// transition is passed to `events` in [`Fault::ALL`] order. `cfg.protection` must be
    /// the table given to [`new`](Self::new) or [`set_table`](Self::set_table).
    // Always inlined: its one caller in the crate is `Bms::step` (the slow path stays out
    // of line in `step_slow`).
    #[inline(always)]
    pub fn step(
        &mut self,
        cfg: &PackConfig,
        m: &Measurements,
        s: &Summary,
        events: &mut impl FnMut(Transition),
    ) -> Decision {
        let mut causes = s.causes;
        if self.stuck.update(m, s, &cfg.plausibility) {
            causes.insert(SensorCauses::STUCK);
        }
        // The usual step: no detector is busy and every reading is inside the envelope, so
        // no detector has anything to do. None is active then either (an active fault or
        // warning keeps its detector busy), so nothing reads the stored readings before the
        // next `detect` stores them again, and the rest of the step is compiled for no fault
        // and no warning.
        if self.detectors.busy().is_empty() && self.quiet(m, s, causes) {
            return self.finish(cfg, m, s, causes, FaultSet::EMPTY, FaultSet::EMPTY);
        }
        self.step_slow(cfg, m, s, causes, events)
    }

    /// A step that is not quiet: the detectors, then the decision.
    // Not inlined: the usual step stays small.
    #[inline(never)]
    fn step_slow(
        &mut self,
        cfg: &PackConfig,
        m: &Measurements,
        s: &Summary,
        causes: SensorCauses,
        events: &mut impl FnMut(Transition),
    ) -> Decision {
        self.detect(cfg, m, s, causes, events);
        let (faults, warnings) = (self.detectors.active(), self.detectors.warnings());
        self.finish(cfg, m, s, causes, faults, warnings)
    }

    /// The decision of a step from the active `faults` and `warnings`.
    // Always inlined: twice, once with constant empty sets (the usual step), where most of
    // it folds away.
    #[inline(always)]
    fn finish(
        &mut self,
        cfg: &PackConfig,
        m: &Measurements,
        s: &Summary,
        causes: SensorCauses,
        faults: FaultSet,
        warnings: FaultSet,
    ) -> Decision {
        let now = m.timestamp;
        if faults.contains(Fault::PrechargeFail) {
            self.precharge_timed_out = false;
        }
        let mode = self.power.update(
            &cfg.power,
            PowerInput {
                now,
                current: s.current,
                charger: m.charger_present,
                acc: m.acc,
                undervoltage: faults.contains(Fault::CellUv),
            },
        );
        let awake = mode != PowerMode::DeepSleep;
        let charge_allowed = awake && !faults.intersects(Action::CHARGE_BLOCKING);
        let discharge_allowed = awake && !faults.intersects(Action::DISCHARGE_BLOCKING);
        let pre = self
            .precharge
            .update(now, &cfg.precharge, discharge_allowed, s.pack, m.load);
        if pre.timed_out {
            self.precharge_timed_out = true;
        }
        let mut fets = FetState {
            charge: charge_allowed,
            discharge: pre.discharge,
            precharge: pre.precharge,
        };
        // Body-diode rule; never for faults that open both MOSFETs, never in deep sleep.
        // Tested first: whether a MOSFET is open at all (it re-closes only an open one).
        let bd = cfg.limits.body_diode_current.as_ma();
        if !(fets.charge && fets.discharge)
            && awake
            && bd > 0
            && !faults.intersects(Action::BOTH_BLOCKING)
        {
            let i = s.current.as_ma();
            if !fets.charge && i >= bd {
                fets.charge = true;
            }
            if !fets.discharge && i <= -bd {
                fets.discharge = true;
                fets.precharge = false;
            }
        }
        let digital = outputs::decide_all(
            &cfg.outputs,
            faults,
            warnings,
            charge_allowed,
            discharge_allowed,
            s,
            self.last.digital,
        );
        self.last = Decision {
            fets,
            charge_allowed,
            discharge_allowed,
            mode,
            digital,
            sensor_causes: causes,
        };
        self.last
    }

    /// `true` when every reading is present and inside the envelope (the four flag
    /// readings at zero): a conservative test, any other step takes [`detect`](Self::detect).
    // Always inlined, and no reading is stored (the stored ones are only read while a
    // detector is busy). Readings in mV are tested as `u32` (`MV_READINGS`).
    #[inline(always)]
    fn quiet(&self, m: &Measurements, s: &Summary, causes: SensorCauses) -> bool {
        let e = &self.envelope;
        let (Some(hi), Some(lo), Some(pack), Some(i), Some(t_hi), Some(t_lo), Some(t_mos)) = (
            s.max_cell, s.min_cell, s.pack, m.current, s.max_temp, s.min_temp, s.mos_temp,
        ) else {
            return false;
        };
        let deci = |t: crate::units::DeciCelsius| i32::from(t.as_deci());
        // `&&`: a compare and a branch per test, cheaper than combining flags.
        m.afe_ok
            && s.open_wires == 0
            && causes.is_empty()
            && !self.precharge_timed_out
            && e.flags_quiet_at_zero
            && e.inside(Reading::CellHigh, hi.as_mv() as i32)
            && e.inside(Reading::CellLow, lo.as_mv() as i32)
            && e.inside(Reading::CellSpread, (hi - lo).as_mv() as i32)
            && e.inside(Reading::Pack, pack.as_mv() as i32)
            && e.current_inside(i.as_ma())
            && e.inside(Reading::TempHigh, deci(t_hi))
            && e.inside(Reading::TempLow, deci(t_lo))
            && e.inside(Reading::MosTemp, deci(t_mos))
    }

    /// The detectors' part of a step that is not quiet: stores the readings and updates
    /// every detector that is busy or whose reading reaches its envelope.
    // Not inlined: the rare path stays out of the usual one.
    #[inline(never)]
    fn detect(
        &mut self,
        cfg: &PackConfig,
        m: &Measurements,
        s: &Summary,
        causes: SensorCauses,
        events: &mut impl FnMut(Transition),
    ) {
        let now = m.timestamp;
        let mut outside = self.read(m, s, causes);
        let mut hot = self.detectors.busy();
        while outside != 0 {
            hot = hot.union(READING_FAULTS[outside.trailing_zeros() as usize]);
            outside &= outside - 1;
        }
        if hot.is_empty() {
            return;
        }
        let cond = ReleaseConditions {
            load_removed: !self.last.fets.discharge
                && !self.last.fets.precharge
                && match (s.pack, m.load) {
                    (Some(p), Some(l)) => {
                        l.as_mv() >= cfg.precharge.load_removed_permille.of(p.as_mv())
                    }
                    _ => false,
                },
            charger_removed: !m.charger_present,
        };
        for f in hot.iter() {
            let value = self.readings.get(Reading::of(f));
            let rule = cfg.protection.get(f);
            self.detectors.update(now, f, rule, value, cond, events);
        }
    }

    /// Stores this step's readings; returns those outside the envelope, bit `r` =
    /// [`Reading`] `r`.
    fn read(&mut self, m: &Measurements, s: &Summary, causes: SensorCauses) -> u32 {
        let (r, e) = (&mut self.readings, &self.envelope);
        // Millivolts are tested as `u32` bits (`MV_READINGS`).
        let volts = |x: MilliVolts| x.as_mv() as i32;
        let mut missing = 0;
        let mut outside = 0;
        match s.max_cell {
            Some(x) => {
                r.high_cell = x;
                outside |= e.outside(Reading::CellHigh as usize, volts(x));
            }
            None => missing |= MISSING_HIGH_CELL,
        }
        match s.min_cell {
            Some(x) => {
                r.low_cell = x;
                outside |= e.outside(Reading::CellLow as usize, volts(x));
            }
            None => missing |= MISSING_LOW_CELL,
        }
        if let Some(x) = s.cell_spread() {
            outside |= e.outside(Reading::CellSpread as usize, volts(x));
        }
        match s.pack {
            Some(x) => {
                r.pack = x;
                outside |= e.outside(Reading::Pack as usize, volts(x));
            }
            None => missing |= MISSING_PACK,
        }
        match m.current {
            Some(i) => {
                let i = i.as_ma();
                r.current = i;
                outside |= e.outside(Reading::ChargeCurrent as usize, i.saturating_neg().max(0))
                    | e.outside(Reading::DischargeCurrent as usize, i.max(0));
            }
            None => missing |= MISSING_CURRENT,
        }
        let temps = [
            (Reading::TempHigh, s.max_temp),
            (Reading::TempLow, s.min_temp),
            (Reading::MosTemp, s.mos_temp),
        ];
        for (k, (reading, t)) in temps.into_iter().enumerate() {
            match t {
                Some(t) => {
                    r.temps[k] = t.as_deci();
                    outside |= e.outside(reading as usize, i32::from(t.as_deci()));
                }
                None => missing |= MISSING_TEMP << k,
            }
        }
        if m.afe_ok {
            r.open_wires = s.open_wires;
            outside |= e.outside(Reading::OpenWires as usize, i32::from(s.open_wires));
        } else {
            missing |= MISSING_OPEN_WIRES;
        }
        let (silent, implausible, timed_out) =
            (!m.afe_ok, !causes.is_empty(), self.precharge_timed_out);
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        r.flags = flag(silent, FLAG_AFE_SILENT)
            | flag(implausible, FLAG_IMPLAUSIBLE)
            | flag(timed_out, FLAG_PRECHARGE_TIMEOUT);
        r.missing = missing;
        outside
            | e.outside(Reading::AfeSilent as usize, i32::from(silent))
            | e.outside(Reading::Implausible as usize, i32::from(implausible))
            | e.outside(Reading::PrechargeTimeout as usize, i32::from(timed_out))
    }

    fn values(&self) -> [Option<i32>; Fault::COUNT] {
        Fault::ALL.map(|f| self.readings.get(Reading::of(f)))
    }

    /// Explicit fault reset (a service command): clears latches and retry budgets and
    /// releases every active fault whose last value is on its release side. A fault whose
    /// condition persists stays active, so a reset never closes a MOSFET into a fault.
    pub fn reset(&mut self, now: Instant, cfg: &PackConfig, events: &mut impl FnMut(Transition)) {
        self.detectors
            .reset(now, &cfg.protection, &self.values(), events);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::config::{Chemistry, PackConfig};
    use proptest::prelude::*;

    proptest! {
        /// The envelope holds a reading set exactly when no enabled fault's value reaches
        /// its first threshold, i.e. exactly when every idle detector would do nothing
        /// (but for the saturated `i32::MAX`, which it never holds).
        #[test]
        fn envelope_is_exactly_the_idle_region(
            thresholds in proptest::array::uniform18((-500i32..500, proptest::option::of(-500i32..500), any::<bool>())),
            readings in proptest::array::uniform13(proptest::option::of(-600i32..600)),
            huge in proptest::array::uniform13(prop_oneof![8 => Just(None), 1 => (i32::MAX as u32 - 2..=u32::MAX).prop_map(Some), 1 => any::<u32>().prop_map(Some)]),
        ) {
            let mut table = PackConfig::preset("ANT16S-300A-C".parse().expect("part"), Chemistry::Lfp).protection;
            for (f, (trip, warn, enabled)) in Fault::ALL.into_iter().zip(thresholds) {
                let r = table.get_mut(f);
                r.trip = trip;
                r.warn = warn;
                r.enabled = enabled;
            }
            let envelope = Envelope::of(&table);
            let mut outside = 0;
            let mut readings = readings;
            for k in 0..READINGS {
                if MV_READINGS & 1 << k != 0 {
                    // Millivolts: never negative, and any `u32`, tested as its bits.
                    let x = readings[k].map(|v| match huge[k] {
                        Some(h) => h,
                        None => v.unsigned_abs(),
                    });
                    outside |= x.map_or(0, |x| envelope.outside(k, x as i32));
                    readings[k] = x.map(|x| mv(MilliVolts::from_mv(x)));
                } else {
                    outside |= readings[k].map_or(0, |v| envelope.outside(k, v));
                }
            }
            let crossing = Fault::ALL.into_iter().any(|f| {
                let rule = table.get(f);
                rule.enabled
                    && readings[Reading::of(f) as usize].is_some_and(|v| match f.direction() {
                        Direction::Above => v >= detector::first_threshold(f.direction(), rule),
                        Direction::Below => v <= detector::first_threshold(f.direction(), rule),
                    })
            });
            // `i32::MAX` (a saturated millivolt reading) is outside even with no bound: the
            // envelope is conservative there (its detectors run and find nothing to do).
            let saturated = readings.contains(&Some(i32::MAX));
            prop_assert!(outside == 0 || crossing || saturated);
            prop_assert!(outside != 0 || !crossing);
        }

        /// The stored sources give back every reading as it was computed from the summary.
        #[test]
        fn readings_are_kept(
            cells in proptest::option::of((any::<u32>(), any::<u32>())),
            pack in proptest::option::of(any::<u32>()),
            current in proptest::option::of(any::<i32>()),
            temps in proptest::array::uniform3(proptest::option::of(any::<i16>())),
            open_wires in any::<u8>(),
            (afe_ok, implausible, timed_out) in any::<(bool, bool, bool)>(),
        ) {
            let cfg = PackConfig::preset("ANT16S-300A-C".parse().expect("part"), Chemistry::Lfp);
            let mut p = Protection::new(&cfg.protection);
            p.precharge_timed_out = timed_out;
            let mut m = Measurements::uniform(16, MilliVolts::from_mv(3_300), Instant::ZERO);
            m.afe_ok = afe_ok;
            m.current = current.map(crate::units::MilliAmps::from_ma);
            let deci = |t: Option<i16>| t.map(crate::units::DeciCelsius::from_deci);
            let s = Summary {
                max_cell: cells.map(|(hi, _)| MilliVolts::from_mv(hi)),
                min_cell: cells.map(|(_, lo)| MilliVolts::from_mv(lo)),
                pack: pack.map(MilliVolts::from_mv),
                max_temp: deci(temps[0]),
                min_temp: deci(temps[1]),
                mos_temp: deci(temps[2]),
                open_wires,
                ..Summary::default()
            };
            let causes = if implausible { SensorCauses::STUCK } else { SensorCauses::NONE };
            p.read(&m, &s, causes);
            let i = current;
            let expected = [
                s.max_cell.map(mv),
                s.min_cell.map(mv),
                s.pack.map(mv),
                i.map(|i| i.saturating_neg().max(0)),
                i.map(|i| i.max(0)),
                temps[0].map(i32::from),
                temps[1].map(i32::from),
                temps[2].map(i32::from),
                s.cell_spread().map(mv),
                afe_ok.then_some(i32::from(open_wires)),
                Some(i32::from(!afe_ok)),
                Some(i32::from(implausible)),
                Some(i32::from(timed_out)),
            ];
            for f in Fault::ALL {
                let r = Reading::of(f);
                prop_assert_eq!(p.readings.get(r), expected[r as usize], "{:?}", r);
            }
        }

        /// The current band holds a current exactly when both current readings are quiet.
        #[test]
        fn current_band_is_both_current_readings(
            thresholds in proptest::array::uniform8((prop_oneof![-500i32..500, Just(i32::MAX), Just(i32::MIN), Just(0), Just(1)], proptest::option::of(prop_oneof![-500i32..500, Just(0), Just(i32::MAX)]), any::<bool>())),
            currents in proptest::collection::vec(prop_oneof![-600i32..600, Just(i32::MIN), Just(i32::MIN + 1), Just(i32::MAX), Just(-i32::MAX), any::<i32>()], 1..40),
        ) {
            let mut table = PackConfig::preset("ANT16S-300A-C".parse().expect("part"), Chemistry::Lfp).protection;
            for (f, (trip, warn, enabled)) in [Fault::ChgOc, Fault::DsgOc1, Fault::DsgOc2, Fault::Sc].into_iter().cycle().zip(thresholds) {
                let r = table.get_mut(f);
                r.trip = trip;
                r.warn = warn;
                r.enabled = enabled;
            }
            let e = Envelope::of(&table);
            for i in currents {
                let both = e.outside(Reading::ChargeCurrent as usize, i.saturating_neg().max(0)) == 0
                    && e.outside(Reading::DischargeCurrent as usize, i.max(0)) == 0;
                prop_assert_eq!(e.current_inside(i), both, "i = {}", i);
            }
        }
    }
}
