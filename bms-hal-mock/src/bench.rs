//! In-memory control-step workloads for benchmarks and instruction counts.
//!
//! [`Workload::new`] builds a configuration and pre-generates every [`Measurements`]
//! snapshot, so that [`run_steps`] does nothing but call [`Bms::step`] (and, with CAN,
//! [`J1939Node::update`] and [`J1939Node::drain_transmit`]): no simulation, no I/O.
//! `bms-sim bench` runs it under `valgrind --tool=callgrind --toggle-collect=*run_steps*`
//! to count instructions per step (see `benches/callgrind-step.sh`).
//!
//! # Examples
//! ```
//! use bms_hal_mock::bench::{State, Workload};
//! let w = Workload::new(20, State::Steady, 100).expect("valid preset");
//! let mut bms = w.bms().expect("valid config");
//! w.warm_up(&mut bms, None);
//! assert_eq!(bms_hal_mock::bench::run_steps(&mut bms, None, w.measured()), 100);
//! assert!(bms.telemetry().faults.is_empty());
//! ```

use bms_core::config::{Chemistry, PackConfig};
use bms_core::j1939::{J1939Config, J1939Node};
use bms_core::measure::{Measurements, MAX_CELLS};
use bms_core::{Bms, DeciCelsius, Instant, MilliAmps, MilliVolts};

use crate::rng::XorShift64;

/// Control period of the generated snapshots.
pub const PERIOD_MS: u64 = 100;
/// Snapshots stepped before the measured ones: boot, pre-charge, address claim and the
/// fault delays are over when the measurement starts.
pub const WARM_UP: usize = 100;

/// The state of the pack during the measured steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No faults; 10 A discharge, a few mV of noise on every cell and on the current.
    Steady,
    /// As `Steady` with cell 5 above its over-voltage trip and T1 above the charge
    /// over-temperature trip: two faults and three warnings stay active.
    Faults,
    /// Nothing changes from one snapshot to the next but the time (no current, no noise).
    Still,
    /// The pack at rest as in `Still`, but with the noise of `Steady` on every cell and on
    /// the current (within ±50 mA of zero): the same state as `Still` with changing
    /// readings, its counterpart for "a step with nothing changed costs no more".
    Rest,
}

/// A configuration and its pre-generated snapshots.
#[derive(Clone, Debug)]
pub struct Workload {
    cfg: PackConfig,
    snapshots: Vec<Measurements>,
}

impl Workload {
    /// An LFP pack of the `ANT<cells>S-300A-C` preset; `WARM_UP + steps` snapshots.
    ///
    /// # Errors
    /// The part number does not parse (cells outside 8..=20).
    pub fn new(cells: u8, state: State, steps: usize) -> Result<Self, String> {
        let variant = format!("ANT{cells}S-300A-C")
            .parse()
            .map_err(|e| format!("{cells} cells: {e}"))?;
        let cfg = PackConfig::preset(variant, Chemistry::Lfp);
        let mut rng = XorShift64::new(0x5eed ^ u64::from(cells));
        let n = usize::from(cells).min(MAX_CELLS);
        let snapshots = (0..WARM_UP + steps)
            .map(|k| {
                let now = Instant::from_millis(k as u64 * PERIOD_MS);
                let mut m = Measurements::uniform(cells, MilliVolts::from_mv(3_300), now);
                if state != State::Still {
                    for c in &mut m.cells[..n] {
                        *c = MilliVolts::from_mv(3_298 + (rng.next_u64() % 5) as u32);
                    }
                    let noise = (rng.next_u64() % 101) as i32 - 50;
                    let load = if state == State::Rest { 0 } else { 10_000 };
                    m.current = Some(MilliAmps::from_ma(load + noise));
                }
                if state == State::Faults {
                    m.cells[4] = MilliVolts::from_mv(3_700);
                    m.cell_temps[0] = Some(DeciCelsius::from_deci(560));
                }
                let pack = m.cell_sum();
                m.pack = Some(pack);
                m.load = Some(pack);
                m
            })
            .collect();
        Ok(Workload { cfg, snapshots })
    }

    /// The configuration.
    pub fn config(&self) -> &PackConfig {
        &self.cfg
    }

    /// A fresh BMS for the configuration.
    ///
    /// # Errors
    /// The configuration does not validate.
    pub fn bms(&self) -> Result<Bms, String> {
        Bms::new(self.cfg).map_err(|e| e.to_string())
    }

