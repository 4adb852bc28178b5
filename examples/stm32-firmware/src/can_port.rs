//! The CAN side of the board: a J1939 node or the inverter protocol on FDCAN1.
//!
//! Frames go through embassy's buffered FDCAN driver: the node's due frames are queued
//! with `try_write` (never waiting; a full queue drops the frame and counts it), received
//! frames are handed to the node within its per-step receive budget, so a flooded bus
//! cannot take time from protection.

use bms_core::can::{CanFrame, Frame as _};
use bms_core::inverter::{InverterConfig, InverterNode};
use bms_core::j1939::{J1939Config, J1939Node};
use bms_core::{Bms, Instant};
use embassy_stm32::can::{self, BufferedCanSender};

/// Which protocol the CAN port speaks (chosen by the firmware's `CAN_PROTOCOL`, so one
/// of the two variants is never built in a given image).
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanProtocol {
    /// J1939 (CAN 2.0B, 250 kbit/s): PGNs, DM1/DM2, address claim, authenticated commands.
    J1939,
    /// The Pylontech-compatible inverter protocol (CAN 2.0A, 500 kbit/s on most inverters).
    Inverter,
}

/// Frames transmitted per call at most (the node queues at most 16 answers; a burst of
/// the inverter protocol is 11 frames).
const TX_PER_CALL: usize = 32;

/// The protocol node and the driver's transmit queue.
pub struct CanPort {
    node: Node,
    tx: BufferedCanSender,
    /// Frames dropped because the driver's transmit queue was full.
    pub tx_dropped: u32,
}

// One node for the firmware's lifetime, in the task's static state; there is no heap.
#[allow(clippy::large_enum_variant)]
enum Node {
    J1939(J1939Node),
    Inverter(InverterNode),
}

impl CanPort {
    /// A node speaking `protocol`; J1939 commands are accepted with `command_key`
    /// (`None` refuses every command).
    pub fn new(protocol: CanProtocol, command_key: Option<u32>, tx: BufferedCanSender) -> Self {
        let node = match protocol {
            CanProtocol::J1939 => Node::J1939(J1939Node::new(J1939Config {
                command_key,
                ..J1939Config::default()
            })),
            CanProtocol::Inverter => Node::Inverter(InverterNode::new(InverterConfig::default())),
        };
        CanPort {
            node,
            tx,
            tx_dropped: 0,
        }
    }

    /// After a control step: feeds the step's telemetry (a new receive budget), queues the
    /// due frames and applies the authenticated commands to `bms` (they take effect from
    /// the next step; protection keeps the last word).
    pub fn step(&mut self, bms: &mut Bms) {
        let now = bms.telemetry().now;
        match &mut self.node {
            Node::J1939(n) => n.update(now, bms.telemetry()),
            Node::Inverter(n) => n.update(now, bms.telemetry()),
        }
        self.transmit(now);
        if let Node::J1939(n) = &mut self.node {
            // At most `COMMAND_QUEUE` entries.
            while let Some(c) = n.poll_command() {
                c.apply(bms);
            }
        }
    }

    /// Hands a received frame to the node and queues what it answers.
    pub fn receive(&mut self, now: Instant, frame: &can::Frame) {
        let Some(f) = from_hal(frame) else {
            return;
        };
        match &mut self.node {
            Node::J1939(n) => n.handle_frame(now, &f),
            Node::Inverter(n) => n.handle_frame(now, &f),
        }
        self.transmit(now);
    }

    /// Queues the frames due at `now` (J1939 BAM data frames become due between steps).
    pub fn transmit(&mut self, now: Instant) {
        for _ in 0..TX_PER_CALL {
            let f = match &mut self.node {
                Node::J1939(n) => n.poll_transmit(now),
                Node::Inverter(n) => n.poll_transmit(now),
            };
            let Some(f) = f else {
                return;
            };
            let sent = to_hal(&f).is_some_and(|hf| self.tx.try_write(hf).is_ok());
            if !sent {
                self.tx_dropped = self.tx_dropped.saturating_add(1);
            }
        }
    }

    /// The earliest instant at which the node has a frame due or a timer expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.node {
            Node::J1939(n) => n.poll_timeout(),
            Node::Inverter(n) => n.poll_timeout(),
        }
    }
}

/// The driver's frame of a core frame.
fn to_hal(f: &CanFrame) -> Option<can::Frame> {
    if f.is_remote_frame() {
        embedded_can::Frame::new_remote(f.id(), f.dlc())
    } else {
        embedded_can::Frame::new(f.id(), f.data())
    }
}

/// The core's frame of a received driver frame.
fn from_hal(f: &can::Frame) -> Option<CanFrame> {
    let id = embedded_can::Frame::id(f);
    if embedded_can::Frame::is_remote_frame(f) {
        CanFrame::new_remote(id, embedded_can::Frame::dlc(f))
    } else {
        CanFrame::new(id, embedded_can::Frame::data(f))
    }
}
