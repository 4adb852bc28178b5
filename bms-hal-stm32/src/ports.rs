//! Board ports built from `embedded-hal` pins and plain ADC scales, independent of the MCU.
//!
//! The STM32 firmware hands its HAL's GPIO types (which implement `embedded-hal` 1.0) to
//! these adapters; the ADC-based ports use [`AdcScale`] to turn counts into units with
//! integer arithmetic only.

use bms_core::ports::{DigitalIo, FetState, PowerSwitches};
use bms_core::units::{MilliAmps, MilliVolts};
use embedded_hal::digital::{Error as _, ErrorKind, InputPin, OutputPin};

/// The charge, discharge and pre-charge MOSFET driver enables (`high` = conducting).
///
/// Switches are opened before others are closed, so a change never has both the old and
/// the new path closed at once.
#[derive(Debug)]
pub struct FetPins<C, D, P> {
    charge: C,
    discharge: D,
    precharge: P,
    state: FetState,
}

impl<C: OutputPin, D: OutputPin, P: OutputPin> FetPins<C, D, P> {
    /// Takes the three enables and drives them all low (open).
    ///
    /// # Errors
    /// The first pin error.
    pub fn new(charge: C, discharge: D, precharge: P) -> Result<Self, ErrorKind> {
        let mut s = FetPins {
            charge,
            discharge,
            precharge,
            state: FetState::OPEN,
        };
        s.drive(FetState::OPEN, false)?;
        Ok(s)
    }

    /// The state last applied.
    pub fn state(&self) -> FetState {
        self.state
    }

    fn drive(&mut self, to: FetState, level: bool) -> Result<(), ErrorKind> {
        let set = |on: bool| on == level;
        if set(to.charge) {
            set_pin(&mut self.charge, level)?;
        }
        if set(to.discharge) {
            set_pin(&mut self.discharge, level)?;
        }
        if set(to.precharge) {
            set_pin(&mut self.precharge, level)?;
        }
        Ok(())
    }
}

fn set_pin<O: OutputPin>(pin: &mut O, high: bool) -> Result<(), ErrorKind> {
    if high {
        pin.set_high().map_err(|e| e.kind())
    } else {
        pin.set_low().map_err(|e| e.kind())
    }
}

impl<C: OutputPin, D: OutputPin, P: OutputPin> PowerSwitches for FetPins<C, D, P> {
    type Error = ErrorKind;

    fn set_fets(&mut self, state: FetState) -> Result<(), Self::Error> {
        // Open first, then close.
        self.drive(state, false)?;
        self.drive(state, true)?;
        self.state = state;
        Ok(())
    }
}

/// DO1..DO3 outputs and the ACC and charger-detect inputs (`high` = active).
///
/// A pin error reads as inactive and leaves an output unchanged: the core sees no wake
/// request rather than a false one.
#[derive(Debug)]
pub struct IoPins<O1, O2, O3, A, CH> {
    /// DO1.
    pub do1: O1,
    /// DO2.
    pub do2: O2,
    /// DO3.
    pub do3: O3,
    /// ACC wake input.
    pub acc: A,
    /// Charger detect input.
    pub charger: CH,
}

impl<O1, O2, O3, A, CH> DigitalIo for IoPins<O1, O2, O3, A, CH>
where
    O1: OutputPin,
    O2: OutputPin,
    O3: OutputPin,
    A: InputPin,
    CH: InputPin,
{
    fn set_outputs(&mut self, outputs: [bool; 3]) {
        let [a, b, c] = outputs;
        let _ = set_pin(&mut self.do1, a);
        let _ = set_pin(&mut self.do2, b);
        let _ = set_pin(&mut self.do3, c);
    }

    fn acc_active(&mut self) -> bool {
        self.acc.is_high().unwrap_or(false)
    }

    fn charger_present(&mut self) -> bool {
        self.charger.is_high().unwrap_or(false)
    }
}

/// A linear ADC scale `value = (counts − zero) × num / den`, integer only.
///
/// For a pack divider: `zero = 0`, `num / den` = mV per count. For a bidirectional shunt
/// amplifier with a mid-scale reference: `zero` = the reference code, `num / den` = mA per
/// count, negative if the amplifier's positive direction is charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AdcScale {
    /// Code of the zero reading.
    pub zero: i32,
    /// Numerator of units per count.
    pub num: i32,
    /// Denominator of units per count (non-zero).
    pub den: i32,
}

impl AdcScale {
    /// Scale of a resistor divider `r_top` over `r_bottom` read by an ADC with reference
    /// `vref` and largest code `full_scale`: mV per count = vref × (r_top + r_bottom) /
    /// (r_bottom × full_scale).
    pub const fn divider(vref: MilliVolts, r_top: u32, r_bottom: u32, full_scale: u16) -> Self {
        // Keep the fraction in i32: scale resistances to kΩ-ish magnitudes by the caller.
        AdcScale {
            zero: 0,
            num: (vref.as_mv() as i32) * ((r_top + r_bottom) as i32 / 100),
            den: (r_bottom as i32 / 100) * full_scale as i32,
        }
    }

