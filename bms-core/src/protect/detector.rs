//! Per-fault debounce, hysteresis, latching and retry budgets.
//!
//! The timers live in tables indexed by [`Fault`] (quinn-proto's `TimerTable` shape):
//! `pending[f]` is when the value crossed to the other side of its threshold, and the
//! transition happens once it has stayed there for the rule's delay.

use super::rules::{Direction, Latch, ProtectionRule, ProtectionTable};
use super::{Fault, FaultSet};
use crate::time::{Duration, Instant, OptInstant};

/// Window in which repeated trips of a fault count against its retry budget.
pub const RETRY_WINDOW: Duration = Duration::from_secs(60);

/// Conditions a latched fault may wait for before releasing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReleaseConditions {
    /// The load has been removed (discharge path open and load-detect high).
    pub load_removed: bool,
    /// No charger is connected.
    pub charger_removed: bool,
}

/// A change of fault or warning state in one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Transition {
    /// The fault tripped.
    Tripped(Fault),
    /// The fault released.
    Released(Fault),
    /// The warning became active.
    Warned(Fault),
    /// The warning cleared.
    WarningCleared(Fault),
}

/// The debounce timer of one tier (fault or warning); whether the tier is active lives in
/// the [`Detectors`]' sets, so a tier is only its pending start.
#[derive(Clone, Copy, Debug, Default)]
struct Tier {
    pending: OptInstant,
}

impl Tier {
    /// Debounces a condition: returns `true` when the state flips.
    fn debounce(&mut self, now: Instant, towards: bool, delay: Duration) -> bool {
        if !towards {
            self.pending = OptInstant::NONE;
            return false;
        }
        let since = self.pending.get_or_insert(now);
        if now.duration_since(since) >= delay {
            self.pending = OptInstant::NONE;
            true
        } else {
            false
        }
    }
}

/// The state of every fault detector.
#[derive(Clone, Debug, Default)]
pub struct Detectors {
    faults: [Tier; Fault::COUNT],
    warnings: [Tier; Fault::COUNT],
    latched: FaultSet,
    retries: [u8; Fault::COUNT],
    last_release: [OptInstant; Fault::COUNT],
    active: FaultSet,
    warned: FaultSet,
    /// Faults with a tier active or a timer pending; the others take the fast path.
    busy: FaultSet,
}

fn beyond(dir: Direction, value: i32, threshold: i32) -> bool {
    match dir {
        Direction::Above => value >= threshold,
        Direction::Below => value <= threshold,
    }
}

/// The first threshold of a detector: the less extreme of warn and trip (only a crossing
/// there can start a timer of an idle detector).
pub(super) fn first_threshold(dir: Direction, rule: &ProtectionRule) -> i32 {
    match (dir, rule.warn) {
        (_, None) => rule.trip,
        (Direction::Above, Some(w)) => w.min(rule.trip),
        (Direction::Below, Some(w)) => w.max(rule.trip),
    }
}

/// Whether `value` is at or beyond the first threshold of an idle detector.
fn crosses_first(dir: Direction, rule: &ProtectionRule, value: Option<i32>) -> bool {
    value.is_some_and(|v| beyond(dir, v, first_threshold(dir, rule)))
}

fn within(dir: Direction, value: i32, threshold: i32) -> bool {
    match dir {
        Direction::Above => value <= threshold,
        Direction::Below => value >= threshold,
    }
}

impl Detectors {
    /// Active faults.
    pub const fn active(&self) -> FaultSet {
        self.active
    }

    /// Active warnings.
    pub const fn warnings(&self) -> FaultSet {
        self.warned
    }

    /// Faults that will not release without a reset.
    pub const fn latched(&self) -> FaultSet {
        self.latched
    }

    /// Faults with a tier active or a timer pending (the others are idle).
    pub const fn busy(&self) -> FaultSet {
        self.busy
    }

    /// Feeds one value of `fault` (`None`: not measurable now, state held).
    ///
    /// Returns the transition, if any.
    #[inline]
    pub fn update(
        &mut self,
        now: Instant,
        fault: Fault,
        rule: &ProtectionRule,
        value: Option<i32>,
        cond: ReleaseConditions,
        out: &mut impl FnMut(Transition),
    ) {
        let value = value.filter(|_| rule.enabled);
        if self.busy.contains(fault) || crosses_first(fault.direction(), rule, value) {
            self.update_slow(now, fault, rule, value, cond, out);
        }
    }

    /// [`update`](Self::update) for every fault in [`Fault::ALL`] order, `values` indexed
    /// by [`Fault::index`].
    pub fn update_all(
        &mut self,
        now: Instant,
        table: &ProtectionTable,
        values: &[Option<i32>; Fault::COUNT],
        cond: ReleaseConditions,
        out: &mut impl FnMut(Transition),
    ) {
        // One table-driven loop; the common case (idle detector, value short of its first
        // threshold) costs a few compares and no call.
        for ((f, rule), &value) in table.iter().zip(values) {
            self.update(now, f, rule, value, cond, out);
        }
    }

    /// Debounce, latch and release logic; keeps `busy` up to date.
    #[inline(never)]
    fn update_slow(
        &mut self,
        now: Instant,
        fault: Fault,
        rule: &ProtectionRule,
        value: Option<i32>,
        cond: ReleaseConditions,
        out: &mut impl FnMut(Transition),
    ) {
        let i = fault.index();
        self.tiers(now, fault, rule, value, cond, out);
        let (f, w) = (&self.faults[i], &self.warnings[i]);
        let active = self.active.contains(fault) || self.warned.contains(fault);
        if active || f.pending.is_some() || w.pending.is_some() {
            self.busy.insert(fault);
        } else {
            self.busy.remove(fault);
        }
    }

