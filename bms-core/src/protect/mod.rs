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
pub use summary::{SensorCauses, StuckDetector, Summary};

use crate::config::PackConfig;
use crate::measure::Measurements;
use crate::ports::FetState;
use crate::telemetry::PowerMode;
use crate::time::Instant;

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

/// The protection state machine.
#[derive(Clone, Debug, Default)]
pub struct Protection {
    detectors: Detectors,
    stuck: StuckDetector,
    precharge: Precharge,
    precharge_timed_out: bool,
    power: PowerModes,
    values: [Option<i32>; Fault::COUNT],
    last: Decision,
}

fn mv(x: crate::units::MilliVolts) -> i32 {
    x.as_mv().min(i32::MAX as u32) as i32
}

impl Protection {
    /// A fresh state: no faults, MOSFETs open, pre-charge not started.
    pub fn new() -> Self {
        Self::default()
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
    /// transition is passed to `events` in [`Fault::ALL`] order.
    pub fn step(
        &mut self,
        cfg: &PackConfig,
        m: &Measurements,
        s: &Summary,
        events: &mut impl FnMut(Transition),
    ) -> Decision {
        let now = m.timestamp;
        let mut causes = s.causes;
        if self.stuck.update_summarised(m, s, &cfg.plausibility) {
            causes.insert(SensorCauses::STUCK);
        }
        self.fill_values(m, s, causes);
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
        self.detectors
            .update_all(now, &cfg.protection, &self.values, cond, events);
        let faults = self.detectors.active();
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
        let blocks = |pred: fn(Action) -> bool| faults.iter().any(|f| pred(f.action()));
        let charge_allowed = awake && !blocks(Action::blocks_charge);
        let discharge_allowed = awake && !blocks(Action::blocks_discharge);
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
        let bd = cfg.limits.body_diode_current.as_ma();
        if awake && bd > 0 && !blocks(|a| a == Action::OpenAll) {
            let i = s.current.as_ma();
            if !fets.charge && i >= bd {
                fets.charge = true;
            }
            if !fets.discharge && i <= -bd {
                fets.discharge = true;
                fets.precharge = false;
            }
        }
        let oi = outputs::OutputInput {
            faults,
            warnings: self.detectors.warnings(),
            charge_ok: charge_allowed,
            discharge_ok: discharge_allowed,
            min_temp: s.min_temp,
            max_temp: match (s.max_temp, s.mos_temp) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
        };
        let mut digital = [false; 3];
        for (k, f) in cfg.outputs.functions().into_iter().enumerate() {
            digital[k] = outputs::decide(f, &oi, self.last.digital[k]);
        }
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

    fn fill_values(&mut self, m: &Measurements, s: &Summary, causes: SensorCauses) {
        let v = &mut self.values;
        let hi = s.max_cell.map(|(x, _)| mv(x));
        let lo = s.min_cell.map(|(x, _)| mv(x));
        let pack = s.pack.map(mv);
        let i = m.current.map(|i| i.as_ma());
        let t_hi = s.max_temp.map(|t| t.as_deci() as i32);
        let t_lo = s.min_temp.map(|t| t.as_deci() as i32);
        v[Fault::CellOv.index()] = hi;
        v[Fault::CellUv.index()] = lo;
        v[Fault::PackOv.index()] = pack;
        v[Fault::PackUv.index()] = pack;
        v[Fault::ChgOc.index()] = i.map(|i| i.saturating_neg().max(0));
        let dsg = i.map(|i| i.max(0));
        v[Fault::DsgOc1.index()] = dsg;
        v[Fault::DsgOc2.index()] = dsg;
        v[Fault::Sc.index()] = dsg;
        v[Fault::ChgOt.index()] = t_hi;
        v[Fault::ChgUt.index()] = t_lo;
        v[Fault::DsgOt.index()] = t_hi;
        v[Fault::DsgUt.index()] = t_lo;
        v[Fault::MosOt.index()] = s.mos_temp.map(|t| t.as_deci() as i32);
        v[Fault::CellImbalance.index()] = s.cell_spread().map(mv);
        v[Fault::OpenWire.index()] = m.afe_ok.then_some(s.open_wires as i32);
        v[Fault::AfeComm.index()] = Some(!m.afe_ok as i32);
        v[Fault::SensorFault.index()] = Some(!causes.is_empty() as i32);
        v[Fault::PrechargeFail.index()] = Some(self.precharge_timed_out as i32);
    }

    /// Explicit fault reset (a service command): clears latches and retry budgets and
    /// releases every active fault whose last value is on its release side. A fault whose
    /// condition persists stays active, so a reset never closes a MOSFET into a fault.
    pub fn reset(&mut self, now: Instant, cfg: &PackConfig, events: &mut impl FnMut(Transition)) {
        self.detectors
            .reset(now, &cfg.protection, &self.values, events);
    }
}
