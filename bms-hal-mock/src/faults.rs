//! Fault injection: hardware faults scheduled in simulated time, deterministic for a seed.
//!
//! A [`FaultInjector`] holds a schedule of [`Injection`]s, each active in a window
//! `[at, at + duration)`. The ports in [`crate::ports`] ask it, at every read, what is
//! active at the simulated `now` and distort the reading accordingly; probabilistic faults
//! draw from the injector's own seeded xorshift, so the same seed and the same sequence
//! of port calls give the same results.
//!
//! # Examples
//! ```
//! use bms_core::time::{Duration, Instant};
//! use bms_hal_mock::faults::{FaultInjector, Injection};
//!
//! let mut f = FaultInjector::new(1);
//! f.inject_at(Instant::from_millis(5_000), Injection::CellStuck { cell: 3 }, Duration::from_secs(10));
//! assert_eq!(f.active(Instant::from_millis(4_999)).count(), 0);
//! assert_eq!(f.active(Instant::from_millis(5_000)).count(), 1);
//! assert_eq!(f.active(Instant::from_millis(15_000)).count(), 0);
//! ```

use core::fmt;

use bms_core::measure::NTC_COUNT;
use bms_core::ports::{CellMonitor, Clock};
use bms_core::time::{Duration, Instant};
use bms_core::units::{DeciCelsius, MilliVolts};

use crate::rng::XorShift64;

/// A sensor other than the cell monitor, for [`Injection::SensorError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sensor {
    /// The pack current sensor.
    Current,
    /// The battery-side pack voltage divider.
    PackVoltage,
    /// The load-side voltage divider.
    LoadVoltage,
    /// The MOSFET temperature sensor.
    MosTemperature,
}

/// One injectable hardware fault. Cell indices are 0-based (index `n` = cell `n + 1`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Injection {
    /// Every cell-monitor call fails with [`crate::ports::MockError::AfeComm`], each with
    /// probability `probability` (1.0 = every call).
    AfeError {
        /// Chance that one call fails, 0..=1.
        probability: f64,
    },
    /// As [`Injection::AfeError`], failing with [`crate::ports::MockError::Timeout`].
    AfeTimeout {
        /// Chance that one call fails, 0..=1.
        probability: f64,
    },
    /// The reading of `cell` freezes at the value read when the window opens.
    CellStuck {
        /// Cell index.
        cell: usize,
    },
    /// The reading of `cell` is forced to `mv` (e.g. 0 or 6000 for out-of-range).
    CellReading {
        /// Cell index.
        cell: usize,
        /// The forced reading, mV.
        mv: u32,
    },
    /// The sense wire at the positive terminal of `cell` is open: the open-wire check
    /// reports bit `cell`, `cell` reads near 0 V and the cell above reads near the sum of both.
    OpenWire {
        /// Cell index.
        cell: usize,
    },
    /// NTC `channel` (0 = T1, 1 = T2) is open or shorted and the monitor says so: reads `None`.
    NtcOpen {
        /// NTC channel.
        channel: usize,
    },
    /// NTC `channel` reads `temp`, e.g. -50 °C (open NTC) or 150 °C (shorted NTC) on a
    /// monitor that does not flag it.
    NtcReading {
        /// NTC channel.
        channel: usize,
        /// The forced reading.
        temp: DeciCelsius,
    },
    /// `sensor` fails to read ([`crate::ports::MockError::Sensor`]).
    SensorError {
        /// The failing sensor.
        sensor: Sensor,
    },
    /// The current sensor gains an extra offset, mA (positive reads as more discharge).
    CurrentOffset {
        /// Extra offset, mA.
        ma: i32,
    },
    /// A short circuit on the load: `amps` of extra discharge demand (it flows only while
    /// the discharge MOSFET is closed).
    LoadShort {
        /// Extra load demand, A.
        amps: f64,
    },
    /// The MOSFET driver fails: `set_fets` returns [`crate::ports::MockError::Driver`] and
    /// the MOSFETs keep their state.
    FetDriverError,
}

/// One scheduled injection.
#[derive(Clone, Debug, PartialEq)]
pub struct Scheduled {
    /// Start of the window (inclusive).
    pub at: Instant,
    /// End of the window (exclusive).
    pub until: Instant,
    /// What is injected.
    pub injection: Injection,
    /// For [`Injection::CellStuck`]: the frozen reading (mV), taken at the first read in
    /// the window.
    pub frozen_mv: Option<u32>,
}

