//! Digital outputs DO1..DO3, decided in the step like the MOSFETs.

use crate::config::OutputFunction;
use crate::protect::FaultSet;
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
