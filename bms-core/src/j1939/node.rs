//! The J1939 node: a sans-I/O state machine in the style of `quinn-proto`.
//!
//! The caller feeds it received frames ([`J1939Node::handle_frame`]) and each new
//! telemetry snapshot ([`J1939Node::update`]), drains frames to send with
//! [`J1939Node::poll_transmit`] until it returns `None` (or all at once, cheaper, with
//! [`J1939Node::drain_transmit`]), applies commands from
//! [`J1939Node::poll_command`], and calls again no later than [`J1939Node::poll_timeout`].
//!
//! # Behaviour
//! - **Address claim (J1939-81).** The very first frame is the address claim of the
//!   configured NAME at the preferred address. Other traffic starts 250 ms later. A
//!   conflicting claim with a lower NAME makes the node move to a free address in
//!   128..=247 (arbitrary-address-capable NAME) or send "cannot claim" from 254 and fall
//!   silent. Requests for address claim are answered in every state.
//! - **Requests (PGN 59904).** Every PGN the node sends can be requested; DM3 and DM11
//!   requests clear the DTC history and are acknowledged. A destination-specific request
//!   for anything else is answered with a NACK (PGN 59392); global requests for unknown
//!   PGNs are not answered (J1939-21 5.4.2).
//! - **Schedule.** Data messages at the periods of [`Message::period_ms`], DM1 every
//!   1 s and at once when the set of active DTCs changes, cell voltages every 2 s. One BAM
//!   at a time; when both are due, the one due first starts first. TP.DT frames are
//!   [`J1939Config::bam_gap`] apart (the J1939-21 window is 50..=200 ms). Multi-packet
//!   answers to requests are sent by BAM as well. RTS/CTS is not implemented: an RTS to
//!   this node is answered with a TP.CM abort.
//! - **Bounded work.** At most [`J1939Config::rx_budget`] received frames are processed
//!   per step (between two [`J1939Node::update`] calls); the rest are dropped and counted
//!   in [`NodeStats::rx_dropped`], so a flooded bus cannot take time from protection. The
//!   transmit queue for answers is bounded too ([`NodeStats::tx_dropped`]).
//!
//! # Examples
//! ```
//! use bms_core::j1939::node::{J1939Config, J1939Node};
//! use bms_core::j1939::{J1939Id, Pgn};
//! use bms_core::{Instant, Telemetry};
//! use embedded_can::Frame;
//!
//! let mut node = J1939Node::new(J1939Config::default());
//! let t0 = Instant::ZERO;
//! node.update(t0, &Telemetry::empty(16));
//! let first = node.poll_transmit(t0).expect("address claim");
//! let id = J1939Id::try_from(first.id())?;
//! assert_eq!(id.pgn(), Pgn::ADDRESS_CLAIMED);
//! assert_eq!(node.poll_transmit(t0), None); // 250 ms of silence after the claim
//! let t1 = Instant::from_millis(250);
//! let mut sent = 0;
//! while let Some(_) = node.poll_transmit(t1) {
//!     sent += 1;
//! }
//! assert!(sent > 6);
//! assert_eq!(node.address(), Some(0xF3));
//! # Ok::<(), bms_core::j1939::IdError>(())
//! ```

use heapless::Deque;

use super::command::{Command, CommandError};
use super::dm::{DtcTable, MAX_DM_LEN};
use super::id::{J1939Id, Pgn, GLOBAL, NULL};
#[cfg(test)]
use super::messages::encode_single;
use super::messages::{encode_cell_voltages, Message, CELL_VOLTAGES_LEN, ENCODERS};
use super::name::{Name, NameFields};
use super::request::{Ack, AckControl, Request};
use super::tp::{BamReceiver, BamSender};
use crate::bits::set_bits;
use crate::can::{CanFrame, Frame};
use crate::measure::MAX_CELLS;
use crate::telemetry::Telemetry;
use crate::time::{Duration, Instant, OptInstant};

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
    next_due: [Instant; SINGLE_FRAMES],
    /// Bounds of the due times of each class of [`CLASSES`] (see [`Bounds`]).
    bounds: [Bounds; CLASS_COUNT],
    pass: Pass,
    /// The last payload encoded of each single-frame message.
    /// (Entries past [`SINGLE_FRAMES`] are unused; see [`SLOTS`].)
    payloads: [[u8; 8]; SLOTS],
    /// Bit `i`: `payloads[i]` is the encoding of the current telemetry.
    fresh: u16,
    // Trick: `OptInstant` (8 bytes) instead of `Option<Instant>` (16) for `quiet_at` and
    // the timers.
    /// The instant at which the checks before the periodic messages last found nothing,
    /// until `update`, `handle_frame` or the end of the drain.
    quiet_at: OptInstant,
    /// Before this instant the checks before the periodic messages find nothing (see
    /// [`J1939Node::next_urgent`]); `Instant::ZERO` when not known.
    urgent_at: Instant,
    /// Before this instant, `drain_transmit` has nothing to send but the running BAM's
    /// next packet, a single-frame DM1 and the periodic single-frame messages (see
    /// [`J1939Node::calm_bound`]); `Instant::ZERO` when not known.
    calm_until: Instant,
    dm1_due: OptInstant,
    cells_due: OptInstant,
    dm2_due: OptInstant,
    bam: Option<BamSender>,
    tx: Deque<CanFrame, TX_QUEUE>,
    commands: Deque<Command, COMMAND_QUEUE>,
    rx: BamReceiver,
    budget_used: u16,
    stats: NodeStats,
}

const SINGLE_FRAMES: usize = Message::SINGLE_FRAME.len();

/// Entries of the per-message tables indexed on the per-frame path: a power of two at
/// least [`SINGLE_FRAMES`], so that an index masked to it needs no bounds check.
const SLOTS: usize = SINGLE_FRAMES.next_power_of_two();

/// The messages of [`Message::SINGLE_FRAME`] still to send at one instant.
///
/// Trick: one scan of the due times per instant instead of one per poll. `due` has bit `i`
/// set for each message `i` that was due at `at` and is not sent yet; a message's due time
/// changes only when it is sent (to a later instant) or when the claim completes (which
/// starts a new pass), so the set stays exact for the whole instant.
#[derive(Clone, Copy, Debug)]
struct Pass {
    at: Instant,
    due: u16,
    /// Bit `c`: every member of class `c` of [`CLASSES`] was due at `at` at one same
    /// instant, the lower bound of the class.
    uniform: u8,
}

/// A lower and an upper bound of the due times of the messages of one class of
/// [`CLASSES`]: `lo <= next_due[i] <= hi` for each member `i`.
///
/// Trick: the due set of a class is then decided by one or two comparisons (all members
/// due when `now >= hi`, none when `now < lo`) instead of a comparison per message; only
/// an instant between the bounds scans the members, and makes the bounds exact. Due times
/// only grow (a message sent at `now` is due again by `now + period` at the latest), so
/// `lo` stays a bound without upkeep and `hi` is raised once per pass; a class
/// rescheduled whole by `drain_transmit` gets exact bounds.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    lo: Instant,
    hi: Instant,
}

/// A set of single-frame messages that share a period.
#[derive(Clone, Copy, Debug)]
struct Class {
    members: u16,
    period: Duration,
    /// `start..end`: the members, when they are consecutive messages (else empty).
    start: usize,
    end: usize,
}

/// Number of distinct periods among the single-frame messages.
const CLASS_COUNT: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < SINGLE_FRAMES {
        // Counted at its first message of that period.
        let mut j = 0;
        while j < i && PERIODS[j].as_millis() != PERIODS[i].as_millis() {
            j += 1;
        }
        if j == i {
            n += 1;
        }
        i += 1;
    }
    n
};

/// The single-frame messages grouped by period, in order of first appearance.
const CLASSES: [Class; CLASS_COUNT] = {
    let mut c = [Class {
        members: 0,
        period: Duration::ZERO,
        start: 0,
        end: 0,
    }; CLASS_COUNT];
    let mut n = 0;
    let mut i = 0;
    while i < SINGLE_FRAMES {
        let mut k = 0;
        while k < n && c[k].period.as_millis() != PERIODS[i].as_millis() {
            k += 1;
        }
        if k == n {
            c[k].period = PERIODS[i];
            n += 1;
        }
        c[k].members |= 1 << i;
        i += 1;
    }
    let mut k = 0;
    while k < CLASS_COUNT {
        let (start, end) = (
            c[k].members.trailing_zeros(),
            16 - c[k].members.leading_zeros(),
        );
        if c[k].members == ((1u32 << end) - (1u32 << start)) as u16 {
            c[k].start = start as usize;
            c[k].end = end as usize;
        }
        k += 1;
    }
    c
};

