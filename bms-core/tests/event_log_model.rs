//! Property test: the event log against a reference model (a bounded queue of the newest
//! records) over random appends and reopens, on small geometries.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;

use bms_core::event_log::*;
use bms_core::time::Instant;
use bms_core::{Fault, Telemetry};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append(u8),
    Reopen,
    ReadRange(u16, u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => any::<u8>().prop_map(Op::Append),
        1 => Just(Op::Reopen),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Op::ReadRange(a % 400, b % 400)),
    ]
}

fn rec(i: u32, x: u8) -> EventRecord {
    let mut t = Telemetry::empty(8);
    t.now = Instant::from_millis(u64::from(i));
    let f = Fault::ALL[usize::from(x) % Fault::COUNT];
    EventRecord::from_telemetry(EventKind::FaultRelease(f), &t).with_value(u32::from(x))
}

proptest! {
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..400)) {
        // 3 sectors of 256 bytes: 4 records each.
        let mut flash = RamFlash::<4, 256, 768>::new();
        let region = Region::new(0, 768);
        let mut log = EventLog::open(&mut flash, region).unwrap();
        let mut model: VecDeque<(u32, EventRecord)> = VecDeque::new();
        let mut next = 0u32;
        for op in ops {
            match op {
                Op::Append(x) => {
                    let r = rec(next, x);
                    prop_assert_eq!(log.append(&mut flash, r).unwrap().get(), next);
                    model.push_back((next, r));
                    next += 1;
                    // The ring keeps between 2 and 3 sectors of records.
                    let kept = if next as usize <= 12 {
                        next as usize
                    } else {
                        8 + ((next as usize - 1) % 4 + 1)
                    };
                    while model.len() > kept {
                        model.pop_front();
                    }
                }
                Op::Reopen => {
                    log = EventLog::open(&mut flash, region).unwrap();
                    prop_assert_eq!(log.next_seq().get(), next);
                }
                Op::ReadRange(a, b) => {
                    let got: Vec<_> = log
                        .read_range(&mut flash, Seq::new(a.into())..Seq::new(b.into()))
                        .map(|e| { let e = e.unwrap(); (e.seq.get(), e.record) })
                        .collect();
                    let want: Vec<_> = model
                        .iter()
                        .filter(|(s, _)| *s >= u32::from(a) && *s < u32::from(b))
                        .copied()
                        .collect();
                    prop_assert_eq!(got, want);
                }
            }
            let newest: Vec<_> = log
                .iter_newest_first(&mut flash)
                .map(|e| { let e = e.unwrap(); (e.seq.get(), e.record) })
                .collect();
            let want: Vec<_> = model.iter().rev().copied().collect();
            prop_assert_eq!(newest, want);
        }
    }
}

proptest! {
    /// Arbitrary flash contents: opening and reading never panic, random bytes never pass
    /// as records, and the log works after the garbage.
    #[test]
    fn garbage_never_reads_as_records(bytes in proptest::collection::vec(any::<u8>(), 768)) {
        let mut flash = RamFlash::<4, 256, 768>::new();
        flash.contents_mut().copy_from_slice(&bytes);
        let region = Region::new(0, 768);
        let mut log = EventLog::open(&mut flash, region).unwrap();
        prop_assert_eq!(log.iter_newest_first(&mut flash).count(), 0);
        let mut store: ParamStore<{ LifetimeStats::LEN }> =
            ParamStore::open(&mut flash, region).unwrap();
        prop_assert!(store.load::<LifetimeStats, _>(&mut flash).is_err());
        let r = rec(0, 1);
        let seq = log.append(&mut flash, r).unwrap();
        let first = log.iter_newest_first(&mut flash).next().unwrap().unwrap();
        prop_assert_eq!((first.seq, first.record), (seq, r));
    }
}
