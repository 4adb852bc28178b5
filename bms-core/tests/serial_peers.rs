//! Synthetic status frames for the peer check with a real client (aiobmsble).
//!
//! Encodes status frames from several [`Telemetry`] values (8S, 16S, 20S; charge,
//! discharge and idle; faults and warnings) and writes, into `$SERIAL_PEERS_DIR` (default:
//! cargo's per-test temporary directory):
//! - `serial.log`: `time_ms,hex` lines, the format `bms-sim run --serial-log FILE` writes;
//! - `serial-legacy.log`: the same states as legacy 140-byte frames;
//! - `trace.csv`: `time_ms,current_ma,soc_permille,cell1_mv,...` (the `trace.csv` columns the
//!   check needs).
//!
//! `.ci/peers-serial.sh serial.log --trace trace.csv` then decodes every frame with
//! aiobmsble and compares. This test itself checks the frames with our own decoder.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::PathBuf;

use bms_core::serial::legacy::LegacyStatusRepr;
use bms_core::serial::status::StatusFrame;
use bms_core::{
    DeciCelsius, Fault, Instant, MilliAmpHours, MilliAmps, MilliVolts, Permille, Soc, Telemetry,
};

struct Case {
    cells: u8,
    base_mv: u32,
    current_ma: i32,
    soc: u16,
    faults: &'static [Fault],
    warnings: &'static [Fault],
    balance_mask: u32,
}

const CASES: &[Case] = &[
    // 8S LFP charging at 12.3 A.
    Case {
        cells: 8,
        base_mv: 3_301,
        current_ma: -12_345,
        soc: 573,
        faults: &[],
        warnings: &[],
        balance_mask: 0b1000,
    },
    // 16S LFP discharging at 85.4 A.
    Case {
        cells: 16,
        base_mv: 3_250,
        current_ma: 85_449,
        soc: 612,
        faults: &[],
        warnings: &[Fault::DsgOt],
        balance_mask: 0,
    },
    // 16S idle, full, charge blocked by cell over-voltage.
    Case {
        cells: 16,
        base_mv: 3_600,
        current_ma: 0,
        soc: 1_000,
        faults: &[Fault::CellOv],
        warnings: &[],
        balance_mask: 0xF0F0,
    },
    // 20S NMC discharging at the 300 A pulse limit.
    Case {
        cells: 20,
        base_mv: 3_900,
        current_ma: 300_000,
        soc: 804,
        faults: &[],
        warnings: &[Fault::CellImbalance],
        balance_mask: 0,
    },
    // 20S NMC charging at the 150 A limit with a charge over-temperature fault.
    Case {
        cells: 20,
        base_mv: 4_150,
        current_ma: -150_000,
        soc: 995,
        faults: &[Fault::ChgOt],
        warnings: &[],
        balance_mask: 1 << 19,
    },
    // 8S empty, discharge blocked by under-voltage and a short circuit, tiny leakage.
    Case {
        cells: 8,
        base_mv: 2_500,
        current_ma: 49,
        soc: 4,
        faults: &[Fault::CellUv, Fault::Sc],
        warnings: &[],
        balance_mask: 0,
    },
];

fn telemetry(i: usize, c: &Case) -> Telemetry {
    let mut t = Telemetry::empty(c.cells);
    for (k, cell) in t.cells.iter_mut().take(c.cells as usize).enumerate() {
        // A spread of a few millivolts so that max, min and their numbers differ.
        *cell = MilliVolts::from_mv(c.base_mv + ((k as u32 * 7 + i as u32) % 13));
    }
    t.pack_voltage = MilliVolts::from_mv(t.cells().iter().map(|v| v.as_mv()).sum());
    t.load_voltage = t.pack_voltage;
    t.current = MilliAmps::from_ma(c.current_ma);
    t.cell_temps = [
        Some(DeciCelsius::from_deci(253)),
        Some(DeciCelsius::from_deci(-47)),
    ];
    t.mos_temp = Some(DeciCelsius::from_deci(381));
    t.balance_temp = None;
    t.soc = Soc::try_from_permille(c.soc).unwrap();
    t.soh = Permille::from_permille(968);
    t.nominal_capacity = MilliAmpHours::from_mah(280_000);
    t.full_capacity = MilliAmpHours::from_mah(271_000);
    t.remaining = MilliAmpHours::from_mah(271 * c.soc as u32);
    t.total_discharged = MilliAmpHours::from_mah(3_902_649);
    t.total_charged = MilliAmpHours::from_mah(5_822_651);
    t.charge_fet = !c
        .faults
        .iter()
        .any(|f| matches!(f, Fault::CellOv | Fault::ChgOt | Fault::Sc));
    t.discharge_fet = !c
        .faults
        .iter()
        .any(|f| matches!(f, Fault::CellUv | Fault::Sc));
    t.balance_mask = c.balance_mask;
    t.faults = c.faults.iter().copied().collect();
    t.warnings = c.warnings.iter().copied().collect();
    t.now = Instant::from_millis(1_000 * (i as u64 + 1));
    t
}

#[test]
fn write_peer_frames() {
    let dir = std::env::var_os("SERIAL_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&dir).unwrap();
    let mut log = String::new();
    let mut legacy_log = String::new();
    let mut trace = String::from("time_ms,current_ma,soc_permille");
    for k in 1..=20 {
        write!(trace, ",cell{k}_mv").unwrap();
    }
    trace.push('\n');
    for (i, c) in CASES.iter().enumerate() {
        let t = telemetry(i, c);
        let mut buf = [0u8; StatusFrame::MAX_LEN];
        let n = StatusFrame::emit(&t, &mut buf).unwrap();
        let hex: String = buf[..n].iter().map(|b| format!("{b:02x}")).collect();
        writeln!(log, "{},{hex}", t.now.as_millis()).unwrap();
        write!(
            trace,
            "{},{},{}",
            t.now.as_millis(),
            t.current.as_ma(),
            t.soc.as_permille()
        )
        .unwrap();
        for k in 0..20 {
            match t.cells().get(k) {
                Some(v) => write!(trace, ",{}", v.as_mv()).unwrap(),
                None => trace.push(','),
            }
        }
        trace.push('\n');

        let leg = LegacyStatusRepr::from_telemetry(&t);
        let mut lbuf = [0u8; 140];
        leg.emit(&mut lbuf).unwrap();
        let lhex: String = lbuf.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(legacy_log, "{},{lhex}", t.now.as_millis()).unwrap();
        assert_eq!(LegacyStatusRepr::parse(&lbuf).unwrap(), leg);

        let back = StatusFrame::parse(&buf[..n]).unwrap();
        assert_eq!(back.cells.len(), c.cells as usize);
        assert!((back.current().as_ma() - c.current_ma).abs() <= 50);
        assert_eq!(back.faults(), t.faults);
        assert_eq!(back.charge_mos == 1, t.charge_fet);
        assert_eq!(back.discharge_mos == 1, t.discharge_fet);
    }
    std::fs::write(dir.join("serial.log"), log).unwrap();
    std::fs::write(dir.join("serial-legacy.log"), legacy_log).unwrap();
    std::fs::write(dir.join("trace.csv"), trace).unwrap();
    eprintln!("peer frames written to {}", dir.display());
}
