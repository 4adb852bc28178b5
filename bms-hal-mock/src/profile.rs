//! Scenario building blocks: the external world as a list of [`Segment`]s.
//!
//! A [`Profile`] is data: segments, each with a maximum duration, a load ([`Load`]), an
//! optional charger, the ambient temperature, the ACC input and an optional early end
//! condition ([`Until`]). A [`World`] walks a profile in simulated time and yields the
//! [`Request`] for [`SimPack::step`] (or [`crate::ports::Sim::step`]).
//!
//! # Examples
//! ```
//! use bms_core::{ports::FetState, time::Duration};
//! use bms_hal_mock::pack::{Charger, PackParams, SimPack};
//! use bms_hal_mock::profile::{Profile, Segment, Until, World};
//!
//! let profile = Profile::new(25.0)
//!     .then(Segment::rest(Duration::from_secs(60)))
//!     .then(Segment::discharge(Duration::from_mins(10), 100.0).until(Until::SocBelow(0.4)))
//!     .then(Segment::short_circuit(2_000.0, Duration::from_secs(1)));
//! let mut world = World::new(profile);
//! let mut pack = SimPack::new(PackParams::lfp(16)).unwrap();
//! pack.set_fets(FetState { charge: true, discharge: true, precharge: false });
//! while let Some(req) = world.request(pack.now(), &pack) {
//!     pack.step(Duration::from_millis(100), &req);
//! }
//! assert!(pack.true_soc() < 0.41);
//! ```

use bms_core::time::{Duration, Instant};

use crate::pack::{Charger, Request, SimPack};

/// What the load asks for during a segment.
#[derive(Clone, Debug, PartialEq)]
pub enum Load {
    /// Nothing connected (or switched off).
    Off,
    /// A constant current, A (positive = discharge, negative = regeneration).
    Constant(f64),
    /// A pattern of `(duration, amps)` steps repeated for the whole segment (a drive cycle:
    /// pulses of discharge with regeneration pulses as negative amps).
    Pattern(Vec<(Duration, f64)>),
}

impl Load {
    /// The demand at `t` after the segment start, A.
    pub fn amps_at(&self, t: Duration) -> f64 {
        match self {
            Load::Off => 0.0,
            Load::Constant(a) => *a,
            Load::Pattern(steps) => {
                let period: u64 = steps.iter().map(|(d, _)| u64::from(d.as_millis())).sum();
                if period == 0 {
                    return 0.0;
                }
                let mut t = u64::from(t.as_millis()) % period;
                for (d, a) in steps {
                    let d = u64::from(d.as_millis());
                    if t < d {
                        return *a;
                    }
                    t -= d;
                }
                0.0
            }
        }
    }
}

/// An early end to a segment, checked on the simulated pack's true state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Until {
    /// Only the segment's duration ends it.
    Elapsed,
    /// The pack current magnitude is below `amps` (after the first 10 s of the segment):
    /// the end of a CV taper, or a BMS that opened its FETs.
    CurrentBelow(f64),
    /// The mean cell SOC is below this fraction.
    SocBelow(f64),
    /// The mean cell SOC is above this fraction.
    SocAbove(f64),
    /// Any cell terminal voltage is below this, V.
    CellBelow(f64),
    /// Any cell terminal voltage is above this, V.
    CellAbove(f64),
}

impl Until {
    fn reached(&self, pack: &SimPack, elapsed: Duration) -> bool {
        let cells = || (0..pack.cell_count()).filter_map(|i| pack.cell_voltage_v(i));
        match *self {
            Until::Elapsed => false,
            Until::CurrentBelow(a) => {
                elapsed >= Duration::from_secs(10) && pack.current_a().abs() < a
            }
            Until::SocBelow(s) => pack.true_soc() < s,
            Until::SocAbove(s) => pack.true_soc() > s,
            Until::CellBelow(v) => cells().any(|c| c < v),
            Until::CellAbove(v) => cells().any(|c| c > v),
        }
    }
}

