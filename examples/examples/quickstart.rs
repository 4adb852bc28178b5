//! Quick start: a 16S LFP pack on the simulated board, driven by the core's controller.
//!
//! Charges at 50 A until the first protection or the end of charge, then prints what the
//! core decided. Run with `cargo run -p bms-examples --example quickstart`.

use bms_core::config::{Chemistry, PackConfig};
use bms_core::{Bms, Controller, Duration};
use bms_hal_mock::pack::{Charger, PackParams, Request, SimPack};
use bms_hal_mock::ports::{MockBoard, SensorConfig, Sim};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cfg = PackConfig::preset("ANT16S-300A-C".parse()?, Chemistry::Lfp);
    let mut params = PackParams::lfp(16);
    params.initial_soc = 0.9;
    let sim = Sim::new(SimPack::new(params)?, SensorConfig::default());
    let board = MockBoard::new(sim);
    let shared = board.sim();
    let mut ctl = Controller::new(board, Bms::new(cfg)?);

    let charger = Charger {
        current_limit_a: 50.0,
        voltage_limit_v: 16.0 * 3.65,
    };
    let request = Request {
        charger: Some(charger),
        ..Request::rest(25.0)
    };
    for step in 0..36_000 {
        shared
            .borrow_mut()
            .step(Duration::from_millis(100), &request);
        ctl.run_once();
        while let Some(e) = ctl.bms_mut().poll_event() {
            println!("{:>9} {:?}", e.at, e.event);
        }
        let t = ctl.bms().telemetry();
        if step % 600 == 0 {
            let (hi, cell) = t.max_cell();
            println!(
                "{:>9} I={:>8} pack={:>9} max cell {} (#{}) charge_fet={} faults=[{}]",
                t.now,
                t.current,
                t.pack_voltage,
                hi,
                cell + 1,
                t.charge_fet,
                t.faults
            );
        }
        if !t.faults.is_empty() && !t.charge_fet {
            println!("charging stopped by protection: {}", t.faults);
            break;
        }
    }
    Ok(())
}
