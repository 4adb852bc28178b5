//! Equivalence of `Balancer` with a plain reference model of the balancing rules.
//!
//! `Reference` below is the balancing algorithm written straightforwardly: per-cell loops, no
//! caches, no precomputed constants, no fast paths. A proptest drives it and the real
//! `Balancer` with the same random configurations and sequences of inputs (cells of any count
//! and value, currents around the thresholds, faults, temperatures, SOC of the right and wrong
//! length, right, wrong and missing cell ranges, time steps of any size and direction,
//! configuration changes, counter resets) and asserts identical masks and identical public
//! state after every operation.

use bms_core::balance::{
    BalanceConfig, BalanceInput, BalanceStatus, Balancer, Inhibit, OcvSlope, SettledInput,
    SwitchTiming,
};
use bms_core::time::{Duration, Instant};
use bms_core::units::{
    DeciCelsius, MilliAmpHours, MilliAmpMillis, MilliAmps, MilliOhms, MilliVolts, Permille, Soc,
};
use proptest::prelude::*;

const MAX_CELLS: usize = 20;

/// What the last decision measured of the spread.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Spread {
    None,
    Voltage {
        max: u32,
        sum: u64,
        cells: usize,
        top: u32,
    },
    Soc {
        max: u32,
        sum: u64,
        cells: usize,
        top: u32,
    },
}

/// The balancing rules, written plainly.
struct Reference {
    cfg: BalanceConfig,
    /// Cells counted as above the start delta (hysteresis); bits beyond the cells are kept.
    candidates: u32,
    /// Channel count of the last full decision (zero after a stop or a new configuration).
    selected_k: u8,
    selected_soc: bool,
    selected_at: Instant,
    mask: u32,
    status: BalanceStatus,
    last_update: Option<Instant>,
    next_measurement: Option<Instant>,
    bled: [i64; MAX_CELLS],
    spread: Spread,
    /// The interval after the last update counts as balancing opportunity.
    opportunity: bool,
    allowed_ms: u64,
}

/// `min(round(min(V, 65535 mV) * G / 2^16), limit)` with `G` the conductance in Q16 mA/mV.
fn bleed_ma(cfg: &BalanceConfig, mv: u32) -> u32 {
    let r = u64::from(cfg.resistor.as_mohm().max(1_000));
    let g = ((1_000u64 << 16) + r / 2) / r;
    let v = u64::from(mv.min(65_535));
    let i = ((v * g + (1 << 15)) >> 16) as u32;
    let limit = cfg.current_limit.as_ma().clamp(0, 100) as u32;
    i.min(limit)
}

impl Reference {
    fn new(cfg: BalanceConfig) -> Self {
        Reference {
            cfg,
            candidates: 0,
            selected_k: 0,
            selected_soc: false,
            selected_at: Instant::ZERO,
            mask: 0,
            status: BalanceStatus::Idle,
            last_update: None,
            next_measurement: None,
            bled: [0; MAX_CELLS],
            spread: Spread::None,
            opportunity: false,
            allowed_ms: 0,
        }
    }

    fn set_config(&mut self, cfg: BalanceConfig) {
        self.cfg = cfg;
        self.selected_k = 0;
        self.candidates = 0;
    }

    fn reset_bled(&mut self) {
        self.bled = [0; MAX_CELLS];
        self.allowed_ms = 0;
    }

    fn update(&mut self, input: &BalanceInput<'_>) -> u32 {
        let n = input.cells.len().min(MAX_CELLS);
        let cells: Vec<u32> = input.cells[..n].iter().map(|c| c.as_mv()).collect();
        // The interval since the last update: allowed time, and how long the channels were on.
        let prev = self.mask;
        let mut on_ms = 0u32;
        if let Some(last) = self.last_update {
            let dt = input.now.duration_since(last).as_millis();
            if self.opportunity {
                self.allowed_ms = self.allowed_ms.saturating_add(u64::from(dt));
            }
            if prev != 0 {
                let settle = self.cfg.settle.as_millis();
                on_ms = match self.cfg.timing {
                    SwitchTiming::AfeManaged => dt.saturating_sub(settle),
                    SwitchTiming::Scheduled => {
                        dt.min(self.cfg.measure_period.as_millis().saturating_sub(settle))
                    }
                };
            }
        }
        for (i, &v) in cells.iter().enumerate() {
            if prev & (1 << i) != 0 {
                let q = i64::from(bleed_ma(&self.cfg, v)) * i64::from(on_ms);
                self.bled[i] = self.bled[i].saturating_add(q);
            }
        }
        self.decide(input, &cells)
    }

