//! The J1939 node sends exactly what its first version sent (kept here as the reference:
//! a linear scan of every timer on every poll) for arbitrary sequences of telemetry,
//! received frames and polls, drained completely or cut short, at any times: the
//! scheduling shortcuts change no frame, no order and no timing on the wire.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use bms_core::can::CanFrame;
use bms_core::j1939::command::Command;
use bms_core::j1939::name::{Name, NameFields};
use bms_core::j1939::{J1939Config, J1939Node};
use bms_core::time::Duration;
use bms_core::{FaultSet, Instant, MilliAmps, MilliVolts, Telemetry};
use proptest::prelude::*;

/// The node as first written (bms-core/src/j1939/node.rs before the cost work), with
/// the data encoders and the DTC table of today's crate.
#[allow(dead_code, clippy::all)]
mod original {
    use heapless::Deque;

    use bms_core::can::{CanFrame, Frame};
    use bms_core::j1939::command::{Command, CommandError};
    use bms_core::j1939::dm::{DtcTable, MAX_DM_LEN};
    use bms_core::j1939::id::{J1939Id, Pgn, GLOBAL, NULL};
    use bms_core::j1939::messages::{encode_cell_voltages, Message, CELL_VOLTAGES_LEN};
    use bms_core::j1939::name::{Name, NameFields};
    use bms_core::j1939::request::{Ack, AckControl, Request};
    use bms_core::j1939::tp::{BamReceiver, BamSender};
    use bms_core::telemetry::Telemetry;
    use bms_core::time::{Duration, Instant};

    /// How long a claimant waits after its claim before using the address (J1939-81).
    pub const CLAIM_WAIT: Duration = Duration::from_millis(250);
    /// DM1 period.
    pub const DM1_PERIOD: Duration = Duration::from_millis(1_000);
    /// Capacity of the queue of answers (acknowledgments, requested single frames).
    pub const TX_QUEUE: usize = 16;
    /// Capacity of the command queue.
    pub const COMMAND_QUEUE: usize = 4;

    const PRIO_CLAIM: u8 = 6;
    const PRIO_DIAG: u8 = 6;
    const PRIO_TP: u8 = 7;

