//! Runs the J1939 node for 60 s of simulated time, stepped every 100 ms as `bms-sim` does,
//! with faults and warnings appearing and clearing, and writes every transmitted frame as a
//! candump -L log. The log is the input of the peer checks (`.ci/peers-can.sh`: cantools
//! decodes every frame with `dbc/bms.dbc`, can-j1939 reassembles the BAMs and parses DM1).
//!
//! The log goes to `$BMS_CAN_LOG` if set, else to the test's temporary directory; the
//! inverter port's frames over the same minute go to `$BMS_INVERTER_LOG` (or beside it).
//! This test itself checks: the first frame is the address claim, TP.DT gaps are within
//! 50..=200 ms, and DM1 lists exactly the active faults and warnings at every step.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::fmt::Write as _;

use bms_core::can::{write_candump_line, CanFrame, Frame};
use bms_core::inverter::{InverterConfig, InverterNode};
use bms_core::j1939::dm::{dtc_code, DmMessage, Tier};
use bms_core::j1939::node::{J1939Config, J1939Node};
use bms_core::j1939::tp::BamReceiver;
use bms_core::j1939::{J1939Id, Pgn};
use bms_core::protect::{Fault, FaultSet};
use bms_core::units::{DeciCelsius, MilliAmpHours, MilliAmps, MilliVolts, Soc};
use bms_core::{Instant, Telemetry};

/// Faults and warnings active at `ms`.
fn scenario(ms: u64) -> (FaultSet, FaultSet) {
    let s = ms / 1000;
    let mut faults = FaultSet::EMPTY;
    let mut warnings = FaultSet::EMPTY;
    if (10..20).contains(&s) {
        warnings.insert(Fault::CellOv);
    }
    if (15..25).contains(&s) {
        faults.insert(Fault::ChgOt);
        warnings.insert(Fault::MosOt);
    }
    if (30..40).contains(&s) {
        faults.insert(Fault::Sc);
        faults.insert(Fault::DsgOc1);
        faults.insert(Fault::MosOt);
        warnings.insert(Fault::CellImbalance);
    }
    if (44..47).contains(&s) {
        faults.insert(Fault::PrechargeFail);
    }
    (faults, warnings)
}

fn telemetry(ms: u64) -> Telemetry {
    let mut t = Telemetry::empty(16);
    let wobble = (ms / 100 % 20) as u32;
    for (i, c) in t.cells.iter_mut().take(16).enumerate() {
        *c = MilliVolts::from_mv(3_300 + wobble + i as u32);
    }
    t.pack_voltage = MilliVolts::from_mv(t.cells().iter().map(|c| c.as_mv()).sum());
    t.load_voltage = t.pack_voltage;
    t.current = MilliAmps::from_ma(if ms < 30_000 { -20_000 } else { 35_000 });
    t.cell_temps = [
        Some(DeciCelsius::from_deci(250)),
        Some(DeciCelsius::from_deci(231)),
    ];
    t.mos_temp = Some(DeciCelsius::from_deci(300));
    t.soc = Soc::from_permille_clamped(500 + (ms / 1000) as i32);
    t.remaining = MilliAmpHours::from_mah(50_000);
    t.full_capacity = MilliAmpHours::from_mah(100_000);
    t.nominal_capacity = MilliAmpHours::from_mah(100_000);
    t.charge_fet = true;
    t.discharge_fet = true;
    t.limits.charge_voltage = MilliVolts::from_mv(56_000);
    t.limits.charge_current = MilliAmps::from_amps(50);
    t.limits.discharge_current = MilliAmps::from_amps(100);
    t.limits.discharge_voltage = MilliVolts::from_mv(44_000);
    let (f, w) = scenario(ms);
    t.faults = f;
    t.warnings = w;
    t
}

/// Expected DM1 DTCs (SPN, FMI) for a fault/warning state.
fn expected(faults: FaultSet, warnings: FaultSet) -> BTreeSet<(u32, u8)> {
    let mut e: BTreeSet<_> = faults.iter().map(|f| dtc_code(f, Tier::Trip)).collect();
    e.extend(
        warnings
            .difference(faults)
            .iter()
            .map(|f| dtc_code(f, Tier::Warning)),
    );
    e
}