    fn stop(&mut self, status: BalanceStatus) -> u32 {
        self.mask = 0;
        self.selected_k = 0;
        self.status = status;
        0
    }

    /// Every channel on is a cell that passes `keep`.
    fn all_on_pass(&self, n: usize, keep: impl Fn(usize) -> bool) -> bool {
        (0..32).all(|i| self.mask & (1 << i) == 0 || (i < n && keep(i)))
    }

    /// New candidate set: set at `start` or more above `min`, cleared at `stop` or less.
    fn hysteresis(&self, metric: &[u32], min: u32, start: u32, stop: u32) -> u32 {
        let mut cand = self.candidates;
        for (i, &m) in metric.iter().enumerate() {
            let d = m.saturating_sub(min);
            if d >= start {
                cand |= 1 << i;
            } else if d <= stop {
                cand &= !(1 << i);
            }
        }
        cand
    }

    fn decide(&mut self, input: &BalanceInput<'_>, cells: &[u32]) -> u32 {
        let n = cells.len();
        let cfg = self.cfg;
        self.last_update = Some(input.now);
        self.opportunity = false;
        self.next_measurement = match cfg.timing {
            SwitchTiming::AfeManaged => None,
            SwitchTiming::Scheduled => Some(input.now + cfg.measure_period),
        };

        if !cfg.enabled || n == 0 || cfg.max_channels == 0 {
            return self.stop(BalanceStatus::Inhibited(Inhibit::Disabled));
        }
        if input.faults_present {
            return self.stop(BalanceStatus::Inhibited(Inhibit::Fault));
        }
        let Some(current) = input.current else {
            return self.stop(BalanceStatus::Inhibited(Inhibit::CurrentUnknown));
        };
        let i = current.as_ma();
        let charging = cfg.while_charging && i < cfg.charge_current.as_ma().wrapping_neg();
        let rest = cfg.at_rest && i.unsigned_abs() <= cfg.rest_current.unsigned_abs();
        if !charging && !rest {
            return self.stop(BalanceStatus::Inhibited(Inhibit::NotAllowedState));
        }
        let k = cfg.derated_channels(input.board_temp).min(n as u8);
        if k == 0 {
            return self.stop(BalanceStatus::Inhibited(Inhibit::BoardTemperature));
        }

        let real_min = cells.iter().copied().min().unwrap_or(0);
        let real_max = cells.iter().copied().max().unwrap_or(0);
        let (vmin, vmax) = match input.cell_range {
            Some((lo, hi)) => (lo.as_mv(), hi.as_mv()),
            None => (real_min, real_max),
        };
        let uv = input.uv_warning.as_mv();
        if vmin < uv {
            return self.stop(BalanceStatus::Inhibited(Inhibit::UnderVoltage));
        }
        let start_v = cfg.start_voltage.as_mv();
        self.opportunity = vmax >= start_v;
        let valid = (1u32 << n) - 1;
        let soc: Option<Vec<u32>> = match input.cell_soc {
            Some(s) if cfg.soc_based && s.len() == n => {
                Some(s.iter().map(|p| u32::from(p.as_permille())).collect())
            }
            _ => None,
        };
        let fresh = k == self.selected_k
            && soc.is_some() == self.selected_soc
            && input.now.duration_since(self.selected_at) < cfg.reselect_interval;
        let hot = (0..n)
            .filter(|&i| cells[i] >= start_v)
            .fold(0, |m, i| m | 1 << i);

        let eligible = match &soc {
            Some(s) => {
                let smin = s.iter().copied().min().unwrap_or(0);
                let smax = s.iter().copied().max().unwrap_or(0);
                let start = u32::from(cfg.soc_start_delta.as_permille());
                let stop = u32::from(cfg.soc_stop_delta.as_permille());
                if fresh && self.all_on_pass(n, |i| cells[i] >= start_v && s[i] - smin > stop) {
                    if let Spread::Soc { max, top, .. } = &mut self.spread {
                        *max = smax - smin;
                        *top = vmax;
                    }
                    return self.mask;
                }
                if real_min < uv {
                    return self.stop(BalanceStatus::Inhibited(Inhibit::UnderVoltage));
                }
                self.opportunity = real_max >= start_v;
                if self.candidates & valid == 0 && smax - smin < start {
                    self.spread = Spread::Soc {
                        max: smax - smin,
                        sum: u64::from(smax - smin),
                        cells: n,
                        top: real_max,
                    };
                    self.candidates = 0;
                    return self.stop(BalanceStatus::Balanced);
                }
                self.candidates = self.hysteresis(s, smin, start, stop);
                self.spread = Spread::Soc {
                    max: smax - smin,
                    sum: s.iter().map(|&m| u64::from(m - smin)).sum(),
                    cells: n,
                    top: real_max,
                };
                self.candidates & hot & valid
            }
            None => {
                let start = cfg.start_delta.as_mv();
                let stop = cfg.stop_delta.as_mv();
                if self.candidates & valid == 0 && vmax.saturating_sub(vmin) < start {
                    self.spread = Spread::Voltage {
                        max: vmax.saturating_sub(vmin),
                        sum: u64::from(vmax.saturating_sub(vmin)),
                        cells: n,
                        top: vmax,
                    };
                    self.candidates = 0;
                    return self.stop(BalanceStatus::Balanced);
                }
                let keep = |i: usize| {
                    cells[i] >= start_v && u64::from(cells[i]) > u64::from(vmin) + u64::from(stop)
                };
                if fresh && self.all_on_pass(n, keep) {
                    if let Spread::Voltage { max, top, .. } = &mut self.spread {
                        *max = vmax.saturating_sub(vmin);
                        *top = vmax;
                    }
                    return self.mask;
                }
                if real_min != vmin || real_max != vmax {
                    // The caller's range was wrong.
                    if real_min < uv {
                        return self.stop(BalanceStatus::Inhibited(Inhibit::UnderVoltage));
                    }
                    self.opportunity = real_max >= start_v;
                }
                self.candidates = self.hysteresis(cells, real_min, start, stop);
                self.spread = Spread::Voltage {
                    max: real_max - real_min,
                    sum: cells.iter().map(|&m| u64::from(m - real_min)).sum(),
                    cells: n,
                    top: real_max,
                };
                self.candidates & hot & valid
            }
        };

        let metric: &[u32] = soc.as_deref().unwrap_or(cells);
        self.mask = self.select(eligible, k, metric);
        self.selected_k = k;
        self.selected_soc = soc.is_some();
        self.selected_at = input.now;
        self.status = if self.mask != 0 {
            BalanceStatus::Balancing
        } else {
            BalanceStatus::Balanced
        };
        self.mask
    }

