//! The mock ports: sensor model, every fault injection at the port level exactly from its
//! scheduled time, and determinism for a seed.
#![allow(clippy::unwrap_used)]

use bms_core::measure::NTC_COUNT;
use bms_core::ports::{
    Board, BoardTemperature, CellMonitor, Clock, CurrentSensor, DigitalIo, FetState, PackVoltage,
    PowerSwitches,
};
use bms_core::time::{Duration, Instant};
use bms_core::units::{DeciCelsius, MilliVolts};
use bms_hal_mock::faults::{Injection, Sensor};
use bms_hal_mock::pack::{Charger, PackParams, Request, SimPack};
use bms_hal_mock::ports::{MockBoard, MockError, SensorConfig, Sim};

const CELLS: usize = 16;
const CLOSED: FetState = FetState {
    charge: true,
    discharge: true,
    precharge: false,
};

fn board(sensors: SensorConfig) -> MockBoard {
    let pack = SimPack::new(PackParams::lfp(CELLS)).unwrap();
    MockBoard::new(Sim::new(pack, sensors))
}

/// Everything the controller reads in one 100 ms cycle.
#[derive(Debug, PartialEq)]
struct Reading {
    cells: Result<[MilliVolts; CELLS], MockError>,
    ntc: Result<[Option<DeciCelsius>; NTC_COUNT], MockError>,
    open_wire: Result<u32, MockError>,
    current: Result<i32, MockError>,
    pack: Result<MilliVolts, MockError>,
    load: Result<MilliVolts, MockError>,
    mos: Result<DeciCelsius, MockError>,
    fets: Result<(), MockError>,
}

fn read(b: &mut MockBoard) -> Reading {
    let mut cells = [MilliVolts::ZERO; CELLS];
    let mut ntc = [None; NTC_COUNT];
    Reading {
        cells: b.afe().read_cells(&mut cells).map(|_| cells),
        ntc: b.afe().read_temperatures(&mut ntc).map(|_| ntc),
        open_wire: b.afe().check_open_wire(),
        current: b.current().read_current().map(|i| i.as_ma()),
        pack: b.voltage().pack_voltage(),
        load: b.voltage().load_voltage(),
        mos: b.temperature().mos_temperature(),
        fets: b.switches().set_fets(CLOSED),
    }
}

/// Runs a 30 s closed-loop-like simulation at 40 A with `injection` scheduled at 10 s for
/// 10 s, reading every port each 100 ms, and checks `affected` on every reading: it must be
/// false before 10 s, true inside the window, false after it.
fn check_window(injection: Injection, affected: impl Fn(&Reading) -> bool) {
    check_window_from(injection, 10_000, affected);
}

/// [`check_window`] for an effect that is seen from `first_ms` (a physical effect shows
/// in the readings taken after the first step it acted in).
fn check_window_from(injection: Injection, first_ms: u64, affected: impl Fn(&Reading) -> bool) {
    let mut b = board(SensorConfig::ideal());
    let sim = b.sim();
    let at = Instant::from_millis(10_000);
    sim.borrow_mut()
        .inject_at(at, injection, Duration::from_secs(10));
    b.switches().set_fets(CLOSED).unwrap();
    let req = Request {
        load_a: 40.0,
        ..Request::rest(25.0)
    };
    for _ in 0..300 {
        sim.borrow_mut().step(Duration::from_millis(100), &req);
        let now = b.clock().now();
        let r = read(&mut b);
        let inside = (first_ms..first_ms + 10_000).contains(&now.as_millis());
        assert_eq!(affected(&r), inside, "{injection:?} at {now}: {r:?}");
    }
}

#[test]
fn afe_error_and_timeout_fail_every_afe_call_in_the_window() {
    check_window(Injection::AfeError { probability: 1.0 }, |r| {
        r.cells == Err(MockError::AfeComm)
            && r.ntc == Err(MockError::AfeComm)
            && r.open_wire == Err(MockError::AfeComm)
    });
    check_window(Injection::AfeTimeout { probability: 1.0 }, |r| {
        r.cells == Err(MockError::Timeout) && r.ntc == Err(MockError::Timeout)
    });
}

#[test]
fn afe_errors_with_a_probability_fail_some_calls() {
    let mut b = board(SensorConfig::ideal());
    b.sim().borrow_mut().inject_at(
        Instant::ZERO,
        Injection::AfeError { probability: 0.2 },
        Duration::MAX,
    );
    let mut cells = [MilliVolts::ZERO; CELLS];
    let fails = (0..1000)
        .filter(|_| b.afe().read_cells(&mut cells).is_err())
        .count();
    assert!((150..250).contains(&fails), "{fails}");
}