impl Scheduled {
    /// `true` while `now` is inside the window.
    pub fn is_active(&self, now: Instant) -> bool {
        self.at <= now && now < self.until
    }
}

/// The schedule of injected faults and the generator for probabilistic ones.
#[derive(Clone, Debug)]
pub struct FaultInjector {
    schedule: Vec<Scheduled>,
    rng: XorShift64,
}

impl FaultInjector {
    /// An empty schedule with its own generator seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        FaultInjector {
            schedule: Vec::new(),
            rng: XorShift64::new(seed ^ 0xFA17_FA17_FA17_FA17),
        }
    }

    /// Schedules `injection` from `at` for `duration`; `Duration::MAX` means for ever.
    pub fn inject_at(&mut self, at: Instant, injection: Injection, duration: Duration) {
        let until = if duration == Duration::MAX {
            Instant::from_millis(u64::MAX)
        } else {
            at + duration
        };
        self.schedule.push(Scheduled {
            at,
            until,
            injection,
            frozen_mv: None,
        });
    }

    /// Removes every scheduled injection.
    pub fn clear(&mut self) {
        self.schedule.clear();
    }

    /// The whole schedule, in insertion order.
    pub fn schedule(&self) -> &[Scheduled] {
        &self.schedule
    }

    /// The injections active at `now`.
    pub fn active(&self, now: Instant) -> impl Iterator<Item = &Injection> + '_ {
        self.schedule
            .iter()
            .filter(move |s| s.is_active(now))
            .map(|s| &s.injection)
    }

    /// Decides whether one cell-monitor call at `now` fails, and how.
    pub fn afe_failure(&mut self, now: Instant) -> Option<AfeFailure> {
        let mut out = None;
        for s in self.schedule.iter().filter(|s| s.is_active(now)) {
            let (kind, p) = match s.injection {
                Injection::AfeError { probability } => (AfeFailure::Comm, probability),
                Injection::AfeTimeout { probability } => (AfeFailure::Timeout, probability),
                _ => continue,
            };
            // Draw for every active probabilistic fault so the stream does not depend
            // on which one fired first.
            if self.rng.chance(p) && out.is_none() {
                out = Some(kind);
            }
        }
        out
    }

    /// `true` when `sensor` is failed at `now`.
    pub fn sensor_failed(&self, now: Instant, sensor: Sensor) -> bool {
        self.active(now)
            .any(|i| matches!(i, Injection::SensorError { sensor: s } if *s == sensor))
    }

    /// Extra current-sensor offset at `now`, mA.
    pub fn current_offset_ma(&self, now: Instant) -> i64 {
        self.active(now)
            .map(|i| match i {
                Injection::CurrentOffset { ma } => i64::from(*ma),
                _ => 0,
            })
            .sum()
    }

    /// Extra load demand at `now` from load shorts, A.
    pub fn load_short_a(&self, now: Instant) -> f64 {
        self.active(now)
            .map(|i| match i {
                Injection::LoadShort { amps } => *amps,
                _ => 0.0,
            })
            .sum()
    }

    /// Open-wire mask at `now`, bit `n` = the wire at the top of cell `n`.
    pub fn open_wire_mask(&self, now: Instant, cells: usize) -> u32 {
        self.active(now)
            .filter_map(|i| match i {
                Injection::OpenWire { cell } if *cell < cells && *cell < 32 => Some(1u32 << cell),
                _ => None,
            })
            .fold(0, |m, b| m | b)
    }

    /// `true` when the MOSFET driver is failed at `now`.
    pub fn fet_driver_failed(&self, now: Instant) -> bool {
        self.active(now)
            .any(|i| matches!(i, Injection::FetDriverError))
    }

    /// Applies the cell-reading faults active at `now` to `mv` (true readings in, what
    /// the monitor reports out).
    pub fn distort_cells(&mut self, now: Instant, mv: &mut [u32]) {
        let n = mv.len();
        // Open wires first: they change what the monitor physically sees.
        for s in self.schedule.iter().filter(|s| s.is_active(now)) {
            if let Injection::OpenWire { cell } = s.injection {
                if cell < n {
                    let both = mv[cell] + mv.get(cell + 1).copied().unwrap_or(0);
                    // The floating input sits a little above the wire below it.
                    let low = mv[cell] / 50;
                    mv[cell] = low;
                    if let Some(above) = mv.get_mut(cell + 1) {
                        *above = both - low;
                    }
                }
            }
        }
        for s in self.schedule.iter_mut().filter(|s| s.is_active(now)) {
            match s.injection {
                Injection::CellStuck { cell } if cell < n => {
                    let v = *s.frozen_mv.get_or_insert(mv[cell]);
                    mv[cell] = v;
                }
                Injection::CellReading { cell, mv: forced } if cell < n => mv[cell] = forced,
                _ => {}
            }
        }
    }

    /// Applies the NTC faults active at `now`.
    pub fn distort_ntcs(&self, now: Instant, t: &mut [Option<DeciCelsius>]) {
        for i in self.active(now) {
            match *i {
                Injection::NtcOpen { channel } => {
                    if let Some(x) = t.get_mut(channel) {
                        *x = None;
                    }
                }
                Injection::NtcReading { channel, temp } => {
                    if let Some(x) = t.get_mut(channel) {
                        *x = Some(temp);
                    }
                }
                _ => {}
            }
        }
    }
}

