//! [`Controller`]: one control cycle over a [`Board`]: read ports -> [`Bms::step`] -> apply.
//!
//! The controller is the only place where the core meets the hardware. It never decides
//! anything itself: a port error becomes a missing reading in the snapshot (the cell
//! monitor's error sets `afe_ok = false`, others leave the reading `None`), and the core's
//! protection turns missing readings into `afe_comm` / `sensor_fault`.
//!
//! # Examples
//! A board with every port implemented is driven like this (blocking main loop):
//! ```ignore
//! let mut ctl = Controller::new(board, Bms::new(cfg)?);
//! loop {
//!     let out = ctl.run_once();
//!     // e.g. feed CAN and serial from ctl.bms().telemetry(), then wait for the next period
//! }
//! ```

use crate::bms::{Bms, Outputs};
use crate::measure::{Measurements, MAX_CELLS, NTC_COUNT};
use crate::ports::Board;
use crate::ports::{
    BoardTemperature, CellMonitor, Clock, CurrentSensor, DigitalIo, PackVoltage, PowerSwitches,
};
use crate::units::MilliVolts;

/// Port errors seen by the controller (saturating counters), for diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PortErrors {
    /// Cell monitor reads or writes that failed.
    pub afe: u32,
    /// Current sensor reads that failed.
    pub current: u32,
    /// Pack or load voltage reads that failed.
    pub voltage: u32,
    /// Board temperature reads that failed.
    pub temperature: u32,
    /// Switch commands that failed.
    pub switches: u32,
}

/// Drives a [`Bms`] over a [`Board`].
pub struct Controller<B: Board> {
    board: B,
    bms: Bms,
    errors: PortErrors,
    open_wire: u32,
    cycle: u32,
    afe_write_failed: bool,
    /// Run the open-wire check every this many cycles (it disturbs the cell readings on
    /// most monitors, so not every cycle).
    pub open_wire_every: u32,
}

impl<B: Board> Controller<B> {
    /// A controller over `board` running `bms`; the open-wire check runs every 10 cycles.
    pub fn new(board: B, bms: Bms) -> Self {
        Controller {
            board,
            bms,
            errors: PortErrors::default(),
            open_wire: 0,
            cycle: 0,
            afe_write_failed: false,
            open_wire_every: 10,
        }
    }

    /// The BMS.
    pub fn bms(&self) -> &Bms {
        &self.bms
    }

    /// The BMS, mutable (commands, configuration changes).
    pub fn bms_mut(&mut self) -> &mut Bms {
        &mut self.bms
    }

    /// The board.
    pub fn board(&self) -> &B {
        &self.board
    }

    /// The board, mutable.
    pub fn board_mut(&mut self) -> &mut B {
        &mut self.board
    }

    /// Port error counters.
    pub fn errors(&self) -> PortErrors {
        self.errors
    }

    /// Gives back the board and the BMS.
    pub fn into_parts(self) -> (B, Bms) {
        (self.board, self.bms)
    }

    /// Reads every port into a snapshot.
    pub fn measure(&mut self) -> Measurements {
        let n = (self.bms.config().cells as usize).min(MAX_CELLS);
        let now = self.board.clock().now();
        let mut m = Measurements::uniform(n as u8, MilliVolts::ZERO, now);
        let e = &mut self.errors;
        let afe = self.board.afe();
        let mut ok = !core::mem::take(&mut self.afe_write_failed);
        ok &= afe.read_cells(&mut m.cells[..n]).is_ok();
        let mut temps = [None; NTC_COUNT];
        ok &= afe.read_temperatures(&mut temps).is_ok();
        m.cell_temps = temps;
        if self.open_wire_every > 0 && self.cycle % self.open_wire_every == 0 {
            match afe.check_open_wire() {
                Ok(mask) => self.open_wire = mask,
                Err(_) => ok = false,
            }
        }
        m.open_wire = self.open_wire;
        m.afe_ok = ok;
        if !ok {
            e.afe = e.afe.saturating_add(1);
        }
        m.current = self.board.current().read_current().ok();
        if m.current.is_none() {
            e.current = e.current.saturating_add(1);
        }
        let v = self.board.voltage();
        m.pack = v.pack_voltage().ok();
        m.load = v.load_voltage().ok();
        if m.pack.is_none() || m.load.is_none() {
            e.voltage = e.voltage.saturating_add(1);
        }
        let t = self.board.temperature();
        m.mos_temp = t.mos_temperature().ok();
        m.balance_temp = t.balance_temperature().unwrap_or(None);
        if m.mos_temp.is_none() {
            e.temperature = e.temperature.saturating_add(1);
        }
        let io = self.board.io();
        m.acc = io.acc_active();
        m.charger_present = io.charger_present();
        m
    }

    /// Applies the outputs of a step to the ports. A failed balancing write is reported
    /// as a cell-monitor failure in the next snapshot.
    pub fn apply(&mut self, out: &Outputs) {
        if self.board.switches().set_fets(out.fets).is_err() {
            self.errors.switches = self.errors.switches.saturating_add(1);
        }
        if self.board.afe().set_balancing(out.balance_mask).is_err() {
            self.afe_write_failed = true;
            self.errors.afe = self.errors.afe.saturating_add(1);
        }
        self.board.io().set_outputs(out.digital);
    }

