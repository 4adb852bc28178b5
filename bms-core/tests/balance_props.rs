//! Property tests of the balancing invariants over random configurations and input sequences.

use bms_core::balance::{BalanceConfig, BalanceInput, Balancer, SwitchTiming};
use bms_core::time::{Duration, Instant};
use bms_core::units::{DeciCelsius, MilliAmps, MilliOhms, MilliVolts, Soc};
use proptest::prelude::*;

fn config() -> impl Strategy<Value = BalanceConfig> {
    (
        (
            1u32..60,
            0u32..60,
            0u8..=20,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            3_000u32..4_100,
            200i16..600,
            1i16..300,
            1_000u32..100_000,
            1i32..=100,
        ),
        (
            any::<bool>(),
            0u32..200,
            1u32..1_000,
            1u32..30_000,
            0i32..3_000,
            0i32..3_000,
        ),
        (any::<bool>(), 2u16..60, any::<bool>()),
    )
        .prop_map(
            |(
                (start, stop, ch, adj, chg, rest),
                (vstart, dstart, dspan, r, lim),
                (sched, settle, period, reselect, ichg, irest),
                (soc, soc_start, req_t),
            )| {
                let mut c = BalanceConfig::nmc();
                c.start_delta = MilliVolts::from_mv(start + 1);
                c.stop_delta = MilliVolts::from_mv(stop.min(start));
                c.max_channels = ch;
                c.no_adjacent = adj;
                c.while_charging = chg;
                c.at_rest = rest;
                c.start_voltage = MilliVolts::from_mv(vstart);
                c.derate_start = DeciCelsius::from_deci(dstart);
                c.hard_stop = DeciCelsius::from_deci(dstart + dspan);
                c.resistor = MilliOhms::from_mohm(r);
                c.current_limit = MilliAmps::from_ma(lim);
                c.timing = if sched {
                    SwitchTiming::Scheduled
                } else {
                    SwitchTiming::AfeManaged
                };
                c.settle = Duration::from_millis(settle);
                c.measure_period = Duration::from_millis(settle + period);
                c.reselect_interval = Duration::from_millis(reselect);
                c.charge_current = MilliAmps::from_ma(ichg);
                c.rest_current = MilliAmps::from_ma(irest);
                c.soc_based = soc;
                c.soc_start_delta = bms_core::units::Permille::from_permille(soc_start);
                c.soc_stop_delta = bms_core::units::Permille::from_permille(soc_start / 3);
                c.require_board_temp = req_t;
                c
            },
        )
}

#[derive(Clone, Debug)]
struct Step {
    dt: u32,
    drift: Vec<i32>,
    current: Option<i32>,
    fault: bool,
    uv: u32,
    temp: Option<i16>,
    soc: Option<Vec<u16>>,
    /// Whether the caller passes the (right) cell range.
    range: bool,
}

fn steps(n: usize) -> impl Strategy<Value = Vec<Step>> {
    let step = (
        1u32..3_000,
        proptest::collection::vec(-3i32..=3, n),
        proptest::option::weighted(0.95, -20_000i32..5_000),
        proptest::bool::weighted(0.1),
        prop_oneof![9 => 2_500u32..3_000, 1 => 3_000u32..4_300],
        proptest::option::weighted(0.8, 100i16..900),
        proptest::option::weighted(0.5, proptest::collection::vec(0u16..=1000, n)),
        any::<bool>(),
    )
        .prop_map(|(dt, drift, current, fault, uv, temp, soc, range)| Step {
            dt,
            drift,
            current,
            fault,
            uv,
            temp,
            soc,
            range,
        });
    proptest::collection::vec(step, 1..80)
}

fn case() -> impl Strategy<Value = (BalanceConfig, Vec<u32>, Vec<Step>)> {
    (8usize..=20).prop_flat_map(|n| {
        (
            config(),
            proptest::collection::vec(3_950u32..4_050, n),
            steps(n),
        )
    })
}

