//! Pre-charge: charge the load capacitance through a resistor before closing discharge.
//!
//! `Open` -> (discharge allowed) -> `Precharging` -> (load voltage reached the target
//! fraction of the pack voltage) -> `Closed`; a timeout reports `precharge_fail` and goes
//! back to `Open` until the fault releases.

use crate::config::PrechargeConfig;
use crate::time::Instant;
use crate::units::MilliVolts;

/// The pre-charge state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Precharge {
    /// Discharge path open.
    #[default]
    Open,
    /// Pre-charge path closed since the given instant.
    Precharging(Instant),
    /// Discharge MOSFET closed.
    Closed,
}

/// What the pre-charge stage wants from the switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PrechargeOutput {
    /// Close the discharge MOSFET.
    pub discharge: bool,
    /// Close the pre-charge path.
    pub precharge: bool,
    /// The attempt timed out in this step.
    pub timed_out: bool,
}

impl Precharge {
    /// Advances the sequence. `allowed`: protection allows discharging now.
    // Always inlined: the usual step (closed and still allowed) is one compare; the
    // general path below gives the same there.
    #[inline(always)]
    pub fn update(
        &mut self,
        now: Instant,
        cfg: &PrechargeConfig,
        allowed: bool,
        pack: Option<MilliVolts>,
        load: Option<MilliVolts>,
    ) -> PrechargeOutput {
        if allowed && matches!(self, Precharge::Closed) {
            return PrechargeOutput {
                discharge: true,
                precharge: false,
                timed_out: false,
            };
        }
        self.advance(now, cfg, allowed, pack, load)
    }

    /// The general path of [`update`](Self::update).
    #[inline(never)]
    fn advance(
        &mut self,
        now: Instant,
        cfg: &PrechargeConfig,
        allowed: bool,
        pack: Option<MilliVolts>,
        load: Option<MilliVolts>,
    ) -> PrechargeOutput {
        let mut out = PrechargeOutput::default();
        if !allowed {
            *self = Precharge::Open;
            return out;
        }
        if *self == Precharge::Open {
            *self = if cfg.enabled {
                Precharge::Precharging(now)
            } else {
                Precharge::Closed
            };
        }
        if let Precharge::Precharging(since) = *self {
            let reached = match (pack, load) {
                (Some(p), Some(l)) => l.as_mv() >= cfg.target_permille.of(p.as_mv()),
                _ => false,
            };
            if reached {
                *self = Precharge::Closed;
            } else if now.duration_since(since) >= cfg.timeout {
                *self = Precharge::Open;
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
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::time::Duration;
    use crate::units::Permille;

    const CFG: PrechargeConfig = PrechargeConfig {
        enabled: true,
        target_permille: Permille::from_permille(900),
        timeout: Duration::from_millis(1_000),
        load_removed_permille: Permille::from_permille(500),
    };

    fn mv(x: u32) -> Option<MilliVolts> {
        Some(MilliVolts::from_mv(x))
    }

    #[test]
    fn closes_discharge_once_load_reaches_target() {
        let mut p = Precharge::default();
        let t = Instant::from_millis;
        let o = p.update(t(0), &CFG, true, mv(50_000), mv(0));
        assert_eq!((o.discharge, o.precharge), (false, true));
        let o = p.update(t(500), &CFG, true, mv(50_000), mv(44_999));
        assert_eq!((o.discharge, o.precharge), (false, true));
        let o = p.update(t(600), &CFG, true, mv(50_000), mv(45_000));
        assert_eq!(
            (o.discharge, o.precharge, o.timed_out),
            (true, false, false)
        );
        assert_eq!(p, Precharge::Closed);
    }

    #[test]
    fn times_out_and_opens() {
        let mut p = Precharge::default();
        let t = Instant::from_millis;
        p.update(t(0), &CFG, true, mv(50_000), mv(0));
        let o = p.update(t(999), &CFG, true, mv(50_000), mv(10_000));
        assert!(o.precharge && !o.timed_out);
        let o = p.update(t(1_000), &CFG, true, mv(50_000), mv(10_000));
        assert_eq!(
            (o.discharge, o.precharge, o.timed_out),
            (false, false, true)
        );
    }

    #[test]
    fn missing_load_reading_never_completes() {
        let mut p = Precharge::default();
        let t = Instant::from_millis;
        p.update(t(0), &CFG, true, mv(50_000), None);
        assert!(p.update(t(2_000), &CFG, true, mv(50_000), None).timed_out);
    }

    #[test]
    fn disabled_closes_directly_and_not_allowed_opens() {
        let mut p = Precharge::default();
        let cfg = PrechargeConfig {
            enabled: false,
            ..CFG
        };
        assert!(p.update(Instant::ZERO, &cfg, true, None, None).discharge);
        let o = p.update(Instant::ZERO, &cfg, false, None, None);
        assert!(!o.discharge && !o.precharge);
    }
}