/// Every class of [`CLASSES`].
const ALL_CLASSES: u8 = (1 << CLASS_COUNT) - 1;

/// The messages encoded at nearly every step: the first two of [`Message::SINGLE_FRAME`],
/// 100 ms and [`ALWAYS_STALE`].
const HOT: u32 = 0b11;
const _: () = assert!(ALWAYS_STALE as u32 & HOT == HOT && PERIODS[0].as_millis() == 100);
const _: () = assert!(PERIODS[1].as_millis() == 100 && SLOTS == super::messages::ENCODER_SLOTS);

/// Every single-frame message.
const ALL_DUE: u16 = (1 << SINGLE_FRAMES) - 1;

/// The answer of [`J1939Node::steady_class`] for a class not in its steady state: a bit
/// of no message.
const NOT_STEADY: u16 = 1 << 15;
const _: () = assert!(ALL_DUE & NOT_STEADY == 0);

/// Identifier of each single-frame message without its source address, in the tagged
/// form of [`CanFrame::extended8_tagged`]: priority and PGN (PDU2, so no destination
/// byte). (Entries past [`SINGLE_FRAMES`] are unused.)
const IDS: [u32; SLOTS] = {
    let mut ids = [0; SLOTS];
    let mut i = 0;
    while i < SINGLE_FRAMES {
        let m = Message::SINGLE_FRAME[i];
        ids[i] = CanFrame::extended_tag((m.priority() as u32) << 26 | m.pgn().as_u32() << 8);
        i += 1;
    }
    ids
};

/// Period of each single-frame message.
const PERIODS: [Duration; SINGLE_FRAMES] = {
    let mut p = [Duration::ZERO; SINGLE_FRAMES];
    let mut i = 0;
    while i < SINGLE_FRAMES {
        p[i] = Duration::from_millis(Message::SINGLE_FRAME[i].period_ms());
        i += 1;
    }
    p
};

/// Identifier of a PDU1 message to the global address, without its source address.
const fn to_global_id(prio: u8, pgn: Pgn) -> u32 {
    (prio as u32) << 26 | (pgn.as_u32() | GLOBAL as u32) << 8
}

/// TP.DT and TP.CM of a BAM, without the source address.
///
/// Trick: the eight-byte transport frames take a constant identifier and no checks (the
/// parts are valid by construction) instead of the general [`frame`].
const TP_DT_ID: u32 = to_global_id(PRIO_TP, Pgn::TP_DT);
const TP_CM_ID: u32 = to_global_id(PRIO_TP, Pgn::TP_CM);

/// DM1 (PDU2, no destination byte) without the source address, in the tagged form of
/// [`CanFrame::extended8_tagged`].
const DM1_ID: u32 = CanFrame::extended_tag((PRIO_DIAG as u32) << 26 | Pgn::DM1.as_u32() << 8);

fn frame(prio: u8, pgn: Pgn, da: u8, sa: u8, data: &[u8]) -> Option<CanFrame> {
    let id = J1939Id::new(prio, pgn, da, sa).ok()?;
    CanFrame::extended(id.to_raw(), data)
}

/// The members of the class `members` due at `now`, by a scan of their due times; makes
/// `bounds` the exact lowest and highest due time of the class.
///
/// Trick: out of line and cold: only an instant between the bounds needs it.
#[cold]
#[inline(never)]
fn scan_class(
    next_due: &[Instant; SINGLE_FRAMES],
    members: u16,
    now: Instant,
    bounds: &mut Bounds,
) -> u16 {
    let mut exact = Bounds {
        lo: Instant::from_millis(u64::MAX),
        hi: Instant::ZERO,
    };
    let mut due = 0;
    for i in set_bits(u32::from(members)) {
        if let Some(&d) = next_due.get(i) {
            exact.lo = exact.lo.min(d);
            exact.hi = exact.hi.max(d);
            due |= u16::from(d <= now) << i;
        }
    }
    *bounds = exact;
    due
}

/// Bit of each message in [`Message::SINGLE_FRAME`] order.
const fn bits(messages: &[Message]) -> u16 {
    let mut b = 0;
    let mut k = 0;
    while k < messages.len() {
        let mut i = 0;
        while i < SINGLE_FRAMES {
            if Message::SINGLE_FRAME[i] as u8 == messages[k] as u8 {
                b |= 1 << i;
            }
            i += 1;
        }
        k += 1;
    }
    b
}

/// Messages encoded again from every new telemetry: those that carry measurements
/// (voltages, current, charge), which change at nearly every step, and those of period
/// 1 s, which are encoded at most once a second.
///
/// Trick: comparing the inputs of a 1 s message at every update costs more than encoding
/// it once a second, so only the 100 ms messages built from slow inputs are compared.
const ALWAYS_STALE: u16 = {
    use Message::*;
    bits(&[
        Hves1D1,
        Hves1D2,
        Hves1D6,
        Hves1D7,
        Temperatures,
        Limits,
        Alarms,
        Capacity,
    ])
};

/// The single-frame messages whose payload may differ between `old` and `new`: the
/// [`ALWAYS_STALE`] ones, and the others when one of their inputs changed (the inputs as
/// read by the encoders of [`super::messages`]).
///
/// Trick: a few comparisons of limits, temperatures and states per step spare the
/// encoding of the 100 ms messages built from them only, which hold still for long
/// periods.
fn changed_messages(old: &Telemetry, new: &Telemetry) -> u16 {
    use Message::*;
    let (o, n) = (&old.limits, &new.limits);
    let mut m = ALWAYS_STALE;
    if o.charge_current != n.charge_current || o.discharge_current != n.discharge_current {
        m |= bits(&[Hves1D5]);
    }
    if old.faults != new.faults {
        m |= bits(&[Hves1S1]);
    }
    if old.cell_temps != new.cell_temps {
        m |= bits(&[Hves1D3]);
    }
    if old.precharge_fet != new.precharge_fet
        || old.charge_fet != new.charge_fet
        || old.discharge_fet != new.discharge_fet
        || old.balance_mask != new.balance_mask
    {
        m |= bits(&[Hves1S1, Status]);
    }
    if old.mode != new.mode || old.cell_count != new.cell_count {
        m |= bits(&[Status]);
    }
    m
}