    /// Node configuration.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub struct J1939Config {
        /// The NAME claimed. Its manufacturer code and identity number must be set per product.
        pub name: Name,
        /// The address tried first.
        pub preferred_address: u8,
        /// The shared key of [`Command`]s; `None` refuses every command.
        pub command_key: Option<u32>,
        /// Received frames processed per step; more are dropped and counted.
        pub rx_budget: u16,
        /// Time between two TP.DT frames of a BAM (50..=200 ms per J1939-21).
        pub bam_gap: Duration,
    }

    impl Default for J1939Config {
        /// Address 0xF3 (a placeholder), arbitrary-address-capable NAME with manufacturer code
        /// 0 and identity 0, commands disabled, 32 frames per step, 60 ms BAM gap.
        fn default() -> Self {
            J1939Config {
                name: Name::from_fields(NameFields {
                    arbitrary_address_capable: true,
                    ..NameFields::default()
                }),
                preferred_address: 0xF3,
                command_key: None,
                rx_budget: 32,
                bam_gap: Duration::from_millis(60),
            }
        }
    }

    /// Counters of the node.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub struct NodeStats {
        /// Frames processed.
        pub rx_handled: u32,
        /// Frames dropped because the step's receive budget was used up.
        pub rx_dropped: u32,
        /// Frames for this node that failed to decode.
        pub rx_errors: u32,
        /// Answers dropped because the transmit queue was full.
        pub tx_dropped: u32,
        /// Commands refused (bad key, malformed or queue full).
        pub commands_refused: u32,
        /// BAM messages reassembled from other nodes.
        pub bam_received: u32,
        /// Address changes after lost conflicts.
        pub address_changes: u32,
    }

    /// Address claim state.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[cfg_attr(feature = "defmt", derive(defmt::Format))]
    pub enum ClaimState {
        /// The claim for this address is still to be sent.
        Pending(u8),
        /// Claim sent; the address is usable at the instant given.
        Claiming(u8, Instant),
        /// The address is ours.
        Claimed(u8),
        /// No address could be claimed; the node is silent except for "cannot claim".
        CannotClaim,
    }

    /// The J1939 node. See the [module documentation](self).
    #[derive(Clone, Debug)]
    pub struct J1939Node {
        config: J1939Config,
        claim: ClaimState,
        claim_requested: bool,
        occupied: [u32; 8],
        telemetry: Option<Telemetry>,
        dtcs: DtcTable,
        next_due: [Option<Instant>; Message::SINGLE_FRAME.len()],
        dm1_due: Option<Instant>,
        cells_due: Option<Instant>,
        dm2_due: Option<Instant>,
        bam: Option<BamSender>,
        tx: Deque<CanFrame, TX_QUEUE>,
        commands: Deque<Command, COMMAND_QUEUE>,
        rx: BamReceiver,
        budget_used: u16,
        stats: NodeStats,
    }

    fn frame(prio: u8, pgn: Pgn, da: u8, sa: u8, data: &[u8]) -> Option<CanFrame> {
        let id = J1939Id::new(prio, pgn, da, sa).ok()?;
        CanFrame::extended(id.to_raw(), data)
    }

    fn reschedule(due: Instant, now: Instant, period: Duration) -> Instant {
        let next = due + period;
        if next <= now {
            now + period
        } else {
            next
        }
    }

    impl J1939Node {
        /// A node that will claim `config.preferred_address` on its first transmit.
        ///
        /// A preferred address of 254 (null) or 255 (global) cannot be claimed: the node then
        /// starts in [`ClaimState::CannotClaim`] and its first frame is "cannot claim".
        pub fn new(config: J1939Config) -> Self {
            let usable = config.preferred_address < NULL;
            J1939Node {
                claim: if usable {
                    ClaimState::Pending(config.preferred_address)
                } else {
                    ClaimState::CannotClaim
                },
                config,
                claim_requested: !usable,
                occupied: [0; 8],
                telemetry: None,
                dtcs: DtcTable::new(),
                next_due: [None; Message::SINGLE_FRAME.len()],
                dm1_due: None,
                cells_due: None,
                dm2_due: None,
                bam: None,
                tx: Deque::new(),
                commands: Deque::new(),
                rx: BamReceiver::new(),
                budget_used: 0,
                stats: NodeStats::default(),
            }
        }

        /// The claimed address, once the claim is complete.
        pub fn address(&self) -> Option<u8> {
            match self.claim {
                ClaimState::Claimed(a) => Some(a),
                _ => None,
            }
        }

        /// The address claim state.
        pub fn claim_state(&self) -> ClaimState {
            self.claim
        }

        /// Counters.
        pub fn stats(&self) -> NodeStats {
            self.stats
        }

        /// The DTC table behind DM1 and DM2.
        pub fn dtcs(&self) -> &DtcTable {
            &self.dtcs
        }

        /// Takes the telemetry of a new step: updates the DTCs (a change makes DM1 due now)
        /// and starts a new receive budget.
        pub fn update(&mut self, now: Instant, telemetry: &Telemetry) {
            self.budget_used = 0;
            self.telemetry = Some(telemetry.clone());
            if self.dtcs.update(telemetry.faults, telemetry.warnings) {
                self.dm1_due = Some(now);
            }
            self.advance(now);
        }

        /// Processes one received frame (within the step's receive budget).
        pub fn handle_frame(&mut self, now: Instant, frame: &CanFrame) {
            self.advance(now);
            if self.budget_used >= self.config.rx_budget {
                self.stats.rx_dropped = self.stats.rx_dropped.saturating_add(1);
                return;
            }
            self.budget_used += 1;
            self.stats.rx_handled = self.stats.rx_handled.saturating_add(1);
            if frame.is_remote_frame() {
                return;
            }
            let Ok(id) = J1939Id::try_from(frame.id()) else {
                return;
            };
            let data = frame.data();
            let sa = id.source_address();
            let to_global = id.destination() == Some(GLOBAL);
            let to_me = match self.claim {
                ClaimState::Claimed(a) | ClaimState::Claiming(a, _) => id.is_for(a),
                _ => to_global,
            };
            match id.pgn() {
                Pgn::ADDRESS_CLAIMED => self.on_claim(sa, data),
                Pgn::REQUEST if to_me => self.on_request(now, id, data),
                Pgn::TP_CM if to_global && self.rx.handle_cm(now, sa, data).is_err() => {
                    self.count_error();
                }
                Pgn::TP_CM if to_me && data.first() == Some(&0x10) => self.refuse_rts(sa, data),
                Pgn::TP_DT if to_global => match self.rx.handle_dt(now, sa, data) {
                    Ok(Some(_)) => {
                        self.stats.bam_received = self.stats.bam_received.saturating_add(1)
                    }
                    Ok(None) => {}
                    Err(_) => self.count_error(),
                },
                Pgn::PROPRIETARY_A if to_me && !to_global && self.address().is_some() => {
                    self.on_command(sa, data)
                }
                _ => {}
            }
        }

        /// The next command to apply, oldest first.
        #[must_use]
        pub fn poll_command(&mut self) -> Option<Command> {
            self.commands.pop_front()
        }

        /// The next frame to send at `now`, or `None`. Call until `None` after every
        /// `handle_frame`/`update` and at [`J1939Node::poll_timeout`].
        #[must_use]
        pub fn poll_transmit(&mut self, now: Instant) -> Option<CanFrame> {
            self.advance(now);
            let name = self.config.name.to_le_bytes();
            let sa = match self.claim {
                ClaimState::Pending(a) => {
                    self.claim = ClaimState::Claiming(a, now + CLAIM_WAIT);
                    self.claim_requested = false;
                    return frame(PRIO_CLAIM, Pgn::ADDRESS_CLAIMED, GLOBAL, a, &name);
                }
                ClaimState::CannotClaim => {
                    if core::mem::take(&mut self.claim_requested) {
                        return frame(PRIO_CLAIM, Pgn::ADDRESS_CLAIMED, GLOBAL, NULL, &name);
                    }
                    return None;
                }
                ClaimState::Claiming(a, _) | ClaimState::Claimed(a) => {
                    if core::mem::take(&mut self.claim_requested) {
                        return frame(PRIO_CLAIM, Pgn::ADDRESS_CLAIMED, GLOBAL, a, &name);
                    }
                    if matches!(self.claim, ClaimState::Claiming(..)) {
                        return None;
                    }
                    a
                }
            };
            if let Some(f) = self.tx.pop_front() {
                return Some(f);
            }
            if let Some(bam) = self.bam.as_mut() {
                if let Some(dt) = bam.poll(now) {
                    return frame(PRIO_TP, Pgn::TP_DT, GLOBAL, sa, &dt);
                }
                if bam.next_due().is_none() {
                    self.bam = None;
                }
            }
            if let Some(f) = self.poll_dm1_single(now, sa) {
                return Some(f);
            }
            if let Some(f) = self.poll_periodic(now, sa) {
                return Some(f);
            }
            self.poll_bam_start(now, sa)
        }

        /// The earliest instant at which [`J1939Node::poll_transmit`] has something to send
        /// or a timer expires; an instant in the past means "now".
        #[must_use]
        pub fn poll_timeout(&self) -> Option<Instant> {
            let mut t = self.rx.poll_timeout();
            let mut add = |x: Option<Instant>| {
                if let Some(x) = x {
                    t = Some(t.map_or(x, |y| y.min(x)));
                }
            };
            match self.claim {
                ClaimState::Pending(_) => add(Some(Instant::ZERO)),
                ClaimState::CannotClaim => {
                    if self.claim_requested {
                        add(Some(Instant::ZERO));
                    }
                }
                ClaimState::Claiming(_, until) => add(Some(if self.claim_requested {
                    Instant::ZERO
                } else {
                    until
                })),
                ClaimState::Claimed(_) => {
                    if self.claim_requested || !self.tx.is_empty() {
                        add(Some(Instant::ZERO));
                    }
                    add(self.bam.as_ref().and_then(BamSender::next_due));
                    // A multi-packet DM1 waits for the running BAM; its end is already a timer.
                    if self.bam.is_none() || self.dtcs.active_count() <= 1 {
                        add(self.dm1_due);
                    }
                    if self.bam.is_none() {
                        add(self.cells_due.filter(|_| self.telemetry.is_some()));
                        add(self.dm2_due);
                    }
                    if self.telemetry.is_some() {
                        for d in self.next_due {
                            add(d);
                        }
                    }
                }
            }
            t
        }

        fn count_error(&mut self) {
            self.stats.rx_errors = self.stats.rx_errors.saturating_add(1);
        }

        /// Moves time-driven state: claim completion, BAM receive timeout.
        fn advance(&mut self, now: Instant) {
            self.rx.handle_timeout(now);
            if let ClaimState::Claiming(a, until) = self.claim {
                if now >= until {
                    self.claim = ClaimState::Claimed(a);
                    self.next_due = [Some(now); Message::SINGLE_FRAME.len()];
                    self.dm1_due = Some(now);
                    self.cells_due = Some(now);
                }
            }
        }

        fn is_occupied(&self, a: u8) -> bool {
            let i = usize::from(a / 32);
            self.occupied
                .get(i)
                .is_some_and(|w| w & (1 << (a % 32)) != 0)
        }

        fn set_occupied(&mut self, a: u8) {
            if let Some(w) = self.occupied.get_mut(usize::from(a / 32)) {
                *w |= 1 << (a % 32);
            }
        }

        fn current_address(&self) -> Option<u8> {
            match self.claim {
                ClaimState::Pending(a) | ClaimState::Claiming(a, _) | ClaimState::Claimed(a) => {
                    Some(a)
                }
                ClaimState::CannotClaim => None,
            }
        }

        fn on_claim(&mut self, sa: u8, data: &[u8]) {
            let Some(b) = data.get(..8).and_then(|s| <[u8; 8]>::try_from(s).ok()) else {
                self.count_error();
                return;
            };
            if sa == NULL {
                return;
            }
            let theirs = Name::from_le_bytes(b);
            let ours = self.config.name;
            if theirs == ours {
                return; // our own claim echoed back
            }
            self.set_occupied(sa);
            if self.current_address() != Some(sa) {
                return;
            }
            if ours < theirs {
                self.claim_requested = true; // defend the address
                return;
            }
            // Lost: leave the address at once, drop everything sent under it.
            self.bam = None;
            self.tx.clear();
            self.stats.address_changes = self.stats.address_changes.saturating_add(1);
            let next = (128..=247u8).find(|&a| !self.is_occupied(a));
            self.claim = match next {
                Some(a) if ours.is_arbitrary_address_capable() => ClaimState::Pending(a),
                _ => {
                    self.claim_requested = true;
                    ClaimState::CannotClaim
                }
            };
        }

        fn push_tx(&mut self, f: Option<CanFrame>) {
            if let Some(f) = f {
                if self.tx.push_back(f).is_err() {
                    self.stats.tx_dropped = self.stats.tx_dropped.saturating_add(1);
                }
            }
        }

        fn ack(&mut self, control: AckControl, group_function: u8, to: u8, pgn: Pgn) {
            let Some(sa) = self.address() else { return };
            let a = Ack {
                control,
                group_function,
                address: to,
                pgn,
            };
            self.push_tx(frame(PRIO_DIAG, Pgn::ACKNOWLEDGMENT, GLOBAL, sa, &a.emit()));
        }

        fn on_request(&mut self, now: Instant, id: J1939Id, data: &[u8]) {
            let Ok(req) = Request::parse(data) else {
                self.count_error();
                return;
            };
            if req.pgn == Pgn::ADDRESS_CLAIMED {
                self.claim_requested = true;
                return;
            }
            let Some(sa) = self.address() else { return };
            let specific = id.destination() != Some(GLOBAL);
            let from = id.source_address();
            match req.pgn {
                Pgn::DM1 => self.dm1_due = Some(now),
                Pgn::DM2 => {
                    let mut buf = [0; MAX_DM_LEN];
                    let n = self.dtcs.dm2(&mut buf);
                    if n <= 8 {
                        let f = buf
                            .get(..n)
                            .and_then(|d| frame(PRIO_DIAG, Pgn::DM2, GLOBAL, sa, d));
                        self.push_tx(f);
                    } else {
                        self.dm2_due = Some(now);
                    }
                }
                Pgn::DM3 | Pgn::DM11 => {
                    if req.pgn == Pgn::DM3 {
                        self.dtcs.clear_previous();
                    } else {
                        self.dtcs.clear_active();
                        self.dm1_due = Some(now);
                    }
                    if specific {
                        self.ack(AckControl::Ack, 0xFF, from, req.pgn);
                    }
                }
                pgn => match (Message::from_pgn(pgn), &self.telemetry) {
                    (Some(Message::CellVoltages), Some(_)) => self.cells_due = Some(now),
                    (Some(m), Some(t)) => {
                        let f = frame(m.priority(), m.pgn(), GLOBAL, sa, &m.encode(t));
                        self.push_tx(f);
                    }
                    (Some(_), None) if specific => self.ack(AckControl::Busy, 0xFF, from, pgn),
                    (None, _) if specific => self.ack(AckControl::Nack, 0xFF, from, pgn),
                    _ => {}
                },
            }
        }

        /// RTS/CTS is not implemented: an RTS to this node is aborted at once (reason 2,
        /// resources needed elsewhere) so the sender does not wait for its timeout.
        fn refuse_rts(&mut self, to: u8, data: &[u8]) {
            let Some(sa) = self.address() else { return };
            let Some(pgn) = data.get(5..8) else {
                self.count_error();
                return;
            };
            let abort = [0xFF, 0x02, 0xFF, 0xFF, 0xFF, pgn[0], pgn[1], pgn[2]];
            self.push_tx(frame(PRIO_TP, Pgn::TP_CM, to, sa, &abort));
        }

        fn on_command(&mut self, from: u8, data: &[u8]) {
            let code = data.first().copied().unwrap_or(0xFF);
            let control = match Command::parse(data, self.config.command_key) {
                Ok(c) => match self.commands.push_back(c) {
                    Ok(()) => AckControl::Ack,
                    Err(_) => AckControl::Busy,
                },
                Err(CommandError::AccessDenied) => AckControl::AccessDenied,
                Err(_) => AckControl::Nack,
            };
            if control != AckControl::Ack {
                self.stats.commands_refused = self.stats.commands_refused.saturating_add(1);
            }
            self.ack(control, code, from, Pgn::PROPRIETARY_A);
        }

        fn poll_dm1_single(&mut self, now: Instant, sa: u8) -> Option<CanFrame> {
            let due = self.dm1_due.filter(|&d| d <= now)?;
            let mut buf = [0; MAX_DM_LEN];
            let n = self.dtcs.dm1(&mut buf);
            if n > 8 {
                return None; // multi-packet: started by poll_bam_start
            }
            self.dm1_due = Some(reschedule(due, now, DM1_PERIOD));
            frame(PRIO_DIAG, Pgn::DM1, GLOBAL, sa, buf.get(..n)?)
        }

        fn poll_periodic(&mut self, now: Instant, sa: u8) -> Option<CanFrame> {
            let t = self.telemetry.as_ref()?;
            for (m, due) in Message::SINGLE_FRAME.iter().zip(self.next_due.iter_mut()) {
                let Some(d) = due.filter(|&d| d <= now) else {
                    continue;
                };
                *due = Some(reschedule(d, now, Duration::from_millis(m.period_ms())));
                return frame(m.priority(), m.pgn(), GLOBAL, sa, &m.encode(t));
            }
            None
        }

        fn poll_bam_start(&mut self, now: Instant, sa: u8) -> Option<CanFrame> {
            if self.bam.is_some() {
                return None;
            }
            let due = |d: Option<Instant>| d.filter(|&d| d <= now);
            let dm1 = due(self.dm1_due);
            let dm2 = due(self.dm2_due);
            let cells = due(self.cells_due).filter(|_| self.telemetry.is_some());
            // Earliest due first; ties go to DM1, then DM2, then cells.
            let pick = [(0u8, dm1), (1, dm2), (2, cells)]
                .into_iter()
                .filter_map(|(k, d)| d.map(|d| (d, k)))
                .min()?;
            let mut buf = [0xFF; MAX_DM_LEN];
            let (pgn, len) = match pick.1 {
                0 => {
                    self.dm1_due = Some(reschedule(pick.0, now, DM1_PERIOD));
                    (Pgn::DM1, self.dtcs.dm1(&mut buf))
                }
                1 => {
                    self.dm2_due = None;
                    (Pgn::DM2, self.dtcs.dm2(&mut buf))
                }
                _ => {
                    let period = Duration::from_millis(Message::CellVoltages.period_ms());
                    self.cells_due = Some(reschedule(pick.0, now, period));
                    let mut cells = [0; CELL_VOLTAGES_LEN];
                    encode_cell_voltages(self.telemetry.as_ref()?, &mut cells);
                    buf[..CELL_VOLTAGES_LEN].copy_from_slice(&cells);
                    (Message::CellVoltages.pgn(), CELL_VOLTAGES_LEN)
                }
            };
            let data = buf.get(..len)?;
            if len <= 8 {
                // A DM2 that shrank since it was requested: single frame.
                return frame(PRIO_DIAG, pgn, GLOBAL, sa, data);
            }
            let (sender, cm) = BamSender::start(now, pgn, data, self.config.bam_gap).ok()?;
            self.bam = Some(sender);
            frame(PRIO_TP, Pgn::TP_CM, GLOBAL, sa, &cm)
        }
    }
}