/// One piece of a scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Longest duration of the segment.
    pub duration: Duration,
    /// The load demand.
    pub load: Load,
    /// A charger on the terminals, or `None` (removed).
    pub charger: Option<Charger>,
    /// Ambient temperature, °C; `None` keeps the profile's default.
    pub ambient_c: Option<f64>,
    /// The ACC input.
    pub acc: bool,
    /// Early end.
    pub until: Until,
}

impl Segment {
    /// Nothing connected for `duration`.
    pub fn rest(duration: Duration) -> Self {
        Segment {
            duration,
            load: Load::Off,
            charger: None,
            ambient_c: None,
            acc: false,
            until: Until::Elapsed,
        }
    }

    /// A constant discharge of `amps` for `duration`.
    pub fn discharge(duration: Duration, amps: f64) -> Self {
        Segment {
            load: Load::Constant(amps),
            ..Segment::rest(duration)
        }
    }

    /// A CC-CV charger connected for `duration` (ended early by `.until(...)`).
    pub fn charge(duration: Duration, charger: Charger) -> Self {
        Segment {
            charger: Some(charger),
            ..Segment::rest(duration)
        }
    }

    /// A repeated pulse pattern for `duration`.
    pub fn pattern(duration: Duration, steps: Vec<(Duration, f64)>) -> Self {
        Segment {
            load: Load::Pattern(steps),
            ..Segment::rest(duration)
        }
    }

    /// A drive cycle scaled to `peak_a`: 60 s period of cruise (0.3·peak), acceleration
    /// (peak), cruise, regeneration (−0.25·peak), idle (0), with ACC on.
    pub fn drive_cycle(duration: Duration, peak_a: f64) -> Self {
        let s = Duration::from_secs;
        Segment {
            acc: true,
            ..Segment::pattern(
                duration,
                vec![
                    (s(15), 0.3 * peak_a),
                    (s(8), peak_a),
                    (s(20), 0.3 * peak_a),
                    (s(7), -0.25 * peak_a),
                    (s(10), 0.0),
                ],
            )
        }
    }

    /// A short circuit on the load: `amps` of demand for `duration` (e.g. 2000 A for 1 s).
    pub fn short_circuit(amps: f64, duration: Duration) -> Self {
        Segment::discharge(duration, amps)
    }

    /// The same segment ending early on `until`.
    pub fn until(self, until: Until) -> Self {
        Segment { until, ..self }
    }

    /// The same segment at ambient `celsius`.
    pub fn at_ambient(self, celsius: f64) -> Self {
        Segment {
            ambient_c: Some(celsius),
            ..self
        }
    }

    /// The same segment with the ACC input set to `acc`.
    pub fn with_acc(self, acc: bool) -> Self {
        Segment { acc, ..self }
    }

    /// The same segment with `charger` connected as well (e.g. a load while charging).
    pub fn with_charger(self, charger: Charger) -> Self {
        Segment {
            charger: Some(charger),
            ..self
        }
    }
}

/// A scenario: segments run one after the other.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Profile {
    /// The segments, in order.
    pub segments: Vec<Segment>,
    /// Ambient temperature of segments that do not set one, °C.
    pub ambient_c: f64,
}

impl Profile {
    /// An empty profile at `ambient_c`.
    pub fn new(ambient_c: f64) -> Self {
        Profile {
            segments: Vec::new(),
            ambient_c,
        }
    }

    /// Appends `segment`.
    pub fn then(mut self, segment: Segment) -> Self {
        self.segments.push(segment);
        self
    }

    /// The sum of the segments' maximum durations, ms.
    pub fn max_duration_ms(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| u64::from(s.duration.as_millis()))
            .sum()
    }
}

/// Walks a [`Profile`] in simulated time.
#[derive(Clone, Debug)]
pub struct World {
    profile: Profile,
    index: usize,
    segment_start: Option<Instant>,
}