    /// Greedy: highest metric first (ties to the lower cell), skipping neighbours of chosen
    /// cells when adjacency is forbidden, at most `k`; everything when nothing contends.
    fn select(&self, eligible: u32, k: u8, metric: &[u32]) -> u32 {
        let contended = eligible.count_ones() > u32::from(k)
            || (self.cfg.no_adjacent && eligible & (eligible >> 1) != 0);
        if !contended {
            return eligible;
        }
        let mut remaining = eligible;
        let mut mask = 0u32;
        for _ in 0..k {
            let mut best: Option<usize> = None;
            for i in 0..metric.len() {
                if remaining & (1 << i) != 0 && best.is_none_or(|b| metric[i] > metric[b]) {
                    best = Some(i);
                }
            }
            let Some(b) = best else { break };
            mask |= 1 << b;
            remaining &= !(1 << b);
            if self.cfg.no_adjacent {
                remaining &= !((1u32 << b << 1) | (1u32 << b >> 1));
            }
        }
        mask
    }

    fn mask_at(&self, now: Instant) -> u32 {
        match self.next_measurement {
            Some(t) if now.saturating_add(self.cfg.settle) >= t => 0,
            _ => self.mask,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.mask == 0 {
            return None;
        }
        self.next_measurement.map(|t| {
            Instant::from_millis(
                t.as_millis()
                    .saturating_sub(u64::from(self.cfg.settle.as_millis())),
            )
        })
    }

    fn power_mw(&self, cells: &[MilliVolts]) -> u32 {
        (0..cells.len().min(32))
            .filter(|&i| self.mask & (1 << i) != 0)
            .fold(0u32, |p, i| {
                p.saturating_add(self.cfg.channel_power_mw(cells[i]))
            })
    }

    fn time_to_balanced(&self, capacity: MilliAmpHours, slope: OcvSlope) -> Option<Duration> {
        let per_permille = u64::from(capacity.as_mah()) * 3_600;
        let (max_q, sum_q, cells, top) = match self.spread {
            Spread::None => return None,
            Spread::Voltage {
                max,
                sum,
                cells,
                top,
            } => {
                let s = u64::from(slope.as_uv_per_permille());
                if s == 0 {
                    return None;
                }
                let q = |mv: u64| mv.saturating_mul(1_000).saturating_mul(per_permille) / s;
                (q(u64::from(max)), q(sum), cells, top)
            }
            Spread::Soc {
                max,
                sum,
                cells,
                top,
            } => (
                u64::from(max) * per_permille,
                sum.saturating_mul(per_permille),
                cells,
                top,
            ),
        };
        let i = u64::from(bleed_ma(&self.cfg, top));
        if i == 0 {
            return None;
        }
        let mut k = u64::from(self.cfg.max_channels).min(cells as u64);
        if self.cfg.no_adjacent {
            k = k.min((cells as u64).div_ceil(2));
        }
        let q = max_q.max(sum_q / k.max(1));
        Some(Duration::from_millis(
            (q / i).min(u64::from(u32::MAX)) as u32
        ))
    }
}

fn config() -> impl Strategy<Value = BalanceConfig> {
    (
        (
            0u32..60,
            0u32..70,
            prop_oneof![8 => 1u8..=20, 1 => 0u8..=0, 1 => 21u8..=40],
            any::<bool>(),
            proptest::bool::weighted(0.9),
            proptest::bool::weighted(0.8),
            proptest::bool::weighted(0.95),
        ),
        (
            prop_oneof![3 => 3_900u32..4_100, 1 => 0u32..5_000],
            -100i16..600,
            -20i16..300,
            prop_oneof![8 => 1_000u32..100_000, 1 => 0u32..1_000, 1 => any::<u32>()],
            prop_oneof![8 => 1i32..=100, 1 => -5i32..=130],
        ),
        (
            any::<bool>(),
            0u32..300,
            0u32..1_000,
            prop_oneof![4 => 1u32..2_000, 2 => 2_000u32..30_000, 1 => 0u32..=1],
            -100i32..3_000,
            -100i32..3_000,
        ),
        (any::<bool>(), 0u16..60, 0u16..60, any::<bool>()),
    )
        .prop_map(
            |(
                (start, stop, ch, adj, chg, rest, enabled),
                (vstart, dstart, dspan, r, lim),
                (sched, settle, period, reselect, ichg, irest),
                (soc, soc_start, soc_stop, req_t),
            )| BalanceConfig {
                enabled,
                while_charging: chg,
                at_rest: rest,
                charge_current: MilliAmps::from_ma(ichg),
                rest_current: MilliAmps::from_ma(irest),
                start_voltage: MilliVolts::from_mv(vstart),
                start_delta: MilliVolts::from_mv(start),
                stop_delta: MilliVolts::from_mv(stop),
                max_channels: ch,
                no_adjacent: adj,
                resistor: MilliOhms::from_mohm(r),
                current_limit: MilliAmps::from_ma(lim),
                derate_start: DeciCelsius::from_deci(dstart),
                hard_stop: DeciCelsius::from_deci(dstart + dspan),
                require_board_temp: req_t,
                timing: if sched {
                    SwitchTiming::Scheduled
                } else {
                    SwitchTiming::AfeManaged
                },
                settle: Duration::from_millis(settle),
                measure_period: Duration::from_millis(period),
                reselect_interval: Duration::from_millis(reselect),
                soc_based: soc,
                soc_start_delta: Permille::from_permille(soc_start),
                soc_stop_delta: Permille::from_permille(soc_stop),
            },
        )
}

/// The one input an [`Op::Again`] changes.
#[derive(Clone, Debug)]
enum Tweak {
    Nothing,
    Uv(u32),
    Temp(Option<i16>),
    Current(Option<i32>),
    Fault,
    Soc(Option<Vec<u16>>),
    /// Drops the last cell.
    FewerCells,
}

#[derive(Clone, Debug)]
struct Step {
    /// Milliseconds added to the clock (negative: the clock goes back).
    dt: i64,
    drift: Vec<i32>,
    /// Replace the cells by these (other count or extreme values).
    cells: Option<Vec<u32>>,
    current: Option<i32>,
    fault: bool,
    uv: u32,
    temp: Option<i16>,
    soc: Option<Vec<u16>>,
    /// 0: no range, 1: the right one, 2: this wrong one.
    range: (u8, u32, u32),
}

#[derive(Clone, Debug)]
enum Op {
    Update(Step),
    /// The last update again (same cells, range, current...), this many ms later, with at
    /// most one input changed: a pack holding still, where the balancer may reuse its last
    /// decision, and the ways it must not.
    Again(i64, Tweak),
    SetConfig(BalanceConfig),
    ResetBled,
}

fn step(n: usize) -> impl Strategy<Value = Step> {
    (
        (
            prop_oneof![
                12 => 1i64..400,
                3 => 400i64..20_000,
                1 => 0i64..=0,
                1 => -2_000i64..0,
                1 => 20_000i64..10_000_000_000,
            ],
            proptest::collection::vec(-4i32..=4, n),
            proptest::option::weighted(
                0.05,
                proptest::collection::vec(
                    prop_oneof![6 => 3_900u32..4_100, 1 => any::<u32>(), 1 => 60_000u32..80_000],
                    0..24,
                ),
            ),
            proptest::option::weighted(
                0.95,
                prop_oneof![
                    4 => -6_000i32..-150,
                    4 => -350i32..350,
                    2 => -20_000i32..20_000,
                    1 => any::<i32>()
                ],
            ),
            proptest::bool::weighted(0.05),
        ),
        (
            prop_oneof![12 => 2_500u32..3_900, 1 => 3_900u32..4_300],
            proptest::option::weighted(0.8, prop_oneof![4 => 100i16..900, 1 => any::<i16>()]),
            proptest::option::weighted(
                0.4,
                (
                    proptest::bool::weighted(0.9),
                    proptest::collection::vec(0u16..=1_000, n),
                    0u16..=1_000,
                ),
            ),
            (
                prop_oneof![2 => 0u8..=0, 3 => 1u8..=1, 1 => 2u8..=2],
                3_900u32..4_150,
                3_900u32..4_150,
            ),
        ),
    )
        .prop_map(
            |((dt, drift, cells, current, fault), (uv, temp, soc, range))| Step {
                dt,
                drift,
                cells,
                current,
                fault,
                uv,
                temp,
                soc: soc.map(|(right_len, mut v, extra)| {
                    if !right_len {
                        v.push(extra);
                    }
                    v
                }),
                range,
            },
        )
}

fn tweak(n: usize) -> impl Strategy<Value = Tweak> {
    prop_oneof![
        6 => Just(Tweak::Nothing),
        1 => (3_800u32..4_200).prop_map(Tweak::Uv),
        1 => proptest::option::of(100i16..900).prop_map(Tweak::Temp),
        1 => proptest::option::of(-400i32..400).prop_map(Tweak::Current),
        1 => Just(Tweak::Fault),
        1 => proptest::option::of(proptest::collection::vec(0u16..=1_000, n)).prop_map(Tweak::Soc),
        1 => Just(Tweak::FewerCells),
    ]
}

fn ops(n: usize) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        40 => step(n).prop_map(Op::Update),
        10 => (prop_oneof![1i64..400, 400i64..20_000], tweak(n))
            .prop_map(|(dt, t)| Op::Again(dt, t)),
        1 => config().prop_map(Op::SetConfig),
        1 => Just(Op::ResetBled),
    ];
    proptest::collection::vec(op, 1..120)
}

