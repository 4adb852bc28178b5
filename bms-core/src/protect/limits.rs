//! Charge and discharge limits (CVL, CCL, DCL) with derating near the protection limits.
//!
//! Each derating factor is in permille and falls linearly from 1000 to 0 over a band that
//! ends at the trip threshold, so a charger or inverter that honours the limits keeps the
//! pack away from its faults. The smallest factor wins.

use super::summary::Summary;
use super::Fault;
use crate::band::Band;
use crate::config::PackConfig;
use crate::telemetry::Limits;
use crate::units::{mul_div_u32, MilliAmps, MilliVolts, Soc};

/// Linear ramp: 1000 at `full` and before, 0 at `zero` and beyond (either direction).
fn ramp(value: i32, full: i32, zero: i32) -> u32 {
    if full == zero {
        return if value < zero { 1000 } else { 0 };
    }
    let (span, pos) = if zero > full {
        (zero - full, zero - value)
    } else {
        (full - zero, value - zero)
    };
    // Saturated ends (the usual case) need no division.
    if pos <= 0 {
        return 0;
    }
    if pos >= span {
        return 1000;
    }
    // 0 < pos < span here.
    mul_div_u32(pos as u32, 1000, span as u32)
}

fn scale(i: MilliAmps, permille: u32) -> MilliAmps {
    MilliAmps::from_ma(mul_div_u32(i.unsigned_abs(), permille, 1000) as i32)
}

/// Temperature derating band width (0.1 °C) inside the trip threshold.
const TEMP_BAND: i32 = 100;

/// A linear derating: [`ramp`] from `full` to `zero`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ramp {
    full: i32,
    zero: i32,
}

impl Ramp {
    const fn new(full: i32, zero: i32) -> Ramp {
        Ramp { full, zero }
    }

    /// The inclusive range of values where it does not derate (the plan keeps it as a
    /// [`Band`]: one compare per step).
    const fn undated(self) -> (i32, i32) {
        let (full, zero) = (self.full, self.zero);
        // Where `ramp` returns 1000: at or before `full`; a step ramp only before `zero`.
        if zero > full {
            (i32::MIN, full)
        } else if zero < full {
            (full, i32::MAX)
        } else if zero > i32::MIN {
            (i32::MIN, zero - 1)
        } else {
            (i32::MAX, i32::MIN)
        }
    }

    fn factor(self, value: i32) -> u32 {
        ramp(value, self.full, self.zero)
    }
}

/// The derating ramps of a configuration, compiled once: [`LimitsPlan::limits`] is then
/// a few compares per step while nothing derates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitsPlan {
    charge_hot: Ramp,
    charge_cold: Ramp,
    discharge_hot: Ramp,
    discharge_cold: Ramp,
    charge_cell: Ramp,
    discharge_cell: Ramp,
    /// Where neither hot ramp derates (the hottest NTC), and neither cold one (the coldest):
    /// the two ranges met once, so a step checks one range for both.
    undated_hot: Band,
    undated_cold: Band,
    /// Where the charge (highest cell) and the discharge (lowest cell) ramps do not derate.
    undated_high_cell: Band,
    undated_low_cell: Band,
    undated: Limits,
}

/// Near full, charge at most 20 %; near empty, discharge at most 20 % (SOC in permille).
const SOC_FULL: Ramp = Ramp::new(950, 1000);
const SOC_EMPTY: Ramp = Ramp::new(50, 0);
/// Where neither SOC ramp derates.
const SOC_UNDATED: Band = band(meet(SOC_FULL.undated(), SOC_EMPTY.undated()));

/// Both inclusive ranges at once (empty, with its low end above its high end, if they do not
/// overlap).
const fn meet(a: (i32, i32), b: (i32, i32)) -> (i32, i32) {
    (
        if a.0 > b.0 { a.0 } else { b.0 },
        if a.1 < b.1 { a.1 } else { b.1 },
    )
}

/// `lo <= v <= hi`.
#[cfg(test)]
fn within(v: i32, (lo, hi): (i32, i32)) -> bool {
    lo <= v && v <= hi
}

/// An inclusive range as a [`Band`]; `lo > hi` is empty. (Not `i32::MIN..=i32::MAX`, which
/// would lose one value; no ramp's range is: each ramp derates somewhere.)
const fn band((lo, hi): (i32, i32)) -> Band {
    Band::inclusive(lo as i64, hi as i64)
}