/// How a cell-monitor call fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfeFailure {
    /// The bus reported an error (NACK, CRC).
    Comm,
    /// The device did not answer in time.
    Timeout,
}

/// Error of a [`FaultyAfe`]: the wrapped monitor's own error, or an injected one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultyAfeError<E> {
    /// The wrapped cell monitor failed.
    Inner(E),
    /// An injected [`Injection::AfeError`] or [`Injection::AfeTimeout`].
    Injected(AfeFailure),
}

impl<E: fmt::Debug> fmt::Display for FaultyAfeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultyAfeError::Inner(e) => write!(f, "cell monitor: {e:?}"),
            FaultyAfeError::Injected(k) => write!(f, "injected cell monitor failure: {k:?}"),
        }
    }
}

impl<E: fmt::Debug> std::error::Error for FaultyAfeError<E> {}

/// Wraps any [`CellMonitor`] (a mock, or a real driver over a mocked bus) and applies the
/// cell-monitor injections of its own [`FaultInjector`] at the time `clock` tells:
/// communication failures, stuck and forced readings, open wires, NTC faults.
///
/// # Examples
/// ```
/// use bms_core::ports::{CellMonitor, Clock};
/// use bms_core::time::{Duration, Instant};
/// use bms_core::units::{DeciCelsius, MilliVolts};
/// use bms_hal_mock::faults::{FaultInjector, FaultyAfe, Injection};
///
/// struct Fixed; // a monitor that always reads 3300 mV
/// impl CellMonitor for Fixed {
///     type Error = ();
///     fn read_cells(&mut self, out: &mut [MilliVolts]) -> Result<(), ()> {
///         out.fill(MilliVolts::from_mv(3_300));
///         Ok(())
///     }
///     fn read_temperatures(&mut self, out: &mut [Option<DeciCelsius>; 2]) -> Result<(), ()> {
///         *out = [Some(DeciCelsius::from_celsius(25)); 2];
///         Ok(())
///     }
///     fn check_open_wire(&mut self) -> Result<u32, ()> { Ok(0) }
///     fn set_balancing(&mut self, _: u32) -> Result<(), ()> { Ok(()) }
/// }
/// struct At(u64);
/// impl Clock for At { fn now(&mut self) -> Instant { Instant::from_millis(self.0) } }
///
/// let mut faults = FaultInjector::new(1);
/// faults.inject_at(Instant::ZERO, Injection::OpenWire { cell: 0 }, Duration::MAX);
/// let mut afe = FaultyAfe::new(Fixed, At(0), faults);
/// let mut cells = [MilliVolts::ZERO; 3];
/// afe.read_cells(&mut cells).unwrap();
/// assert_eq!(cells.map(|c| c.as_mv()), [66, 6_534, 3_300]);
/// assert_eq!(afe.check_open_wire().unwrap(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct FaultyAfe<A, C> {
    inner: A,
    clock: C,
    faults: FaultInjector,
}

impl<A: CellMonitor, C: Clock> FaultyAfe<A, C> {
    /// Wraps `inner`, reading time from `clock`, injecting from `faults`.
    pub fn new(inner: A, clock: C, faults: FaultInjector) -> Self {
        FaultyAfe {
            inner,
            clock,
            faults,
        }
    }