fn case() -> impl Strategy<Value = (BalanceConfig, Vec<u32>, Vec<Op>)> {
    (1usize..=20).prop_flat_map(|n| {
        (
            config(),
            proptest::collection::vec(3_950u32..4_080, n),
            ops(n),
        )
    })
}

/// Every public observation of both, after an operation.
fn assert_same(b: &Balancer, r: &Reference, now: Instant, cells: &[MilliVolts]) {
    assert_eq!(b.mask(), r.mask, "mask");
    assert_eq!(b.status(), r.status, "status");
    assert_eq!(b.next_measurement(), r.next_measurement, "next_measurement");
    assert_eq!(b.poll_timeout(), r.poll_timeout(), "poll_timeout");
    for t in [0, 1, 20, 99, 229, 230, 231, 999, 5_000] {
        let at = now.saturating_add(Duration::from_millis(t));
        assert_eq!(b.mask_at(at), r.mask_at(at), "mask_at(+{t})");
    }
    for i in 0..MAX_CELLS + 3 {
        let want = MilliAmpMillis::from_raw(r.bled.get(i).copied().unwrap_or(0));
        assert_eq!(b.bled_exact(i), want, "bled_exact({i})");
        assert_eq!(
            b.bled(i),
            MilliAmpHours::from_mah(want.as_mah().clamp(0, u32::MAX.into()) as u32)
        );
    }
    assert_eq!(b.allowed_time_ms(), r.allowed_ms, "allowed_time_ms");
    assert_eq!(b.power_mw(cells), r.power_mw(cells), "power_mw");
    for (cap, slope) in [
        (10_000, OcvSlope::from_mv_per_percent(10)),
        (100_000, OcvSlope::from_uv_per_permille(320)),
        (1, OcvSlope::from_uv_per_permille(1)),
        (u32::MAX, OcvSlope::from_uv_per_permille(1)),
        (5_000, OcvSlope::from_uv_per_permille(0)),
    ] {
        let cap = MilliAmpHours::from_mah(cap);
        assert_eq!(
            b.time_to_balanced(cap, slope),
            r.time_to_balanced(cap, slope),
            "time_to_balanced({cap:?}, {slope:?})"
        );
    }
    assert_eq!(b.config(), &r.cfg, "config");
}

