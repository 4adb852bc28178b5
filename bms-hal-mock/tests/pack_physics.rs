//! Physics of the simulated pack: charge conservation, OCV, charger, MOSFETs, pre-charge,
//! balancing, thermal behaviour.
#![allow(clippy::unwrap_used)]

use bms_core::ports::FetState;
use bms_core::time::Duration;
use bms_hal_mock::pack::{
    ocv_from_table, Charger, Chemistry, PackParams, Request, SimPack, LFP_OCV_MV, NMC_OCV_MV,
};
use bms_hal_mock::profile::{Profile, Segment, World};
use proptest::prelude::*;

const CLOSED: FetState = FetState {
    charge: true,
    discharge: true,
    precharge: false,
};

fn ms(v: u32) -> Duration {
    Duration::from_millis(v)
}

fn run(pack: &mut SimPack, req: &Request, total: Duration, dt: Duration) {
    let mut left = total.as_millis();
    while left > 0 {
        let h = left.min(dt.as_millis());
        pack.step(ms(h), req);
        left -= h;
    }
}

fn load(a: f64) -> Request {
    Request {
        load_a: a,
        ..Request::rest(25.0)
    }
}

fn charger(a: f64, v: f64) -> Request {
    Request {
        charger: Some(Charger {
            current_limit_a: a,
            voltage_limit_v: v,
        }),
        ..Request::rest(25.0)
    }
}

