//! The `bms_core::ports` traits over a simulated pack, and [`MockBoard`].
//!
//! [`Sim`] bundles the [`SimPack`], the [`FaultInjector`], the sensor model
//! ([`SensorConfig`]: seeded noise, quantisation, offset and gain errors) and the board's
//! outputs. It is shared as [`SharedSim`] (`Rc<RefCell<Sim>>`) between the port objects
//! that [`MockBoard`] hands to the controller and the simulation loop, which steps the
//! physics through its own handle ([`MockBoard::sim`]).
//!
//! Readings are taken at the pack's simulated time ([`SimPack::now`]), so an injection
//! scheduled at `t` shows up at the first read at or after `t`.
//!
//! # Examples
//! ```
//! use bms_core::ports::{Board, CellMonitor, CurrentSensor, PowerSwitches, FetState};
//! use bms_core::time::Duration;
//! use bms_core::units::MilliVolts;
//! use bms_hal_mock::pack::{PackParams, Request, SimPack};
//! use bms_hal_mock::ports::{MockBoard, SensorConfig, Sim};
//!
//! let pack = SimPack::new(PackParams::nmc(16)).unwrap();
//! let mut board = MockBoard::new(Sim::new(pack, SensorConfig::default()));
//! let sim = board.sim(); // the simulation loop's handle
//! board.switches().set_fets(FetState { charge: true, discharge: true, precharge: false }).unwrap();
//! sim.borrow_mut().step(Duration::from_millis(100), &Request { load_a: 20.0, ..Request::rest(25.0) });
//! let mut cells = [MilliVolts::ZERO; 16];
//! board.afe().read_cells(&mut cells).unwrap();
//! assert!(cells.iter().all(|c| (3_500..3_900).contains(&c.as_mv())));
//! let i = board.current().read_current().unwrap().as_ma();
//! assert!((19_700..20_300).contains(&i));
//! ```

use core::cell::RefCell;
use core::fmt;
use std::rc::Rc;

use bms_core::measure::NTC_COUNT;
use bms_core::ports::{
    Board, BoardTemperature, CellMonitor, Clock, CurrentSensor, DigitalIo, FetState, PackVoltage,
    PowerSwitches,
};
use bms_core::time::{Duration, Instant};
use bms_core::units::{DeciCelsius, MilliAmps, MilliVolts};

use crate::faults::{AfeFailure, FaultInjector, Injection, Sensor};
use crate::pack::{Request, SimPack};
use crate::rng::XorShift64;

/// Error of a mock port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MockError {
    /// The cell monitor's bus reported an error.
    AfeComm,
    /// The cell monitor did not answer in time.
    Timeout,
    /// A sensor other than the cell monitor failed.
    Sensor(Sensor),
    /// The MOSFET driver failed.
    Driver,
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MockError::AfeComm => f.write_str("cell monitor communication error"),
            MockError::Timeout => f.write_str("cell monitor timeout"),
            MockError::Sensor(s) => write!(f, "sensor {s:?} failed"),
            MockError::Driver => f.write_str("MOSFET driver failed"),
        }
    }
}

impl std::error::Error for MockError {}

/// How the board's sensors see the pack: noise (standard deviations), resolution,
/// offset and gain errors, and where the NTCs sit.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SensorConfig {
    /// Cell voltage noise, mV (standard deviation).
    pub cell_noise_mv: f64,
    /// Cell voltage resolution, mV.
    pub cell_resolution_mv: u32,
    /// Current noise, mA (standard deviation).
    pub current_noise_ma: f64,
    /// Current resolution, mA.
    pub current_resolution_ma: u32,
    /// Constant current offset, mA (positive reads as more discharge).
    pub current_offset_ma: f64,
    /// Relative current gain error (0.005 = reads 0.5 % high).
    pub current_gain_error: f64,
    /// Pack and load voltage noise, mV (standard deviation).
    pub pack_noise_mv: f64,
    /// Pack and load voltage resolution, mV.
    pub pack_resolution_mv: u32,
    /// Relative pack and load voltage gain error.
    pub pack_gain_error: f64,
    /// Temperature noise, 0.1 °C (standard deviation).
    pub temp_noise_dc: f64,
    /// Temperature resolution, 0.1 °C.
    pub temp_resolution_dc: u16,
    /// The cell (0-based index) each NTC T1, T2 is taped to; clamped to the cell count.
    pub ntc_cells: [usize; NTC_COUNT],
    /// The board has a balancing-area temperature sensor.
    pub has_balance_sensor: bool,
    /// Seed of the noise generator.
    pub seed: u64,
}

