//! Power modes: active, sleep after idling, deep sleep after a long under-voltage.

use crate::config::PowerConfig;
use crate::telemetry::PowerMode;
use crate::time::{Instant, OptInstant};
use crate::units::MilliAmps;

/// Inputs of the power-mode decision.
#[derive(Clone, Copy, Debug)]
pub struct PowerInput {
    /// Now.
    pub now: Instant,
    /// Pack current.
    pub current: MilliAmps,
    /// A charger is connected.
    pub charger: bool,
    /// The ACC wake input is active.
    pub acc: bool,
    /// `cell_uv` is active.
    pub undervoltage: bool,
}

/// The power-mode state machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct PowerModes {
    mode: PowerMode,
    // `OptInstant`: 8 bytes each instead of 16.
    idle_since: OptInstant,
    uv_since: OptInstant,
}

/// `since + delay` has passed at `now` (`duration_since` saturates at `u32::MAX` ms, which
/// no `Duration` exceeds, so the unsaturated 64-bit difference compares the same).
#[inline(always)]
fn passed(now: Instant, since: Instant, delay: crate::time::Duration) -> bool {
    // A subtract and a compare; `now < since` (a clock set back) is elapsed zero.
    match now.as_millis().checked_sub(since.as_millis()) {
        Some(elapsed) => elapsed >= u64::from(delay.as_millis()),
        None => delay.as_millis() == 0,
    }
}

/// [`passed`] out of line, for the idle step where the usual test did not settle it.
#[cold]
#[inline(never)]
fn expired(now: Instant, since: Instant, delay: crate::time::Duration) -> bool {
    passed(now, since, delay)
}

impl PowerModes {
    /// The current mode.
    pub const fn mode(&self) -> PowerMode {
        self.mode
    }