    fn tiers(
        &mut self,
        now: Instant,
        fault: Fault,
        rule: &ProtectionRule,
        value: Option<i32>,
        cond: ReleaseConditions,
        out: &mut impl FnMut(Transition),
    ) {
        let i = fault.index();
        let Some(v) = value else {
            // Unmeasurable: hold the state, restart debouncing when it comes back.
            self.faults[i].pending = OptInstant::NONE;
            self.warnings[i].pending = OptInstant::NONE;
            return;
        };
        let dir = fault.direction();
        let f = &mut self.faults[i];
        if !self.active.contains(fault) {
            if f.debounce(now, beyond(dir, v, rule.trip), rule.delay) {
                self.active.insert(fault);
                let recent = self.last_release[i]
                    .get()
                    .is_some_and(|t| now.duration_since(t) < RETRY_WINDOW);
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
                out(Transition::Tripped(fault));
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
                self.last_release[i] = OptInstant::some(now);
                out(Transition::Released(fault));
            }
        }
        if let Some(w) = rule.warn {
            // Warnings use the rule's hysteresis distance and delays.
            let clear = match dir {
                Direction::Above => w - (rule.trip - rule.release),
                Direction::Below => w + (rule.release - rule.trip),
            };
            let t = &mut self.warnings[i];
            if !self.warned.contains(fault) {
                if t.debounce(now, beyond(dir, v, w), rule.delay) {
                    self.warned.insert(fault);
                    out(Transition::Warned(fault));
                }
            } else if t.debounce(now, within(dir, v, clear), rule.release_delay) {
                self.warned.remove(fault);
                out(Transition::WarningCleared(fault));
            }
        }
    }

    /// Explicit reset: clears latches and retry budgets, and releases at once every active
    /// fault whose value is on its release side now (`values[f]`). Faults still beyond
    /// their release threshold stay active.
    pub fn reset(
        &mut self,
        now: Instant,
        table: &ProtectionTable,
        values: &[Option<i32>; Fault::COUNT],
        out: &mut impl FnMut(Transition),
    ) {
        self.latched = FaultSet::EMPTY;
        self.retries = [0; Fault::COUNT];
        for fault in self.active.iter() {
            let rule = table.get(fault);
            let i = fault.index();
            if values[i].is_some_and(|v| within(fault.direction(), v, rule.release)) {
                self.faults[i] = Tier::default();
                self.active.remove(fault);
                self.last_release[i] = OptInstant::some(now);
                out(Transition::Released(fault));
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::config::{Chemistry, PackConfig, Port, Variant};

    fn rule(retries: u8) -> ProtectionRule {
        ProtectionRule {
            trip: 100,
            release: 90,
            delay: Duration::ZERO,
            release_delay: Duration::ZERO,
            latch: Latch::Auto,
            warn: None,
            retries,
            enabled: true,
        }
    }

    /// A trip within [`RETRY_WINDOW`] of the last release is a retry; one at the window's
    /// end starts the count again.
    #[test]
    fn retries_count_within_the_window_only() {
        let f = Fault::CellOv;
        let r = rule(1);
        let cond = ReleaseConditions::default();
        let at = |ms: u64| Instant::from_millis(ms);
        let window = u64::from(RETRY_WINDOW.as_millis());
        for (again, latched) in [(window - 1, true), (window, false)] {
            let mut d = Detectors::default();
            let mut seen = Vec::new();
            let mut out = |t| seen.push(t);
            d.update(at(0), f, &r, Some(100), cond, &mut out);
            d.update(at(1), f, &r, Some(80), cond, &mut out);
            d.update(at(1 + again), f, &r, Some(100), cond, &mut out);
            assert_eq!(
                seen,
                [
                    Transition::Tripped(f),
                    Transition::Released(f),
                    Transition::Tripped(f)
                ]
            );
            assert_eq!(d.latched().contains(f), latched, "again after {again} ms");
        }
    }

    /// `update_all` is `update` for each fault in table order.
    #[test]
    fn update_all_is_update_per_fault() {
        let variant = Variant::new(16, 300, Port::Can).expect("variant");
        let table = PackConfig::preset(variant, Chemistry::Lfp).protection;
        let cond = ReleaseConditions::default();
        let (mut all, mut each) = (Detectors::default(), Detectors::default());
        let (mut seen_all, mut seen_each) = (Vec::new(), Vec::new());
        // Every value far beyond any threshold in both directions, then back.
        for (step, v) in [i32::MAX, i32::MAX, i32::MIN, 0].into_iter().enumerate() {
            let now = Instant::from_millis(step as u64 * 600_000);
            let values = [Some(v); Fault::COUNT];
            all.update_all(now, &table, &values, cond, &mut |t| seen_all.push(t));
            for (f, r) in table.iter() {
                each.update(now, f, r, values[f.index()], cond, &mut |t| {
                    seen_each.push(t)
                });
            }
            assert_eq!(seen_all, seen_each, "step {step}");
            assert_eq!(all.active(), each.active());
            assert_eq!(all.warnings(), each.warnings());
            assert_eq!(all.latched(), each.latched());
        }
        assert!(!seen_all.is_empty());
    }
}