impl Default for SensorConfig {
    /// Realistic errors: 2 mV cell noise at 1 mV resolution, 10 mA current resolution with
    /// 50 mA noise, 100 mA offset and 0.5 % gain error, 10 mV pack resolution, 0.1 °C
    /// temperature resolution with 0.3 °C noise, NTCs on cells 4 and 12.
    fn default() -> Self {
        SensorConfig {
            cell_noise_mv: 2.0,
            cell_resolution_mv: 1,
            current_noise_ma: 50.0,
            current_resolution_ma: 10,
            current_offset_ma: 100.0,
            current_gain_error: 0.005,
            pack_noise_mv: 20.0,
            pack_resolution_mv: 10,
            pack_gain_error: 0.001,
            temp_noise_dc: 3.0,
            temp_resolution_dc: 1,
            ntc_cells: [3, 11],
            has_balance_sensor: true,
            seed: 1,
        }
    }
}

impl SensorConfig {
    /// A sensor model without noise, offset or gain error (1 mV, 1 mA, 1 mV, 0.1 °C
    /// resolution): the ports report the simulated truth, rounded.
    pub fn ideal() -> Self {
        SensorConfig {
            cell_noise_mv: 0.0,
            current_noise_ma: 0.0,
            current_resolution_ma: 1,
            current_offset_ma: 0.0,
            current_gain_error: 0.0,
            pack_noise_mv: 0.0,
            pack_resolution_mv: 1,
            pack_gain_error: 0.0,
            temp_noise_dc: 0.0,
            ..SensorConfig::default()
        }
    }

    /// The same model with noise seed `seed`.
    pub fn with_seed(self, seed: u64) -> Self {
        SensorConfig { seed, ..self }
    }
}

/// Rounds `x` to a multiple of `res` (at least 1).
fn quantise(x: f64, res: u32) -> f64 {
    let r = f64::from(res.max(1));
    (x / r).round() * r
}

/// The simulation behind the mock ports: pack, faults, sensors and outputs.
#[derive(Clone, Debug)]
pub struct Sim {
    pack: SimPack,
    faults: FaultInjector,
    sensors: SensorConfig,
    noise: XorShift64,
    outputs: [bool; 3],
}

/// A [`Sim`] shared between the ports and the simulation loop.
pub type SharedSim = Rc<RefCell<Sim>>;

impl Sim {
    /// A simulation of `pack` seen through `sensors`, with no faults scheduled (the fault
    /// generator is seeded from `sensors.seed`).
    pub fn new(pack: SimPack, sensors: SensorConfig) -> Self {
        Sim {
            faults: FaultInjector::new(sensors.seed),
            noise: XorShift64::new(sensors.seed),
            pack,
            sensors,
            outputs: [false; 3],
        }
    }

    /// Advances the physics by `dt` under `request`, with the active load shorts added to
    /// the load demand. The step is split at the edges of load-short windows, so a short
    /// flows exactly from its scheduled time.
    pub fn step(&mut self, dt: Duration, request: &Request) {
        let end = self.pack.now() + dt;
        while self.pack.now() < end {
            let now = self.pack.now();
            let edge = self
                .faults
                .schedule()
                .iter()
                .filter(|s| matches!(s.injection, Injection::LoadShort { .. }))
                .flat_map(|s| [s.at, s.until])
                .filter(|t| *t > now && *t < end)
                .min()
                .unwrap_or(end);
            let mut req = *request;
            req.load_a += self.faults.load_short_a(now);
            self.pack.step(edge.duration_since(now), &req);
        }
    }

    /// Simulated time.
    pub fn now(&self) -> Instant {
        self.pack.now()
    }