    /// The schedule, to add injections.
    pub fn faults_mut(&mut self) -> &mut FaultInjector {
        &mut self.faults
    }

    /// Gives back the wrapped monitor and the clock.
    pub fn destroy(self) -> (A, C) {
        (self.inner, self.clock)
    }

    fn check(&mut self) -> Result<Instant, FaultyAfeError<A::Error>> {
        let now = self.clock.now();
        match self.faults.afe_failure(now) {
            Some(k) => Err(FaultyAfeError::Injected(k)),
            None => Ok(now),
        }
    }
}

impl<A: CellMonitor, C: Clock> CellMonitor for FaultyAfe<A, C> {
    type Error = FaultyAfeError<A::Error>;

    fn read_cells(&mut self, out: &mut [MilliVolts]) -> Result<(), Self::Error> {
        let now = self.check()?;
        self.inner.read_cells(out).map_err(FaultyAfeError::Inner)?;
        let mut mv: Vec<u32> = out.iter().map(|v| v.as_mv()).collect();
        self.faults.distort_cells(now, &mut mv);
        for (o, v) in out.iter_mut().zip(mv) {
            *o = MilliVolts::from_mv(v);
        }
        Ok(())
    }

    fn read_temperatures(
        &mut self,
        out: &mut [Option<DeciCelsius>; NTC_COUNT],
    ) -> Result<(), Self::Error> {
        let now = self.check()?;
        self.inner
            .read_temperatures(out)
            .map_err(FaultyAfeError::Inner)?;
        self.faults.distort_ntcs(now, out);
        Ok(())
    }

    fn check_open_wire(&mut self) -> Result<u32, Self::Error> {
        let now = self.check()?;
        let m = self
            .inner
            .check_open_wire()
            .map_err(FaultyAfeError::Inner)?;
        Ok(m | self.faults.open_wire_mask(now, 32))
    }

    fn set_balancing(&mut self, mask: u32) -> Result<(), Self::Error> {
        self.check()?;
        self.inner
            .set_balancing(mask)
            .map_err(FaultyAfeError::Inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn window_is_half_open() {
        let mut f = FaultInjector::new(0);
        f.inject_at(t(100), Injection::FetDriverError, Duration::from_millis(50));
        assert!(!f.fet_driver_failed(t(99)));
        assert!(f.fet_driver_failed(t(100)));
        assert!(f.fet_driver_failed(t(149)));
        assert!(!f.fet_driver_failed(t(150)));
    }

    #[test]
    fn open_wire_moves_voltage_to_the_cell_above() {
        let mut f = FaultInjector::new(0);
        f.inject_at(t(0), Injection::OpenWire { cell: 1 }, Duration::MAX);
        let mut mv = [3300, 3300, 3300, 3300];
        f.distort_cells(t(0), &mut mv);
        assert_eq!(mv, [3300, 66, 6534, 3300]);
        assert_eq!(f.open_wire_mask(t(0), 4), 0b10);
        // The top cell: nothing above it.
        let mut f = FaultInjector::new(0);
        f.inject_at(t(0), Injection::OpenWire { cell: 3 }, Duration::MAX);
        let mut mv = [3300, 3300, 3300, 3300];
        f.distort_cells(t(0), &mut mv);
        assert_eq!(mv, [3300, 3300, 3300, 66]);
    }

    #[test]
    fn stuck_cell_keeps_first_value_in_window() {
        let mut f = FaultInjector::new(0);
        f.inject_at(
            t(10),
            Injection::CellStuck { cell: 0 },
            Duration::from_millis(100),
        );
        let mut a = [3000];
        f.distort_cells(t(10), &mut a);
        let mut b = [3500];
        f.distort_cells(t(50), &mut b);
        assert_eq!(b, [3000]);
        let mut c = [3500];
        f.distort_cells(t(110), &mut c);
        assert_eq!(c, [3500]);
    }

    #[test]
    fn probabilistic_afe_errors_are_seeded() {
        let run = |seed| {
            let mut f = FaultInjector::new(seed);
            f.inject_at(
                t(0),
                Injection::AfeError { probability: 0.3 },
                Duration::MAX,
            );
            (0..200)
                .map(|_| f.afe_failure(t(1)).is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
        let n = run(5).iter().filter(|x| **x).count();
        assert!((30..90).contains(&n), "{n}");
    }
}