    /// Steps the warm-up snapshots.
    pub fn warm_up(&self, bms: &mut Bms, can: Option<&mut J1939Node>) {
        run_steps(
            bms,
            can,
            &self.snapshots[..WARM_UP.min(self.snapshots.len())],
        );
    }

    /// The snapshots after the warm-up.
    pub fn measured(&self) -> &[Measurements] {
        self.snapshots.get(WARM_UP..).unwrap_or(&[])
    }
}

/// A J1939 node with the default configuration (for the CAN figure).
pub fn can_node() -> J1939Node {
    J1939Node::new(J1939Config::default())
}

/// Steps `bms` over `snapshots`; with `can`, also updates the node from the telemetry and
/// drains the frames it has due. Returns the steps run.
///
/// Not inlined, so that a profiler can collect exactly this loop.
#[inline(never)]
pub fn run_steps(
    bms: &mut Bms,
    mut can: Option<&mut J1939Node>,
    snapshots: &[Measurements],
) -> usize {
    for m in snapshots {
        std::hint::black_box(bms.step(std::hint::black_box(m)));
        if let Some(node) = can.as_deref_mut() {
            node.update(m.timestamp, bms.telemetry());
            node.drain_transmit(m.timestamp, |f| {
                std::hint::black_box(f);
            });
        }
    }
    snapshots.len()
}

/// `bms-sim bench`: builds the workload, warms up, runs `steps` measured steps and prints
/// how many it ran.
///
/// # Errors
/// Cells outside 8..=20.
pub fn cli(steps: usize, cells: u8, state: State, can: bool) -> Result<(), String> {
    let w = Workload::new(cells, state, steps)?;
    let mut bms = w.bms()?;
    let mut node = can.then(can_node);
    w.warm_up(&mut bms, node.as_mut());
    let ran = run_steps(&mut bms, node.as_mut(), w.measured());
    println!(
        "{ran} steps, {cells} cells, {state:?}{}; faults: {}",
        if can { ", J1939" } else { "" },
        bms.telemetry().faults
    );
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;
    use bms_core::Fault;

    fn run(state: State) -> Bms {
        let w = Workload::new(20, state, 50).expect("workload");
        let mut bms = w.bms().expect("bms");
        w.warm_up(&mut bms, None);
        assert_eq!(run_steps(&mut bms, None, w.measured()), 50);
        bms
    }

    #[test]
    fn steady_has_no_faults_and_closed_fets() {
        let bms = run(State::Steady);
        let t = bms.telemetry();
        assert!(t.faults.is_empty() && t.warnings.is_empty());
        assert!(t.charge_fet && t.discharge_fet);
    }

    #[test]
    fn faults_state_keeps_its_faults_active() {
        let bms = run(State::Faults);
        let t = bms.telemetry();
        assert!(t.faults.contains(Fault::CellOv) && t.faults.contains(Fault::ChgOt));
        assert!(t.warnings.contains(Fault::CellImbalance));
        // Charging is blocked (the charge MOSFET is re-closed only for the body diode
        // while 10 A are discharged).
        assert_eq!(t.limits.charge_current.as_ma(), 0);
        assert!(t.discharge_fet);
    }

    #[test]
    fn rest_and_still_differ_only_in_the_noise() {
        let rest = Workload::new(20, State::Rest, 50).expect("workload");
        let still = Workload::new(20, State::Still, 50).expect("workload");
        for (r, s) in rest.measured().iter().zip(still.measured()) {
            let i = r.current.expect("current").as_ma();
            assert!((-50..=50).contains(&i), "{i} mA");
            assert_eq!(s.current, Some(bms_core::MilliAmps::ZERO));
            assert!(r.cells().iter().all(|c| c.as_mv().abs_diff(3_300) <= 2));
            assert_eq!(r.timestamp, s.timestamp);
        }
        // The noise moves the readings from one snapshot to the next.
        let m = rest.measured();
        assert!(m.windows(2).any(|w| w[0].cells != w[1].cells));
        let bms = run(State::Rest);
        assert!(bms.telemetry().faults.is_empty());
    }

    #[test]
    fn can_node_sends_frames_once_claimed() {
        let w = Workload::new(8, State::Steady, 20).expect("workload");
        let mut bms = w.bms().expect("bms");
        let mut node = can_node();
        w.warm_up(&mut bms, Some(&mut node));
        assert!(node.address().is_some());
        let mut frames = 0;
        for m in w.measured() {
            bms.step(m);
            node.update(m.timestamp, bms.telemetry());
            while node.poll_transmit(m.timestamp).is_some() {
                frames += 1;
            }
        }
        assert!(frames >= 20, "{frames} frames in 2 s");
    }
}