/// `*to = from.clone()`, in place and field by field.
///
/// Trick: a copy of the whole snapshot (about 200 bytes) is, on a Cortex-M, a call of the
/// library's word-by-word `memcpy`; field stores and the cells in halves (copies the
/// compiler inlines as multiple loads and stores) cost a fraction of it. The destructuring
/// lists every field, so that a new field of `Telemetry` fails to compile here.
fn copy_telemetry(to: &mut Telemetry, from: &Telemetry) {
    let &Telemetry {
        now,
        cell_count,
        cells: _,
        cell_range,
        pack_voltage,
        load_voltage,
        current,
        cell_temps,
        mos_temp,
        balance_temp,
        soc,
        soh,
        remaining,
        full_capacity,
        nominal_capacity,
        cycles,
        charge_fet,
        discharge_fet,
        precharge_fet,
        balance_mask,
        faults,
        warnings,
        mode,
        limits,
        total_charged,
        total_discharged,
    } = from;
    let (to_lo, to_hi) = to.cells.split_at_mut(MAX_CELLS / 2);
    let (lo, hi) = from.cells.split_at(MAX_CELLS / 2);
    to_lo.copy_from_slice(lo);
    to_hi.copy_from_slice(hi);
    to.now = now;
    to.cell_count = cell_count;
    to.cell_range = cell_range;
    to.pack_voltage = pack_voltage;
    to.load_voltage = load_voltage;
    to.current = current;
    to.cell_temps = cell_temps;
    to.mos_temp = mos_temp;
    to.balance_temp = balance_temp;
    to.soc = soc;
    to.soh = soh;
    to.remaining = remaining;
    to.full_capacity = full_capacity;
    to.nominal_capacity = nominal_capacity;
    to.cycles = cycles;
    to.charge_fet = charge_fet;
    to.discharge_fet = discharge_fet;
    to.precharge_fet = precharge_fet;
    to.balance_mask = balance_mask;
    to.faults = faults;
    to.warnings = warnings;
    to.mode = mode;
    to.limits = limits;
    to.total_charged = total_charged;
    to.total_discharged = total_discharged;
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
            next_due: [Instant::ZERO; SINGLE_FRAMES],
            bounds: [Bounds {
                lo: Instant::ZERO,
                hi: Instant::ZERO,
            }; CLASS_COUNT],
            pass: Pass {
                at: Instant::ZERO,
                due: 0,
                uniform: 0,
            },
            payloads: [[0; 8]; SLOTS],
            fresh: 0,
            quiet_at: OptInstant::NONE,
            urgent_at: Instant::ZERO,
            calm_until: Instant::ZERO,
            dm1_due: OptInstant::NONE,
            cells_due: OptInstant::NONE,
            dm2_due: OptInstant::NONE,
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
        self.quiet_at = OptInstant::NONE;
        match &mut self.telemetry {
            Some(old) => {
                self.fresh &= !changed_messages(old, telemetry);
                copy_telemetry(old, telemetry);
            }
            None => {
                self.fresh = 0;
                self.telemetry = Some(*telemetry);
            }
        }
        if self.dtcs.update(telemetry.faults, telemetry.warnings) {
            self.dm1_due = OptInstant::some(now);
            self.wake();
        }
        self.advance(now);
        // Trick: the two messages encoded at nearly every step (stale now: they are
        // [`ALWAYS_STALE`]) are encoded here, from the borrowed snapshot, when due at
        // `now` (in the usual step they are sent at once): the pass of `now` then seldom
        // needs a call of the encoder.
        let [d1, d2, ..] = self.next_due;
        if d1 <= now && d2 <= now {
            let [p1, p2, ..] = &mut self.payloads;
            *p1 = ENCODERS[0](telemetry).to_le_bytes();
            *p2 = ENCODERS[1](telemetry).to_le_bytes();
            self.fresh |= HOT as u16;
        }
        // New telemetry within a pass: what is left of it is encoded again.
        self.refresh(self.pass.due & !self.fresh);
    }

    /// Processes one received frame (within the step's receive budget).
    pub fn handle_frame(&mut self, now: Instant, frame: &CanFrame) {
        self.quiet_at = OptInstant::NONE;
        // A frame may queue an answer, request a claim, move DM1 or lose the address.
        self.wake();
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
                Ok(Some(_)) => self.stats.bam_received = self.stats.bam_received.saturating_add(1),
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
        // Trick: once the checks that come before the periodic messages found nothing at
        // `now`, they find nothing at `now` until `update`, `handle_frame` or a BAM start
        // (which reset `quiet_at`), so the following polls skip them. Before `urgent_at`
        // they find nothing either (one comparison instead of the call).
        if self.quiet_at.get() != Some(now) && now >= self.urgent_at {
            let urgent = self.poll_before_periodic(now);
            if urgent.is_some() || self.quiet_at.get() != Some(now) {
                return urgent;
            }
        }
        let ClaimState::Claimed(sa) = self.claim else {
            return None;
        };
        if let Some(f) = self.poll_periodic(now, sa) {
            return Some(f);
        }
        self.poll_after_periodic(now, sa)
    }

    /// What follows the periodic messages at `now`: a BAM start, or nothing.
    #[inline]
    fn poll_after_periodic(&mut self, now: Instant, sa: u8) -> Option<CanFrame> {
        self.quiet_at = OptInstant::NONE;
        // Trick: the common "no BAM to start" is decided here, without the call.
        let due = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        let cells = due(self.cells_due.get()) && self.telemetry.is_some();
        if self.bam.is_some() || !(due(self.dm1_due.get()) || due(self.dm2_due.get()) || cells) {
            return None;
        }
        self.poll_bam_start(now, sa)
    }

    /// Hands every frame to send at `now` to `send`: the frames, in the order, that calls
    /// of [`J1939Node::poll_transmit`] until `None` return.
    ///
    /// Trick: a run of periodic messages (most of every step) goes out in one loop,
    /// without the checks that each call of `poll_transmit` repeats.
    ///
    /// ```
    /// use bms_core::j1939::{J1939Config, J1939Node};
    /// use bms_core::{Instant, Telemetry};
    /// let mut node = J1939Node::new(J1939Config::default());
    /// node.update(Instant::ZERO, &Telemetry::empty(16));
    /// let mut sent = Vec::new();
    /// node.drain_transmit(Instant::ZERO, |f| sent.push(f));
    /// assert_eq!(sent.len(), 1); // the address claim, alone
    /// let t = Instant::from_millis(250);
    /// node.drain_transmit(t, |f| sent.push(f));
    /// assert_eq!(sent.len(), 15); // 12 data messages, DM1, the cell-voltage BAM's TP.CM
    /// assert_eq!(node.poll_transmit(t), None);
    /// ```
    pub fn drain_transmit(&mut self, now: Instant, mut send: impl FnMut(CanFrame)) {
        // Trick: the common step (a new instant before `calm_until`: nothing due but the
        // running BAM's next packet, a single-frame DM1 and periodic messages) takes a
        // short path that skips most checks before and after them; `calm_until` is
        // non-zero only while the address is ours and with telemetry.
        if now < self.calm_until && now != self.pass.at {
            if let ClaimState::Claimed(sa) = self.claim {
                if now >= self.urgent_at {
                    // Only the BAM or DM1 can be urgent (see `calm_bound`).
                    let Some(f) = self.calm_urgent(now, sa) else {
                        return self.drain_slow(now, send);
                    };
                    send(f);
                    if self.quiet_at.get() != Some(now) {
                        return self.drain_slow(now, send); // more urgent frames at `now`
                    }
                }
                let due = self.take_new_pass(now);
                self.quiet_at = OptInstant::NONE; // as `poll_after_periodic` leaves it
                self.send_periodic(due, sa, &mut send);
                return;
            }
        }
        self.drain_slow(now, send);
    }

    /// [`J1939Node::drain_transmit`] in general: the steps of `poll_transmit`, with each
    /// run of periodic messages sent in one loop (no call and no checks per frame); at
    /// its end, computes `calm_until`.
    #[inline(never)]
    fn drain_slow(&mut self, now: Instant, mut send: impl FnMut(CanFrame)) {
        loop {
            if self.quiet_at.get() != Some(now) && now >= self.urgent_at {
                if let Some(f) = self.poll_before_periodic(now) {
                    send(f);
                    continue;
                }
                if self.quiet_at.get() != Some(now) {
                    return;
                }
            }
            let ClaimState::Claimed(sa) = self.claim else {
                return;
            };
            if self.telemetry.is_some() {
                // Trick: the pass is rescheduled at once, then each frame is a copy. (Should
                // `send` panic, the frames of the pass not handed over yet are skipped until
                // their next due time.)
                let due = if now != self.pass.at {
                    self.take_new_pass(now)
                } else {
                    self.reschedule_pass(now)
                };
                self.send_periodic(due, sa, &mut send);
            }
            match self.poll_after_periodic(now, sa) {
                Some(f) => send(f),
                None => {
                    self.calm_until = self.calm_bound();
                    return;
                }
            }
        }
    }

    /// With the address ours, no answer queued and everything due at the last instant
    /// sent: an instant before which `drain_transmit` finds nothing but the running
    /// BAM's next packet, a single-frame DM1 and periodic messages, or `Instant::ZERO`
    /// without telemetry. Before it, the checks before the periodic messages find nothing
    /// else (the receive timeout) and no BAM starts (the timers of a multi-packet DM1,
    /// DM2 and the cell voltages).
    ///
    /// It stays a lower bound until the events that reset `urgent_at` (see
    /// [`J1939Node::wake`]), which reset it too; other changes only delay these instants
    /// (whether DM1 fits a frame changes with the DTCs: `update` wakes the node then).
    fn calm_bound(&self) -> Instant {
        if self.telemetry.is_none() {
            return Instant::ZERO;
        }
        let never = Instant::from_millis(u64::MAX);
        let rx = self.rx.poll_timeout().unwrap_or(never);
        // A single-frame DM1 goes out before the periodic messages, never by BAM.
        let dm1 = if self.dtcs.dm1_fits_frame() {
            OptInstant::NONE
        } else {
            self.dm1_due
        };
        [dm1, self.dm2_due, self.cells_due]
            .into_iter()
            .fold(rx, |c, d| c.min(d.get().unwrap_or(never)))
    }

    /// Before `calm_until`, at or after `urgent_at`: the frame `poll_before_periodic`
    /// gives (the running BAM's next packet, or a single-frame DM1), with the same state
    /// after, or `None` (nothing taken) when it has neither. `quiet_at` is then `now`
    /// when the checks before the periodic messages have nothing more at `now`.
    ///
    /// Trick: out of line, so that the short path of `drain_transmit` stays small.
    #[inline(never)]
    fn calm_urgent(&mut self, now: Instant, sa: u8) -> Option<CanFrame> {
        // Before `calm_until`, `advance` has nothing to do and no answer is queued (an
        // answer comes with `handle_frame`, which resets `calm_until`).
        if let Some(bam) = self.bam.as_mut() {
            if let Some(dt) = bam.poll(now) {
                if bam.next_due().is_none() {
                    // The last packet: the next check at `now`, which this drain makes,
                    // ends the BAM.
                    self.bam = None;
                }
                self.quiet_at = OptInstant::NONE;
                self.settle(now);
                return Some(CanFrame::extended8(TP_DT_ID | u32::from(sa), dt));
            }
            // Finished (no next packet): `poll_before_periodic` clears it.
            bam.next_due()?;
        }
        let dm1 = self.poll_dm1_single(now, sa)?;
        self.quiet_at = OptInstant::NONE;
        self.settle(now);
        Some(dm1)
    }

    /// Forgets `urgent_at` and `calm_until`: something may be due at once.
    fn wake(&mut self) {
        self.urgent_at = Instant::ZERO;
        self.calm_until = Instant::ZERO;
    }

    /// Hands the frames of the periodic messages `due` (rescheduled, with fresh payloads)
    /// to `send`, from address `sa`.
    #[inline(always)]
    fn send_periodic(&self, due: u16, sa: u8, send: &mut impl FnMut(CanFrame)) {
        let sa = u32::from(sa);
        // Trick: the usual pass (the 100 ms class whole, its members consecutive) is sent
        // by a loop of constant bounds, which the compiler unrolls: no bit scan per frame.
        const FIRST: Class = CLASSES[0];
        if due == FIRST.members && FIRST.start != FIRST.end {
            for i in FIRST.start..FIRST.end {
                if let (Some(&id), Some(&payload)) = (IDS.get(i), self.payloads.get(i)) {
                    send(CanFrame::extended8_tagged(id | sa, payload));
                }
            }
            return;
        }
        let mut due = u32::from(due);
        // Trick: the bit loop written out, not `set_bits`: on this per-frame path the
        // iterator's end test costs a Cortex-M about 12 instructions a step; the index
        // masked to the tables' 16 entries needs no bounds check.
        while due != 0 {
            let i = due.trailing_zeros() as usize & (SLOTS - 1);
            due &= due - 1;
            if let (Some(&id), Some(&payload)) = (IDS.get(i), self.payloads.get(i)) {
                send(CanFrame::extended8_tagged(id | sa, payload));
            }
        }
    }

    /// The checks before the periodic messages: the frame they give at `now`, if any;
    /// without one, `quiet_at` is `now` when the periodic messages may follow (the
    /// address is ours), `None` when the node is silent.
    ///
    /// Address claim, answers, the running BAM's next packet and a single-frame DM1.
    ///
    /// Trick: out of line, once per instant, so that the per-frame path stays small; the
    /// result is a plain `Option` (no nested one to build and test).
    #[inline(never)]
    fn poll_before_periodic(&mut self, now: Instant) -> Option<CanFrame> {
        self.quiet_at = OptInstant::NONE;
        self.advance(now);
        let sa = match self.claim {
            ClaimState::Claimed(a) if !self.claim_requested => a,
            // Claim frames; without one the address is not ours (a claimed address with a
            // request pending always gives its claim), so the node stays silent.
            _ => return self.poll_claim(now),
        };
        if let Some(f) = self.tx.pop_front() {
            return Some(f);
        }
        if let Some(bam) = self.bam.as_mut() {
            if let Some(dt) = bam.poll(now) {
                self.settle(now);
                return Some(CanFrame::extended8(TP_DT_ID | u32::from(sa), dt));
            }
            if bam.next_due().is_none() {
                self.bam = None;
            }
        }
        let dm1 = self.poll_dm1_single(now, sa);
        if dm1.is_none() {
            self.quiet_at = OptInstant::some(now);
            self.urgent_at = self.next_urgent();
        } else {
            self.settle(now);
        }
        dm1
    }

    /// After `poll_before_periodic` gave a BAM packet or a DM1, or a BAM started, at `now`
    /// with no answer queued: does what the next call of `poll_before_periodic` at `now`
    /// would do when that call finds nothing
    /// (it would find the running BAM's next packet if due at `now`, clear a finished
    /// BAM, or give a DM1 still due), and leaves the state alone otherwise.
    ///
    /// Trick: spares that second call (a whole check of the state) after most frames.
    fn settle(&mut self, now: Instant) {
        if let Some(bam) = &self.bam {
            match bam.next_due() {
                Some(d) if d > now => {}
                _ => return,
            }
        }
        if self.dm1_due.get().is_some_and(|d| d <= now) && self.dtcs.dm1_fits_frame() {
            return;
        }
        self.quiet_at = OptInstant::some(now);
        self.urgent_at = self.next_urgent();
    }

    /// With the address ours, no claim requested, no answer queued and nothing due at the
    /// last instant checked: the earliest instant at which the checks before the periodic
    /// messages can give a frame or move state (the running BAM's next packet, a
    /// single-frame DM1, the receive session's timeout).
    ///
    /// It stays a lower bound until `handle_frame` (anything may change), `update` with a
    /// DTC change (DM1 due at once) or a BAM start (its packets), which reset it; other
    /// changes only delay these instants.
    fn next_urgent(&self) -> Instant {
        let mut u = Instant::from_millis(u64::MAX);
        let mut add = |d: Option<Instant>| {
            if let Some(d) = d {
                u = u.min(d);
            }
        };
        add(self.rx.poll_timeout());
        add(self.bam.as_ref().and_then(BamSender::next_due));
        if self.dtcs.dm1_fits_frame() {
            add(self.dm1_due.get());
        }
        u
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
                if self.bam.is_none() || self.dtcs.dm1_fits_frame() {
                    add(self.dm1_due.get());
                }
                if self.bam.is_none() {
                    add(self.cells_due.get().filter(|_| self.telemetry.is_some()));
                    add(self.dm2_due.get());
                }
                if self.telemetry.is_some() {
                    for d in self.next_due {
                        add(Some(d));
                    }
                }
            }
        }
        t
    }

    /// Address claim frames, and silence until the address is ours.
    ///
    /// Trick: out of line (`cold`), so that the per-step path keeps a small stack frame.
    #[cold]
    fn poll_claim(&mut self, now: Instant) -> Option<CanFrame> {
        let name = self.config.name.to_le_bytes();
        let requested = core::mem::take(&mut self.claim_requested);
        let sa = match self.claim {
            ClaimState::Pending(a) => {
                self.claim = ClaimState::Claiming(a, now + CLAIM_WAIT);
                a
            }
            ClaimState::CannotClaim if requested => NULL,
            ClaimState::Claiming(a, _) | ClaimState::Claimed(a) if requested => a,
            _ => return None,
        };
        frame(PRIO_CLAIM, Pgn::ADDRESS_CLAIMED, GLOBAL, sa, &name)
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
                self.next_due = [now; SINGLE_FRAMES];
                // All due in the pass started here: sent, each is due by `now + period`.
                for (b, class) in self.bounds.iter_mut().zip(&CLASSES) {
                    *b = Bounds {
                        lo: now,
                        hi: now + class.period,
                    };
                }
                self.pass = Pass {
                    at: now,
                    due: ALL_DUE,
                    uniform: ALL_CLASSES, // all due at `now`, which is `lo`
                };
                self.refresh(ALL_DUE & !self.fresh);
                self.dm1_due = OptInstant::some(now);
                self.cells_due = OptInstant::some(now);
                self.wake();
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
            ClaimState::Pending(a) | ClaimState::Claiming(a, _) | ClaimState::Claimed(a) => Some(a),
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
            Pgn::DM1 => self.dm1_due = OptInstant::some(now),
            Pgn::DM2 => match self.dm_single_frame(Pgn::DM2, sa) {
                Some(f) => self.push_tx(Some(f)),
                None => self.dm2_due = OptInstant::some(now), // multi-packet: by BAM
            },
            Pgn::DM3 | Pgn::DM11 => {
                if req.pgn == Pgn::DM3 {
                    self.dtcs.clear_previous();
                } else {
                    self.dtcs.clear_active();
                    self.dm1_due = OptInstant::some(now);
                }
                if specific {
                    self.ack(AckControl::Ack, 0xFF, from, req.pgn);
                }
            }
            pgn => match (Message::from_pgn(pgn), &self.telemetry) {
                (Some(Message::CellVoltages), Some(_)) => self.cells_due = OptInstant::some(now),
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
        let due = self.dm1_due.get().filter(|&d| d <= now)?;
        // Trick: DM1 needs more than 8 bytes exactly when two or more DTCs are active, so
        // the count decides without building the payload.
        if !self.dtcs.dm1_fits_frame() {
            return None; // multi-packet: started by poll_bam_start
        }
        self.dm1_due = OptInstant::some(reschedule(due, now, DM1_PERIOD));
        let payload = self.dtcs.dm1_single()?;
        Some(CanFrame::extended8_tagged(DM1_ID | u32::from(sa), payload))
    }

    /// The DM1 or DM2 frame, `None` when the payload needs the transport protocol.
    ///
    /// Trick: out of line, so that its buffer stays off the per-step path's stack frame.
    #[inline(never)]
    fn dm_single_frame(&self, pgn: Pgn, sa: u8) -> Option<CanFrame> {
        let mut buf = [0; MAX_DM_LEN];
        let n = if pgn == Pgn::DM1 {
            self.dtcs.dm1(&mut buf)
        } else {
            self.dtcs.dm2(&mut buf)
        };
        if n > 8 {
            return None;
        }
        frame(PRIO_DIAG, pgn, GLOBAL, sa, buf.get(..n)?)
    }

    /// The first message of [`Message::SINGLE_FRAME`] due at `now`, rescheduled.
    #[inline]
    fn poll_periodic(&mut self, now: Instant, sa: u8) -> Option<CanFrame> {
        self.telemetry.as_ref()?; // nothing to encode yet
        if now != self.pass.at {
            self.start_pass(now);
            self.raise_bounds(now);
        }
        self.next_periodic(now, sa)
    }

    /// Raises the upper bound of each class with messages in the pass of `now` to
    /// `now + period`, the latest instant at which a message sent in the pass is due
    /// again (for the sends one at a time of `poll_transmit`; `drain_transmit`
    /// reschedules the pass at once and sets the bounds itself).
    #[inline(never)]
    fn raise_bounds(&mut self, now: Instant) {
        for (class, b) in CLASSES.iter().zip(&mut self.bounds) {
            if self.pass.due & class.members != 0 {
                b.hi = b.hi.max(now + class.period);
            }
        }
    }

    /// The next message of the pass (started at `now`), rescheduled; `None` at its end.
    #[inline]
    fn next_periodic(&mut self, now: Instant, sa: u8) -> Option<CanFrame> {
        let due = self.pass.due;
        if due == 0 {
            return None;
        }
        self.pass.due = due & (due - 1);
        let i = due.trailing_zeros() as usize;
        let (Some(next), Some(&period), Some(&id)) =
            (self.next_due.get_mut(i), PERIODS.get(i), IDS.get(i))
        else {
            return None;
        };
        *next = reschedule(*next, now, period);
        // The payload is that of the current telemetry (the pass's messages are fresh).
        let payload = self.payloads.get(i)?;
        Some(CanFrame::extended8_tagged(id | u32::from(sa), *payload))
    }

    /// Starts the pass of `now`: the messages due then.
    #[inline(never)]
    fn start_pass(&mut self, now: Instant) {
        let (due, uniform) = self.due_at(now);
        self.pass = Pass {
            at: now,
            due,
            uniform,
        };
        self.refresh(due & !self.fresh);
    }

    /// Starts the pass of `now` and takes it whole at once: [`J1939Node::start_pass`]
    /// then [`J1939Node::reschedule_pass`] (the messages due, rescheduled, with fresh
    /// frames; the pass left empty).
    ///
    /// Trick: one call and no pass stored and read back, for the common new instant of
    /// `drain_transmit`.
    #[inline(never)]
    fn take_new_pass(&mut self, now: Instant) -> u16 {
        // Trick: the steady state of each class (due whole, its members at one instant,
        // or not due at all) is decided and rescheduled with a test or two, the classes
        // written out (constant ranges, unrolled fills); the other cases take the general
        // computation, out of line.
        const _: () = assert!(CLASS_COUNT == 2);
        // Trick: "not steady" is a bit no message uses, so one test of the union of the two
        // answers finds the steady case (no option to build and take apart).
        let (a, b) = (self.steady_class::<0>(now), self.steady_class::<1>(now));
        let due = if (a | b) & NOT_STEADY == 0 {
            a | b
        } else {
            let steady = (a & !NOT_STEADY) | (b & !NOT_STEADY);
            steady | self.take_general(now, ALL_DUE & !steady)
        };
        self.pass = Pass {
            at: now,
            due: 0,
            uniform: 0,
        };
        self.refresh(due & !self.fresh);
        due
    }

    /// Class `C` of [`CLASSES`] in its steady state at `now`: none of it due (`0`), or all
    /// of it due at one instant (its members, rescheduled); [`NOT_STEADY`] otherwise
    /// (nothing changed).
    #[inline(always)]
    fn steady_class<const C: usize>(&mut self, now: Instant) -> u16 {
        let class = CLASSES[C];
        let b = self.bounds[C];
        if now < b.lo {
            return 0;
        }
        if now < b.hi || b.lo != b.hi || class.start == class.end {
            return NOT_STEADY;
        }
        let next = reschedule(b.lo, now, class.period);
        let Some(run) = self.next_due.get_mut(class.start..class.end) else {
            return NOT_STEADY;
        };
        run.fill(next);
        self.bounds[C] = Bounds { lo: next, hi: next };
        class.members
    }

    /// The part of [`J1939Node::take_new_pass`] for the classes not in their steady
    /// state (`general`: their members): their members due at `now`, rescheduled.
    #[cold]
    #[inline(never)]
    fn take_general(&mut self, now: Instant, general: u16) -> u16 {
        // The other classes are rescheduled past `now`: none of their members is due.
        let (due, uniform) = self.due_at(now);
        self.reschedule(due & general, uniform, now);
        due & general
    }

    /// The messages due at `now` and the classes of [`Pass::uniform`]; makes the bounds
    /// of a class exact where it scans the class.
    #[inline(always)]
    fn due_at(&mut self, now: Instant) -> (u16, u8) {
        let mut due = 0;
        let mut uniform = 0;
        for (c, (class, b)) in CLASSES.iter().zip(&mut self.bounds).enumerate() {
            let members = if now >= b.hi {
                uniform |= u8::from(b.lo == b.hi) << c;
                class.members
            } else if now < b.lo {
                0
            } else {
                scan_class(&self.next_due, class.members, now, b)
            };
            due |= members;
        }
        (due, uniform)
    }

    /// Reschedules every message left in the pass of `now` as sending it does, and
    /// empties the pass: what [`J1939Node::drain_transmit`] does before it sends them all.
    /// The class bounds become exact for each class rescheduled whole, and hold the new
    /// due times of the others.
    ///
    /// Trick: a class whose members were all due at one instant (the steady state: a
    /// class is sent whole, every period) is rescheduled with one computation, not one per
    /// message (64-bit arithmetic, dear on a Cortex-M).
    #[inline(never)]
    fn reschedule_pass(&mut self, now: Instant) -> u16 {
        let due = core::mem::take(&mut self.pass.due);
        let uniform = core::mem::take(&mut self.pass.uniform);
        self.reschedule(due, uniform, now);
        due
    }

    /// The body of [`J1939Node::reschedule_pass`]: reschedules the messages `due` (of the
    /// pass of `now`, with its `uniform` classes).
    #[inline(always)]
    fn reschedule(&mut self, due: u16, uniform: u8, now: Instant) {
        for (c, (class, b)) in CLASSES.iter().zip(&mut self.bounds).enumerate() {
            let pending = due & class.members;
            if pending == 0 {
                continue;
            }
            let whole = pending == class.members;
            if whole && uniform & 1 << c != 0 {
                let next = reschedule(b.lo, now, class.period);
                // Trick: consecutive members take one fill (unrolled stores).
                if let Some(run) = self.next_due.get_mut(class.start..class.end) {
                    if !run.is_empty() {
                        run.fill(next);
                        *b = Bounds { lo: next, hi: next };
                        continue;
                    }
                }
                let mut rest = pending;
                while rest != 0 {
                    let i = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    if let Some(d) = self.next_due.get_mut(i) {
                        *d = next;
                    }
                }
                *b = Bounds { lo: next, hi: next };
                continue;
            }
            let mut exact = Bounds {
                lo: Instant::from_millis(u64::MAX),
                hi: Instant::ZERO,
            };
            let mut rest = pending;
            while rest != 0 {
                let i = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                if let Some(d) = self.next_due.get_mut(i) {
                    *d = reschedule(*d, now, class.period);
                    exact.lo = exact.lo.min(*d);
                    exact.hi = exact.hi.max(*d);
                }
            }
            if whole {
                *b = exact;
            } else {
                b.hi = b.hi.max(exact.hi);
            }
        }
    }

    /// Encodes the messages `stale` (bit `i`: message `i` of [`Message::SINGLE_FRAME`])
    /// from the telemetry and keeps their payloads, fresh.
    ///
    /// Keeps the invariant that the messages left in the pass have fresh payloads (with
    /// telemetry): called where the pass gains messages (its start, the claim) and where
    /// payloads go stale (new telemetry).
    ///
    /// Trick: the messages of a pass that need encoding are encoded in one call at its
    /// start, so that sending a frame only copies its payload (no test, no call).
    #[inline]
    fn refresh(&mut self, stale: u16) {
        if stale != 0 {
            self.encode(stale);
        }
    }

    /// The body of [`J1939Node::refresh`], out of line.
    #[inline(never)]
    fn encode(&mut self, stale: u16) {
        let Some(t) = self.telemetry.as_ref() else {
            return;
        };
        let mut rest = u32::from(stale);
        // Trick: the messages encoded at nearly every step (the first two) are encoded
        // with direct, inlined calls, not through the table.
        if rest & HOT == HOT {
            let (d1, d2) = (ENCODERS[0](t), ENCODERS[1](t));
            let [p1, p2, ..] = &mut self.payloads;
            (*p1, *p2) = (d1.to_le_bytes(), d2.to_le_bytes());
            rest &= !HOT;
        }
        while rest != 0 {
            // Masked to the tables' 16 entries: no bounds check.
            let i = rest.trailing_zeros() as usize & (SLOTS - 1);
            rest &= rest - 1;
            if let (Some(p), Some(encode)) = (self.payloads.get_mut(i), ENCODERS.get(i)) {
                *p = encode(t).to_le_bytes();
            }
        }
        self.fresh |= stale;
    }

    /// Trick: out of line, so that its buffers stay off the per-step path's stack frame.
    #[inline(never)]
    fn poll_bam_start(&mut self, now: Instant, sa: u8) -> Option<CanFrame> {
        if self.bam.is_some() {
            return None;
        }
        let cells = match self.telemetry {
            Some(_) => self.cells_due,
            None => OptInstant::NONE,
        };
        // Earliest due first; ties go to DM1, then DM2, then cells (plain comparisons:
        // smaller code than a `min` over optional pairs).
        let mut pick = None;
        for (kind, d) in [self.dm1_due, self.dm2_due, cells].into_iter().enumerate() {
            match (d.get(), pick) {
                (Some(d), Some((at, _))) if d < at => pick = Some((d, kind)),
                (Some(d), None) if d <= now => pick = Some((d, kind)),
                _ => {}
            }
        }
        let (at, kind) = pick?;
        let mut buf = [0xFF; MAX_DM_LEN];
        let (pgn, len) = match kind {
            0 => {
                self.dm1_due = OptInstant::some(reschedule(at, now, DM1_PERIOD));
                (Pgn::DM1, self.dtcs.dm1(&mut buf))
            }
            1 => {
                self.dm2_due = OptInstant::NONE;
                (Pgn::DM2, self.dtcs.dm2(&mut buf))
            }
            _ => {
                let period = Duration::from_millis(Message::CellVoltages.period_ms());
                self.cells_due = OptInstant::some(reschedule(at, now, period));
                let cells = buf.first_chunk_mut::<CELL_VOLTAGES_LEN>()?;
                encode_cell_voltages(self.telemetry.as_ref()?, cells);
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
        // Its packets are urgent. Trick: no answer is queued here (the checks before the
        // periodic messages came first), so the next check at `now` is the one `settle`
        // spares.
        self.wake();
        self.settle(now);
        Some(CanFrame::extended8(TP_CM_ID | u32::from(sa), cm))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;
    use crate::protect::{Fault, FaultSet};

    fn raw(f: &CanFrame) -> u32 {
        f.raw_id().0
    }

    fn drain(n: &mut J1939Node, now: Instant) -> heapless::Vec<CanFrame, 64> {
        let mut v = heapless::Vec::new();
        while let Some(f) = n.poll_transmit(now) {
            v.push(f).unwrap();
        }
        v
    }

    fn claimed() -> J1939Node {
        let mut n = J1939Node::new(J1939Config::default());
        n.update(Instant::ZERO, &Telemetry::empty(16));
        drain(&mut n, Instant::ZERO);
        drain(&mut n, Instant::from_millis(250));
        n
    }

    fn ext(raw: u32, d: &[u8]) -> CanFrame {
        CanFrame::extended(raw, d).unwrap()
    }

    #[test]
    fn claim_first_then_silence() {
        let mut n = J1939Node::new(J1939Config::default());
        n.update(Instant::ZERO, &Telemetry::empty(16));
        let f = drain(&mut n, Instant::ZERO);
        assert_eq!(f.len(), 1);
        assert_eq!(raw(&f[0]), 0x18EE_FFF3);
        assert!(drain(&mut n, Instant::from_millis(249)).is_empty());
        assert_eq!(n.poll_timeout(), Some(Instant::from_millis(250)));
        let f = drain(&mut n, Instant::from_millis(250));
        // 12 single-frame messages, DM1, and the cell-voltage BAM announcement.
        assert_eq!(f.len(), 14);
        assert_eq!(raw(&f[0]), 0x18FE_CAF3);
        assert_eq!(raw(&f[13]), 0x1CEC_FFF3);
    }

    /// DM1 and the cell voltages both need a BAM at the claim: DM1 (due first on a tie)
    /// starts, the cells wait for its end.
    #[test]
    fn bam_tie_goes_to_dm1() {
        let mut n = J1939Node::new(J1939Config::default());
        let mut tel = Telemetry::empty(16);
        tel.faults = FaultSet::from_iter([Fault::CellOv, Fault::MosOt]);
        n.update(Instant::ZERO, &tel);
        drain(&mut n, Instant::ZERO);
        let f = drain(&mut n, Instant::from_millis(250));
        let cms: heapless::Vec<_, 4> = f.iter().filter(|f| raw(f) == 0x1CEC_FFF3).collect();
        assert_eq!(cms.len(), 1);
        assert_eq!(cms[0].data()[5..], [0xCA, 0xFE, 0x00]);
        assert_eq!(n.poll_timeout(), Some(Instant::from_millis(310)));
    }

    /// The classes split the single-frame messages by period.
    #[test]
    fn classes_partition_by_period() {
        let mut all = 0;
        for c in CLASSES {
            assert_eq!(all & c.members, 0);
            all |= c.members;
            for (i, p) in PERIODS.iter().enumerate() {
                assert_eq!(c.members & 1 << i != 0, *p == c.period);
            }
        }
        assert_eq!(all, ALL_DUE);
        assert_eq!(CLASS_COUNT, 2);
        // Both classes are runs of consecutive messages (the cheaper reschedule).
        assert_eq!((CLASSES[0].start, CLASSES[0].end), (0, 6));
        assert_eq!((CLASSES[1].start, CLASSES[1].end), (6, 12));
    }

    /// In the firmware's steady pattern (telemetry, then `drain_transmit`, every 100 ms)
    /// the node takes `drain_transmit`'s short path at every step but the first ones
    /// (claim) and the cell-voltage BAM starts (every 2 s), DM1 and BAM packets included.
    #[test]
    fn steady_steps_take_the_short_path() {
        let mut n = J1939Node::new(J1939Config::default());
        let tel = Telemetry::empty(16);
        let mut short = 0;
        for k in 0..100 {
            let now = Instant::from_millis(100 * k);
            n.update(now, &tel);
            short += u32::from(now < n.calm_until && now != n.pass.at);
            n.drain_transmit(now, |_| {});
        }
        // Long ones: 0..=300 ms (the claim, complete at 300 ms with the first cell
        // BAM), then the BAM starts at 2.3, 4.3, 6.3 and 8.3 s.
        assert_eq!(short, 100 - 4 - 4);
    }

    /// `copy_telemetry` copies every field: into an empty snapshot, a snapshot with every
    /// field set gives its equal.
    #[test]
    fn copy_telemetry_is_clone() {
        use crate::units::{DeciCelsius, MilliAmpHours, MilliAmps, MilliVolts, Permille, Soc};
        use crate::PowerMode;
        let mv = MilliVolts::from_mv;
        let mut t = Telemetry::empty(20);
        t.now = Instant::from_millis(12_345);
        for (i, c) in t.cells.iter_mut().enumerate() {
            *c = mv(3_000 + i as u32);
        }
        t.cell_range = Some((mv(3_000), mv(3_019)));
        t.pack_voltage = mv(63_190);
        t.load_voltage = mv(63_000);
        t.current = MilliAmps::from_ma(-1_234);
        t.cell_temps = [Some(DeciCelsius::from_deci(251)), None];
        t.mos_temp = Some(DeciCelsius::from_deci(-5));
        t.balance_temp = Some(DeciCelsius::from_deci(300));
        t.soc = Soc::from_permille_clamped(777);
        t.soh = Permille::from_permille(950);
        t.remaining = MilliAmpHours::from_mah(1);
        t.full_capacity = MilliAmpHours::from_mah(2);
        t.nominal_capacity = MilliAmpHours::from_mah(3);
        t.cycles = 4;
        (t.charge_fet, t.discharge_fet, t.precharge_fet) = (true, true, true);
        t.balance_mask = 0b1010;
        t.faults = FaultSet::from_iter([Fault::CellOv]);
        t.warnings = FaultSet::from_iter([Fault::MosOt]);
        t.mode = PowerMode::Sleep;
        t.limits.charge_voltage = mv(1);
        t.limits.charge_current = MilliAmps::from_ma(2);
        t.limits.discharge_current = MilliAmps::from_ma(3);
        t.limits.discharge_voltage = mv(4);
        t.total_charged = MilliAmpHours::from_mah(5);
        t.total_discharged = MilliAmpHours::from_mah(6);
        let mut copy = Telemetry::empty(1);
        copy_telemetry(&mut copy, &t);
        assert_eq!(copy, t);
    }

    /// The constant transport identifiers are those of the general builder, for every
    /// source address the node can claim.
    #[test]
    fn transport_ids() {
        for sa in 0..NULL {
            let dt = J1939Id::new(PRIO_TP, Pgn::TP_DT, GLOBAL, sa).unwrap();
            let cm = J1939Id::new(PRIO_TP, Pgn::TP_CM, GLOBAL, sa).unwrap();
            assert_eq!(dt.to_raw(), TP_DT_ID | u32::from(sa));
            assert_eq!(cm.to_raw(), TP_CM_ID | u32::from(sa));
            let dm1 = frame(PRIO_DIAG, Pgn::DM1, GLOBAL, sa, &[1; 8]).unwrap();
            assert_eq!(
                CanFrame::extended8_tagged(DM1_ID | u32::from(sa), [1; 8]),
                dm1
            );
        }
    }

    #[test]
    fn lose_claim_moves_address() {
        let mut n = claimed();
        // A lower NAME claims 0xF3.
        n.handle_frame(Instant::from_millis(300), &ext(0x18EE_FFF3, &[0; 8]));
        assert_eq!(n.claim_state(), ClaimState::Pending(128));
        let f = drain(&mut n, Instant::from_millis(300));
        assert_eq!(raw(&f[0]), 0x18EE_FF80);
        // Higher NAME contests 0x80: we defend.
        n.handle_frame(Instant::from_millis(310), &ext(0x18EE_FF80, &[0xFF; 8]));
        let f = drain(&mut n, Instant::from_millis(310));
        assert_eq!(raw(&f[0]), 0x18EE_FF80);
    }

    #[test]
    fn not_capable_cannot_claim() {
        let cfg = J1939Config {
            name: Name::from_fields(NameFields {
                identity_number: 5,
                ..NameFields::default()
            }),
            ..J1939Config::default()
        };
        let mut n = J1939Node::new(cfg);
        drain(&mut n, Instant::ZERO);
        n.handle_frame(Instant::from_millis(10), &ext(0x18EE_FFF3, &[0; 8]));
        assert_eq!(n.claim_state(), ClaimState::CannotClaim);
        let f = drain(&mut n, Instant::from_millis(10));
        assert_eq!(f.len(), 1);
        assert_eq!(raw(&f[0]), 0x18EE_FFFE);
        // Requests for address claim get "cannot claim" again, nothing else is sent.
        n.handle_frame(Instant::from_millis(20), &ext(0x18EA_FFF9, &[0, 0xEE, 0]));
        assert_eq!(drain(&mut n, Instant::from_millis(2_000)).len(), 1);
    }

    #[test]
    fn null_preferred_address_cannot_claim() {
        let mut n = J1939Node::new(J1939Config {
            preferred_address: 0xFE,
            ..J1939Config::default()
        });
        let f = drain(&mut n, Instant::ZERO);
        assert_eq!(f.len(), 1);
        assert_eq!(raw(&f[0]), 0x18EE_FFFE);
    }

    #[test]
    fn request_answers_and_nack() {
        let mut n = claimed();
        let t = Instant::from_millis(260);
        n.handle_frame(t, &ext(0x18EA_F3F9, &[0x91, 0xF0, 0x00]));
        assert_eq!(raw(&n.poll_transmit(t).unwrap()), 0x0CF0_91F3);
        n.handle_frame(t, &ext(0x18EA_F3F9, &[0xDA, 0xFE, 0x00]));
        let nack = n.poll_transmit(t).unwrap();
        assert_eq!(raw(&nack), 0x18E8_FFF3);
        assert_eq!(nack.data(), &[1, 0xFF, 0xFF, 0xFF, 0xF9, 0xDA, 0xFE, 0x00]);
        // Global request for an unknown PGN: silence.
        n.handle_frame(t, &ext(0x18EA_FFF9, &[0xDA, 0xFE, 0x00]));
        assert_eq!(n.poll_transmit(t), None);
        // Request to another node: ignored.
        n.handle_frame(t, &ext(0x18EA_10F9, &[0x91, 0xF0, 0x00]));
        assert_eq!(n.poll_transmit(t), None);
    }

    #[test]
    fn dm1_on_change_and_bam() {
        let mut n = claimed();
        let mut tel = Telemetry::empty(16);
        tel.faults = FaultSet::from_iter([Fault::CellOv, Fault::MosOt]);
        let t = Instant::from_millis(300);
        n.update(t, &tel);
        let f = drain(&mut n, t);
        // The cell BAM from 250 ms is still running: the DM1 BAM waits for it.
        assert!(!f.iter().any(|f| raw(f) == 0x1CEC_FFF3));
        let mut now = t;
        let mut dm1_cm = None;
        while dm1_cm.is_none() && now < Instant::from_millis(2_000) {
            now = n.poll_timeout().unwrap().max(now);
            for f in drain(&mut n, now) {
                if raw(&f) == 0x1CEC_FFF3 && f.data()[5..] == [0xCA, 0xFE, 0x00] {
                    dm1_cm = Some(f);
                }
            }
        }
        let cm = dm1_cm.unwrap();
        assert_eq!(&cm.data()[..4], &[0x20, 10, 0, 2]);
    }

    /// Driven only by `poll_timeout` (no fixed step): after draining, the next timeout is
    /// always in the future (no busy loop), and BAM packets are exactly `bam_gap` apart.
    #[test]
    fn timeout_driven_no_spin() {
        let mut n = J1939Node::new(J1939Config::default());
        let mut tel = Telemetry::empty(16);
        let mut now = Instant::ZERO;
        let mut last_tp: Option<Instant> = None;
        let mut wakeups = 0;
        while now < Instant::from_millis(20_000) {
            let secs = now.as_millis() / 1000;
            tel.faults = if secs % 4 < 2 {
                FaultSet::from_iter([Fault::Sc, Fault::CellUv, Fault::AfeComm])
            } else {
                FaultSet::EMPTY
            };
            n.update(now, &tel);
            while let Some(f) = n.poll_transmit(now) {
                match raw(&f) {
                    0x1CEC_FFF3 => last_tp = Some(now),
                    0x1CEB_FFF3 => {
                        assert_eq!(now.duration_since(last_tp.unwrap()).as_millis(), 60);
                        last_tp = Some(now);
                    }
                    _ => {}
                }
            }
            let next = n.poll_timeout().unwrap();
            assert!(next > now, "timeout {next} not after {now}");
            now = next;
            wakeups += 1;
        }
        assert!(wakeups < 2_000, "{wakeups} wake-ups in 20 s");
    }

    #[test]
    fn rts_is_aborted() {
        let mut n = claimed();
        let t = Instant::from_millis(300);
        n.handle_frame(
            t,
            &ext(0x1CEC_F3F9, &[0x10, 0x11, 0, 3, 0xFF, 0x00, 0xEF, 0x00]),
        );
        let f = n.poll_transmit(t).unwrap();
        assert_eq!(raw(&f), 0x1CEC_F9F3);
        assert_eq!(f.data(), &[0xFF, 0x02, 0xFF, 0xFF, 0xFF, 0x00, 0xEF, 0x00]);
    }

    #[test]
    fn commands_need_key() {
        let cfg = J1939Config {
            command_key: Some(0xDEAD_BEEF),
            ..J1939Config::default()
        };
        let mut n = J1939Node::new(cfg);
        n.update(Instant::ZERO, &Telemetry::empty(16));
        drain(&mut n, Instant::ZERO);
        drain(&mut n, Instant::from_millis(250));
        let t = Instant::from_millis(300);
        let good = Command::SetCharge(false).emit(0xDEAD_BEEF);
        let bad = Command::SetCharge(false).emit(0xDEAD_BEEE);
        n.handle_frame(t, &ext(0x18EF_F3F9, &bad));
        assert_eq!(n.poll_command(), None);
        let a = n.poll_transmit(t).unwrap();
        assert_eq!(a.data()[0], 2); // access denied
        n.handle_frame(t, &ext(0x18EF_F3F9, &good));
        assert_eq!(n.poll_command(), Some(Command::SetCharge(false)));
        assert_eq!(n.poll_transmit(t).unwrap().data()[..2], [0, 1]);
        // Broadcast commands are ignored.
        n.handle_frame(t, &ext(0x18EF_FFF9, &good));
        assert_eq!(n.poll_command(), None);
        assert_eq!(n.stats().commands_refused, 1);
    }

    /// One step of a random drive of the node.
    #[derive(Clone, Debug)]
    enum Op {
        /// New telemetry with these fault and warning bits, `ms` later.
        Update { ms: u16, faults: u32, warnings: u32 },
        /// A request for `pgn` (global or to the node), `ms` later.
        Request { ms: u16, pgn: u32, global: bool },
        /// At most `polls` calls of `poll_transmit`, `ms` later (a drain cut short, or one
        /// at a time as a timeout-driven caller does).
        Poll { ms: u16, polls: u8 },
        /// Everything due, by `drain_transmit`, `ms` later.
        Drain { ms: u16 },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let pgns = prop::sample::select(vec![
            0xF090u32, 0xF095, 0xFF02, 0xFF00, 0xFECA, 0xFECB, 0xFED3, 0xEE00, 0x1234,
        ]);
        prop_oneof![
            (0u16..300, 0u32..8, 0u32..8).prop_map(|(ms, faults, warnings)| Op::Update {
                ms,
                faults,
                warnings
            }),
            (0u16..300, pgns, any::<bool>()).prop_map(|(ms, pgn, global)| Op::Request {
                ms,
                pgn,
                global
            }),
            (0u16..1_200, 0u8..40).prop_map(|(ms, polls)| Op::Poll { ms, polls }),
            prop_oneof![Just(0u16), Just(100), 0u16..1_200].prop_map(|ms| Op::Drain { ms }),
        ]
    }

    /// The first single-frame message due at `now` by a direct scan of the due times.
    fn first_due(n: &J1939Node, now: Instant) -> Option<Message> {
        let due = n.next_due.iter().position(|&d| d <= now)?;
        Message::SINGLE_FRAME.get(due).copied()
    }

    proptest::proptest! {
        /// The pass is exact: its pending messages are due, the others are not, and
        /// every periodic frame sent is the first due one in order,
        /// whatever the caller's pattern of updates, requests and (partial) drains.
        #[test]
        fn periodic_scan_matches_direct_computation(
            ops in proptest::collection::vec(op(), 1..120)
        ) {
            let mut n = J1939Node::new(J1939Config::default());
            let mut tel = Telemetry::empty(16);
            let mut now = Instant::ZERO;
            for op in ops {
                match op {
                    Op::Update { ms, faults, warnings } => {
                        now += Duration::from_millis(ms.into());
                        tel.faults = FaultSet::from_bits(faults);
                        tel.warnings = FaultSet::from_bits(warnings << 3);
                        n.update(now, &tel);
                    }
                    Op::Request { ms, pgn, global } => {
                        now += Duration::from_millis(ms.into());
                        let da = if global { 0xFF } else { 0xF3 };
                        let b = pgn.to_le_bytes();
                        n.handle_frame(now, &ext(0x18EA_00F9 | da << 8, &b[..3]));
                    }
                    Op::Poll { ms, polls } => {
                        now += Duration::from_millis(ms.into());
                        for _ in 0..polls {
                            let expected = first_due(&n, now);
                            let answer = !n.tx.is_empty(); // requested, not scheduled
                            let Some(f) = n.poll_transmit(now) else { break };
                            let pgn = J1939Id::try_from(f.id()).unwrap().pgn();
                            let sent = Message::SINGLE_FRAME.into_iter().find(|m| m.pgn() == pgn);
                            if sent.is_some() && !answer {
                                proptest::prop_assert_eq!(sent, expected);
                            }
                        }
                    }
                    Op::Drain { ms } => {
                        now += Duration::from_millis(ms.into());
                        n.drain_transmit(now, |_| {});
                        proptest::prop_assert_eq!(n.poll_transmit(now), None);
                        // Nothing is left due (the pass was complete).
                        if n.address().is_some() && n.telemetry.is_some() {
                            proptest::prop_assert_eq!(first_due(&n, now), None);
                        }
                    }
                }
                // The bounds of every class hold its members' due times.
                for (class, b) in CLASSES.iter().zip(&n.bounds) {
                    for (i, &d) in n.next_due.iter().enumerate() {
                        if class.members & 1 << i != 0 {
                            proptest::prop_assert!(b.lo <= d && d <= b.hi, "{i}: {d} {b:?}");
                        }
                    }
                }
                // With telemetry, the messages left in the pass have fresh payloads: those
                // of the current telemetry.
                if let Some(t) = &n.telemetry {
                    for (i, p) in n.payloads.iter().enumerate() {
                        if n.pass.due & 1 << i != 0 {
                            proptest::prop_assert!(n.fresh & 1 << i != 0);
                            proptest::prop_assert_eq!(*p, encode_single(i, t));
                        }
                    }
                }
                // Pending messages were due at the pass's instant, the others are not.
                let p = n.pass;
                for (i, &d) in n.next_due.iter().enumerate() {
                    if p.due & 1 << i != 0 {
                        proptest::prop_assert!(d <= p.at);
                    } else if n.address().is_some() {
                        proptest::prop_assert!(d > p.at);
                    }
                }
            }
        }
    }
}
