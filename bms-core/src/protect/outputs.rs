//! Digital outputs DO1..DO3, decided in the step like the MOSFETs.

use crate::config::{OutputFunction, OutputsConfig};
use crate::protect::{FaultSet, Summary};
use crate::units::DeciCelsius;

/// Inputs of the output decision.
#[derive(Clone, Copy, Debug)]
pub struct OutputInput {
    /// Active faults.
    pub faults: FaultSet,
    /// Active warnings.
    pub warnings: FaultSet,
    /// Charging allowed.
    pub charge_ok: bool,
    /// Discharging allowed.
    pub discharge_ok: bool,
    /// Coldest NTC.
    pub min_temp: Option<DeciCelsius>,
    /// Hottest of the NTCs and the MOSFET.
    pub max_temp: Option<DeciCelsius>,
}

/// Decides one output; `was` is its previous state (for the heater and fan hysteresis).
///
/// An unknown temperature turns a heater off and a fan on (the safe sides).
pub fn decide(f: OutputFunction, i: &OutputInput, was: bool) -> bool {
    match f {
        OutputFunction::Off => false,
        OutputFunction::Alarm => !i.faults.is_empty() || !i.warnings.is_empty(),
        OutputFunction::Fault => !i.faults.is_empty(),
        OutputFunction::ChargerEnable => i.charge_ok,
        OutputFunction::LoadEnable => i.discharge_ok,
        OutputFunction::Heater {
            on_below_dc,
            off_above_dc,
        } => match i.min_temp {
            None => false,
            Some(t) if t <= on_below_dc => true,
            Some(t) if t >= off_above_dc => false,
            Some(_) => was,
        },
        OutputFunction::Fan {
            on_above_dc,
            off_below_dc,
        } => match i.max_temp {
            None => true,
            Some(t) if t >= on_above_dc => true,
            Some(t) if t <= off_below_dc => false,
            Some(_) => was,
        },
    }
}

/// The three outputs of a step at once; equal to [`decide`] for each (with `max_temp` the
/// hottest of `s.max_temp` and `s.mos_temp`).
///
/// The five functions without a threshold are bits of one mask, so each of them is a
/// shift; only a heater or a fan builds an [`OutputInput`].
#[inline(always)]
pub(super) fn decide_all(
    o: &OutputsConfig,
    faults: FaultSet,
    warnings: FaultSet,
    charge_ok: bool,
    discharge_ok: bool,
    s: &Summary,
    was: [bool; 3],
) -> [bool; 3] {
    let fault = !faults.is_empty();
    // Bit n: the state of the function with index n (see `simple_index`).
    let simple = u8::from(fault || !warnings.is_empty()) << 1
        | u8::from(fault) << 2
        | u8::from(charge_ok) << 3
        | u8::from(discharge_ok) << 4;
    let one = |f: OutputFunction, was: bool| {
        let n = index(f);
        if n < 5 {
            simple >> n & 1 != 0
        } else {
            thresholded(f, faults, warnings, charge_ok, discharge_ok, s, was)
        }
    };
    [one(o.do1, was[0]), one(o.do2, was[1]), one(o.do3, was[2])]
}

/// The function's number in declaration order (the enum's own tag, so the match is no
/// code); below 5 it is its bit in `decide_all`'s mask.
#[inline(always)]
fn index(f: OutputFunction) -> u8 {
    match f {
        OutputFunction::Off => 0,
        OutputFunction::Alarm => 1,
        OutputFunction::Fault => 2,
        OutputFunction::ChargerEnable => 3,
        OutputFunction::LoadEnable => 4,
        OutputFunction::Heater { .. } => 5,
        OutputFunction::Fan { .. } => 6,
    }
}

/// A heater or a fan, through [`decide`].
// Not inlined: off the usual path.
#[inline(never)]
fn thresholded(
    f: OutputFunction,
    faults: FaultSet,
    warnings: FaultSet,
    charge_ok: bool,
    discharge_ok: bool,
    s: &Summary,
    was: bool,
) -> bool {
    let i = OutputInput {
        faults,
        warnings,
        charge_ok,
        discharge_ok,
        min_temp: s.min_temp,
        max_temp: match (s.max_temp, s.mos_temp) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        },
    };
    decide(f, &i, was)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::protect::Fault;

    fn input(t: i16) -> OutputInput {
        OutputInput {
            faults: FaultSet::EMPTY,
            warnings: FaultSet::EMPTY,
            charge_ok: true,
            discharge_ok: false,
            min_temp: Some(DeciCelsius::from_deci(t)),
            max_temp: Some(DeciCelsius::from_deci(t)),
        }
    }

    #[test]
    fn heater_hysteresis() {
        let h = OutputFunction::Heater {
            on_below_dc: DeciCelsius::from_deci(50),
            off_above_dc: DeciCelsius::from_deci(100),
        };
        assert!(decide(h, &input(50), false));
        assert!(decide(h, &input(80), true));
        assert!(!decide(h, &input(80), false));
        assert!(!decide(h, &input(100), true));
        assert!(!decide(
            h,
            &OutputInput {
                min_temp: None,
                ..input(0)
            },
            true
        ));
    }

    #[test]
    fn fan_hysteresis_and_unknown_is_on() {
        let f = OutputFunction::Fan {
            on_above_dc: DeciCelsius::from_deci(450),
            off_below_dc: DeciCelsius::from_deci(400),
        };
        assert!(decide(f, &input(450), false));
        assert!(decide(f, &input(420), true));
        assert!(!decide(f, &input(400), true));
        assert!(decide(
            f,
            &OutputInput {
                max_temp: None,
                ..input(0)
            },
            false
        ));
    }

    #[test]
    fn alarm_and_enables() {
        let mut i = input(250);
        assert!(!decide(OutputFunction::Alarm, &i, false));
        i.warnings.insert(Fault::CellOv);
        assert!(decide(OutputFunction::Alarm, &i, false));
        assert!(!decide(OutputFunction::Fault, &i, false));
        assert!(decide(OutputFunction::ChargerEnable, &i, false));
        assert!(!decide(OutputFunction::LoadEnable, &i, false));
    }
}