impl LimitsPlan {
    /// The ramps of `cfg`.
    pub fn of(cfg: &PackConfig) -> LimitsPlan {
        let t = &cfg.protection;
        let hot = |f: Fault| Ramp::new(t.get(f).trip - TEMP_BAND, t.get(f).trip);
        let cold = |f: Fault| Ramp::new(t.get(f).trip + TEMP_BAND, t.get(f).trip);
        let cv = cfg.limits.charge_voltage.as_mv() as i32;
        let (ov, uv) = (t.get(Fault::CellOv), t.get(Fault::CellUv));
        let n = u32::from(cfg.cells);
        let (charge_hot, discharge_hot) = (hot(Fault::ChgOt), hot(Fault::DsgOt));
        let (charge_cold, discharge_cold) = (cold(Fault::ChgUt), cold(Fault::DsgUt));
        // Taper charge from 100 mV below the CV target down to zero at the OV warning
        // (or trip); taper discharge from 100 mV above the UV warning to the UV trip.
        let charge_cell = Ramp::new(cv - 100, ov.warn.unwrap_or(ov.trip));
        let discharge_cell = Ramp::new(uv.warn.unwrap_or(uv.release) + 100, uv.trip);
        LimitsPlan {
            charge_hot,
            charge_cold,
            discharge_hot,
            discharge_cold,
            undated_hot: band(meet(charge_hot.undated(), discharge_hot.undated())),
            undated_cold: band(meet(charge_cold.undated(), discharge_cold.undated())),
            undated_high_cell: band(charge_cell.undated()),
            undated_low_cell: band(discharge_cell.undated()),
            charge_cell,
            discharge_cell,
            undated: Limits {
                charge_voltage: MilliVolts::from_mv(n * cv as u32),
                charge_current: MilliAmps::from_ma(
                    cfg.limits.max_charge_current.unsigned_abs() as i32
                ),
                discharge_current: MilliAmps::from_ma(
                    cfg.limits.max_discharge_current.unsigned_abs() as i32,
                ),
                discharge_voltage: MilliVolts::from_mv(n * cfg.limits.discharge_voltage.as_mv()),
            },
        }
    }

    /// The limits for this step. `charge_ok`/`discharge_ok`: protection allows that
    /// direction.
    ///
    /// Trick: inlined, so that the usual step (nothing derates) makes no call and copies
    /// no result through memory; the derating itself stays out of line.
    #[inline(always)]
    pub fn limits(&self, s: &Summary, soc: Soc, charge_ok: bool, discharge_ok: bool) -> Limits {
        let (Some(hi), Some(lo), Some(t_hi), Some(t_lo)) =
            (s.max_cell, s.min_cell, s.max_temp, s.min_temp)
        else {
            return self.derated(s, soc, charge_ok, discharge_ok);
        };
        let (hi, lo) = (hi.as_mv() as i32, lo.as_mv() as i32);
        let (t_hi, t_lo) = (i32::from(t_hi.as_deci()), i32::from(t_lo.as_deci()));
        let p = i32::from(soc.as_permille());
        // The usual case: nothing derates, so the result is the configured maximum. Combined
        // with `&`: five subtract-and-compares, no branch per range.
        let undated = charge_ok
            & discharge_ok
            & self.undated_hot.contains(t_hi)
            & self.undated_cold.contains(t_lo)
            & self.undated_high_cell.contains(hi)
            & self.undated_low_cell.contains(lo)
            & SOC_UNDATED.contains(p);
        if undated {
            self.undated
        } else {
            self.derated(s, soc, charge_ok, discharge_ok)
        }
    }

    #[inline(never)]
    fn derated(&self, s: &Summary, soc: Soc, charge_ok: bool, discharge_ok: bool) -> Limits {
        let temp = |hot: Ramp, cold: Ramp| match (s.max_temp, s.min_temp) {
            (Some(hi), Some(lo)) => hot
                .factor(i32::from(hi.as_deci()))
                .min(cold.factor(i32::from(lo.as_deci()))),
            _ => 0,
        };
        let mut chg = if charge_ok {
            temp(self.charge_hot, self.charge_cold)
        } else {
            0
        };
        let mut dsg = if discharge_ok {
            temp(self.discharge_hot, self.discharge_cold)
        } else {
            0
        };
        match (s.max_cell, s.min_cell) {
            (Some(hi), Some(lo)) => {
                chg = chg.min(self.charge_cell.factor(hi.as_mv() as i32));
                dsg = dsg.min(self.discharge_cell.factor(lo.as_mv() as i32));
            }
            _ => {
                chg = 0;
                dsg = 0;
            }
        }
        let p = i32::from(soc.as_permille());
        chg = chg.min(200 + SOC_FULL.factor(p) * 4 / 5);
        dsg = dsg.min(200 + SOC_EMPTY.factor(p) * 4 / 5);
        Limits {
            charge_current: scale(self.undated.charge_current, chg),
            discharge_current: scale(self.undated.discharge_current, dsg),
            ..self.undated
        }
    }
}

