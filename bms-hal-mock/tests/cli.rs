//! The `bms-sim` command-line contract (DESIGN.md section 7): `config` and `replay`.

#![allow(clippy::unwrap_used)] // Test fixtures panic on setup failures by design.

use std::path::{Path, PathBuf};
use std::process::Command;

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bms-sim"))
}

/// `bms-sim replay --input IN --output OUT`, to which a test adds its own arguments.
fn replay(input: &Path, output: &Path) -> Command {
    let mut c = sim();
    c.arg("replay")
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output);
    c
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bms-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn header(n: usize) -> String {
    let mut h = String::from("time_ms,current_ma,pack_mv,load_mv,t1_dc,t2_dc,mos_dc");
    for k in 1..=n {
        h.push_str(&format!(",cell{k}_mv"));
    }
    h
}

/// One row per second; cell 5 follows `cell5(t_s)`, the others sit at 3300 mV.
fn input(seconds: u64, cell5: impl Fn(u64) -> u32) -> String {
    let mut s = header(16);
    s.push('\n');
    for t in 0..seconds {
        let c5 = cell5(t);
        let jitter = (t % 2) as u32; // real readings move by a count or two
        let cells: Vec<u32> = (0..16)
            .map(|k| if k == 4 { c5 } else { 3_300 - jitter })
            .collect();
        let pack: u32 = cells.iter().sum();
        let cols: Vec<String> = cells.iter().map(u32::to_string).collect();
        s.push_str(&format!(
            "{},{},{pack},{pack},250,250,300,{}\n",
            t * 1000,
            -2_000,
            cols.join(",")
        ));
    }
    s
}

#[test]
fn config_output_reads_back_unchanged() {
    let out = sim()
        .args(["config", "--preset", "ANT16S-80A-T", "--chemistry", "lfp"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = tmp("cfg.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    let cfg = bms_hal_mock::config_file::load(&path).unwrap();
    assert_eq!(
        bms_hal_mock::config_file::render(&cfg).as_bytes(),
        &out.stdout[..]
    );
    // And `replay --config` accepts it.
    let inp = tmp("flat.csv");
    std::fs::write(&inp, input(5, |_| 3_300)).unwrap();
    let st = replay(&inp, &tmp("flat.out"))
        .args(["--config", path.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn cell5_over_voltage_opens_charge_only_and_recovers() {
    let cfg = bms_hal_mock::config_file::preset("ANT16S-80A-T", bms_core::config::Chemistry::Lfp)
        .unwrap();
    let ov = *cfg.protection.get(bms_core::Fault::CellOv);
    // 0..10 s normal, 10..40 s above the trip, then back below the release threshold.
    let inp = tmp("ov.csv");
    let outp = tmp("ov.out");
    std::fs::write(
        &inp,
        input(80, |t| {
            if (10..40).contains(&t) {
                ov.trip as u32 + 20
            } else {
                3_300
            }
        }),
    )
    .unwrap();
    let st = replay(&inp, &outp)
        .args(["--preset", "ANT16S-80A-T", "--chemistry", "lfp"])
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&outp).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "time_ms,soc_permille,charge_fet,discharge_fet,precharge_fet,balance_mask,faults,mode"
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    let at = |s: u64| &rows[s as usize];
    let trip_s = 10 + ov.delay.as_secs() as u64;
    // Before the delay has passed: still closed.
    assert_eq!(at(trip_s - 1)[2], "1");
    // After the trip delay: charge open, discharge closed, fault named.
    assert_eq!((at(trip_s)[2].as_str(), at(trip_s)[3].as_str()), ("0", "1"));
    assert!(at(trip_s)[6].split('|').any(|f| f == "cell_ov"));
    for s in trip_s..40 {
        assert_eq!(at(s)[2], "0", "charge closed at {s} s");
        assert_eq!(at(s)[3], "1", "discharge opened at {s} s");
    }
    // Recovery after the release delay below the release threshold.
    let rel_s = 40 + ov.release_delay.as_secs() as u64;
    assert_eq!(at(rel_s - 1)[2], "0");
    assert_eq!(at(rel_s)[2], "1");
    assert!(!at(rel_s)[6].contains("cell_ov"));
    assert_eq!(at(rel_s)[7], "active");
}

#[test]
fn malformed_input_names_line_and_column() {
    let inp = tmp("bad.csv");
    let mut text = input(3, |_| 3_300);
    text.push_str("3000,-2000,52800,52800,250,abc,300,3300,3300,3300,3300,3300,3300,3300,3300,3300,3300,3300,3300,3300,3300,3300,3300\n");
    std::fs::write(&inp, text).unwrap();
    let out = replay(&inp, &tmp("bad.out")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 5, column 6"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn malformed_config_is_rejected() {
    let path = tmp("badcfg.toml");
    std::fs::write(&path, "cells = 16\n").unwrap();
    let inp = tmp("flat2.csv");
    std::fs::write(&inp, input(2, |_| 3_300)).unwrap();
    let out = replay(&inp, &tmp("x.out"))
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing field"));
}
