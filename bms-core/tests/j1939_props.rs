//! Property tests of the CAN side: every decoder is total (typed error, never a panic),
//! encode/decode round trips, cross-checks against the independent `sae-j1939-rs` codec,
//! and the receive budget under a flooded bus.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use bms_core::can::{CanFrame, Frame};
use bms_core::inverter::{InverterConfig, InverterNode};
use bms_core::j1939::command::Command;
use bms_core::j1939::dm::{DmMessage, Dtc, DtcTable, MAX_DM_LEN};
use bms_core::j1939::name::Name;
use bms_core::j1939::node::{J1939Config, J1939Node, TX_QUEUE};
use bms_core::j1939::request::{Ack, AckControl, Request};
use bms_core::j1939::tp::{BamReceiver, BamSender, MAX_BAM_LEN};
use bms_core::j1939::{J1939Id, Pgn};
use bms_core::protect::FaultSet;
use bms_core::time::Duration;
use bms_core::{Instant, Telemetry};
use proptest::prelude::*;

fn any_frame() -> impl Strategy<Value = CanFrame> {
    (
        any::<bool>(),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..=8),
    )
        .prop_map(|(ext, id, data)| {
            if ext {
                CanFrame::extended(id & 0x1FFF_FFFF, &data).unwrap()
            } else {
                CanFrame::standard((id & 0x7FF) as u16, &data).unwrap()
            }
        })
}

/// Frames aimed at the node's parsers: claim, request, TP, proprietary A, to 0xF3 or global.
fn j1939_frame() -> impl Strategy<Value = CanFrame> {
    (
        prop::sample::select(vec![
            0xEE00u32, 0xEA00, 0xEC00, 0xEB00, 0xEF00, 0xE800, 0xFECA,
        ]),
        prop::sample::select(vec![0xF3u32, 0xFF, 0x10]),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..=8),
    )
        .prop_map(|(pgn, da, sa, data)| {
            let raw = 0x1800_0000 | pgn << 8 | da << 8 | u32::from(sa);
            CanFrame::extended(raw, &data).unwrap()
        })
}

