//! [`Bms`]: one control step = protection + SOC + balancing + outputs.
//!
//! `Bms` owns the configuration and every state machine. The caller hands it a
//! [`Measurements`] snapshot every control period (e.g. 100 ms) and applies the returned
//! [`Outputs`]; everything it decided in between (fault trips, MOSFET changes,
//! calibrations) is queued as [`Event`]s for the log and the protocols, drained with
//! [`Bms::poll_event`].
//!
//! # Examples
//! ```
//! use bms_core::{Bms, Measurements, Instant, MilliVolts, Fault};
//! use bms_core::config::{Chemistry, PackConfig};
//!
//! let cfg = PackConfig::preset("ANT16S-300A-C".parse()?, Chemistry::Lfp);
//! let mut bms = Bms::new(cfg)?;
//! let mut m = Measurements::uniform(16, MilliVolts::from_mv(3_300), Instant::ZERO);
//! let out = bms.step(&m);
//! assert!(out.fets.charge && out.fets.discharge);
//!
//! // Cell 5 above the LFP over-voltage trip (3650 mV) for the trip delay (1 s):
//! m.cells[4] = MilliVolts::from_mv(3_700);
//! for t in (100..=1_100).step_by(100) {
//!     m.timestamp = Instant::from_millis(t);
//!     bms.step(&m);
//! }
//! assert!(bms.telemetry().faults.contains(Fault::CellOv));
//! assert!(!bms.telemetry().charge_fet && bms.telemetry().discharge_fet);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use heapless::Deque;

use crate::balance::{BalanceInput, Balancer, SettledInput};
use crate::config::{ConfigError, PackConfig};
use crate::measure::Measurements;
use crate::ports::FetState;
use crate::protect::{
    limits::LimitsPlan, CellMemo, Decision, Fault, Protection, SensorCauses, Summary, Transition,
};
use crate::soc::{SocEstimator, SocEvent, StoredSoc};
use crate::telemetry::{PowerMode, Telemetry};
use crate::time::Instant;
use crate::units::MilliVolts;

/// Capacity of the event queue; older events are dropped (and counted) when it is full.
pub const EVENT_QUEUE: usize = 32;

/// Something the BMS decided, for the event log and the protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event {
    /// A fault tripped.
    FaultTripped(Fault),
    /// A fault released.
    FaultReleased(Fault),
    /// A warning became active.
    Warning(Fault),
    /// A warning cleared.
    WarningCleared(Fault),
    /// Readings were judged implausible (the causes of a `sensor_fault`).
    SensorCauses(SensorCauses),
    /// The switch states changed.
    FetsChanged(FetState),
    /// The power mode changed.
    ModeChanged(PowerMode),
    /// Faults were reset by a command.
    FaultsReset,
    /// The configuration was replaced.
    ConfigChanged,
    /// A SOC calibration, capacity learning or the boot estimate.
    Soc(SocEvent),
}

/// An [`Event`] and when it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TimedEvent {
    /// When.
    pub at: Instant,
    /// What.
    pub event: Event,
}

/// What the board must apply after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Outputs {
    /// Charge, discharge and pre-charge switches.
    pub fets: FetState,
    /// Balancing switches, bit 0 = cell 1.
    pub balance_mask: u32,
    /// DO1..DO3.
    pub digital: [bool; 3],
    /// Power mode (the board slows its loop in sleep and powers down in deep sleep).
    pub mode: PowerMode,
}

/// User switches (from the serial or CAN protocol): each can only take permission away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Switches {
    /// Charging enabled by the user.
    pub charge: bool,
    /// Discharging enabled by the user.
    pub discharge: bool,
    /// Balancing enabled by the user.
    pub balance: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            charge: true,
            discharge: true,
            balance: true,
        }
    }
}

/// The battery management system: configuration plus every state machine.
#[derive(Clone, Debug)]
pub struct Bms {
    cfg: PackConfig,
    protection: Protection,
    limits: LimitsPlan,
    /// No cell below this is bled: the `cell_uv` warning (or release) threshold.
    balance_floor: MilliVolts,
    soc: SocEstimator,
    balancer: Balancer,
    switches: Switches,
    telemetry: Telemetry,
    outputs: Outputs,
    events: EventQueue,
    last_causes: SensorCauses,
    /// The cell part of the summary of `telemetry.cells` (reset with them).
    cell_memo: CellMemo,
}