const KEY: u32 = 0x5EED_1234;

#[derive(Clone, Debug)]
enum Op {
    /// New telemetry `ms` later: fault and warning bits, a current and a cell voltage.
    Update {
        ms: u16,
        faults: u32,
        warnings: u32,
        ma: i32,
        mv: u32,
    },
    /// New telemetry `ms` later in which one more field (`field`, any input of an
    /// encoder) takes one of a few values (`value`): a value repeats often, so the node's
    /// payloads are reused as often as they are encoded again.
    Field { ms: u16, field: u8, value: u8 },
    /// A received frame `ms` later.
    Receive { ms: u16, frame: CanFrame },
    /// At most `polls` calls of `poll_transmit` `ms` later.
    Poll { ms: u16, polls: u8 },
    /// Wake at `poll_timeout` (at least `min_ms` later) and drain.
    Wake { min_ms: u16 },
    /// `ms` later, drain with `drain_transmit` (the reference calls `poll_transmit`
    /// until `None`).
    Drain { ms: u16 },
    /// `steps` control steps `period` ms apart, as a firmware runs the node: new
    /// telemetry (a current and a cell voltage that move) then `drain_transmit`. A
    /// period that divides the message periods keeps every message of a period class
    /// due at the same instants (the scheduler's fast path), others drift them apart.
    /// At step `event` of the run (if any), `frame` arrives before the drain and the
    /// faults take the bits `faults`: a request, a claim or a DM1 change while the node
    /// skips its urgent checks (nothing was urgent before).
    Run {
        steps: u8,
        period: u16,
        ma: i32,
        event: u8,
        frame: Option<CanFrame>,
        faults: u32,
    },
}