    /// The pack (ground truth).
    pub fn pack(&self) -> &SimPack {
        &self.pack
    }

    /// The pack, to change its state (e.g. [`SimPack::set_cell_soc`]).
    pub fn pack_mut(&mut self) -> &mut SimPack {
        &mut self.pack
    }

    /// The fault schedule.
    pub fn faults(&self) -> &FaultInjector {
        &self.faults
    }

    /// The fault schedule, to add injections.
    pub fn faults_mut(&mut self) -> &mut FaultInjector {
        &mut self.faults
    }

    /// Shorthand for [`FaultInjector::inject_at`].
    pub fn inject_at(&mut self, at: Instant, injection: Injection, duration: Duration) {
        self.faults.inject_at(at, injection, duration);
    }

    /// The sensor model.
    pub fn sensors(&self) -> &SensorConfig {
        &self.sensors
    }

    /// The digital outputs DO1..DO3 as last set.
    pub fn outputs(&self) -> [bool; 3] {
        self.outputs
    }

    fn afe_check(&mut self) -> Result<(), MockError> {
        match self.faults.afe_failure(self.pack.now()) {
            Some(AfeFailure::Comm) => Err(MockError::AfeComm),
            Some(AfeFailure::Timeout) => Err(MockError::Timeout),
            None => Ok(()),
        }
    }

    fn sensor_check(&self, sensor: Sensor) -> Result<(), MockError> {
        if self.faults.sensor_failed(self.pack.now(), sensor) {
            Err(MockError::Sensor(sensor))
        } else {
            Ok(())
        }
    }

    fn noisy(&mut self, sd: f64) -> f64 {
        if sd > 0.0 {
            sd * self.noise.gauss()
        } else {
            0.0
        }
    }

    fn read_cells(&mut self, out: &mut [MilliVolts]) -> Result<(), MockError> {
        self.afe_check()?;
        let n = self.pack.cell_count();
        let mut mv = vec![0u32; n];
        for (i, v) in mv.iter_mut().enumerate() {
            let truth = self.pack.cell_sense_v(i).unwrap_or(0.0) * 1000.0;
            let x = truth + self.noisy(self.sensors.cell_noise_mv);
            *v = quantise(x, self.sensors.cell_resolution_mv).max(0.0) as u32;
        }
        self.faults.distort_cells(self.pack.now(), &mut mv);
        for (i, o) in out.iter_mut().enumerate() {
            *o = MilliVolts::from_mv(mv.get(i).copied().unwrap_or(0));
        }
        Ok(())
    }

    fn temp_reading(&mut self, celsius: f64) -> DeciCelsius {
        let x = celsius * 10.0 + self.noisy(self.sensors.temp_noise_dc);
        let q = quantise(x, u32::from(self.sensors.temp_resolution_dc));
        DeciCelsius::from_deci(q.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16)
    }

    fn read_temperatures(
        &mut self,
        out: &mut [Option<DeciCelsius>; NTC_COUNT],
    ) -> Result<(), MockError> {
        self.afe_check()?;
        let last = self.pack.cell_count().saturating_sub(1);
        for (ch, o) in out.iter_mut().enumerate() {
            let cell = self.sensors.ntc_cells[ch].min(last);
            let t = self.pack.cell_temp_c(cell).unwrap_or(25.0);
            *o = Some(self.temp_reading(t));
        }
        self.faults.distort_ntcs(self.pack.now(), out);
        Ok(())
    }

    fn check_open_wire(&mut self) -> Result<u32, MockError> {
        self.afe_check()?;
        Ok(self
            .faults
            .open_wire_mask(self.pack.now(), self.pack.cell_count()))
    }

    fn set_balancing(&mut self, mask: u32) -> Result<(), MockError> {
        self.afe_check()?;
        self.pack.set_balance_mask(mask);
        Ok(())
    }