impl Bms {
    /// A BMS for a validated configuration; MOSFETs start open, and the SOC comes from
    /// the cells' open-circuit voltage at the first step.
    ///
    /// # Errors
    /// The [`ConfigError`] of [`PackConfig::validate`].
    pub fn new(cfg: PackConfig) -> Result<Self, ConfigError> {
        Self::with_stored(cfg, None)
    }

    /// As [`Bms::new`], resuming from a persisted SOC, learned capacity and sensor offset
    /// (see [`Bms::stored_soc`]).
    ///
    /// # Errors
    /// The [`ConfigError`] of [`PackConfig::validate`].
    pub fn with_stored(cfg: PackConfig, stored: Option<StoredSoc>) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let soc = SocEstimator::new(cfg.soc, cfg.capacity_mah, stored);
        let balancer = Balancer::new(cfg.balance);
        let mut telemetry = Telemetry::empty(cfg.cells);
        telemetry.nominal_capacity = cfg.capacity_mah;
        telemetry.full_capacity = cfg.capacity_mah;
        let protection = Protection::new(&cfg.protection);
        let limits = LimitsPlan::of(&cfg);
        let balance_floor = balance_floor(&cfg);
        Ok(Bms {
            cfg,
            protection,
            limits,
            balance_floor,
            soc,
            balancer,
            switches: Switches::default(),
            telemetry,
            outputs: Outputs::default(),
            events: EventQueue::default(),
            last_causes: SensorCauses::NONE,
            cell_memo: CellMemo::default(),
        })
    }

    /// The configuration in force.
    pub const fn config(&self) -> &PackConfig {
        &self.cfg
    }

    /// Replaces the configuration atomically if it validates (the state machines keep
    /// their state; a new SOC configuration or capacity restarts the SOC estimator from
    /// its [`stored_soc`](Self::stored_soc)); logs [`Event::ConfigChanged`].
    ///
    /// # Errors
    /// The [`ConfigError`]; the old configuration stays in force.
    pub fn set_config(&mut self, now: Instant, cfg: PackConfig) -> Result<(), ConfigError> {
        cfg.validate()?;
        if cfg.cells != self.cfg.cells {
            self.telemetry = Telemetry::empty(cfg.cells);
            self.cell_memo = CellMemo::default();
        }
        if cfg.soc != self.cfg.soc || cfg.capacity_mah != self.cfg.capacity_mah {
            // The estimator derives its thresholds from both: it restarts from what it would
            // store (SOC, cycles, sensor offset) under the new ones. A new capacity is a new
            // pack: the capacity learned on the old one goes.
            let mut stored = self.soc.stored();
            if cfg.capacity_mah != self.cfg.capacity_mah {
                stored.full_capacity = cfg.capacity_mah;
            }
            self.soc = SocEstimator::new(cfg.soc, cfg.capacity_mah, Some(stored));
        }
        self.balancer.set_config(cfg.balance);
        self.protection.set_table(&cfg.protection);
        self.limits = LimitsPlan::of(&cfg);
        self.balance_floor = balance_floor(&cfg);
        self.telemetry.nominal_capacity = cfg.capacity_mah;
        self.cfg = cfg;
        self.push(now, Event::ConfigChanged);
        Ok(())
    }

    /// The report of the last step.
    pub const fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The outputs of the last step.
    pub const fn outputs(&self) -> &Outputs {
        &self.outputs
    }

    /// The protection state (faults, latches, pre-charge).
    pub const fn protection(&self) -> &Protection {
        &self.protection
    }

    /// The SOC estimator.
    pub const fn soc(&self) -> &SocEstimator {
        &self.soc
    }

    /// What to persist so that a restart resumes the SOC (save it on SOC events and
    /// before sleep).
    pub fn stored_soc(&self) -> StoredSoc {
        self.soc.stored()
    }

    /// Sets the SOC (a user command); the next rest may still correct it.
    pub fn set_soc(&mut self, soc: crate::units::Soc) {
        self.soc.set_soc(soc);
    }

    /// The balancer (bled charge per cell, time to balanced, status).
    pub const fn balancer(&self) -> &Balancer {
        &self.balancer
    }

    /// The user switches.
    pub const fn switches(&self) -> Switches {
        self.switches
    }

    /// Sets the user switches; they apply from the next step and can only open MOSFETs
    /// or stop balancing, never override a fault.
    pub fn set_switches(&mut self, switches: Switches) {
        self.switches = switches;
    }

    /// Events dropped because the queue was full.
    pub const fn dropped_events(&self) -> u32 {
        self.events.dropped
    }

    /// The next queued event, oldest first. Poll after every step until `None`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<TimedEvent> {
        self.events.pop()
    }

    fn push(&mut self, at: Instant, event: Event) {
        self.events.push(at, event);
    }

    /// Explicit fault reset (see [`Protection::reset`]).
    pub fn reset_faults(&mut self, now: Instant) {
        let mut tr: heapless::Vec<Transition, { Fault::COUNT }> = heapless::Vec::new();
        self.protection.reset(now, &self.cfg, &mut |t| {
            let _ = tr.push(t);
        });
        self.push(now, Event::FaultsReset);
        for t in tr {
            self.push(now, transition_event(t));
        }
    }

    /// One control step over a snapshot; time is `m.timestamp`.
    pub fn step(&mut self, m: &Measurements) -> Outputs {
        let now = m.timestamp;
        let same_count = m.cell_count.min(crate::MAX_CELLS as u8) == self.telemetry.cell_count;
        // The telemetry keeps the cells of the last snapshot the AFE answered: the summary
        // compares this snapshot with them and copies it over them in its one pass.
        let (mut summary, repeat) = Summary::remembered(
            m,
            &self.cfg.plausibility,
            &mut self.telemetry.cells,
            &mut self.cell_memo,
        );
        summary.cells_unchanged &= same_count;
        let events = &mut self.events;
        let d = self.protection.step(&self.cfg, m, &summary, &mut |t| {
            events.push(now, transition_event(t))
        });
        if d.sensor_causes != self.last_causes {
            self.last_causes = d.sensor_causes;
            if !d.sensor_causes.is_empty() {
                self.push(now, Event::SensorCauses(d.sensor_causes));
            }
        }
        // The current of this snapshot flowed under the switch states applied last step.
        let path_open = !(self.outputs.fets.charge
            || self.outputs.fets.discharge
            || self.outputs.fets.precharge);
        // Holds without a current reading; builds the `SocInput` only for a full step.
        // `repeat` (the AFE answered with the cells of the last snapshot it answered) is the
        // estimator's "cells of the last step with cells": every step gives it this
        // snapshot (no cells when the AFE did not answer), or holds it (after which it
        // ignores a repeat), and `cell_memo` is reset with `telemetry.cells`.
        self.soc
            .update_snapshot(m, path_open, summary.exact_cell_range(), repeat);
        // Checked first: an empty poll costs more than the check (events are rare).
        if self.soc.has_event() {
            while let Some(e) = self.soc.poll_event() {
                self.push(now, Event::Soc(e));
            }
        }
        let balance_mask = self.balance(m, &summary, &d);
        let fets = self.apply_switches(&d);
        let out = Outputs {
            fets,
            balance_mask,
            digital: d.digital,
            mode: d.mode,
        };
        if out.fets != self.outputs.fets {
            self.push(now, Event::FetsChanged(out.fets));
        }
        if out.mode != self.outputs.mode {
            self.push(now, Event::ModeChanged(out.mode));
        }
        self.outputs = out;
        self.update_telemetry(m, &summary, &d);
        out
    }

    fn balance(&mut self, m: &Measurements, s: &Summary, d: &Decision) -> u32 {
        // Never in sleep or deep sleep, nor when the user switched balancing off: the
        // balancer then sees an inhibit, so its bled-charge accounting stays true.
        let inhibit = d.mode != PowerMode::Active || !self.switches.balance;
        let faults_present = inhibit || !self.protection.faults().is_empty();
        // What needs no cell readings first (the gates, e.g. discharging, and a settled
        // pack at rest): the input is built only when the cells decide.
        let floor = self.balance_floor;
        let settled = || SettledInput {
            uv_warning: floor,
            board_temp: m.balance_temp.or(s.mos_temp),
            cell_range: s.exact_cell_range(),
        };
        let quick = self.balancer.update_unread(
            m.timestamp,
            m.cells().len(),
            m.current,
            faults_present || !m.afe_ok || m.open_wire != 0,
            settled,
        );
        if let Some(mask) = quick {
            return mask;
        }
        let SettledInput {
            board_temp,
            cell_range,
            ..
        } = settled();
        let input = BalanceInput {
            cell_range,
            board_temp,
            ..BalanceInput::from_measurements(m, faults_present, floor)
        };
        // No shortcut of `update` applies: `update_unread` just checked them.
        self.balancer.update_full(&input)
    }

    fn apply_switches(&self, d: &Decision) -> FetState {
        let mut f = d.fets;
        // A user switch only ever opens a direction.
        if !self.switches.charge {
            f.charge = false;
        }
        if !self.switches.discharge {
            f.discharge = false;
            f.precharge = false;
        }
        f
    }

    fn update_telemetry(&mut self, m: &Measurements, s: &Summary, d: &Decision) {
        let t = &mut self.telemetry;
        t.now = m.timestamp;
        // The summary's extremes are those of all cells when every reading was plausible.
        t.cell_range = s.exact_cell_range();
        if m.afe_ok {
            // The cells themselves were copied by `Summary::remembered`.
            t.cell_count = m.cell_count.min(crate::MAX_CELLS as u8);
        }
        t.pack_voltage = s.pack.unwrap_or_default();
        t.load_voltage = m.load.unwrap_or_default();
        t.current = s.current;
        t.cell_temps = m.cell_temps;
        t.mos_temp = m.mos_temp;
        t.balance_temp = m.balance_temp;
        t.charge_fet = self.outputs.fets.charge;
        t.discharge_fet = self.outputs.fets.discharge;
        t.precharge_fet = self.outputs.fets.precharge;
        t.balance_mask = self.outputs.balance_mask;
        t.faults = self.protection.faults();
        t.warnings = self.protection.warnings();
        t.mode = d.mode;
        t.soc = self.soc.soc();
        t.soh = self.soc.soh();
        t.remaining = self.soc.remaining();
        t.full_capacity = self.soc.full_capacity();
        t.cycles = self.soc.cycles();
        t.limits = self.limits.limits(
            s,
            t.soc,
            d.charge_allowed && self.switches.charge,
            d.discharge_allowed && self.switches.discharge,
        );
    }
}