/// Frames the node reacts to: claims (ours, lower and higher NAMEs), requests, TP.CM
/// (BAM and RTS) and TP.DT, commands (good key, bad key, broadcast), and noise.
fn received() -> impl Strategy<Value = CanFrame> {
    let pgn = prop::sample::select(vec![
        0xF090u32, 0xF095, 0xF0A0, 0xFF00, 0xFF02, 0xFF05, 0xFECA, 0xFECB, 0xFECC, 0xFED3, 0xEE00,
        0x1234, 0xFEDA,
    ]);
    let da = prop::sample::select(vec![0xF3u32, 0xFF, 0x80, 0x10]);
    let sa = prop::sample::select(vec![0xF3u32, 0x80, 0x81, 0xF9, 0x10, 0xFE]);
    prop_oneof![
        (pgn, da.clone(), sa.clone()).prop_map(|(pgn, da, sa)| {
            let b = pgn.to_le_bytes();
            CanFrame::extended(0x18EA_0000 | da << 8 | sa, &b[..3]).unwrap()
        }),
        (sa.clone(), any::<u64>(), any::<bool>()).prop_map(|(sa, name, low)| {
            let name = if low { 0 } else { name | 1 << 63 };
            CanFrame::extended(0x18EE_FF00 | sa, &name.to_le_bytes()).unwrap()
        }),
        (da.clone(), sa.clone(), 0usize..4, any::<bool>()).prop_map(|(da, sa, cmd, good)| {
            let c = [
                Command::SetCharge(false),
                Command::SetCharge(true),
                Command::SetDischarge(false),
                Command::ResetFaults,
            ][cmd];
            let data = c.emit(if good { KEY } else { !KEY });
            CanFrame::extended(0x18EF_0000 | da << 8 | sa, &data).unwrap()
        }),
        (da.clone(), sa.clone(), any::<bool>(), 9u16..40).prop_map(|(da, sa, bam, len)| {
            let control = if bam { 0x20 } else { 0x10 };
            let packets = len.div_ceil(7) as u8;
            let [lo, hi] = len.to_le_bytes();
            let data = [control, lo, hi, packets, 0xFF, 0x00, 0xFF, 0x00];
            CanFrame::extended(0x1CEC_0000 | da << 8 | sa, &data).unwrap()
        }),
        (sa.clone(), 1u8..7, any::<[u8; 7]>()).prop_map(|(sa, seq, d)| {
            let mut data = [seq; 8];
            data[1..].copy_from_slice(&d);
            CanFrame::extended(0x1CEB_FF00 | sa, &data).unwrap()
        }),
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..=8))
            .prop_map(|(id, d)| CanFrame::extended(id & 0x1FFF_FFFF, &d).unwrap()),
    ]
}

