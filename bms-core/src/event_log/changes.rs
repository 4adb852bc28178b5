//! [`changes`]: the events between two consecutive [`Telemetry`] reports.

use crate::protect::FaultSet;
use crate::telemetry::Telemetry;

use super::record::EventKind;

/// The event kinds that happened between `prev` and `now`, in this order: fault trips,
/// fault releases, warnings set, warnings cleared, a MOSFET change, a power-mode change.
///
/// Calibrations, parameter changes and reset causes are not visible in telemetry: the code
/// that does them logs them.
///
/// # Examples
/// ```
/// use bms_core::event_log::{changes, EventKind, EventRecord};
/// use bms_core::{Fault, FaultSet, PowerMode, Telemetry};
///
/// let prev = Telemetry::empty(16);
/// let mut now = prev.clone();
/// now.faults = FaultSet::from_iter([Fault::CellOv]);
/// now.mode = PowerMode::Sleep;
/// let kinds: Vec<EventKind> = changes(&prev, &now).collect();
/// assert_eq!(
///     kinds,
///     [EventKind::FaultTrip(Fault::CellOv), EventKind::PowerMode(PowerMode::Sleep)]
/// );
/// // Each becomes a record with the snapshot of `now`:
/// let records = changes(&prev, &now).map(|k| EventRecord::from_telemetry(k, &now));
/// assert_eq!(records.count(), 2);
/// ```
pub fn changes(prev: &Telemetry, now: &Telemetry) -> Changes {
    let fets = |t: &Telemetry| (t.charge_fet, t.discharge_fet, t.precharge_fet);
    Changes {
        sets: [
            now.faults.difference(prev.faults),
            prev.faults.difference(now.faults),
            now.warnings.difference(prev.warnings),
            prev.warnings.difference(now.warnings),
        ],
        mosfet: (fets(prev) != fets(now)).then_some(EventKind::Mosfet {
            charge: now.charge_fet,
            discharge: now.discharge_fet,
            precharge: now.precharge_fet,
        }),
        mode: (prev.mode != now.mode).then_some(EventKind::PowerMode(now.mode)),
    }
}

/// Iterator returned by [`changes`].
#[derive(Clone, Debug)]
pub struct Changes {
    /// Trips, releases, warnings set, warnings cleared.
    sets: [FaultSet; 4],
    mosfet: Option<EventKind>,
    mode: Option<EventKind>,
}

impl Iterator for Changes {
    type Item = EventKind;

    fn next(&mut self) -> Option<EventKind> {
        for (i, set) in self.sets.iter_mut().enumerate() {
            if let Some(f) = set.iter().next() {
                set.remove(f);
                return Some(match i {
                    0 => EventKind::FaultTrip(f),
                    1 => EventKind::FaultRelease(f),
                    2 => EventKind::Warning(f),
                    _ => EventKind::WarningRelease(f),
                });
            }
        }
        self.mosfet.take().or_else(|| self.mode.take())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;
    use crate::protect::Fault;
    use crate::telemetry::PowerMode;

    #[test]
    fn every_kind_of_change() {
        let mut prev = Telemetry::empty(8);
        prev.faults = FaultSet::from_iter([Fault::Sc, Fault::ChgOt]);
        prev.warnings = FaultSet::from_iter([Fault::CellUv]);
        prev.discharge_fet = true;
        let mut now = prev;
        now.faults = FaultSet::from_iter([Fault::ChgOt, Fault::CellOv]);
        now.warnings = FaultSet::from_iter([Fault::PackUv]);
        now.discharge_fet = false;
        now.mode = PowerMode::DeepSleep;
        let got: Vec<_> = changes(&prev, &now).collect();
        assert_eq!(
            got,
            [
                EventKind::FaultTrip(Fault::CellOv),
                EventKind::FaultRelease(Fault::Sc),
                EventKind::Warning(Fault::PackUv),
                EventKind::WarningRelease(Fault::CellUv),
                EventKind::Mosfet {
                    charge: false,
                    discharge: false,
                    precharge: false
                },
                EventKind::PowerMode(PowerMode::DeepSleep),
            ]
        );
        assert_eq!(changes(&now, &now).count(), 0);
    }
}