fn run(cfg: BalanceConfig, start: &[u32], ops: &[Op]) {
    let mut b = Balancer::new(cfg);
    let mut r = Reference::new(cfg);
    let mut cells: Vec<MilliVolts> = start.iter().map(|&v| MilliVolts::from_mv(v)).collect();
    let mut now = 1_000_000u64;
    assert_same(&b, &r, Instant::from_millis(now), &cells);
    let mut last: Option<Step> = None;
    for op in ops {
        let repeated;
        let op = match op {
            Op::Again(dt, tweak) => match &last {
                Some(s) => {
                    let mut s = Step {
                        dt: *dt,
                        drift: Vec::new(),
                        cells: None,
                        ..s.clone()
                    };
                    match tweak.clone() {
                        Tweak::Nothing => {}
                        Tweak::Uv(uv) => s.uv = uv,
                        Tweak::Temp(t) => s.temp = t,
                        Tweak::Current(i) => s.current = i,
                        Tweak::Fault => s.fault = !s.fault,
                        Tweak::Soc(v) => s.soc = v,
                        Tweak::FewerCells => {
                            let mut fewer: Vec<u32> = cells.iter().map(|c| c.as_mv()).collect();
                            fewer.pop();
                            s.cells = Some(fewer);
                        }
                    }
                    repeated = Op::Update(s);
                    &repeated
                }
                None => continue,
            },
            op => op,
        };
        if let Op::Update(s) = op {
            last = Some(s.clone());
        }
        match op {
            Op::SetConfig(cfg) => {
                b.set_config(*cfg);
                r.set_config(*cfg);
            }
            Op::ResetBled => {
                b.reset_bled();
                r.reset_bled();
            }
            Op::Again(..) => unreachable!("replaced by the update it repeats"),
            Op::Update(s) => {
                now = now.saturating_add_signed(s.dt);
                if let Some(new) = &s.cells {
                    cells = new.iter().map(|&v| MilliVolts::from_mv(v)).collect();
                }
                for (c, d) in cells.iter_mut().zip(&s.drift) {
                    *c = MilliVolts::from_mv(c.as_mv().saturating_add_signed(*d));
                }
                let soc: Option<Vec<Soc>> = s.soc.as_ref().map(|v| {
                    v.iter()
                        .map(|&p| Soc::from_permille_clamped(i32::from(p)))
                        .collect()
                });
                let used = &cells[..cells.len().min(MAX_CELLS)];
                let range = match s.range.0 {
                    1 => used.iter().min().copied().zip(used.iter().max().copied()),
                    2 => Some((
                        MilliVolts::from_mv(s.range.1),
                        MilliVolts::from_mv(s.range.2),
                    )),
                    _ => None,
                };
                let input = BalanceInput {
                    now: Instant::from_millis(now),
                    cells: &cells,
                    current: s.current.map(MilliAmps::from_ma),
                    faults_present: s.fault,
                    uv_warning: MilliVolts::from_mv(s.uv),
                    board_temp: s.temp.map(DeciCelsius::from_deci),
                    cell_soc: soc.as_deref(),
                    cell_range: range,
                };
                let want = r.update(&input);
                // Some updates try the cell-free gates first; without per-cell SOCs, some
                // the gates and the settled shortcut before the full update, as `Bms` does.
                let settled = || SettledInput {
                    uv_warning: input.uv_warning,
                    board_temp: input.board_temp,
                    cell_range: input.cell_range,
                };
                let got = match s.dt % 3 {
                    0 => b
                        .update_idle(input.now, cells.len(), input.current, input.faults_present)
                        .unwrap_or_else(|| b.update(&input)),
                    1 if input.cell_soc.is_none() => b
                        .update_unread(
                            input.now,
                            cells.len(),
                            input.current,
                            input.faults_present,
                            settled,
                        )
                        .unwrap_or_else(|| b.update_full(&input)),
                    _ => b.update(&input),
                };
                assert_eq!(got, want, "update mask");
            }
        }
        assert_same(&b, &r, Instant::from_millis(now), &cells);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, ..ProptestConfig::default() })]

    /// The balancer and the reference agree on every output after every operation.
    #[test]
    fn balancer_matches_reference((cfg, start, ops) in case()) {
        run(cfg, &start, &ops);
    }
}