/// The integral of the terminal current equals each cell's charge change, and the SOC
/// change times the capacity, over a mixed discharge / regeneration / charge history.
#[test]
fn integrated_current_equals_soc_change_times_capacity() {
    let mut pack = SimPack::new(PackParams::nmc(16)).unwrap();
    pack.set_fets(CLOSED);
    let soc0: Vec<f64> = (0..16).map(|i| pack.cell_soc(i).unwrap()).collect();
    let profile = Profile::new(25.0)
        .then(Segment::discharge(Duration::from_mins(10), 120.0))
        .then(Segment::drive_cycle(Duration::from_mins(20), 200.0))
        .then(Segment::rest(Duration::from_mins(5)))
        .then(Segment::charge(
            Duration::from_mins(30),
            Charger {
                current_limit_a: 60.0,
                voltage_limit_v: 66.0,
            },
        ));
    let mut world = World::new(profile);
    while let Some(req) = world.request(pack.now(), &pack) {
        pack.step(ms(100), &req);
    }
    let q = pack.throughput_as();
    assert!(q.abs() > 10_000.0, "the test must move charge: {q}");
    for (i, s0) in soc0.iter().enumerate() {
        let cap_as = pack.cell_capacity_ah(i).unwrap() * 3600.0;
        let d = (pack.cell_soc(i).unwrap() - s0) * cap_as;
        assert!((d + q).abs() < 1e-6 * q.abs(), "cell {i}: {d} vs {q}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// Charge conservation holds for any sequence of loads, FET states and step lengths, and
    /// no current ever flows against an open FET.
    #[test]
    fn charge_is_conserved(steps in prop::collection::vec((-150.0f64..300.0, 0u8..8, 1u32..2_000), 1..60)) {
        let mut pack = SimPack::new(PackParams::lfp(12)).unwrap();
        let c0: Vec<f64> = (0..12).map(|i| pack.cell_charge_as(i).unwrap()).collect();
        let pre_max = pack.pack_voltage_v() * 1.1 / pack.params().precharge_resistor_ohm;
        for (a, fets, dt) in steps {
            let f = FetState { charge: fets & 1 != 0, discharge: fets & 2 != 0, precharge: fets & 4 != 0 };
            pack.set_fets(f);
            pack.step(ms(dt), &load(a));
            // The FETs cut the current in their direction.
            let i = pack.current_a();
            if !f.charge {
                prop_assert!(i >= 0.0);
            }
            if !f.discharge {
                let limit = if f.precharge { pre_max } else { 0.0 };
                prop_assert!(i <= limit, "{} through an open discharge FET", i);
            }
        }
        let q = pack.throughput_as();
        for (i, c) in c0.iter().enumerate() {
            let d = pack.cell_charge_as(i).unwrap() - c;
            prop_assert!((d + q).abs() < 1e-6, "cell {}: {} vs {}", i, d, q);
        }
    }
}

/// After a long rest at 25 °C each cell's terminal voltage is the table's OCV.
#[test]
fn ocv_at_rest_equals_the_table() {
    for (params, table) in [
        (PackParams::lfp(20), LFP_OCV_MV),
        (PackParams::nmc(20), NMC_OCV_MV),
    ] {
        let mut pack = SimPack::new(params).unwrap();
        pack.set_fets(CLOSED);
        // Load first, so the RC pairs carry a voltage that the rest must relax.
        run(&mut pack, &load(100.0), Duration::from_mins(2), ms(100));
        for i in 0..20 {
            pack.set_cell_soc(i, i as f64 * 0.05);
        }
        run(
            &mut pack,
            &Request::rest(25.0),
            Duration::from_mins(60),
            ms(1000),
        );
        for (i, mv) in table.iter().take(20).enumerate() {
            let v = pack.cell_voltage_v(i).unwrap() * 1000.0;
            // The cell has warmed a little under load and cooled back; 0.05 mV covers that.
            assert!((v - f64::from(*mv)).abs() < 0.05, "cell {i}: {v} vs {mv}");
        }
    }
    // Interpolation between points.
    assert!((ocv_from_table(&LFP_OCV_MV, 0.975) - 3.458).abs() < 1e-9);
}

/// Beyond 100 % and below 0 % the voltage runs away instead of saturating.
#[test]
fn voltage_runs_away_outside_zero_to_full() {
    let c = Chemistry::NMC;
    assert!((c.ocv(1.0, 25.0) - 4.2).abs() < 1e-12);
    assert!((c.ocv(1.02, 25.0) - 4.36).abs() < 1e-9);
    assert!((c.ocv(-0.01, 25.0) - 2.345).abs() < 1e-9);
    // An over-charged pack: one cell 3 points above the rest crosses 4.25 V under a CV
    // charger set for 4.2 V per cell.
    let mut pack = SimPack::new(PackParams {
        soc_spread: 0.0,
        capacity_spread: 0.0,
        initial_soc: 0.95,
        ..PackParams::nmc(16)
    })
    .unwrap();
    pack.set_cell_soc(5, 0.98);
    pack.set_fets(CLOSED);
    run(
        &mut pack,
        &charger(50.0, 16.0 * 4.2),
        Duration::from_mins(120),
        ms(1000),
    );
    let v5 = pack.cell_voltage_v(5).unwrap();
    assert!(v5 > 4.25, "cell 6 at {v5} V");
    assert!(pack.cell_soc(5).unwrap() > 1.0);
}

/// A CC-CV charger delivers its current limit, then holds the pack at its voltage limit
/// while the current tapers.
#[test]
fn cc_cv_charger_tapers() {
    let mut pack = SimPack::new(PackParams {
        initial_soc: 0.6,
        ..PackParams::nmc(16)
    })
    .unwrap();
    pack.set_fets(CLOSED);
    let v_lim = 16.0 * 4.15;
    let req = charger(50.0, v_lim);
    pack.step(ms(1000), &req);
    assert!((pack.current_a() + 50.0).abs() < 1e-9, "CC phase");
    let mut last = f64::MAX;
    let mut cv_seen = false;
    // Until the taper ends: afterwards the cells cool and their OCV (-0.2 mV/K) creeps a
    // little above the limit, which the charger cannot pull down.
    for _ in 0..(6 * 3600) {
        pack.step(ms(1000), &req);
        let v = pack.load_voltage_v();
        let i = -pack.current_a();
        assert!(v <= v_lim + 1e-4, "{v} above the CV limit");
        if i < 50.0 - 1e-6 {
            cv_seen = true;
            assert!((v - v_lim).abs() < 1e-4, "CV phase holds the limit: {v}");
            assert!(i <= last + 1e-3, "current must taper: {i} after {last}");
        }
        last = i;
        if i < 0.5 {
            break;
        }
    }
    assert!(cv_seen);
    assert!(last < 0.5, "tapered to {last} A");
    assert!(pack.true_soc() > 0.95);
}

/// Open FETs really cut the current in their direction.
#[test]
fn fets_cut_the_current() {
    let mut pack = SimPack::new(PackParams::lfp(16)).unwrap();
    pack.set_fets(CLOSED);
    run(&mut pack, &load(50.0), ms(1000), ms(100));
    assert_eq!(pack.current_a(), 50.0);
    let soc = pack.true_soc();

    // Discharge FET open: no discharge current, the load side falls.
    pack.set_fets(FetState {
        discharge: false,
        ..CLOSED
    });
    run(&mut pack, &load(50.0), ms(1000), ms(100));
    assert_eq!(pack.current_a(), 0.0);
    // The load drains its side to its lockout, then the bleed resistor takes over.
    let lockout = pack.params().load_cutoff_v;
    assert!(pack.load_voltage_v() < lockout && pack.load_voltage_v() > 0.9 * lockout);
    assert_eq!(pack.true_soc(), soc);
    // ... but charge still flows (through the discharge FET's body diode).
    run(&mut pack, &charger(30.0, 60.0), ms(1000), ms(100));
    assert!((pack.current_a() + 30.0).abs() < 1e-9);

    // Charge FET open: no charge current, no regeneration; discharge still flows.
    pack.set_fets(FetState {
        charge: false,
        ..CLOSED
    });
    run(&mut pack, &charger(30.0, 60.0), ms(1000), ms(100));
    assert_eq!(pack.current_a(), 0.0);
    assert!(
        (pack.load_voltage_v() - 60.0).abs() < 1e-9,
        "charger at its CV"
    );
    run(&mut pack, &load(-40.0), ms(1000), ms(100));
    assert_eq!(pack.current_a(), 0.0);
    run(&mut pack, &load(40.0), ms(1000), ms(100));
    assert_eq!(pack.current_a(), 40.0);

    // Both open: nothing.
    pack.set_fets(FetState::OPEN);
    for r in [load(40.0), load(-40.0), charger(30.0, 60.0)] {
        run(&mut pack, &r, ms(500), ms(100));
        assert_eq!(pack.current_a(), 0.0);
    }
}

/// Through the pre-charge resistor the load capacitance charges as an RC curve; with the
/// FETs open it decays through the load's bleed resistance.
#[test]
fn precharge_follows_the_rc_curve_and_open_load_decays() {
    let p = PackParams::lfp(16);
    let tau_ms = p.precharge_resistor_ohm * p.load_capacitance_uf * 1e-6 * 1000.0;
    let (r_pre, r_bleed) = (p.precharge_resistor_ohm, p.load_bleed_ohm);
    let mut pack = SimPack::new(p).unwrap();
    pack.step(ms(10), &Request::rest(25.0));
    let v_pack = pack.pack_voltage_v();
    assert_eq!(pack.load_voltage_v(), 0.0);
    pack.set_fets(FetState {
        charge: true,
        discharge: false,
        precharge: true,
    });
    pack.step(ms(1), &Request::rest(25.0));
    let i0 = pack.current_a();
    assert!((i0 - v_pack / r_pre).abs() < 0.01 * i0, "{i0}");
    // The load's own bleed resistor makes the target a divider, slightly below v_pack.
    let v_inf = v_pack * r_bleed / (r_bleed + r_pre);
    let mut t = 1.0;
    for _ in 0..(5.0 * tau_ms) as u32 / 10 {
        pack.step(ms(10), &Request::rest(25.0));
        t += 10.0;
        // tau = C * (R_pre || R_bleed)
        let expect = v_inf * (1.0 - (-t / tau_ms * (r_bleed + r_pre) / r_bleed).exp());
        let v = pack.load_voltage_v();
        assert!((v - expect).abs() < 0.01 * v_pack, "t={t}: {v} vs {expect}");
    }
    assert!(pack.load_voltage_v() > 0.98 * v_pack);
    assert!(pack.current_a() < 0.02 * i0);
    // Discharge FET closed: the load side is the pack.
    pack.set_fets(CLOSED);
    pack.step(ms(10), &Request::rest(25.0));
    assert!((pack.load_voltage_v() - pack.pack_voltage_v()).abs() < 1e-6);
    // Everything open: decay through the bleed resistor.
    let v0 = pack.load_voltage_v();
    pack.set_fets(FetState::OPEN);
    let tau_bleed_ms = r_bleed * PackParams::lfp(16).load_capacitance_uf * 1e-6 * 1000.0;
    run(
        &mut pack,
        &Request::rest(25.0),
        ms(tau_bleed_ms as u32),
        ms(100),
    );
    let ratio = pack.load_voltage_v() / v0;
    assert!((ratio - (-1.0f64).exp()).abs() < 0.005, "{ratio}");
}

/// A load demand present from the start waits for its side to charge: pre-charge reaches
/// 90 % of the pack, then the closed discharge FET carries the load. If the discharge FET
/// is never closed, the load switches on at 97 %, collapses its side and the cycle repeats,
/// while the battery never delivers more than the pre-charge resistor passes.
#[test]
fn precharge_with_a_load_waiting() {
    let p = PackParams::lfp(16);
    let r_pre = p.precharge_resistor_ohm;
    let mut pack = SimPack::new(p).unwrap();
    let pre = FetState {
        charge: true,
        discharge: false,
        precharge: true,
    };
    pack.set_fets(pre);
    let v_pack = pack.pack_voltage_v();
    let mut reached = None;
    for k in 0..300 {
        pack.step(ms(10), &load(10.0));
        assert!(pack.current_a() <= v_pack / r_pre + 1e-9);
        if pack.load_voltage_v() >= 0.9 * v_pack {
            reached = Some(k);
            break;
        }
    }
    assert!(reached.is_some(), "pre-charge stalled");
    pack.set_fets(CLOSED);
    pack.step(ms(10), &load(10.0));
    assert_eq!(pack.current_a(), 10.0);

    // Never closing the discharge FET: the load hiccups.
    let mut pack = SimPack::new(PackParams::lfp(16)).unwrap();
    pack.set_fets(pre);
    let (mut high, mut collapsed_after_high) = (false, false);
    for _ in 0..1000 {
        pack.step(ms(10), &load(10.0));
        assert!(pack.current_a() <= v_pack / r_pre + 1e-9);
        let v = pack.load_voltage_v();
        high |= v >= 0.95 * v_pack;
        collapsed_after_high |= high && v < 0.5 * v_pack;
    }
    assert!(collapsed_after_high);
}

/// A balancing resistor bleeds its cell at V/R and nothing else; the board warms up.
#[test]
fn balancing_bleeds_the_selected_cell_at_v_over_r() {
    let p = PackParams::lfp(16);
    let r_bal = p.balance_resistor_ohm;
    let mut pack = SimPack::new(p).unwrap();
    let before: Vec<f64> = (0..16).map(|i| pack.cell_charge_as(i).unwrap()).collect();
    pack.set_balance_mask(1 << 2 | 1 << 9 | 1 << 31);
    assert_eq!(pack.balance_mask(), 1 << 2 | 1 << 9);
    let mut expected = 0.0;
    for _ in 0..3600 {
        pack.step(ms(1000), &Request::rest(25.0));
        expected += pack.cell_voltage_v(2).unwrap() / r_bal;
    }
    for (i, b) in before.iter().enumerate() {
        let d = b - pack.cell_charge_as(i).unwrap();
        if i == 2 || i == 9 {
            assert!(
                (d - expected).abs() < 0.01 * expected,
                "cell {i}: {d} vs {expected}"
            );
        } else {
            assert_eq!(d, 0.0, "cell {i}");
        }
    }
    // About 78 mA at 3.27 V through 42 ohm: 280 A·s, 0.08 % of 100 Ah.
    assert!((250.0..310.0).contains(&expected));
    assert!(pack.board_temp_c() > 25.5);
    assert_eq!(pack.current_a(), 0.0);
}

/// The MOSFET heats by I²·R to its own node; cold cells have higher resistance.
#[test]
fn thermal_behaviour() {
    let p = PackParams::lfp(16);
    let steady = 25.0 + 150.0f64.powi(2) * p.fet_rds_on_mohm / 1000.0 / p.fet_cooling_w_per_k;
    let mut pack = SimPack::new(p).unwrap();
    pack.set_fets(CLOSED);
    run(&mut pack, &load(150.0), Duration::from_mins(10), ms(1000));
    assert!(
        (pack.fet_temp_c() - steady).abs() < 0.5,
        "{}",
        pack.fet_temp_c()
    );
    assert!(pack.cell_temp_c(0).unwrap() > 25.5);
    assert!(pack.cell_temp_c(0).unwrap() < pack.fet_temp_c());

    // Body diode: the charge FET open while discharging heats the MOSFET more.
    let mut a = SimPack::new(PackParams::lfp(16)).unwrap();
    let mut b = a.clone();
    a.set_fets(CLOSED);
    b.set_fets(FetState {
        charge: false,
        ..CLOSED
    });
    run(&mut a, &load(50.0), Duration::from_secs(30), ms(100));
    run(&mut b, &load(50.0), Duration::from_secs(30), ms(100));
    assert!(b.fet_temp_c() > a.fet_temp_c() + 5.0);

    // Cold: the same load sags the voltage more.
    let sag = |temp: f64| {
        let mut p = SimPack::new(PackParams {
            initial_temp_c: temp,
            ..PackParams::lfp(16)
        })
        .unwrap();
        p.set_fets(CLOSED);
        let rest = p.pack_voltage_v();
        p.step(
            ms(100),
            &Request {
                load_a: 100.0,
                ambient_c: temp,
                ..Request::default()
            },
        );
        rest - p.pack_voltage_v()
    };
    assert!(sag(-10.0) > 3.0 * sag(25.0));
}

/// A short circuit draws its demand through closed FETs and heats the MOSFET fast.
#[test]
fn short_circuit_flows_through_closed_fets() {
    let mut pack = SimPack::new(PackParams::lfp(16)).unwrap();
    pack.set_fets(CLOSED);
    run(&mut pack, &load(2000.0), ms(500), ms(10));
    assert_eq!(pack.current_a(), 2000.0);
    assert!(pack.fet_temp_c() > 40.0);
    let v = pack.cell_voltage_v(0).unwrap();
    assert!(v < 2.5, "cells sag under 2000 A: {v}");
}

/// The BMS's own supply and the cells' self-discharge drain the cells, invisibly to the
/// terminal current; long internal steps stay stable for storage runs.
#[test]
fn quiescent_and_self_discharge_in_storage() {
    let mut pack = SimPack::new(PackParams {
        self_discharge_per_month: 0.03,
        max_substep_ms: 60_000,
        ..PackParams::lfp(16)
    })
    .unwrap();
    pack.set_quiescent_ma(10.0);
    let before: Vec<f64> = (0..16).map(|i| pack.cell_charge_as(i).unwrap()).collect();
    let days = 30;
    for _ in 0..days * 24 {
        pack.step(Duration::from_secs(3600), &Request::rest(10.0));
    }
    let secs = f64::from(days) * 86_400.0;
    let mut losses = Vec::new();
    for (i, b) in before.iter().enumerate() {
        let lost = b - pack.cell_charge_as(i).unwrap();
        let expect = (0.010 + pack.cell_self_discharge_a(i).unwrap()) * secs;
        assert!((lost - expect).abs() < 1e-6 * expect, "cell {i}");
        losses.push(lost / (pack.cell_capacity_ah(i).unwrap() * 3600.0));
    }
    let mean = losses.iter().sum::<f64>() / 16.0;
    // 3 %/month plus 10 mA * 720 h = 7.2 Ah = 7.2 % of 100 Ah.
    assert!((mean - 0.102).abs() < 0.01, "{mean}");
    // The spread makes the cells drift apart.
    let (lo, hi) = losses
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(*x), h.max(*x)));
    assert!(hi - lo > 0.005);
    assert_eq!(pack.throughput_as(), 0.0);
    // Thermal nodes settled at the ambient, no oscillation from the one-hour steps.
    assert!((pack.fet_temp_c() - 10.0).abs() < 1e-6);
    assert!((pack.cell_temp_c(0).unwrap() - 10.0).abs() < 1e-3);
}
