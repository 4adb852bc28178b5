//! Charge and discharge limits (CVL, CCL, DCL) with derating near the protection limits.
//!
//! Each derating factor is in permille and falls linearly from 1000 to 0 over a band that
//! ends at the trip threshold, so a charger or inverter that honours the limits keeps the
//! pack away from its faults. The smallest factor wins.

use super::rules::ProtectionTable;
use super::summary::Summary;
use super::Fault;
use crate::config::PackConfig;
use crate::telemetry::Limits;
use crate::units::{MilliAmps, MilliVolts, Soc};

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
    (pos.clamp(0, span) as i64 * 1000 / span as i64) as u32
}

fn scale(i: MilliAmps, permille: u32) -> MilliAmps {
    MilliAmps::from_ma((i.unsigned_abs() as u64 * permille as u64 / 1000) as i32)
}

/// Temperature derating band width (0.1 °C) inside the trip threshold.
const TEMP_BAND: i32 = 100;

fn temp_factor(t: &ProtectionTable, s: &Summary, hot: Fault, cold: Fault) -> u32 {
    let (Some(hi), Some(lo)) = (s.max_temp, s.min_temp) else {
        return 0;
    };
    let (ot, ut) = (t.get(hot).trip, t.get(cold).trip);
    ramp(hi.as_deci() as i32, ot - TEMP_BAND, ot).min(ramp(lo.as_deci() as i32, ut + TEMP_BAND, ut))
}

/// The limits for this step. `charge_ok`/`discharge_ok`: protection allows that direction.
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
        (Some((hi, _)), Some((lo, _))) => {
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

#[cfg(test)]
mod test {
    use super::*;

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