/// Long runs on the presets (many full passes, fresh steps, contention and bleeding), where
/// random short sequences rarely get to.
#[test]
fn presets_match_reference_over_long_runs() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |m: u32| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % u64::from(m)) as u32
    };
    let contended = BalanceConfig {
        no_adjacent: true,
        max_channels: 5,
        reselect_interval: Duration::from_millis(700),
        ..BalanceConfig::nmc()
    };
    let scheduled = BalanceConfig {
        timing: SwitchTiming::Scheduled,
        ..BalanceConfig::lfp()
    };
    let soc = BalanceConfig {
        soc_based: true,
        ..BalanceConfig::lto()
    };
    for cfg in [BalanceConfig::nmc(), contended, scheduled, soc] {
        let n = 20usize;
        let mut cells: Vec<u32> = (0..n).map(|_| 3_400 + next(800)).collect();
        let mut socs: Vec<u16> = (0..n).map(|_| 500 + next(60) as u16).collect();
        let mut ops = Vec::new();
        for t in 0..4_000u32 {
            let drift: Vec<i32> = (0..n).map(|_| next(9) as i32 - 4).collect();
            for s in &mut socs {
                *s = (*s + next(3) as u16).saturating_sub(1).min(1_000);
            }
            ops.push(Op::Update(Step {
                dt: i64::from(50 + next(200)),
                drift,
                cells: None,
                current: Some(if t % 1_000 < 700 { -3_000 } else { 8_000 }),
                fault: next(200) == 0,
                uv: 3_000,
                temp: Some(300 + next(500) as i16),
                soc: Some(socs.clone()),
                range: (next(3) as u8 % 2, 0, 0),
            }));
        }
        for c in &mut cells {
            *c = (*c).clamp(3_950, 4_150);
        }
        run(cfg, &cells, &ops);
    }
}