    /// One cycle: measure, step, apply. Returns what was applied.
    pub fn run_once(&mut self) -> Outputs {
        let m = self.measure();
        let out = self.bms.step(&m);
        self.apply(&out);
        self.cycle = self.cycle.wrapping_add(1);
        out
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::config::{Chemistry, PackConfig};
    use crate::ports::FetState;
    use crate::time::Instant;
    use crate::units::{DeciCelsius, MilliAmps};
    use crate::Fault;

    /// A board whose ports read fixed values; `afe_fails` makes the monitor fail.
    #[derive(Default)]
    struct Fixed {
        t: u64,
        afe_fails: bool,
        fets: FetState,
        balance: u32,
        outputs: [bool; 3],
    }

    #[derive(Debug)]
    struct Nack;

    impl CellMonitor for Fixed {
        type Error = Nack;
        fn read_cells(&mut self, out: &mut [MilliVolts]) -> Result<(), Nack> {
            if self.afe_fails {
                return Err(Nack);
            }
            for (i, c) in out.iter_mut().enumerate() {
                *c = MilliVolts::from_mv(3_300 + (self.t / 100 % 2) as u32 + i as u32);
            }
            Ok(())
        }
        fn read_temperatures(
            &mut self,
            out: &mut [Option<DeciCelsius>; NTC_COUNT],
        ) -> Result<(), Nack> {
            *out = [Some(DeciCelsius::from_celsius(25)); NTC_COUNT];
            Ok(())
        }
        fn check_open_wire(&mut self) -> Result<u32, Nack> {
            Ok(0)
        }
        fn set_balancing(&mut self, mask: u32) -> Result<(), Nack> {
            self.balance = mask;
            Ok(())
        }
    }
    impl CurrentSensor for Fixed {
        type Error = Nack;
        fn read_current(&mut self) -> Result<MilliAmps, Nack> {
            Ok(MilliAmps::from_amps(3))
        }
    }
    impl PackVoltage for Fixed {
        type Error = Nack;
        fn pack_voltage(&mut self) -> Result<MilliVolts, Nack> {
            Ok(MilliVolts::from_mv(16 * 3_308))
        }
        fn load_voltage(&mut self) -> Result<MilliVolts, Nack> {
            Ok(MilliVolts::from_mv(16 * 3_308))
        }
    }
    impl BoardTemperature for Fixed {
        type Error = Nack;
        fn mos_temperature(&mut self) -> Result<DeciCelsius, Nack> {
            Ok(DeciCelsius::from_celsius(30))
        }
    }
    impl PowerSwitches for Fixed {
        type Error = Nack;
        fn set_fets(&mut self, s: FetState) -> Result<(), Nack> {
            self.fets = s;
            Ok(())
        }
    }
    impl DigitalIo for Fixed {
        fn set_outputs(&mut self, o: [bool; 3]) {
            self.outputs = o;
        }
        fn acc_active(&mut self) -> bool {
            false
        }
        fn charger_present(&mut self) -> bool {
            false
        }
    }
    impl Clock for Fixed {
        fn now(&mut self) -> Instant {
            self.t += 100;
            Instant::from_millis(self.t)
        }
    }
    impl Board for Fixed {
        type Afe = Self;
        type Current = Self;
        type Voltage = Self;
        type Temp = Self;
        type Switches = Self;
        type Io = Self;
        type Clock = Self;
        fn afe(&mut self) -> &mut Self {
            self
        }
        fn current(&mut self) -> &mut Self {
            self
        }
        fn voltage(&mut self) -> &mut Self {
            self
        }
        fn temperature(&mut self) -> &mut Self {
            self
        }
        fn switches(&mut self) -> &mut Self {
            self
        }
        fn io(&mut self) -> &mut Self {
            self
        }
        fn clock(&mut self) -> &mut Self {
            self
        }
    }

    fn controller() -> Controller<Fixed> {
        let cfg = PackConfig::preset("ANT16S-300A-C".parse().unwrap(), Chemistry::Lfp);
        Controller::new(Fixed::default(), Bms::new(cfg).unwrap())
    }

    #[test]
    fn cycle_reads_steps_and_applies() {
        let mut c = controller();
        let out = c.run_once();
        assert!(out.fets.charge && out.fets.discharge);
        assert_eq!(c.board().fets, out.fets);
        assert_eq!(c.bms().telemetry().cells()[15].as_mv(), 3_316);
        assert_eq!(c.bms().telemetry().current.as_ma(), 3_000);
    }

    #[test]
    fn afe_errors_open_both_mosfets() {
        let mut c = controller();
        c.run_once();
        c.board_mut().afe_fails = true;
        for _ in 0..10 {
            c.run_once();
        }
        assert!(c.bms().telemetry().faults.contains(Fault::AfeComm));
        assert_eq!(c.board().fets, FetState::OPEN);
        assert!(c.errors().afe >= 10);
    }
}