/// The limits for this step (compiles the [`LimitsPlan`] of `cfg` each call; keep a plan
/// where this runs every step). `charge_ok`/`discharge_ok`: protection allows that direction.
pub fn limits(
    cfg: &PackConfig,
    s: &Summary,
    soc: Soc,
    charge_ok: bool,
    discharge_ok: bool,
) -> Limits {
    LimitsPlan::of(cfg).limits(s, soc, charge_ok, discharge_ok)
}

#[cfg(test)]
mod test {
    use super::super::rules::ProtectionTable;
    use super::*;

    // The direct computation the plan must reproduce.

    fn temp_factor(t: &ProtectionTable, s: &Summary, hot: Fault, cold: Fault) -> u32 {
        let (Some(hi), Some(lo)) = (s.max_temp, s.min_temp) else {
            return 0;
        };
        let (ot, ut) = (t.get(hot).trip, t.get(cold).trip);
        ramp(hi.as_deci() as i32, ot - TEMP_BAND, ot).min(ramp(
            lo.as_deci() as i32,
            ut + TEMP_BAND,
            ut,
        ))
    }

    /// The limits for this step. `charge_ok`/`discharge_ok`: protection allows that direction.
    pub(super) fn reference(
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
                // Taper charge from 100 mV below the CV target down to zero at the OV warning
                // (or trip); taper discharge from 100 mV above the UV warning to the UV trip.
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
        // Near full, charge at most 20 %; near empty, discharge at most 20 %.
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

    #[test]
    fn ramp_both_directions() {
        assert_eq!(ramp(0, 10, 20), 1000);
        assert_eq!(ramp(15, 10, 20), 500);
        assert_eq!(ramp(25, 10, 20), 0);
        assert_eq!(ramp(25, 20, 10), 1000);
        assert_eq!(ramp(12, 20, 10), 200);
        assert_eq!(ramp(5, 20, 10), 0);
    }
}

#[cfg(test)]
mod plan_test {
    use super::test::reference;
    use super::*;
    use crate::config::Chemistry;
    use crate::units::DeciCelsius;
    use proptest::prelude::*;

    proptest! {
        /// A ramp's precomputed undated range is exactly where it gives 1000.
        #[test]
        fn undated_range_is_where_the_factor_is_full(
            full in -50i32..50, zero in -50i32..50, v in -100i32..100,
        ) {
            let r = Ramp::new(full, zero);
            prop_assert_eq!(within(v, r.undated()), r.factor(v) == 1000);
            prop_assert_eq!(band(r.undated()).contains(v), r.factor(v) == 1000);
        }

        /// The compiled plan gives exactly the limits of the direct computation.
        #[test]
        fn plan_equals_the_direct_computation(
            lfp in any::<bool>(),
            cells in 8u8..=20,
            hi in proptest::option::of(2_000u32..4_500),
            lo in proptest::option::of(2_000u32..4_500),
            t_hi in proptest::option::of(-400i16..900),
            t_lo in proptest::option::of(-400i16..900),
            soc in 0i32..=1000,
            charge_ok in any::<bool>(),
            discharge_ok in any::<bool>(),
        ) {
            let chem = if lfp { Chemistry::Lfp } else { Chemistry::Nmc };
            let variant = format!("ANT{cells}S-300A-C").parse().expect("part");
            let cfg = PackConfig::preset(variant, chem);
            let s = Summary {
                max_cell: hi.map(MilliVolts::from_mv),
                min_cell: lo.map(MilliVolts::from_mv),
                max_temp: t_hi.map(DeciCelsius::from_deci),
                min_temp: t_lo.map(DeciCelsius::from_deci),
                ..Summary::default()
            };
            let soc = Soc::from_permille_clamped(soc);
            prop_assert_eq!(
                LimitsPlan::of(&cfg).limits(&s, soc, charge_ok, discharge_ok),
                reference(&cfg, &s, soc, charge_ok, discharge_ok)
            );
        }
    }
}