/// A balanced pack holding still for thousands of updates (the settled step), across time
/// jumps (none, backwards, beyond `u32::MAX` ms), then one input changing after the long
/// stretch, then a cell moving: above and below the start voltage (with and without
/// balancing opportunity), at rest and charging, with the measurement window scheduled or
/// not.
#[test]
fn long_still_stretches_then_a_change() {
    let scheduled = BalanceConfig {
        timing: SwitchTiming::Scheduled,
        ..BalanceConfig::lfp()
    };
    let n = 20usize;
    for cfg in [BalanceConfig::nmc(), BalanceConfig::lfp(), scheduled] {
        for (mv, current) in [(4_000u32, 0), (3_950, -3_000), (3_300, 0)] {
            // A spread of 2 mV: below every start delta.
            let start: Vec<u32> = (0..n as u32).map(|i| mv + i % 3).collect();
            let tweaks = [
                Tweak::Nothing,
                Tweak::Uv(mv + 1),
                Tweak::Temp(Some(700)),
                Tweak::Temp(None),
                Tweak::Current(Some(5_000)),
                Tweak::Current(None),
                Tweak::Fault,
                Tweak::Soc(Some(vec![500; n])),
                Tweak::FewerCells,
            ];
            for tweak in tweaks {
                let first = Step {
                    dt: 100,
                    drift: vec![0; n],
                    cells: None,
                    current: Some(current),
                    fault: false,
                    uv: 2_800,
                    temp: Some(250),
                    soc: None,
                    range: (1, 0, 0),
                };
                let mut ops = vec![Op::Update(first.clone())];
                for k in 0..3_000i64 {
                    // Odd steps skip the cell-free gates, even ones try them first.
                    let dt = match k {
                        1_000 => 0,
                        1_500 => -5_000,
                        2_000 => 1 << 33,
                        _ => 100 + k % 2,
                    };
                    ops.push(Op::Again(dt, Tweak::Nothing));
                }
                ops.push(Op::Again(100, tweak));
                ops.extend((0..50i64).map(|k| Op::Again(100 + k % 2, Tweak::Nothing)));
                let mut drift = vec![0; n];
                drift[n / 2] = 4;
                ops.push(Op::Update(Step { drift, ..first }));
                ops.extend((0..50i64).map(|k| Op::Again(100 + k % 2, Tweak::Nothing)));
                run(cfg, &start, &ops);
            }
        }
    }
}