    fn read_current(&mut self) -> Result<MilliAmps, MockError> {
        self.sensor_check(Sensor::Current)?;
        let s = &self.sensors;
        let (gain, offset, res, sd) = (
            s.current_gain_error,
            s.current_offset_ma,
            s.current_resolution_ma,
            s.current_noise_ma,
        );
        let extra = self.faults.current_offset_ma(self.pack.now()) as f64;
        let x = self.pack.current_a() * 1000.0 * (1.0 + gain) + offset + extra + self.noisy(sd);
        let q = quantise(x, res).clamp(f64::from(i32::MIN), f64::from(i32::MAX));
        Ok(MilliAmps::from_ma(q as i32))
    }

    fn voltage_reading(&mut self, volts: f64) -> MilliVolts {
        let s = &self.sensors;
        let (gain, res, sd) = (s.pack_gain_error, s.pack_resolution_mv, s.pack_noise_mv);
        let x = volts * 1000.0 * (1.0 + gain) + self.noisy(sd);
        MilliVolts::from_mv(quantise(x, res).clamp(0.0, f64::from(u32::MAX)) as u32)
    }

    fn pack_voltage(&mut self) -> Result<MilliVolts, MockError> {
        self.sensor_check(Sensor::PackVoltage)?;
        let v = self.pack.pack_voltage_v();
        Ok(self.voltage_reading(v))
    }

    fn load_voltage(&mut self) -> Result<MilliVolts, MockError> {
        self.sensor_check(Sensor::LoadVoltage)?;
        // Load detect: with the discharge path open, the board biases the output through a
        // high-value resistor. An open output (nothing drawing, no short) floats up to the
        // pack voltage; a connected load or a short holds it at the load capacitor's voltage.
        let fets = self.pack.fets();
        let open_output = !fets.discharge
            && !fets.precharge
            && self.pack.request().load_a <= 0.0
            && self.faults.load_short_a(self.pack.now()) <= 0.0;
        let v = if open_output {
            self.pack.pack_voltage_v()
        } else {
            self.pack.load_voltage_v()
        };
        Ok(self.voltage_reading(v))
    }

    fn mos_temperature(&mut self) -> Result<DeciCelsius, MockError> {
        self.sensor_check(Sensor::MosTemperature)?;
        let t = self.pack.fet_temp_c();
        Ok(self.temp_reading(t))
    }

    fn balance_temperature(&mut self) -> Result<Option<DeciCelsius>, MockError> {
        if !self.sensors.has_balance_sensor {
            return Ok(None);
        }
        let t = self.pack.board_temp_c();
        Ok(Some(self.temp_reading(t)))
    }

    fn set_fets(&mut self, state: FetState) -> Result<(), MockError> {
        if self.faults.fet_driver_failed(self.pack.now()) {
            return Err(MockError::Driver);
        }
        self.pack.set_fets(state);
        Ok(())
    }
}

macro_rules! port {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(SharedSim);

        impl $name {
            /// A port over `sim`.
            pub fn new(sim: SharedSim) -> Self {
                $name(sim)
            }
        }
    };
}

port!(
    /// [`CellMonitor`] over the simulation: cell voltages as measured with the balancing
    /// switches open, NTCs, open-wire check, balancing switches.
    MockAfe
);
port!(
    /// [`CurrentSensor`] over the simulation.
    MockCurrentSensor
);
port!(
    /// [`PackVoltage`] over the simulation.
    MockPackVoltage
);
port!(
    /// [`BoardTemperature`] over the simulation (MOSFET and balancing-area nodes).
    MockBoardTemperature
);
port!(
    /// [`PowerSwitches`] over the simulation.
    MockSwitches
);
port!(
    /// [`DigitalIo`] over the simulation: ACC and charger presence come from the last
    /// [`Request`].
    MockIo
);
port!(
    /// [`Clock`] over the simulation: the pack's simulated time.
    MockClock
);

impl CellMonitor for MockAfe {
    type Error = MockError;
    fn read_cells(&mut self, out: &mut [MilliVolts]) -> Result<(), MockError> {
        self.0.borrow_mut().read_cells(out)
    }
    fn read_temperatures(
        &mut self,
        out: &mut [Option<DeciCelsius>; NTC_COUNT],
    ) -> Result<(), MockError> {
        self.0.borrow_mut().read_temperatures(out)
    }
    fn check_open_wire(&mut self) -> Result<u32, MockError> {
        self.0.borrow_mut().check_open_wire()
    }
    fn set_balancing(&mut self, mask: u32) -> Result<(), MockError> {
        self.0.borrow_mut().set_balancing(mask)
    }
}

