//! The protection stage as it was before its cost was cut, written plainly: every fault's
//! value is derived and every detector runs in every step (no envelope, no fast paths), the
//! power modes take their general path, the limits are computed from the configuration.
//! Public types (configuration, faults, decisions, transitions) are the crate's own; only
//! the state machines and their arithmetic are here.
#![allow(dead_code, clippy::all)]

use bms_core::config::{OutputFunction, PackConfig, PowerConfig, PrechargeConfig};
use bms_core::protect::{
    Action, Decision, Direction, Fault, FaultSet, Latch, Precharge, ProtectionRule,
    ProtectionTable, SensorCauses, StuckDetector, Summary, Transition, RETRY_WINDOW,
};
use bms_core::units::Soc;
use bms_core::{
    DeciCelsius, Duration, FetState, Instant, Limits, Measurements, MilliAmps, MilliVolts,
    PowerMode,
};

// ---------------------------------------------------------------- detectors

#[derive(Clone, Copy, Debug, Default)]
struct Tier {
    pending: Option<Instant>,
}

impl Tier {
    fn debounce(&mut self, now: Instant, towards: bool, delay: Duration) -> bool {
        if !towards {
            self.pending = None;
            return false;
        }
        let since = *self.pending.get_or_insert(now);
        if now.duration_since(since) >= delay {
            self.pending = None;
            true
        } else {
            false
        }
    }
}

fn beyond(dir: Direction, value: i32, threshold: i32) -> bool {
    match dir {
        Direction::Above => value >= threshold,
        Direction::Below => value <= threshold,
    }
}