    /// Advances the state machine; returns the mode.
    ///
    /// - active -> sleep: `|I| < idle_current`, no charger and no ACC for `sleep_after`;
    /// - sleep -> active: `|I| >= wake_current`, a charger, or ACC;
    /// - any -> deep sleep: `cell_uv` active without a charger for `deep_sleep_after`;
    /// - deep sleep -> active: ACC only (manual wake).
    // Always inlined: the usual step is a few compares, and `Protection::step` calls it
    // twice (once for its quiet step, where the under-voltage input is a constant).
    #[inline(always)]
    pub fn update(&mut self, cfg: &PowerConfig, i: PowerInput) -> PowerMode {
        let idle =
            i.current.unsigned_abs() < cfg.idle_current.unsigned_abs() && !i.charger && !i.acc;
        let uv = i.undervoltage && !i.charger;
        // The usual steps: awake without under-voltage, where only the idle timer can
        // change the mode (the general path below gives the same).
        if self.mode == PowerMode::Active && !uv {
            self.uv_since = OptInstant::NONE;
            if !idle {
                self.idle_since = OptInstant::NONE;
            } else {
                let since = self.idle_since.get_or_insert(i.now);
                let (now, from) = (i.now.as_millis(), since.as_millis());
                // The usual idle step (the clock went on, the delay is still running) is a
                // subtract and two branches; the rest is decided out of line.
                let running = now >= from && now - from < u64::from(cfg.sleep_after.as_millis());
                if !running && expired(i.now, since, cfg.sleep_after) {
                    self.mode = PowerMode::Sleep;
                }
            }
            return self.mode;
        }
        if !idle {
            self.idle_since = OptInstant::NONE;
        }
        if !uv {
            self.uv_since = OptInstant::NONE;
        }
        let idle_since = if idle {
            Some(self.idle_since.get_or_insert(i.now))
        } else {
            None
        };
        let long_uv = uv
            && passed(
                i.now,
                self.uv_since.get_or_insert(i.now),
                cfg.deep_sleep_after,
            );
        self.mode = match self.mode {
            PowerMode::DeepSleep if i.acc => {
                self.uv_since = OptInstant::NONE;
                self.idle_since = OptInstant::NONE;
                PowerMode::Active
            }
            PowerMode::DeepSleep => PowerMode::DeepSleep,
            _ if long_uv => PowerMode::DeepSleep,
            PowerMode::Active if idle_since.is_some_and(|s| passed(i.now, s, cfg.sleep_after)) => {
                PowerMode::Sleep
            }
            PowerMode::Sleep
                if i.current.unsigned_abs() >= cfg.wake_current.unsigned_abs()
                    || i.charger
                    || i.acc =>
            {
                PowerMode::Active
            }
            m => m,
        };
        self.mode
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::time::Duration;
    use proptest::prelude::*;

    /// The state of the general path.
    #[derive(Default)]
    struct Plain {
        mode: PowerMode,
        idle_since: Option<Instant>,
        uv_since: Option<Instant>,
    }

    /// The general path alone, without the fast path: what `update` must equal.
    fn reference(p: &mut Plain, cfg: &PowerConfig, i: PowerInput) -> PowerMode {
        let idle =
            i.current.unsigned_abs() < cfg.idle_current.unsigned_abs() && !i.charger && !i.acc;
        p.idle_since = if idle {
            Some(p.idle_since.unwrap_or(i.now))
        } else {
            None
        };
        let uv = i.undervoltage && !i.charger;
        p.uv_since = if uv {
            Some(p.uv_since.unwrap_or(i.now))
        } else {
            None
        };
        let elapsed = |since: Option<Instant>| since.map(|s| i.now.duration_since(s));
        let long_uv = elapsed(p.uv_since).is_some_and(|d| d >= cfg.deep_sleep_after);
        p.mode = match p.mode {
            PowerMode::DeepSleep if i.acc => {
                p.uv_since = None;
                p.idle_since = None;
                PowerMode::Active
            }
            PowerMode::DeepSleep => PowerMode::DeepSleep,
            _ if long_uv => PowerMode::DeepSleep,
            PowerMode::Active if elapsed(p.idle_since).is_some_and(|d| d >= cfg.sleep_after) => {
                PowerMode::Sleep
            }
            PowerMode::Sleep
                if i.current.unsigned_abs() >= cfg.wake_current.unsigned_abs()
                    || i.charger
                    || i.acc =>
            {
                PowerMode::Active
            }
            m => m,
        };
        p.mode
    }

    proptest! {
        #[test]
        fn update_equals_the_general_path(
            steps in proptest::collection::vec((-5i64..30, -2_000i32..2_000, any::<bool>(), any::<bool>(), any::<bool>(), prop_oneof![4 => Just(false), 1 => Just(true)]), 1..200),
        ) {
            // Time may also go back (a clock set back): elapsed time is then zero; and the
            // delays may change to zero between steps (a new configuration).
            let (mut fast, mut slow) = (PowerModes::default(), Plain::default());
            let mut t = 100_000i64;
            for (dt, ma, charger, acc, uv, zero_delays) in steps {
                let cfg = if zero_delays {
                    PowerConfig { sleep_after: Duration::ZERO, deep_sleep_after: Duration::ZERO, ..CFG }
                } else {
                    CFG
                };
                t = (t + dt * 1_000).max(0);
                let i = PowerInput {
                    now: Instant::from_millis(t as u64),
                    current: MilliAmps::from_ma(ma),
                    charger,
                    acc,
                    undervoltage: uv,
                };
                prop_assert_eq!(fast.update(&cfg, i), reference(&mut slow, &cfg, i));
            }
        }
    }

    const CFG: PowerConfig = PowerConfig {
        idle_current: MilliAmps::from_ma(500),
        sleep_after: Duration::from_secs(10),
        wake_current: MilliAmps::from_ma(1_000),
        deep_sleep_after: Duration::from_secs(100),
    };

    fn input(t: u64, ma: i32) -> PowerInput {
        PowerInput {
            now: Instant::from_millis(t * 1000),
            current: MilliAmps::from_ma(ma),
            charger: false,
            acc: false,
            undervoltage: false,
        }
    }

    #[test]
    fn sleeps_after_idle_and_wakes_on_current() {
        let mut p = PowerModes::default();
        assert_eq!(p.update(&CFG, input(0, 100)), PowerMode::Active);
        assert_eq!(p.update(&CFG, input(9, -100)), PowerMode::Active);
        assert_eq!(p.update(&CFG, input(10, 0)), PowerMode::Sleep);
        assert_eq!(p.update(&CFG, input(11, 900)), PowerMode::Sleep);
        assert_eq!(p.update(&CFG, input(12, -1_000)), PowerMode::Active);
    }

    #[test]
    fn acc_keeps_awake_and_wakes() {
        let mut p = PowerModes::default();
        let acc = |t| PowerInput {
            acc: true,
            ..input(t, 0)
        };
        assert_eq!(p.update(&CFG, acc(0)), PowerMode::Active);
        assert_eq!(p.update(&CFG, acc(20)), PowerMode::Active);
        assert_eq!(p.update(&CFG, input(21, 0)), PowerMode::Active);
        assert_eq!(p.update(&CFG, input(31, 0)), PowerMode::Sleep);
        assert_eq!(p.update(&CFG, acc(32)), PowerMode::Active);
    }

    #[test]
    fn deep_sleep_after_long_uv_and_only_acc_wakes() {
        let mut p = PowerModes::default();
        let uv = |t, charger| PowerInput {
            undervoltage: true,
            charger,
            ..input(t, 0)
        };
        p.update(&CFG, uv(0, false));
        assert_eq!(p.update(&CFG, uv(99, false)), PowerMode::Sleep);
        assert_eq!(p.update(&CFG, uv(100, false)), PowerMode::DeepSleep);
        assert_eq!(p.update(&CFG, uv(101, true)), PowerMode::DeepSleep);
        assert_eq!(p.update(&CFG, input(102, 5_000)), PowerMode::DeepSleep);
        let wake = PowerInput {
            acc: true,
            ..uv(103, false)
        };
        assert_eq!(p.update(&CFG, wake), PowerMode::Active);
    }

    #[test]
    fn charger_postpones_deep_sleep() {
        let mut p = PowerModes::default();
        let uv = |t, charger| PowerInput {
            undervoltage: true,
            charger,
            ..input(t, -2_000)
        };
        p.update(&CFG, uv(0, false));
        p.update(&CFG, uv(50, true));
        assert_eq!(p.update(&CFG, uv(120, false)), PowerMode::Active);
        assert_eq!(p.update(&CFG, uv(220, false)), PowerMode::DeepSleep);
    }
}
