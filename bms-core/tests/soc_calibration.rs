//! Each calibration of the SOC estimator, driven through its public step API.
//!
//! Pack: 16 cells, 100 Ah nominal, so the rest threshold is 3 A, the dead band 2 A, the
//! tail current 5 A and the empty-calibration current limit 20 A (config defaults).

use bms_core::soc::{BootSource, SocConfig, SocEstimator, SocEvent, SocInput, StoredSoc};
use bms_core::{DeciCelsius, Instant, MilliAmpHours, MilliAmps, MilliVolts, Soc};

const CAP: MilliAmpHours = MilliAmpHours::from_mah(100_000);

struct Rig {
    est: SocEstimator,
    t: u64,
    events: Vec<SocEvent>,
}

impl Rig {
    fn new(cfg: SocConfig, stored: Option<StoredSoc>) -> Self {
        Rig {
            est: SocEstimator::new(cfg, CAP, stored),
            t: 0,
            events: Vec::new(),
        }
    }

    /// `secs` one-second steps at `ma` with every cell at `mv`.
    fn run(&mut self, secs: u64, ma: i32, mv: u32) {
        self.run_cells(secs, ma, &[mv; 16], false);
    }

    fn run_cells(&mut self, secs: u64, ma: i32, mv: &[u32], open: bool) {
        let cells: Vec<MilliVolts> = mv.iter().map(|&v| MilliVolts::from_mv(v)).collect();
        for _ in 0..secs {
            let input = SocInput {
                now: Instant::from_millis(self.t),
                current: MilliAmps::from_ma(ma),
                cells: &cells,
                temperature: Some(DeciCelsius::from_celsius(25)),
                current_path_open: open,
            };
            self.est.update(&input);
            while let Some(e) = self.est.poll_event() {
                self.events.push(e);
            }
            self.t += 1_000;
        }
    }

    fn soc(&self) -> i32 {
        i32::from(self.est.soc().as_permille())
    }
}

fn stored(permille: u16) -> StoredSoc {
    StoredSoc {
        soc: Soc::from_permille_clamped(permille.into()),
        full_capacity: CAP,
        cycles: 0,
        current_offset: MilliAmps::ZERO,
    }
}

#[test]
fn boot_at_rest_reads_the_ocv_table() {
    let mut r = Rig::new(SocConfig::nmc(), None);
    r.run(1, 0, 3_620); // the 20 % point
    assert_eq!(r.soc(), 200);
    assert_eq!(
        r.events[0],
        SocEvent::Boot {
            soc: Soc::from_permille_clamped(200),
            source: BootSource::Ocv
        }
    );
    // The boot reading follows the relaxing cells while the rest lasts.
    r.run(600, 0, 3_755);
    assert!((r.soc() - 500).abs() <= 5, "{}", r.soc());
}

#[test]
fn boot_under_load_uses_the_stored_soc() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(730)));
    r.run(1, 50_000, 3_500);
    assert_eq!(r.soc(), 730);
    assert!(matches!(
        r.events[0],
        SocEvent::Boot {
            source: BootSource::Stored,
            ..
        }
    ));
}

#[test]
fn boot_under_load_without_stored_compensates_the_ir_drop() {
    // 100 A through 200 mΩ·Ah / 100 Ah = 2 mΩ: 200 mV below the 50 % OCV of 3755.
    let mut r = Rig::new(SocConfig::nmc(), None);
    r.run(1, 100_000, 3_755 - 200);
    assert!((r.soc() - 500).abs() <= 3, "{}", r.soc());
    assert!(r.est.uncertainty().as_permille() >= 100);
}

#[test]
fn boot_under_load_is_corrected_quickly_once_at_rest() {
    // Booted at 100 A with the IR drop badly underestimated (cells sag to 3500 mV), then
    // resting at the 50 % point: corrected after relax_tau (5 min), not after 30.
    let mut r = Rig::new(SocConfig::nmc(), None);
    r.run(1, 100_000, 3_450);
    let booted = r.soc();
    assert!(booted < 400, "{booted}");
    r.run(4 * 60, 0, 3_755);
    assert_eq!(r.soc(), booted);
    r.run(2 * 60, 0, 3_755);
    assert!((r.soc() - 500).abs() <= 20, "{}", r.soc());
}