fn range(s: &Step, cells: &[MilliVolts]) -> Option<(MilliVolts, MilliVolts)> {
    if s.range {
        Some((*cells.iter().min()?, *cells.iter().max()?))
    } else {
        None
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_on_every_step((cfg, start, steps) in case()) {
        prop_assert!(cfg.validate().is_ok(), "{:?}", cfg.validate());
        let n = start.len();
        let mut b = Balancer::new(cfg);
        let mut cells: Vec<MilliVolts> = start.iter().map(|&v| MilliVolts::from_mv(v)).collect();
        let mut now = 0u64;
        let mut prev_bled: Vec<i64> = vec![0; n];
        let mut prev_mask = 0u32;
        for s in &steps {
            now += u64::from(s.dt);
            for (c, d) in cells.iter_mut().zip(&s.drift) {
                *c = MilliVolts::from_mv(c.as_mv().saturating_add_signed(*d));
            }
            let soc: Option<Vec<Soc>> = s
                .soc
                .as_ref()
                .map(|v| v.iter().map(|&p| Soc::from_permille_clamped(i32::from(p))).collect());
            let input = BalanceInput {
                now: Instant::from_millis(now),
                cells: &cells,
                current: s.current.map(MilliAmps::from_ma),
                faults_present: s.fault,
                uv_warning: MilliVolts::from_mv(s.uv),
                board_temp: s.temp.map(DeciCelsius::from_deci),
                cell_soc: soc.as_deref(),
                cell_range: range(s, &cells),
            };
            let mask = b.update(&input);
            prop_assert_eq!(mask, b.mask());

            // Bled charge grows only on cells that were on during the interval.
            for (i, prev) in prev_bled.iter_mut().enumerate() {
                let now_bled = b.bled_exact(i).as_raw();
                prop_assert!(now_bled >= *prev);
                if prev_mask & (1 << i) == 0 {
                    prop_assert_eq!(now_bled, *prev);
                }
                prop_assert!(now_bled - *prev <= i64::from(cfg.current_limit.as_ma()) * i64::from(s.dt));
                *prev = now_bled;
            }
            prev_mask = mask;

            // No bit beyond the cells.
            prop_assert_eq!(mask >> n, 0);
            // Channel limits, derating and adjacency.
            let k = cfg.derated_channels(input.board_temp);
            prop_assert!(mask.count_ones() <= u32::from(cfg.max_channels));
            prop_assert!(mask.count_ones() <= u32::from(k));
            if cfg.no_adjacent {
                prop_assert_eq!(mask & (mask >> 1), 0);
            }
            // Inhibits.
            let i = s.current;
            let charging = cfg.while_charging && i.is_some_and(|i| i < -cfg.charge_current.as_ma());
            let rest = cfg.at_rest && i.is_some_and(|i| i.unsigned_abs() <= cfg.rest_current.unsigned_abs());
            let vmin = cells.iter().min().copied().unwrap_or(MilliVolts::ZERO);
            if s.fault || !(charging || rest) || vmin < input.uv_warning || k == 0 {
                prop_assert_eq!(mask, 0);
            }
            if let Some(t) = input.board_temp {
                if t >= cfg.hard_stop {
                    prop_assert_eq!(mask, 0);
                }
            }
            // A bled cell is above the start voltage and more than the stop delta above the
            // lowest (by SOC when SOC was used).
            let soc_used = cfg.soc_based && soc.is_some();
            let smin = soc.as_ref().and_then(|v| v.iter().min().copied());
            for bit in 0..n {
                if mask & (1 << bit) == 0 {
                    continue;
                }
                prop_assert!(cells[bit] >= cfg.start_voltage);
                if soc_used {
                    let (Some(v), Some(m)) = (soc.as_ref(), smin) else { unreachable!() };
                    prop_assert!(v[bit].as_permille() - m.as_permille() > cfg.soc_stop_delta.as_permille());
                } else {
                    prop_assert!(cells[bit].as_mv() - vmin.as_mv() > cfg.stop_delta.as_mv());
                }
            }
            // Measurement window.
            match cfg.timing {
                SwitchTiming::Scheduled => {
                    let due = b.next_measurement();
                    prop_assert_eq!(due, Some(Instant::from_millis(now) + cfg.measure_period));
                    let due = due.unwrap_or(Instant::ZERO);
                    let open = Instant::from_millis(due.as_millis() - u64::from(cfg.settle.as_millis()));
                    prop_assert_eq!(b.mask_at(Instant::from_millis(now)), mask);
                    prop_assert_eq!(b.mask_at(open), 0);
                    prop_assert_eq!(b.mask_at(due), 0);
                    if open.as_millis() > now {
                        prop_assert_eq!(b.mask_at(Instant::from_millis(open.as_millis() - 1)), mask);
                    }
                    prop_assert_eq!(b.poll_timeout(), if mask != 0 { Some(open) } else { None });
                }
                SwitchTiming::AfeManaged => {
                    prop_assert_eq!(b.poll_timeout(), None);
                    prop_assert_eq!(b.mask_at(Instant::from_millis(now + 1_000_000)), mask);
                }
            }
        }
    }

    #[test]
    /// The same inputs give the same masks, and a caller-supplied correct cell range changes
    /// nothing.
    fn deterministic((cfg, start, steps) in case()) {
        let run = |with_range: bool| {
            let mut b = Balancer::new(cfg);
            let mut cells: Vec<MilliVolts> = start.iter().map(|&v| MilliVolts::from_mv(v)).collect();
            let mut now = 0u64;
            let mut out = Vec::new();
            for s in &steps {
                now += u64::from(s.dt);
                for (c, d) in cells.iter_mut().zip(&s.drift) {
                    *c = MilliVolts::from_mv(c.as_mv().saturating_add_signed(*d));
                }
                out.push(b.update(&BalanceInput {
                    now: Instant::from_millis(now),
                    cells: &cells,
                    current: s.current.map(MilliAmps::from_ma),
                    faults_present: s.fault,
                    uv_warning: MilliVolts::from_mv(s.uv),
                    board_temp: s.temp.map(DeciCelsius::from_deci),
                    cell_soc: None,
                    cell_range: cells
                        .iter()
                        .min()
                        .zip(cells.iter().max())
                        .map(|(lo, hi)| (*lo, *hi))
                        .filter(|_| with_range),
                }));
            }
            (out, b.bled_exact(0), b.allowed_time_ms())
        };
        prop_assert_eq!(run(false), run(false));
        prop_assert_eq!(run(false), run(true));
    }

    /// Any input, however wrong (empty, too many cells, extreme values), never panics and never
    /// sets a bit beyond the cells given.
    #[test]
    fn never_panics(cells in proptest::collection::vec(any::<u32>(), 0..40),
                    i in any::<i32>(), t in any::<i16>(), now in any::<u64>(),
                    soc in proptest::collection::vec(0u16..=1000, 0..40), soc_based in any::<bool>(),
                    range in proptest::option::of((any::<u32>(), any::<u32>()))) {
        let mut cfg = BalanceConfig::nmc();
        cfg.soc_based = soc_based;
        cfg.max_channels = 20;
        let mut b = Balancer::new(cfg);
        let cells: Vec<MilliVolts> = cells.into_iter().map(MilliVolts::from_mv).collect();
        let soc: Vec<Soc> = soc.into_iter().map(|p| Soc::from_permille_clamped(i32::from(p))).collect();
        for k in 0..3u64 {
            let m = b.update(&BalanceInput {
                now: Instant::from_millis(now.saturating_add(k * 100)),
                cells: &cells,
                current: Some(MilliAmps::from_ma(i)),
                faults_present: false,
                uv_warning: MilliVolts::ZERO,
                board_temp: Some(DeciCelsius::from_deci(t)),
                cell_soc: Some(&soc),
                cell_range: range.map(|(a, b)| (MilliVolts::from_mv(a), MilliVolts::from_mv(b))),
            });
            if cells.len() < 32 {
                prop_assert_eq!(m >> cells.len(), 0);
            }
        }
        let _ = b.time_to_balanced(bms_core::units::MilliAmpHours::from_mah(u32::MAX),
                                   bms_core::balance::OcvSlope::from_uv_per_permille(1));
    }
}
