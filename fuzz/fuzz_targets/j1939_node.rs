//! The whole J1939 node and the inverter node under arbitrary bus traffic.
#![no_main]

use bms_core::inverter::{InverterConfig, InverterNode};
use bms_core::j1939::node::TX_QUEUE;
use bms_core::j1939::{J1939Config, J1939Node, Name};
use bms_core::{Duration, Instant, Telemetry};
use bms_fuzz::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let mut cfg = J1939Config::default();
    cfg.name = Name::from_le_bytes(b.array());
    cfg.preferred_address = b.u8();
    cfg.command_key = Some(u32::from(b.u8()));
    cfg.rx_budget = u16::from(b.u8() % 40);
    cfg.bam_gap = Duration::from_millis(50 + u32::from(b.u8()));
    let mut node = J1939Node::new(cfg);
    let mut inv = InverterNode::new(InverterConfig {
        victron: b.bool(),
        modules: b.u8(),
        ..InverterConfig::default()
    });
    let telemetry = Telemetry::empty(b.u8());

    let mut now = 0u64;
    while !b.is_empty() {
        now = now.saturating_add(u64::from(b.u16()));
        let t = Instant::from_millis(now);
        match b.u8() % 4 {
            0 => {
                node.update(t, &telemetry);
                inv.update(t, &telemetry);
            }
            1 | 2 => {
                let frame = b.can_frame();
                node.handle_frame(t, &frame);
                inv.handle_frame(t, &frame);
            }
            _ => {
                // Bounded drain: a transmit queue cannot produce frames forever at one instant.
                let mut sent = 0;
                while let Some(f) = node.poll_transmit(t) {
                    assert!(f.bytes().len() <= 8);
                    sent += 1;
                    assert!(sent <= 4 * TX_QUEUE + 64, "J1939 transmit never drains");
                }
                let mut sent = 0;
                while inv.poll_transmit(t).is_some() {
                    sent += 1;
                    assert!(sent <= 64, "inverter transmit never drains");
                }
                while node.poll_command().is_some() {}
                let _ = node.poll_timeout();
                let _ = inv.poll_timeout();
                let _ = node.stats();
                let _ = node.address();
            }
        }
    }
});