/// Long runs of steady inhibits through the cell-free gates (a discharge, a fault, no
/// current reading, balancing disabled, no cells), one reason after another, entered from
/// bleeding channels (charging) and from each other, with new configurations in the middle
/// of a run (another measurement window, balancing off and on): each update of a run is
/// what the first one of it did, but at its own time.
#[test]
fn steady_inhibit_runs_match_reference() {
    let scheduled = BalanceConfig {
        timing: SwitchTiming::Scheduled,
        ..BalanceConfig::lfp()
    };
    let slower = BalanceConfig {
        measure_period: Duration::from_millis(3 * scheduled.measure_period.as_millis()),
        ..scheduled
    };
    let off = BalanceConfig {
        enabled: false,
        ..scheduled
    };
    let n = 20usize;
    // A 95 mV spread above the start voltage: channels bleed while charging.
    let start: Vec<u32> = (0..n as u32).map(|i| 3_500 + i * 5).collect();
    let step = |current: Option<i32>, fault: bool, cells: Option<Vec<u32>>| Step {
        // Even: the update tries the cell-free gates first.
        dt: 100,
        drift: vec![0; n],
        cells,
        current,
        fault,
        uv: 2_800,
        temp: Some(250),
        soc: None,
        range: (1, 0, 0),
    };
    let run_of = |ops: &mut Vec<Op>, s: Step, mid: Option<BalanceConfig>| {
        for k in 0..40 {
            if k == 20 {
                if let Some(cfg) = mid {
                    ops.push(Op::SetConfig(cfg));
                }
            }
            ops.push(Op::Update(Step {
                cells: if k == 0 { s.cells.clone() } else { None },
                ..s.clone()
            }));
        }
    };
    let (charge, discharge) = (Some(-20_000), Some(10_000));
    for first in [scheduled, BalanceConfig::nmc()] {
        let mut ops = Vec::new();
        run_of(&mut ops, step(charge, false, None), None);
        run_of(&mut ops, step(discharge, false, None), None);
        run_of(&mut ops, step(discharge, false, None), Some(slower));
        run_of(&mut ops, step(discharge, true, None), Some(scheduled));
        run_of(&mut ops, step(None, false, None), None);
        run_of(&mut ops, step(discharge, false, None), Some(slower));
        run_of(&mut ops, step(charge, false, None), None);
        run_of(&mut ops, step(discharge, false, None), Some(off));
        run_of(&mut ops, step(charge, false, None), Some(scheduled));
        run_of(
            &mut ops,
            step(discharge, false, Some(Vec::new())),
            Some(first),
        );
        run_of(&mut ops, step(discharge, false, Some(start.clone())), None);
        run_of(&mut ops, step(charge, false, None), None);
        ops.push(Op::ResetBled);
        run_of(&mut ops, step(discharge, false, None), None);
        run(first, &start, &ops);
    }
}