/// A delay: often none (several calls at one instant), else up to `max` ms.
fn ms(max: u16) -> impl Strategy<Value = u16> {
    prop_oneof![Just(0), 1..max]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (ms(250), 0u32..64, 0u32..64, -300_000i32..300_000, 2_500u32..3_700).prop_map(
            |(ms, faults, warnings, ma, mv)| Op::Update { ms, faults, warnings, ma, mv }
        ),
        3 => (ms(250), 0u8..FIELDS, 0u8..3).prop_map(|(ms, field, value)| Op::Field { ms, field, value }),
        2 => (ms(100), received()).prop_map(|(ms, frame)| Op::Receive { ms, frame }),
        3 => (ms(400), 0u8..30).prop_map(|(ms, polls)| Op::Poll { ms, polls }),
        1 => (0u16..200).prop_map(|min_ms| Op::Wake { min_ms }),
        2 => ms(400).prop_map(|ms| Op::Drain { ms }),
        2 => (
            1u8..40,
            prop::sample::select(vec![100u16, 100, 50, 1_000, 60, 130]),
            -300_000i32..300_000,
            0u8..40,
            proptest::option::of(received()),
            0u32..64,
        )
            .prop_map(|(steps, period, ma, event, frame, faults)| Op::Run {
                steps,
                period,
                ma,
                event,
                frame,
                faults
            }),
    ]
}