#[test]
fn boot_at_rest_on_the_lfp_plateau_keeps_most_of_the_stored_soc() {
    // Stored 60 %; the cells read the 40 % point of the plateau, 16 mV lower.
    let cfg = SocConfig::lfp();
    let mv = u32::from(cfg.ocv_mv[8]);
    let mut r = Rig::new(cfg, Some(stored(600)));
    r.run(3_600, 0, mv);
    assert!(r.soc() > 520, "{}", r.soc());
    // The same disagreement on the steep knee at 10 % is believed.
    let cfg = SocConfig::lfp();
    let mv = u32::from(cfg.ocv_mv[2]);
    let mut r = Rig::new(cfg, Some(stored(300)));
    r.run(3_600, 0, mv);
    assert!((r.soc() - 100).abs() <= 10, "{}", r.soc());
}

#[test]
fn rest_calibration_waits_for_the_rest_time_then_corrects() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(500)));
    r.run(1, 50_000, 3_700);
    r.set(800);
    // Cells at the 20 % point, resting: nothing happens before 30 minutes.
    r.run(29 * 60, 0, 3_620);
    assert_eq!(r.soc(), 800);
    r.run(2 * 60, 0, 3_620);
    assert!((r.soc() - 200).abs() <= 20, "{}", r.soc());
    let cal = r
        .events
        .iter()
        .find_map(|e| match e {
            SocEvent::OcvCalibration { before, after, .. } => Some((*before, *after)),
            _ => None,
        })
        .expect("an OCV calibration event");
    assert_eq!(cal.0.as_permille(), 800);
    assert!(cal.1.as_permille() < 250);
}

#[test]
fn rest_calibration_on_the_lfp_plateau_is_weak() {
    let cfg = SocConfig::lfp();
    let mv = u32::from(cfg.ocv_mv[9]); // 45 %
    let mut r = Rig::new(cfg, Some(stored(600)));
    r.run(1, 50_000, 3_280);
    // 60 % counted after moving 10 Ah, cells say 45 % after the rest.
    r.run(720, 50_000, 3_280);
    let before = r.soc();
    r.run(2 * 3_600, 0, mv);
    let after = r.soc();
    assert!(after <= before, "moved away: {before} -> {after}");
    assert!(before - after < 60, "{before} -> {after}");
}

#[test]
fn full_calibration_at_the_end_of_a_cv_charge() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(800)));
    // CC phase, then a CV taper below the 5 A tail current at the charge voltage.
    r.run(60, -50_000, 4_000);
    let before = r.soc();
    // 4 A through 2 mΩ is 8 mV: 4190 mV is above the table's top (4180).
    r.run(5, -4_000, 4_190);
    assert_eq!(r.soc(), before, "held for less than the hold time");
    r.run(10, -4_000, 4_190);
    assert_eq!(r.soc(), 1_000);
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, SocEvent::Full { after, .. } if after.as_permille() == 1_000)));
}

#[test]
fn full_calibration_below_the_table_top_follows_the_table() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(800)));
    r.run(60, -50_000, 4_000);
    // Charge voltage 4150 mV, 8 mV IR drop: OCV 4142, between 95 % (4115) and 100 % (4180).
    r.run(15, -4_000, 4_150);
    assert_eq!(r.soc(), 971);
}

#[test]
fn no_full_calibration_without_a_charge_before_the_taper() {
    // A small negative reading at a high voltage (sensor offset at rest) is no taper.
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(900)));
    r.run(1, 10_000, 4_000);
    r.run(120, -4_000, 4_150);
    assert!(r.soc() < 1_000);
    assert!(!r.events.iter().any(|e| matches!(e, SocEvent::Full { .. })));
}

#[test]
fn empty_calibration_at_cut_off_under_a_small_load() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(150)));
    r.run(1, 10_000, 3_300);
    r.run(20, 10_000, 3_040);
    assert_eq!(r.soc(), 0);
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, SocEvent::Empty { before } if before.as_permille() > 100)));
}

#[test]
fn no_empty_calibration_from_a_voltage_sag_under_heavy_load() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(300)));
    r.run(1, 100_000, 3_300);
    r.run(20, 100_000, 3_000);
    assert!(r.soc() > 200);
}

#[test]
fn capacity_is_learned_between_full_and_empty_within_bounds() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(900)));
    r.run(60, -50_000, 4_000);
    r.run(15, -4_000, 4_190); // full
                              // 90 Ah out at 50 A (6480 s), then cut-off under 10 A (another 20 s = 0.06 Ah).
    r.run(6_480, 50_000, 3_600);
    r.run(20, 10_000, 3_040); // empty
    let learned = r.events.iter().find_map(|e| match e {
        SocEvent::CapacityLearned { old, new } => Some((old.as_mah(), new.as_mah())),
        _ => None,
    });
    // Measured about 90 Ah: a quarter of the 10 Ah difference, i.e. 2.5 Ah, is taken.
    let (old, new) = learned.expect("capacity learned");
    assert_eq!(old, 100_000);
    assert!((97_400..=97_600).contains(&new), "{new}");
    assert_eq!(r.est.soh().as_permille(), (new / 100) as u16);
    assert_eq!(r.est.full_capacity().as_mah(), new);
}