    /// Scale of a shunt of `shunt_uohm` µΩ with an amplifier of gain `gain`, read by an
    /// ADC with reference `vref` and largest code `full_scale`, zero current at `zero`:
    /// mA per count = vref / full_scale / gain / R.
    pub const fn shunt(
        vref: MilliVolts,
        full_scale: u16,
        gain: u16,
        shunt_uohm: u32,
        zero: u16,
    ) -> Self {
        // counts × vref[mV] / full_scale = mV at the ADC; / gain = mV across the shunt;
        // mV / µΩ × 1e6 = mA.
        AdcScale {
            zero: zero as i32,
            num: vref.as_mv() as i32 * 1_000,
            den: full_scale as i32 * gain as i32 * (shunt_uohm as i32) / 1_000,
        }
    }

    /// Applies the scale, saturating; `None` if `den` is zero.
    pub fn apply(&self, counts: u16) -> Option<i32> {
        if self.den == 0 {
            return None;
        }
        let v =
            (i64::from(counts) - i64::from(self.zero)) * i64::from(self.num) / i64::from(self.den);
        Some(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
    }

    /// Applies the scale as a voltage (negative results read as 0 mV).
    pub fn millivolts(&self, counts: u16) -> Option<MilliVolts> {
        self.apply(counts)
            .map(|v| MilliVolts::from_mv(v.max(0) as u32))
    }

    /// Applies the scale as a current.
    pub fn milliamps(&self, counts: u16) -> Option<MilliAmps> {
        self.apply(counts).map(MilliAmps::from_ma)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use embedded_hal_mock::eh1::digital::{Mock as Pin, State, Transaction as T};

    #[test]
    fn fets_open_before_close() {
        // new(): all low.
        let mut chg = Pin::new(&[T::set(State::Low), T::set(State::High), T::set(State::Low)]);
        let mut dsg = Pin::new(&[T::set(State::Low), T::set(State::High), T::set(State::High)]);
        let mut pre = Pin::new(&[T::set(State::Low), T::set(State::Low), T::set(State::Low)]);
        let mut f = FetPins::new(chg.clone(), dsg.clone(), pre.clone()).unwrap();
        let on = FetState {
            charge: true,
            discharge: true,
            precharge: false,
        };
        f.set_fets(on).unwrap();
        assert_eq!(f.state(), on);
        let dsg_only = FetState {
            charge: false,
            discharge: true,
            precharge: false,
        };
        f.set_fets(dsg_only).unwrap();
        chg.done();
        dsg.done();
        pre.done();
    }

    #[test]
    fn io_inputs() {
        let mut acc = Pin::new(&[T::get(State::High)]);
        let mut chg = Pin::new(&[T::get(State::Low)]);
        let mut d1 = Pin::new(&[T::set(State::High)]);
        let mut d2 = Pin::new(&[T::set(State::Low)]);
        let mut d3 = Pin::new(&[T::set(State::High)]);
        let mut io = IoPins {
            do1: d1.clone(),
            do2: d2.clone(),
            do3: d3.clone(),
            acc: acc.clone(),
            charger: chg.clone(),
        };
        assert!(io.acc_active());
        assert!(!io.charger_present());
        io.set_outputs([true, false, true]);
        for p in [&mut acc, &mut chg, &mut d1, &mut d2, &mut d3] {
            p.done();
        }
    }

    #[test]
    fn divider_scale() {
        // 3.3 V reference, 12 bits, 1 MΩ over 10 kΩ: full scale = 333.3 V.
        let s = AdcScale::divider(MilliVolts::from_mv(3_300), 1_000_000, 10_000, 4_095);
        // 66.0 V -> 66000 / 333300 * 4095 = 810.9 counts.
        let v = s.millivolts(811).unwrap().as_mv();
        assert!((65_950..=66_050).contains(&v), "{v}");
        assert_eq!(s.millivolts(0).unwrap().as_mv(), 0);
    }

    #[test]
    fn shunt_scale() {
        // 3.3 V, 12 bits, gain 20, 250 µΩ, zero at mid-scale 2048.
        let s = AdcScale::shunt(MilliVolts::from_mv(3_300), 4_095, 20, 250, 2_048);
        // Full half-scale: 1.65 V / 20 = 82.5 mV / 250 µΩ = 330 A.
        let a = s.milliamps(4_095).unwrap().as_ma();
        assert!((329_000..=331_000).contains(&a), "{a}");
        assert_eq!(s.milliamps(2_048).unwrap().as_ma(), 0);
        assert!(s.milliamps(0).unwrap().as_ma() < -329_000);
        let zero = AdcScale {
            zero: 0,
            num: 1,
            den: 0,
        };
        assert_eq!(zero.apply(5), None);
    }
}