/// Number of fields [`set_field`] can change.
const FIELDS: u8 = 22;

/// Sets field `field` of `t` to its `value`-th test value (0..3; extremes included).
fn set_field(t: &mut Telemetry, field: u8, value: u8) {
    use bms_core::{DeciCelsius, MilliAmpHours, Permille, PowerMode, Soc};
    let v = usize::from(value % 3);
    let mv = [3_300, 0, u32::MAX][v];
    let ma = [10_000, -250_000, i32::MIN][v];
    let temp = [Some(250), None, Some(i16::MIN)][v].map(DeciCelsius::from_deci);
    let mah = [50_000, 0, u32::MAX][v];
    match field {
        0 => t.pack_voltage = MilliVolts::from_mv(mv),
        1 => t.load_voltage = MilliVolts::from_mv(mv),
        2 => t.current = MilliAmps::from_ma(ma),
        3 => t.cell_temps[0] = temp,
        4 => t.cell_temps[1] = temp,
        5 => t.mos_temp = temp,
        6 => t.balance_temp = temp,
        7 => t.soc = Soc::from_permille_clamped([500, 0, 1_000][v]),
        8 => t.soh = Permille::from_permille([1_000, 0, u16::MAX][v]),
        9 => t.remaining = MilliAmpHours::from_mah(mah),
        10 => t.full_capacity = MilliAmpHours::from_mah(mah),
        11 => t.cycles = [3, 0, u32::MAX][v],
        12 => t.charge_fet = v == 1,
        13 => t.discharge_fet = v == 1,
        14 => t.precharge_fet = v == 1,
        15 => t.balance_mask = [0, 5, u32::MAX][v],
        16 => t.mode = [PowerMode::Active, PowerMode::Sleep, PowerMode::DeepSleep][v],
        17 => t.cell_count = [16, 0, 20][v],
        18 => t.limits.charge_voltage = MilliVolts::from_mv(mv),
        19 => t.limits.charge_current = MilliAmps::from_ma(ma),
        20 => t.limits.discharge_current = MilliAmps::from_ma(ma),
        _ => t.limits.discharge_voltage = MilliVolts::from_mv(mv),
    }
}