proptest! {
    #[test]
    fn decoders_are_total(data in proptest::collection::vec(any::<u8>(), 0..64), raw in any::<u32>()) {
        let _ = J1939Id::from_raw(raw);
        let _ = Pgn::new(raw);
        let _ = Request::parse(&data);
        let _ = Ack::parse(&data);
        let _ = Command::parse(&data, Some(raw));
        if let Ok(m) = DmMessage::parse(&data) {
            let _ = m.dtcs().count();
        }
        let mut rx = BamReceiver::new();
        let _ = rx.handle_cm(Instant::ZERO, 1, &data);
        for chunk in data.chunks(8) {
            let _ = rx.handle_dt(Instant::ZERO, 1, chunk);
        }
    }

    #[test]
    fn node_survives_any_traffic(
        frames in proptest::collection::vec(prop_oneof![any_frame(), j1939_frame()], 0..200),
        key in any::<Option<u32>>(),
    ) {
        let cfg = J1939Config {
            command_key: key,
            rx_budget: 1_000,
            ..J1939Config::default()
        };
        let mut node = J1939Node::new(cfg);
        let mut inv = InverterNode::new(InverterConfig::default());
        let tel = Telemetry::empty(16);
        for (i, f) in frames.iter().enumerate() {
            let now = Instant::from_millis(i as u64 * 37);
            node.update(now, &tel);
            node.handle_frame(now, f);
            inv.handle_frame(now, f);
            inv.update(now, &tel);
            while let Some(out) = node.poll_transmit(now) {
                prop_assert!(out.is_extended() && out.dlc() <= 8);
                let id = J1939Id::try_from(out.id()).unwrap();
                let sa = id.source_address();
                prop_assert!(sa == 0xFE || sa >= 0x80, "source {sa:#x}");
            }
            while inv.poll_transmit(now).is_some() {}
            while node.poll_command().is_some() {}
        }
    }

    #[test]
    fn id_round_trip(prio in 0u8..8, pgn in 0u32..0x4_0000, da in any::<u8>(), sa in any::<u8>()) {
        let pgn = if (pgn >> 8) & 0xFF < 240 { pgn & !0xFF } else { pgn };
        let p = Pgn::new(pgn).unwrap();
        let id = J1939Id::new(prio, p, da, sa).unwrap();
        prop_assert_eq!(J1939Id::from_raw(id.to_raw()), Ok(id));
        prop_assert_eq!((id.priority(), id.pgn(), id.source_address()), (prio, p, sa));
        prop_assert_eq!(id.destination(), p.is_pdu1().then_some(da));
        prop_assert_eq!(Pgn::from_le_bytes(p.to_le_bytes()), Ok(p));
    }

    /// Our identifier decode agrees with sae-j1939-rs on every 29-bit value.
    #[test]
    fn id_agrees_with_sae_j1939_rs(raw in 0u32..0x2000_0000) {
        let ours = J1939Id::from_raw(raw).unwrap();
        let theirs = sae_j1939_rs::Id::new(raw).unwrap();
        prop_assert_eq!(ours.pgn().as_u32(), theirs.pgn().as_u32());
        prop_assert_eq!(ours.priority(), theirs.priority().as_u8());
        prop_assert_eq!(ours.source_address(), theirs.source_address().as_u8());
        prop_assert_eq!(ours.destination(), theirs.destination_address().map(|a| a.as_u8()));
    }

    #[test]
    fn codec_round_trips(b in any::<[u8; 8]>(), key in any::<u32>(), pgn in 0xF000u32..0x1_0000) {
        let name = Name::from_le_bytes(b);
        prop_assert_eq!(Name::from_fields(name.fields()).to_raw() | (1 << 48) & name.to_raw(), name.to_raw());
        let d = Dtc::decode([b[0], b[1], b[2], b[3]]);
        prop_assert_eq!(Dtc::decode(d.encode()), d);
        let theirs = sae_j1939_rs::diagnostics::Dtc::decode(&[b[0], b[1], b[2], b[3]]);
        prop_assert_eq!((d.spn(), d.fmi(), d.occurrences()), (theirs.spn, theirs.fmi, theirs.occurrence_count));
        for c in [Command::SetCharge(b[0] & 1 == 1), Command::SetDischarge(b[1] & 1 == 1), Command::ResetFaults] {
            prop_assert_eq!(Command::parse(&c.emit(key), Some(key)), Ok(c));
        }
        let p = Pgn::new(pgn).unwrap();
        prop_assert_eq!(Request::parse(&Request { pgn: p }.emit()), Ok(Request { pgn: p }));
        let a = Ack { control: AckControl::from(b[0]), group_function: b[1], address: b[2], pgn: p };
        prop_assert_eq!(Ack::parse(&a.emit()), Ok(a));
    }

    #[test]
    fn bam_round_trip(data in proptest::collection::vec(any::<u8>(), 9..=MAX_BAM_LEN), gap in 50u32..=200) {
        let (mut tx, cm) = BamSender::start(Instant::ZERO, Pgn::DM2, &data, Duration::from_millis(gap)).unwrap();
        let mut rx = BamReceiver::new();
        rx.handle_cm(Instant::ZERO, 7, &cm).unwrap();
        let mut out = None;
        while let Some(t) = tx.next_due() {
            let dt = tx.poll(t).unwrap();
            if let Some((pgn, msg)) = rx.handle_dt(t, 7, &dt).unwrap() {
                out = Some((pgn, msg.to_vec()));
            }
        }
        prop_assert_eq!(out, Some((Pgn::DM2, data)));
    }

    /// DM1 payloads parse the same with sae-j1939-rs (lamps and DTCs).
    #[test]
    fn dm1_agrees_with_sae_j1939_rs(faults in any::<u32>(), warnings in any::<u32>()) {
        let mut t = DtcTable::new();
        t.update(FaultSet::from_bits(faults), FaultSet::from_bits(warnings));
        let mut buf = [0; MAX_DM_LEN];
        let n = t.dm1(&mut buf);
        let ours: Vec<Dtc> = DmMessage::parse(&buf[..n]).unwrap().dtcs().collect();
        let theirs = sae_j1939_rs::diagnostics::Message::parse(&buf[..n]).unwrap();
        let theirs: Vec<(u32, u8, u8)> = theirs
            .dtcs()
            .filter(|d| !d.is_no_fault())
            .map(|d| (d.spn, d.fmi, d.occurrence_count))
            .collect();
        let ours_t: Vec<_> = ours.iter().map(|d| (d.spn(), d.fmi(), d.occurrences())).collect();
        prop_assert_eq!(ours_t, theirs);
        prop_assert_eq!(ours.len(), t.active_count());
    }
}

/// A bus flooded with 5 000 requests per 100 ms step: the node handles exactly its
/// budget per step, drops and counts the rest, keeps the answer queue bounded, and its
/// own schedule (HVES1D1 every step, DM1 every second) is unaffected.
#[test]
fn flood_is_bounded_and_schedule_holds() {
    let cfg = J1939Config {
        rx_budget: 16,
        ..J1939Config::default()
    };
    let mut node = J1939Node::new(cfg);
    let tel = Telemetry::empty(16);
    // Requests for HVES1D2 (PGN 0xF091) to 0xF3: each handled one queues an answer.
    let req = CanFrame::extended(0x18EA_F3F9, &[0x91, 0xF0, 0x00]).unwrap();
    let mut hves1d1 = 0;
    let mut dm1 = 0;
    let steps = 100u64;
    for step in 0..steps {
        let now = Instant::from_millis(step * 100);
        node.update(now, &tel);
        for _ in 0..5_000 {
            node.handle_frame(now, &req);
        }
        let mut sent = 0;
        while let Some(f) = node.poll_transmit(now) {
            sent += 1;
            match f.raw_id().0 {
                0x0CF0_90F3 => hves1d1 += 1,
                0x18FE_CAF3 => dm1 += 1,
                _ => {}
            }
        }
        // Answers are capped by the queue, scheduled frames by the schedule (14 at most).
        assert!(sent <= TX_QUEUE + 14, "{sent} frames in one step");
    }
    let s = node.stats();
    assert_eq!(u64::from(s.rx_handled), steps * 16);
    assert_eq!(u64::from(s.rx_dropped), steps * (5_000 - 16));
    // Claim at 0, address usable from 300 ms (first step after 250 ms): 97 steps.
    assert_eq!(hves1d1, 97);
    assert_eq!(dm1, 10);
}