#[test]
fn stuck_cell_freezes_while_the_others_move() {
    // Under 40 A the cells fall; a stuck cell 3 keeps its first in-window value.
    let mut b = board(SensorConfig::ideal());
    let sim = b.sim();
    sim.borrow_mut().inject_at(
        Instant::from_millis(1_000),
        Injection::CellStuck { cell: 2 },
        Duration::MAX,
    );
    b.switches().set_fets(CLOSED).unwrap();
    let req = Request {
        load_a: 40.0,
        ..Request::rest(25.0)
    };
    let mut cells = [MilliVolts::ZERO; CELLS];
    let mut frozen = None;
    for k in 0..100 {
        sim.borrow_mut().step(Duration::from_millis(100), &req);
        b.afe().read_cells(&mut cells).unwrap();
        let truth = (sim.borrow().pack().cell_sense_v(2).unwrap() * 1000.0).round() as u32;
        if k < 9 {
            assert_eq!(cells[2].as_mv(), truth, "before the window");
        } else {
            let f = *frozen.get_or_insert(cells[2]);
            assert_eq!(cells[2], f);
        }
    }
    let truth = (sim.borrow().pack().cell_sense_v(2).unwrap() * 1000.0).round() as u32;
    assert!(
        frozen.unwrap().as_mv() > truth,
        "the real cell has moved on"
    );
}

#[test]
fn out_of_range_cell_readings() {
    check_window(Injection::CellReading { cell: 4, mv: 0 }, |r| {
        r.cells.unwrap()[4].as_mv() == 0
    });
    check_window(
        Injection::CellReading {
            cell: 15,
            mv: 6_000,
        },
        |r| r.cells.unwrap()[15].as_mv() == 6_000,
    );
}

#[test]
fn open_wire_shows_in_the_mask_and_skews_both_neighbours() {
    check_window(Injection::OpenWire { cell: 6 }, |r| {
        let c = r.cells.unwrap();
        let mask = r.open_wire.unwrap();
        let skewed = c[6].as_mv() < 200 && c[7].as_mv() > 6_000;
        assert_eq!(skewed, mask == 1 << 6, "{c:?} {mask:#x}");
        skewed
    });
}

#[test]
fn ntc_faults() {
    check_window(Injection::NtcOpen { channel: 1 }, |r| {
        let t = r.ntc.unwrap();
        assert!(t[0].is_some());
        t[1].is_none()
    });
    check_window(
        Injection::NtcReading {
            channel: 0,
            temp: DeciCelsius::from_celsius(-50),
        },
        |r| r.ntc.unwrap()[0] == Some(DeciCelsius::from_celsius(-50)),
    );
    check_window(
        Injection::NtcReading {
            channel: 1,
            temp: DeciCelsius::from_celsius(150),
        },
        |r| r.ntc.unwrap()[1] == Some(DeciCelsius::from_celsius(150)),
    );
}

#[test]
fn sensor_errors() {
    check_window(
        Injection::SensorError {
            sensor: Sensor::Current,
        },
        |r| r.current == Err(MockError::Sensor(Sensor::Current)) && r.pack.is_ok(),
    );
    check_window(
        Injection::SensorError {
            sensor: Sensor::PackVoltage,
        },
        |r| r.pack.is_err() && r.load.is_ok(),
    );
    check_window(
        Injection::SensorError {
            sensor: Sensor::LoadVoltage,
        },
        |r| r.load.is_err() && r.pack.is_ok(),
    );
    check_window(
        Injection::SensorError {
            sensor: Sensor::MosTemperature,
        },
        |r| r.mos.is_err(),
    );
}

#[test]
fn current_offset_adds_to_the_reading() {
    check_window(Injection::CurrentOffset { ma: 1_500 }, |r| {
        r.current.unwrap() == 41_500
    });
}

#[test]
fn fet_driver_error() {
    check_window(Injection::FetDriverError, |r| {
        r.fets == Err(MockError::Driver)
    });
}

#[test]
fn load_short_flows_from_the_step_after_its_time() {
    // The short adds 2000 A to the 40 A load from 10 s: the first reading that sees the
    // 2040 A is the one after the 10.0..10.1 s step, the last one is taken at 20.0 s.
    check_window_from(Injection::LoadShort { amps: 2_000.0 }, 10_100, |r| {
        r.current.unwrap() == 2_040_000
    });
}

#[test]
fn load_short_does_not_flow_through_an_open_discharge_fet() {
    let mut b = board(SensorConfig::ideal());
    let sim = b.sim();
    sim.borrow_mut().inject_at(
        Instant::ZERO,
        Injection::LoadShort { amps: 2_000.0 },
        Duration::MAX,
    );
    b.switches().set_fets(FetState::OPEN).unwrap();
    sim.borrow_mut()
        .step(Duration::from_secs(1), &Request::rest(25.0));
    assert_eq!(b.current().read_current().unwrap().as_ma(), 0);
}