#[test]
fn an_implausible_capacity_measurement_is_rejected() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(900)));
    r.run(60, -50_000, 4_000);
    r.run(15, -4_000, 4_190); // full
    r.run(1_800, 50_000, 3_600); // 25 Ah only
    r.run(20, 10_000, 3_040); // "empty"
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, SocEvent::CapacityRejected { .. })));
    assert_eq!(r.est.full_capacity(), CAP);
}

#[test]
fn dead_band_ignores_offset_sized_currents() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(500)));
    r.run(1, 10_000, 3_755);
    let before = r.est.remaining_charge();
    r.run(3_600, -1_900, 3_755);
    assert_eq!(r.est.remaining_charge(), before);
}

#[test]
fn a_small_pack_keeps_the_sensor_offset_floor() {
    // 10 Ah: C/50 would be 200 mA, below a 450 mA sensor offset; the 500 mA floor holds.
    let mut est = SocEstimator::new(SocConfig::nmc(), MilliAmpHours::from_mah(10_000), None);
    let cells = [MilliVolts::from_mv(3_755); 16];
    for k in 0..7_200u64 {
        let input = SocInput::new(
            Instant::from_millis(k * 1_000),
            MilliAmps::from_ma(-450),
            &cells,
        );
        est.update(&input);
    }
    assert_eq!(est.soc().as_permille(), 500);
    assert!(est.at_rest());
}

#[test]
fn offset_is_learned_while_the_path_is_open() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(500)));
    r.run_cells(1, 10_000, &[3_755; 16], false);
    r.run_cells(120, 1_500, &[3_755; 16], true);
    assert_eq!(r.est.current_offset().as_ma(), 1_500);
    assert_eq!(r.est.stored().current_offset.as_ma(), 1_500);
    // 11.5 A read for one hour is 10 Ah once the offset is removed.
    let before = r.soc();
    r.run(3_600, 11_500, 3_700);
    assert_eq!(before - r.soc(), 100);
}

#[test]
fn a_large_current_with_the_path_said_open_is_still_counted() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(500)));
    r.run_cells(1, 10_000, &[3_700; 16], true);
    r.run_cells(3_600, 20_000, &[3_700; 16], true);
    assert_eq!(r.soc(), 300);
    assert_eq!(r.est.current_offset().as_ma(), 0);
}

#[test]
fn an_absurd_gap_is_capped() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(500)));
    let cells = [MilliVolts::from_mv(3_700); 16];
    let i = MilliAmps::from_amps(100);
    r.est.update(&SocInput::new(Instant::ZERO, i, &cells));
    let q0 = r.est.remaining_charge();
    // One day later: only max_step (60 s) of 100 A is counted.
    r.est
        .update(&SocInput::new(Instant::from_millis(86_400_000), i, &cells));
    let moved = (q0 - r.est.remaining_charge()).as_raw();
    assert_eq!(moved, 100_000 * 60_000);
}

#[test]
fn cell_range_follows_the_cell_offsets_seen_at_rest() {
    let mut cells = [3_755u32; 16];
    cells[3] = 3_620; // 20 %
    cells[9] = 3_788; // 55 %
    let mut r = Rig::new(SocConfig::nmc(), None);
    r.run_cells(600, 0, &cells, false);
    let (lo, mean, hi) = r.est.cell_soc_range();
    assert!(lo < mean && mean < hi);
    // Mean of the cells' SOCs: (14 x 500 + 200 + 550) / 16 = 484.4 permille.
    assert_eq!(mean.as_permille(), 484);
    assert_eq!(lo.as_permille(), 200);
    assert_eq!(hi.as_permille(), 550);
    assert_eq!(r.est.cell_soc(3), Some(lo));
    assert_eq!(r.est.cell_soc(16), None);
}

#[test]
fn stored_state_round_trips() {
    let mut r = Rig::new(SocConfig::nmc(), None);
    r.run(10, 0, 3_755);
    let s = r.est.stored();
    let mut again = Rig::new(SocConfig::nmc(), Some(s));
    again.run(1, 50_000, 3_500);
    assert_eq!(again.est.soc(), s.soc);
    assert_eq!(again.est.cycles(), s.cycles);
}