fn within(dir: Direction, value: i32, threshold: i32) -> bool {
    match dir {
        Direction::Above => value <= threshold,
        Direction::Below => value >= threshold,
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Cond {
    load_removed: bool,
    charger_removed: bool,
}

#[derive(Clone, Debug, Default)]
struct Detectors {
    faults: [Tier; Fault::COUNT],
    warnings: [Tier; Fault::COUNT],
    latched: FaultSet,
    retries: [u8; Fault::COUNT],
    last_release: [Option<Instant>; Fault::COUNT],
    active: FaultSet,
    warned: FaultSet,
}

impl Detectors {
    fn update(
        &mut self,
        now: Instant,
        fault: Fault,
        rule: &ProtectionRule,
        value: Option<i32>,
        cond: Cond,
        out: &mut Vec<Transition>,
    ) {
        let i = fault.index();
        let value = value.filter(|_| rule.enabled);
        let Some(v) = value else {
            self.faults[i].pending = None;
            self.warnings[i].pending = None;
            return;
        };
        let dir = fault.direction();
        let f = &mut self.faults[i];
        if !self.active.contains(fault) {
            if f.debounce(now, beyond(dir, v, rule.trip), rule.delay) {
                self.active.insert(fault);
                let recent =
                    self.last_release[i].is_some_and(|t| now.duration_since(t) < RETRY_WINDOW);
                self.retries[i] = if recent {
                    self.retries[i].saturating_add(1)
                } else {
                    1
                };
                if rule.latch == Latch::Reset
                    || (rule.retries > 0 && self.retries[i] > rule.retries)
                {
                    self.latched.insert(fault);
                }
                out.push(Transition::Tripped(fault));
            }
        } else {
            let allowed = !self.latched.contains(fault)
                && match rule.latch {
                    Latch::Auto => true,
                    Latch::LoadRemoved => cond.load_removed,
                    Latch::ChargerRemoved => cond.charger_removed,
                    Latch::Reset => false,
                };
            if f.debounce(
                now,
                allowed && within(dir, v, rule.release),
                rule.release_delay,
            ) {
                self.active.remove(fault);
                self.last_release[i] = Some(now);
                out.push(Transition::Released(fault));
            }
        }
        if let Some(w) = rule.warn {
            let clear = match dir {
                Direction::Above => w - (rule.trip - rule.release),
                Direction::Below => w + (rule.release - rule.trip),
            };
            let t = &mut self.warnings[i];
            if !self.warned.contains(fault) {
                if t.debounce(now, beyond(dir, v, w), rule.delay) {
                    self.warned.insert(fault);
                    out.push(Transition::Warned(fault));
                }
            } else if t.debounce(now, within(dir, v, clear), rule.release_delay) {
                self.warned.remove(fault);
                out.push(Transition::WarningCleared(fault));
            }
        }
    }

    fn reset(
        &mut self,
        now: Instant,
        table: &ProtectionTable,
        values: &[Option<i32>; Fault::COUNT],
        out: &mut Vec<Transition>,
    ) {
        self.latched = FaultSet::EMPTY;
        self.retries = [0; Fault::COUNT];
        for fault in Fault::ALL {
            if !self.active.contains(fault) {
                continue;
            }
            let rule = table.get(fault);
            let i = fault.index();
            if values[i].is_some_and(|v| within(fault.direction(), v, rule.release)) {
                self.faults[i] = Tier::default();
                self.active.remove(fault);
                self.last_release[i] = Some(now);
                out.push(Transition::Released(fault));
            }
        }
    }
}

// ---------------------------------------------------------------- power modes

#[derive(Clone, Copy, Debug, Default)]
struct PowerModes {
    mode: PowerMode,
    idle_since: Option<Instant>,
    uv_since: Option<Instant>,
}

impl PowerModes {
    fn update(
        &mut self,
        cfg: &PowerConfig,
        now: Instant,
        current: MilliAmps,
        charger: bool,
        acc: bool,
        undervoltage: bool,
    ) -> PowerMode {
        let idle = current.unsigned_abs() < cfg.idle_current.unsigned_abs() && !charger && !acc;
        self.idle_since = if idle {
            Some(self.idle_since.unwrap_or(now))
        } else {
            None
        };
        let uv = undervoltage && !charger;
        self.uv_since = if uv {
            Some(self.uv_since.unwrap_or(now))
        } else {
            None
        };
        let elapsed = |since: Option<Instant>| since.map(|s| now.duration_since(s));
        let long_uv = elapsed(self.uv_since).is_some_and(|d| d >= cfg.deep_sleep_after);
        self.mode = match self.mode {
            PowerMode::DeepSleep if acc => {
                self.uv_since = None;
                self.idle_since = None;
                PowerMode::Active
            }
            PowerMode::DeepSleep => PowerMode::DeepSleep,
            _ if long_uv => PowerMode::DeepSleep,
            PowerMode::Active if elapsed(self.idle_since).is_some_and(|d| d >= cfg.sleep_after) => {
                PowerMode::Sleep
            }
            PowerMode::Sleep
                if current.unsigned_abs() >= cfg.wake_current.unsigned_abs() || charger || acc =>
            {
                PowerMode::Active
            }
            m => m,
        };
        self.mode
    }
}

// ---------------------------------------------------------------- pre-charge

struct PrechargeOut {
    discharge: bool,
    precharge: bool,
    timed_out: bool,
}

fn precharge_update(
    state: &mut Precharge,
    now: Instant,
    cfg: &PrechargeConfig,
    allowed: bool,
    pack: Option<MilliVolts>,
    load: Option<MilliVolts>,
) -> PrechargeOut {
    let mut out = PrechargeOut {
        discharge: false,
        precharge: false,
        timed_out: false,
    };
    if !allowed {
        *state = Precharge::Open;
        return out;
    }
    if *state == Precharge::Open {
        *state = if cfg.enabled {
            Precharge::Precharging(now)
        } else {
            Precharge::Closed
        };
    }
    if let Precharge::Precharging(since) = *state {
        let reached = match (pack, load) {
            (Some(p), Some(l)) => l.as_mv() >= cfg.target_permille.of(p.as_mv()),
            _ => false,
        };
        if reached {
            *state = Precharge::Closed;
        } else if now.duration_since(since) >= cfg.timeout {
            *state = Precharge::Open;
            out.timed_out = true;
            return out;
        } else {
            out.precharge = true;
            return out;
        }
    }
    out.discharge = true;
    out
}

// ---------------------------------------------------------------- digital outputs

fn decide(
    f: OutputFunction,
    faults: FaultSet,
    warnings: FaultSet,
    charge_ok: bool,
    discharge_ok: bool,
    min_temp: Option<DeciCelsius>,
    max_temp: Option<DeciCelsius>,
    was: bool,
) -> bool {
    match f {
        OutputFunction::Off => false,
        OutputFunction::Alarm => !faults.is_empty() || !warnings.is_empty(),
        OutputFunction::Fault => !faults.is_empty(),
        OutputFunction::ChargerEnable => charge_ok,
        OutputFunction::LoadEnable => discharge_ok,
        OutputFunction::Heater {
            on_below_dc,
            off_above_dc,
        } => match min_temp {
            None => false,
            Some(t) if t <= on_below_dc => true,
            Some(t) if t >= off_above_dc => false,
            Some(_) => was,
        },
        OutputFunction::Fan {
            on_above_dc,
            off_below_dc,
        } => match max_temp {
            None => true,
            Some(t) if t >= on_above_dc => true,
            Some(t) if t <= off_below_dc => false,
            Some(_) => was,
        },
    }
}

// ---------------------------------------------------------------- protection

/// The protection state machine, plainly.
#[derive(Clone, Debug)]
pub struct Protection {
    detectors: Detectors,
    stuck: StuckDetector,
    precharge: Precharge,
    precharge_timed_out: bool,
    power: PowerModes,
    values: [Option<i32>; Fault::COUNT],
    last: Decision,
}

fn mv(x: MilliVolts) -> i32 {
    x.as_mv().min(i32::MAX as u32) as i32
}

impl Protection {
    pub fn new() -> Self {
        Protection {
            detectors: Detectors::default(),
            stuck: StuckDetector::default(),
            precharge: Precharge::default(),
            precharge_timed_out: false,
            power: PowerModes::default(),
            values: [None; Fault::COUNT],
            last: Decision::default(),
        }
    }

    pub fn faults(&self) -> FaultSet {
        self.detectors.active
    }
    pub fn warnings(&self) -> FaultSet {
        self.detectors.warned
    }
    pub fn latched(&self) -> FaultSet {
        self.detectors.latched
    }
    pub fn precharge(&self) -> Precharge {
        self.precharge
    }
    pub fn decision(&self) -> Decision {
        self.last
    }

    /// The value of every fault in this step (`None`: not measurable now).
    fn values(
        m: &Measurements,
        s: &Summary,
        causes: SensorCauses,
        timed_out: bool,
    ) -> [Option<i32>; Fault::COUNT] {
        let i = m.current.map(|i| i.as_ma());
        let deci = |t: Option<DeciCelsius>| t.map(|t| i32::from(t.as_deci()));
        Fault::ALL.map(|f| match f {
            Fault::CellOv => s.max_cell.map(mv),
            Fault::CellUv => s.min_cell.map(mv),
            Fault::PackOv | Fault::PackUv => s.pack.map(mv),
            Fault::ChgOc => i.map(|i| i.saturating_neg().max(0)),
            Fault::DsgOc1 | Fault::DsgOc2 | Fault::Sc => i.map(|i| i.max(0)),
            Fault::ChgOt | Fault::DsgOt => deci(s.max_temp),
            Fault::ChgUt | Fault::DsgUt => deci(s.min_temp),
            Fault::MosOt => deci(s.mos_temp),
            Fault::CellImbalance => match (s.max_cell, s.min_cell) {
                (Some(hi), Some(lo)) => Some(mv(hi - lo)),
                _ => None,
            },
            Fault::OpenWire => m.afe_ok.then_some(i32::from(s.open_wires)),
            Fault::AfeComm => Some(i32::from(!m.afe_ok)),
            Fault::SensorFault => Some(i32::from(!causes.is_empty())),
            Fault::PrechargeFail => Some(i32::from(timed_out)),
        })
    }

    pub fn step(
        &mut self,
        cfg: &PackConfig,
        m: &Measurements,
        s: &Summary,
        events: &mut Vec<Transition>,
    ) -> Decision {
        let now = m.timestamp;
        let mut causes = s.causes;
        if self.stuck.update(m, s, &cfg.plausibility) {
            causes.insert(SensorCauses::STUCK);
        }
        self.values = Self::values(m, s, causes, self.precharge_timed_out);
        let cond = Cond {
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
        for f in Fault::ALL {
            self.detectors.update(
                now,
                f,
                cfg.protection.get(f),
                self.values[f.index()],
                cond,
                events,
            );
        }
        let faults = self.detectors.active;
        if faults.contains(Fault::PrechargeFail) {
            self.precharge_timed_out = false;
        }
        let mode = self.power.update(
            &cfg.power,
            now,
            s.current,
            m.charger_present,
            m.acc,
            faults.contains(Fault::CellUv),
        );
        let awake = mode != PowerMode::DeepSleep;
        let charge_allowed = awake && !faults.intersects(Action::CHARGE_BLOCKING);
        let discharge_allowed = awake && !faults.intersects(Action::DISCHARGE_BLOCKING);
        let pre = precharge_update(
            &mut self.precharge,
            now,
            &cfg.precharge,
            discharge_allowed,
            s.pack,
            m.load,
        );
        if pre.timed_out {
            self.precharge_timed_out = true;
        }
        let mut fets = FetState {
            charge: charge_allowed,
            discharge: pre.discharge,
            precharge: pre.precharge,
        };
        let bd = cfg.limits.body_diode_current.as_ma();
        if awake && bd > 0 && !faults.intersects(Action::BOTH_BLOCKING) {
            let i = s.current.as_ma();
            if !fets.charge && i >= bd {
                fets.charge = true;
            }
            if !fets.discharge && i <= -bd {
                fets.discharge = true;
                fets.precharge = false;
            }
        }
        let max_temp = match (s.max_temp, s.mos_temp) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let warnings = self.detectors.warned;
        let was = self.last.digital;
        let o = &cfg.outputs;
        let digital = [o.do1, o.do2, o.do3].map(|_| false);
        let mut digital = digital;
        for (k, f) in [o.do1, o.do2, o.do3].into_iter().enumerate() {
            digital[k] = decide(
                f,
                faults,
                warnings,
                charge_allowed,
                discharge_allowed,
                s.min_temp,
                max_temp,
                was[k],
            );
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

    pub fn reset(&mut self, now: Instant, cfg: &PackConfig, events: &mut Vec<Transition>) {
        let values = self.values;
        self.detectors.reset(now, &cfg.protection, &values, events);
    }
}

// ---------------------------------------------------------------- limits

fn ramp(value: i32, full: i32, zero: i32) -> u32 {
    if full == zero {
        return if value < zero { 1000 } else { 0 };
    }
    let (span, pos) = if zero > full {
        (zero - full, zero - value)
    } else {
        (full - zero, value - zero)
    };
    (pos.clamp(0, span) as u64 * 1000 / span as u64) as u32
}

fn scale(i: MilliAmps, permille: u32) -> MilliAmps {
    MilliAmps::from_ma((u64::from(i.unsigned_abs()) * u64::from(permille) / 1000) as i32)
}

const TEMP_BAND: i32 = 100;

fn temp_factor(t: &ProtectionTable, s: &Summary, hot: Fault, cold: Fault) -> u32 {
    let (Some(hi), Some(lo)) = (s.max_temp, s.min_temp) else {
        return 0;
    };
    let (ot, ut) = (t.get(hot).trip, t.get(cold).trip);
    ramp(hi.as_deci() as i32, ot - TEMP_BAND, ot).min(ramp(lo.as_deci() as i32, ut + TEMP_BAND, ut))
}

/// The charge and discharge limits of a step, from the configuration directly.
pub fn limits(
    cfg: &PackConfig,
    s: &Summary,
    soc: Soc,
    charge_ok: bool,
    discharge_ok: bool,
) -> Limits {
    let t = &cfg.protection;
    let n = cfg.cells as u32;
    let cv = cfg.limits.charge_voltage.as_mv() as i32;
    let mut chg = if charge_ok {
        temp_factor(t, s, Fault::ChgOt, Fault::ChgUt)
    } else {
        0
    };
    let mut dsg = if discharge_ok {
        temp_factor(t, s, Fault::DsgOt, Fault::DsgUt)
    } else {
        0
    };
    match (s.max_cell, s.min_cell) {
        (Some(hi), Some(lo)) => {
            let ov = t.get(Fault::CellOv);
            chg = chg.min(ramp(
                hi.as_mv() as i32,
                cv - 100,
                ov.warn.unwrap_or(ov.trip),
            ));
            let uv = t.get(Fault::CellUv);
            let uv_w = uv.warn.unwrap_or(uv.release);
            dsg = dsg.min(ramp(lo.as_mv() as i32, uv_w + 100, uv.trip));
        }
        _ => {
            chg = 0;
            dsg = 0;
        }
    }
    let p = soc.as_permille() as i32;
    chg = chg.min(200 + ramp(p, 950, 1000) * 4 / 5);
    dsg = dsg.min(200 + ramp(p, 50, 0) * 4 / 5);
    Limits {
        charge_voltage: MilliVolts::from_mv(n * cv as u32),
        charge_current: scale(cfg.limits.max_charge_current, chg),
        discharge_current: scale(cfg.limits.max_discharge_current, dsg),
        discharge_voltage: MilliVolts::from_mv(n * cfg.limits.discharge_voltage.as_mv()),
    }
}