impl World {
    /// A world at the start of `profile`; its first segment starts at the first
    /// [`World::request`].
    pub fn new(profile: Profile) -> Self {
        World {
            profile,
            index: 0,
            segment_start: None,
        }
    }

    /// The request at `now`, or `None` once every segment has ended. Moves to the next
    /// segment when the current one's duration has elapsed or its [`Until`] holds on `pack`.
    /// Call it once per simulation step, with a non-decreasing `now`.
    pub fn request(&mut self, now: Instant, pack: &SimPack) -> Option<Request> {
        loop {
            let seg = self.profile.segments.get(self.index)?;
            let start = *self.segment_start.get_or_insert(now);
            let elapsed = now.duration_since(start);
            if elapsed >= seg.duration || seg.until.reached(pack, elapsed) {
                self.index += 1;
                self.segment_start = Some(now);
                continue;
            }
            return Some(Request {
                load_a: seg.load.amps_at(elapsed),
                charger: seg.charger,
                ambient_c: seg.ambient_c.unwrap_or(self.profile.ambient_c),
                acc: seg.acc,
            });
        }
    }

    /// Index of the running segment, `None` when finished.
    pub fn segment_index(&self) -> Option<usize> {
        (self.index < self.profile.segments.len()).then_some(self.index)
    }

    /// `true` once every segment has ended.
    pub fn is_finished(&self) -> bool {
        self.segment_index().is_none()
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;
    use crate::pack::PackParams;

    #[test]
    fn pattern_repeats() {
        let l = Load::Pattern(vec![
            (Duration::from_millis(100), 5.0),
            (Duration::from_millis(50), -2.0),
        ]);
        assert_eq!(l.amps_at(Duration::from_millis(0)), 5.0);
        assert_eq!(l.amps_at(Duration::from_millis(99)), 5.0);
        assert_eq!(l.amps_at(Duration::from_millis(100)), -2.0);
        assert_eq!(l.amps_at(Duration::from_millis(150)), 5.0);
        assert_eq!(Load::Pattern(vec![]).amps_at(Duration::ZERO), 0.0);
    }

    #[test]
    fn segments_follow_each_other_by_duration() {
        let p = Profile::new(20.0)
            .then(Segment::discharge(Duration::from_secs(1), 10.0))
            .then(
                Segment::rest(Duration::from_secs(1))
                    .at_ambient(-5.0)
                    .with_acc(true),
            );
        let pack = SimPack::new(PackParams::lfp(8)).unwrap();
        let mut w = World::new(p);
        let r0 = w.request(Instant::from_millis(0), &pack).unwrap();
        assert_eq!((r0.load_a, r0.ambient_c, r0.acc), (10.0, 20.0, false));
        let r1 = w.request(Instant::from_millis(999), &pack).unwrap();
        assert_eq!(r1.load_a, 10.0);
        let r2 = w.request(Instant::from_millis(1000), &pack).unwrap();
        assert_eq!((r2.load_a, r2.ambient_c, r2.acc), (0.0, -5.0, true));
        assert_eq!(w.segment_index(), Some(1));
        assert!(w.request(Instant::from_millis(2000), &pack).is_none());
        assert!(w.is_finished());
    }

    #[test]
    fn until_ends_a_segment_early() {
        let p = Profile::new(25.0)
            .then(Segment::discharge(Duration::from_mins(60), 10.0).until(Until::SocAbove(0.3)))
            .then(Segment::rest(Duration::from_secs(5)));
        let pack = SimPack::new(PackParams::lfp(8)).unwrap(); // 50 % > 30 %
        let mut w = World::new(p);
        let r = w.request(Instant::ZERO, &pack).unwrap();
        assert_eq!(r.load_a, 0.0);
        assert_eq!(w.segment_index(), Some(1));
    }
}