fn configs(capable: bool, budget: u16, gap: u32) -> (J1939Config, original::J1939Config) {
    let name = Name::from_fields(NameFields {
        arbitrary_address_capable: capable,
        identity_number: 77,
        ..NameFields::default()
    });
    let ours = J1939Config {
        name,
        command_key: Some(KEY),
        rx_budget: budget,
        bam_gap: Duration::from_millis(gap),
        ..J1939Config::default()
    };
    let theirs = original::J1939Config {
        name,
        preferred_address: ours.preferred_address,
        command_key: ours.command_key,
        rx_budget: ours.rx_budget,
        bam_gap: ours.bam_gap,
    };
    (ours, theirs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn node_sends_what_the_first_version_sent(
        ops in proptest::collection::vec(op(), 1..150),
        capable in any::<bool>(),
        budget in 1u16..40,
        gap in prop::sample::select(vec![0u32, 50, 60, 200]),
        cells in 8u8..=20,
    ) {
        let (ours, theirs) = configs(capable, budget, gap);
        let mut a = J1939Node::new(ours);
        let mut b = original::J1939Node::new(theirs);
        let mut tel = Telemetry::empty(cells);
        let mut now = Instant::ZERO;
        for (step, op) in ops.into_iter().enumerate() {
            let polls = match op {
                Op::Update { ms, faults, warnings, ma, mv } => {
                    now += Duration::from_millis(ms.into());
                    tel.now = now;
                    tel.faults = FaultSet::from_bits(faults);
                    tel.warnings = FaultSet::from_bits(warnings << 2);
                    tel.current = MilliAmps::from_ma(ma);
                    tel.cells[usize::from(step as u8 % cells)] = MilliVolts::from_mv(mv);
                    a.update(now, &tel);
                    b.update(now, &tel);
                    0
                }
                Op::Field { ms, field, value } => {
                    now += Duration::from_millis(ms.into());
                    tel.now = now;
                    set_field(&mut tel, field, value);
                    a.update(now, &tel);
                    b.update(now, &tel);
                    0
                }
                Op::Receive { ms, frame } => {
                    now += Duration::from_millis(ms.into());
                    a.handle_frame(now, &frame);
                    b.handle_frame(now, &frame);
                    0
                }
                Op::Poll { ms, polls } => {
                    now += Duration::from_millis(ms.into());
                    polls
                }
                Op::Wake { min_ms } => {
                    prop_assert_eq!(a.poll_timeout(), b.poll_timeout());
                    let earliest = now + Duration::from_millis(min_ms.into());
                    now = a.poll_timeout().map_or(earliest, |t| t.max(earliest));
                    u8::MAX
                }
                Op::Run { steps, period, ma, event, frame, faults } => {
                    for k in 0..steps {
                        now += Duration::from_millis(period.into());
                        tel.now = now;
                        tel.current = MilliAmps::from_ma(ma.wrapping_add(i32::from(k) * 37));
                        let c = usize::from(k % cells);
                        tel.cells[c] = MilliVolts::from_mv(3_298 + u32::from(k) % 5);
                        if k == event {
                            tel.faults = FaultSet::from_bits(faults);
                        }
                        a.update(now, &tel);
                        b.update(now, &tel);
                        if let Some(f) = frame.filter(|_| k == event) {
                            a.handle_frame(now, &f);
                            b.handle_frame(now, &f);
                        }
                        let mut fa = Vec::new();
                        a.drain_transmit(now, |f| fa.push(f));
                        let mut fb = Vec::new();
                        while let Some(f) = b.poll_transmit(now) {
                            fb.push(f);
                        }
                        prop_assert_eq!(fa, fb, "step {} run {} at {}", step, k, now);
                    }
                    0
                }
                Op::Drain { ms } => {
                    now += Duration::from_millis(ms.into());
                    let mut fa = Vec::new();
                    a.drain_transmit(now, |f| fa.push(f));
                    let mut fb = Vec::new();
                    while let Some(f) = b.poll_transmit(now) {
                        fb.push(f);
                    }
                    prop_assert_eq!(fa, fb, "step {} at {}", step, now);
                    0
                }
            };
            for _ in 0..polls {
                let (fa, fb) = (a.poll_transmit(now), b.poll_transmit(now));
                prop_assert_eq!(fa, fb, "step {} at {}", step, now);
                if fa.is_none() {
                    break;
                }
            }
            prop_assert_eq!(a.poll_timeout(), b.poll_timeout(), "step {}", step);
            prop_assert_eq!(format!("{:?}", a.claim_state()), format!("{:?}", b.claim_state()));
            prop_assert_eq!(format!("{:?}", a.stats()), format!("{:?}", b.stats()));
            prop_assert_eq!(a.dtcs(), b.dtcs());
            while let Some(c) = a.poll_command() {
                prop_assert_eq!(Some(c), b.poll_command());
            }
            prop_assert_eq!(b.poll_command(), None);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Long runs of the firmware's pattern (new telemetry every `period` ms, then
    /// `drain_transmit`), which keep the node on `drain_transmit`'s short path for many
    /// BAM and DM1 cycles (the running BAM's packets, single-frame DM1, the 1 s class),
    /// with now and then a fault change (DM1 at once, multi-packet when two are active),
    /// a received frame (requests, claims, commands) or a changed slow input: every step
    /// sends what the first version sends, and the timeouts agree.
    #[test]
    fn long_steady_runs_send_what_the_first_version_sent(
        period in prop::sample::select(vec![100u16, 100, 50, 200, 60]),
        gap in prop::sample::select(vec![0u32, 50, 60, 200]),
        cells in 8u8..=20,
        events in proptest::collection::vec(
            (0u16..600, 0u32..64, proptest::option::of(received()), 0u8..FIELDS, 0u8..3),
            0..6,
        ),
    ) {
        let (ours, theirs) = configs(true, 32, gap);
        let mut a = J1939Node::new(ours);
        let mut b = original::J1939Node::new(theirs);
        let mut tel = Telemetry::empty(cells);
        let mut now = Instant::ZERO;
        for k in 0..600u16 {
            tel.now = now;
            tel.current = MilliAmps::from_ma(-10_000 + i32::from(k % 7) * 13);
            let c = usize::from(k) % usize::from(cells);
            tel.cells[c] = MilliVolts::from_mv(3_298 + u32::from(k) % 5);
            let mut frames = heapless::Vec::<CanFrame, 8>::new();
            for (at, faults, frame, field, value) in &events {
                if *at == k {
                    tel.faults = FaultSet::from_bits(*faults);
                    set_field(&mut tel, *field, *value);
                    if let Some(f) = frame {
                        frames.push(*f).unwrap();
                    }
                }
            }
            a.update(now, &tel);
            b.update(now, &tel);
            for f in &frames {
                a.handle_frame(now, f);
                b.handle_frame(now, f);
            }
            let mut fa = Vec::new();
            a.drain_transmit(now, |f| fa.push(f));
            let mut fb = Vec::new();
            while let Some(f) = b.poll_transmit(now) {
                fb.push(f);
            }
            prop_assert_eq!(fa, fb, "step {} at {}", k, now);
            prop_assert_eq!(a.poll_timeout(), b.poll_timeout(), "step {}", k);
            now += Duration::from_millis(period.into());
        }
    }
}