impl CurrentSensor for MockCurrentSensor {
    type Error = MockError;
    fn read_current(&mut self) -> Result<MilliAmps, MockError> {
        self.0.borrow_mut().read_current()
    }
}

impl PackVoltage for MockPackVoltage {
    type Error = MockError;
    fn pack_voltage(&mut self) -> Result<MilliVolts, MockError> {
        self.0.borrow_mut().pack_voltage()
    }
    fn load_voltage(&mut self) -> Result<MilliVolts, MockError> {
        self.0.borrow_mut().load_voltage()
    }
}

impl BoardTemperature for MockBoardTemperature {
    type Error = MockError;
    fn mos_temperature(&mut self) -> Result<DeciCelsius, MockError> {
        self.0.borrow_mut().mos_temperature()
    }
    fn balance_temperature(&mut self) -> Result<Option<DeciCelsius>, MockError> {
        self.0.borrow_mut().balance_temperature()
    }
}

impl PowerSwitches for MockSwitches {
    type Error = MockError;
    fn set_fets(&mut self, state: FetState) -> Result<(), MockError> {
        self.0.borrow_mut().set_fets(state)
    }
}

impl DigitalIo for MockIo {
    fn set_outputs(&mut self, outputs: [bool; 3]) {
        self.0.borrow_mut().outputs = outputs;
    }
    fn acc_active(&mut self) -> bool {
        self.0.borrow().pack.request().acc
    }
    fn charger_present(&mut self) -> bool {
        self.0.borrow().pack.request().charger.is_some()
    }
}

impl Clock for MockClock {
    fn now(&mut self) -> Instant {
        self.0.borrow().pack.now()
    }
}

/// A whole simulated board: every port over one [`SharedSim`].
#[derive(Clone, Debug)]
pub struct MockBoard {
    sim: SharedSim,
    afe: MockAfe,
    current: MockCurrentSensor,
    voltage: MockPackVoltage,
    temperature: MockBoardTemperature,
    switches: MockSwitches,
    io: MockIo,
    clock: MockClock,
}

impl MockBoard {
    /// A board over `sim`.
    pub fn new(sim: Sim) -> Self {
        MockBoard::from_shared(Rc::new(RefCell::new(sim)))
    }

    /// A board over an already shared simulation.
    pub fn from_shared(sim: SharedSim) -> Self {
        MockBoard {
            afe: MockAfe::new(sim.clone()),
            current: MockCurrentSensor::new(sim.clone()),
            voltage: MockPackVoltage::new(sim.clone()),
            temperature: MockBoardTemperature::new(sim.clone()),
            switches: MockSwitches::new(sim.clone()),
            io: MockIo::new(sim.clone()),
            clock: MockClock::new(sim.clone()),
            sim,
        }
    }

    /// A handle on the simulation, for the loop that steps the physics and reads the truth.
    ///
    /// Do not hold a `borrow_mut()` of it across a call into a port: the ports borrow it too.
    pub fn sim(&self) -> SharedSim {
        self.sim.clone()
    }
}

impl Board for MockBoard {
    type Afe = MockAfe;
    type Current = MockCurrentSensor;
    type Voltage = MockPackVoltage;
    type Temp = MockBoardTemperature;
    type Switches = MockSwitches;
    type Io = MockIo;
    type Clock = MockClock;

    fn afe(&mut self) -> &mut MockAfe {
        &mut self.afe
    }
    fn current(&mut self) -> &mut MockCurrentSensor {
        &mut self.current
    }
    fn voltage(&mut self) -> &mut MockPackVoltage {
        &mut self.voltage
    }
    fn temperature(&mut self) -> &mut MockBoardTemperature {
        &mut self.temperature
    }
    fn switches(&mut self) -> &mut MockSwitches {
        &mut self.switches
    }
    fn io(&mut self) -> &mut MockIo {
        &mut self.io
    }
    fn clock(&mut self) -> &mut MockClock {
        &mut self.clock
    }
}