#[test]
fn sensor_model_offset_gain_and_quantisation() {
    let mut sensors = SensorConfig::ideal();
    sensors.current_offset_ma = -250.0;
    sensors.current_gain_error = 0.01;
    sensors.current_resolution_ma = 10;
    let mut b = board(sensors);
    let sim = b.sim();
    b.switches().set_fets(CLOSED).unwrap();
    let req = Request {
        load_a: 100.0,
        ..Request::rest(25.0)
    };
    sim.borrow_mut().step(Duration::from_millis(100), &req);
    // 100 A * 1.01 - 0.25 A = 100.75 A, quantised to 10 mA.
    assert_eq!(b.current().read_current().unwrap().as_ma(), 100_750);
    // Ideal cell readings are the truth rounded to 1 mV; pack and load follow the pack.
    let mut cells = [MilliVolts::ZERO; CELLS];
    b.afe().read_cells(&mut cells).unwrap();
    let s = sim.borrow();
    for (i, c) in cells.iter().enumerate() {
        let truth = s.pack().cell_sense_v(i).unwrap() * 1000.0;
        assert!((f64::from(c.as_mv()) - truth).abs() <= 0.5);
    }
    drop(s);
    let pack = b.voltage().pack_voltage().unwrap().as_mv();
    let load = b.voltage().load_voltage().unwrap().as_mv();
    assert!(pack > load && pack - load < 150, "{pack} {load}");
}

#[test]
fn noisy_cells_keep_their_mean() {
    let mut b = board(SensorConfig::default());
    let sim = b.sim();
    sim.borrow_mut()
        .step(Duration::from_millis(100), &Request::rest(25.0));
    let truth = sim.borrow().pack().cell_sense_v(0).unwrap() * 1000.0;
    let mut cells = [MilliVolts::ZERO; CELLS];
    let n = 2000;
    let mut sum = 0.0;
    let mut distinct = std::collections::BTreeSet::new();
    for _ in 0..n {
        b.afe().read_cells(&mut cells).unwrap();
        sum += f64::from(cells[0].as_mv());
        distinct.insert(cells[0].as_mv());
    }
    let mean = sum / f64::from(n);
    assert!((mean - truth).abs() < 0.2, "{mean} vs {truth}");
    assert!(distinct.len() >= 8, "2 mV noise spreads the readings");
}

#[test]
fn io_and_balancing_go_through_to_the_pack() {
    let mut b = board(SensorConfig::ideal());
    let sim = b.sim();
    let req = Request {
        acc: true,
        charger: Some(Charger {
            current_limit_a: 10.0,
            voltage_limit_v: 58.0,
        }),
        ..Request::rest(25.0)
    };
    assert!(!b.io().acc_active());
    sim.borrow_mut().step(Duration::from_millis(100), &req);
    assert!(b.io().acc_active());
    assert!(b.io().charger_present());
    b.io().set_outputs([true, false, true]);
    assert_eq!(sim.borrow().outputs(), [true, false, true]);
    b.afe().set_balancing(0b101).unwrap();
    assert_eq!(sim.borrow().pack().balance_mask(), 0b101);
    assert_eq!(
        b.temperature().balance_temperature().unwrap(),
        Some(DeciCelsius::from_celsius(25))
    );
    assert_eq!(b.clock().now(), Instant::from_millis(100));
}

/// Same seeds, same scenario, same port calls: identical readings. Another seed: not.
#[test]
fn same_seed_same_readings() {
    let trace = |seed: u64| {
        let pack = SimPack::new(PackParams {
            seed,
            ..PackParams::nmc(CELLS)
        })
        .unwrap();
        let mut b = MockBoard::new(Sim::new(pack, SensorConfig::default().with_seed(seed)));
        let sim = b.sim();
        sim.borrow_mut().inject_at(
            Instant::from_millis(2_000),
            Injection::AfeError { probability: 0.3 },
            Duration::from_secs(3),
        );
        let req = Request {
            load_a: 60.0,
            ..Request::rest(25.0)
        };
        (0..80)
            .map(|_| {
                sim.borrow_mut().step(Duration::from_millis(100), &req);
                read(&mut b)
            })
            .collect::<Vec<_>>()
    };
    let a = trace(11);
    assert_eq!(a, trace(11));
    assert_ne!(a, trace(12));
    assert!(a.iter().any(|r| r.cells.is_err()));
}

/// The generic wrapper applies its own schedule over any monitor, here the mock one.
#[test]
fn faulty_afe_wraps_a_monitor_and_follows_its_clock() {
    use bms_hal_mock::faults::{AfeFailure, FaultInjector, FaultyAfe, FaultyAfeError};
    use bms_hal_mock::ports::{MockAfe, MockClock};
    let b = board(SensorConfig::ideal());
    let sim = b.sim();
    let mut faults = FaultInjector::new(3);
    faults.inject_at(
        Instant::from_millis(1_000),
        Injection::AfeTimeout { probability: 1.0 },
        Duration::from_millis(500),
    );
    let mut afe = FaultyAfe::new(
        MockAfe::new(sim.clone()),
        MockClock::new(sim.clone()),
        faults,
    );
    let mut cells = [MilliVolts::ZERO; CELLS];
    for k in 1..=20u64 {
        sim.borrow_mut()
            .step(Duration::from_millis(100), &Request::rest(25.0));
        let r = afe.read_cells(&mut cells);
        if (10..15).contains(&k) {
            assert_eq!(r, Err(FaultyAfeError::Injected(AfeFailure::Timeout)), "{k}");
        } else {
            assert_eq!(r, Ok(()), "{k}");
            assert!(cells.iter().all(|c| c.as_mv() > 3_000));
        }
    }
}