/// The queue of [`TimedEvent`]s; the oldest is dropped (and counted) when it is full.
#[derive(Clone, Debug, Default)]
struct EventQueue {
    queue: Deque<Queued, EVENT_QUEUE>,
    dropped: u32,
}

/// A queued [`TimedEvent`] with its time as two words: 4-byte aligned, an entry takes 20
/// bytes instead of 24 (a `u64` field would align it to 8).
#[derive(Clone, Copy, Debug)]
struct Queued {
    at: [u32; 2],
    event: Event,
}

impl EventQueue {
    fn push(&mut self, at: Instant, event: Event) {
        if self.queue.is_full() {
            self.queue.pop_front();
            self.dropped = self.dropped.saturating_add(1);
        }
        let ms = at.as_millis();
        let at = [ms as u32, (ms >> 32) as u32];
        // Cannot fail: a slot was freed above.
        let _ = self.queue.push_back(Queued { at, event });
    }

    fn pop(&mut self) -> Option<TimedEvent> {
        let Queued {
            at: [lo, hi],
            event,
        } = self.queue.pop_front()?;
        let at = Instant::from_millis(u64::from(hi) << 32 | u64::from(lo));
        Some(TimedEvent { at, event })
    }
}

/// The `cell_uv` warning threshold (its release without a warning): no cell below it is bled.
fn balance_floor(cfg: &PackConfig) -> MilliVolts {
    let uv = cfg.protection.get(Fault::CellUv);
    MilliVolts::from_mv(uv.warn.unwrap_or(uv.release).max(0) as u32)
}

fn transition_event(t: Transition) -> Event {
    match t {
        Transition::Tripped(f) => Event::FaultTripped(f),
        Transition::Released(f) => Event::FaultReleased(f),
        Transition::Warned(f) => Event::Warning(f),
        Transition::WarningCleared(f) => Event::WarningCleared(f),
    }
}