#[test]
fn sixty_seconds_to_candump() {
    let mut node = J1939Node::new(J1939Config::default());
    let mut log = String::new();
    let mut frames: Vec<(u64, CanFrame)> = Vec::new();
    for step in 0..=600u64 {
        let ms = step * 100;
        let now = Instant::from_millis(ms);
        node.update(now, &telemetry(ms));
        while let Some(f) = node.poll_transmit(now) {
            write_candump_line(&mut log, now, &f).unwrap();
            frames.push((ms, f));
        }
    }
    let path = std::env::var("BMS_CAN_LOG")
        .unwrap_or_else(|_| format!("{}/j1939-peer.log", env!("CARGO_TARGET_TMPDIR")));
    std::fs::write(&path, &log).unwrap();

    // The inverter port over the same minute, for `check_dbc.py` with `inverter.dbc`.
    let mut inv = InverterNode::new(InverterConfig::default());
    let mut inv_log = String::new();
    for step in 0..=600u64 {
        let ms = step * 100;
        let now = Instant::from_millis(ms);
        inv.update(now, &telemetry(ms));
        while let Some(f) = inv.poll_transmit(now) {
            write_candump_line(&mut inv_log, now, &f).unwrap();
        }
    }
    let inv_path = std::env::var("BMS_INVERTER_LOG")
        .unwrap_or_else(|_| format!("{}/inverter-peer.log", env!("CARGO_TARGET_TMPDIR")));
    std::fs::write(&inv_path, &inv_log).unwrap();
    // 61 bursts of 11 frames, 0x351 first.
    assert_eq!(inv_log.lines().count(), 61 * 11);
    assert!(inv_log.starts_with("(0.000000) can0 351#"));

    // First frame: the address claim.
    assert!(log.starts_with("(0.000000) can0 18EEFFF3#"));

    // DM1 contents, BAM gaps.
    let mut rx = BamReceiver::new();
    let mut last_dt: Option<u64> = None;
    let mut dm1_seen = 0;
    for (ms, f) in &frames {
        let id = J1939Id::try_from(f.id()).unwrap();
        let now = Instant::from_millis(*ms);
        let dm1 = match id.pgn() {
            Pgn::TP_CM => {
                rx.handle_cm(now, id.source_address(), f.data()).unwrap();
                last_dt = Some(*ms);
                None
            }
            Pgn::TP_DT => {
                let gap = ms - last_dt.unwrap();
                assert!((50..=200).contains(&gap), "TP.DT gap {gap} ms at {ms}");
                last_dt = Some(*ms);
                match rx.handle_dt(now, id.source_address(), f.data()).unwrap() {
                    Some((Pgn::DM1, data)) => Some(data.to_vec()),
                    _ => None,
                }
            }
            Pgn::DM1 => Some(f.data().to_vec()),
            _ => None,
        };
        if let Some(data) = dm1 {
            dm1_seen += 1;
            let got: BTreeSet<_> = DmMessage::parse(&data)
                .unwrap()
                .dtcs()
                .map(|d| (d.spn(), d.fmi()))
                .collect();
            // A BAM started up to a second ago carries the state of its start; accept the
            // state at the start of the message or at its end.
            let at_end = expected(scenario(*ms).0, scenario(*ms).1);
            let start = ms.saturating_sub(1_100);
            let ok = got == at_end
                || (start..=*ms)
                    .step_by(100)
                    .any(|t| got == expected(scenario(t).0, scenario(t).1));
            assert!(ok, "DM1 at {ms} ms: {got:?}, expected {at_end:?}");
        }
    }
    assert!(dm1_seen >= 60, "DM1 sent {dm1_seen} times in 60 s");
    // After every fault cleared, DM1 is the empty one.
    let tail = frames
        .iter()
        .rev()
        .find(|(_, f)| f.raw_id().0 == 0x18FE_CAF3)
        .unwrap();
    assert_eq!(tail.1.data(), &[0x00, 0xFF, 0, 0, 0, 0, 0xFF, 0xFF]);
    let mut s = String::new();
    writeln!(s, "{} frames written to {path}", frames.len()).unwrap();
    print!("{s}");
}