#[test]
fn cycles_count_discharged_capacity() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(1_000)));
    for _ in 0..3 {
        r.run(3_601, 100_000, 3_700); // 100 Ah out (the first step of a run has no dt)
        r.set(1_000);
    }
    assert_eq!(r.est.cycles(), 3);
}

impl Rig {
    fn set(&mut self, permille: u16) {
        self.est
            .set_soc(Soc::from_permille_clamped(permille.into()));
    }
}

#[test]
fn a_cold_pack_rests_longer_before_its_voltage_is_believed() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(500)));
    r.run(1, 50_000, 3_700);
    r.set(800);
    let cells = [MilliVolts::from_mv(3_620); 16];
    // At 0 °C the rest time is 30 min x 4.
    for k in 0..(2 * 3_600) {
        let input = SocInput {
            now: Instant::from_millis(10_000 + k * 1_000),
            current: MilliAmps::ZERO,
            cells: &cells,
            temperature: Some(DeciCelsius::from_celsius(0)),
            current_path_open: false,
        };
        r.est.update(&input);
    }
    assert_eq!(r.soc(), 800);
    for k in 0..3_600 {
        let input = SocInput {
            now: Instant::from_millis(10_000 + (2 * 3_600 + k) * 1_000),
            current: MilliAmps::ZERO,
            cells: &cells,
            temperature: Some(DeciCelsius::from_celsius(0)),
            current_path_open: false,
        };
        r.est.update(&input);
    }
    assert!(r.soc() < 300, "{}", r.soc());
}

#[test]
fn hold_skips_the_time_without_a_current_reading() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(500)));
    r.run(10, 50_000, 3_700);
    let before = r.est.remaining_charge();
    // The last step was at r.t - 1 s; no current reading for the next 30 s.
    r.est.hold(Instant::from_millis(r.t + 29_000));
    r.t += 30_000;
    r.run(1, 50_000, 3_700);
    // Only the step after the hold (1 s at 50 A) is counted.
    assert_eq!((before - r.est.remaining_charge()).as_raw(), 50_000 * 1_000);
}

#[test]
fn missing_cells_keep_counting_and_keep_the_cell_offsets() {
    let mut cells = [3_755u32; 16];
    cells[0] = 3_620;
    let mut r = Rig::new(SocConfig::nmc(), None);
    r.run_cells(60, 0, &cells, false);
    let (lo, _, _) = r.est.cell_soc_range();
    let before = r.soc();
    r.run_cells(360, 10_000, &[], false); // 1 Ah
    assert_eq!(r.soc(), before - 10);
    let (lo2, _, _) = r.est.cell_soc_range();
    assert_eq!(
        i32::from(lo.as_permille()) - 10,
        i32::from(lo2.as_permille())
    );
}

#[test]
fn input_from_measurements() {
    use bms_core::measure::Measurements;
    let mut m = Measurements::uniform(16, MilliVolts::from_mv(3_300), Instant::from_millis(5));
    m.cell_temps = [Some(DeciCelsius::from_deci(200)), None];
    m.current = Some(MilliAmps::from_amps(3));
    let i = SocInput::from_measurements(&m, true).expect("current present");
    assert_eq!(i.now, Instant::from_millis(5));
    assert_eq!(i.temperature, Some(DeciCelsius::from_deci(200)));
    assert!(i.current_path_open);
    m.afe_ok = false;
    assert!(SocInput::from_measurements(&m, false)
        .map(|i| i.cells.is_empty())
        .unwrap_or(false));
    m.current = None;
    assert!(SocInput::from_measurements(&m, false).is_none());
}

#[test]
fn capacity_learning_scales_by_the_soc_span_between_anchors() {
    let mut r = Rig::new(SocConfig::nmc(), Some(stored(900)));
    r.run(60, -50_000, 4_000);
    r.run(15, -4_000, 4_150); // full at 97.1 %
    r.run(6_480, 50_000, 3_600); // 90 Ah
    r.run(20, 10_000, 3_040); // empty
    let new = r
        .events
        .iter()
        .find_map(|e| match e {
            SocEvent::CapacityLearned { new, .. } => Some(new.as_mah()),
            _ => None,
        })
        .expect("capacity learned");
    // About 90.1 Ah over 97.1 % of the range is 92.8 Ah; a quarter of the way from 100 Ah.
    assert!((98_100..=98_300).contains(&new), "{new}");
}
