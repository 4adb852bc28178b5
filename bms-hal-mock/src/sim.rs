//! `bms-sim run`: the closed loop of the simulated pack and the core.
//!
//! Every 100 ms of simulated time (1 s in sleep): the world asks the pack for current,
//! the physics advances, the [`Controller`] reads the mock ports, steps the core and
//! applies MOSFETs, balancing and outputs to the simulated hardware.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bms_core::can::{write_candump_line, CanFrame};
use bms_core::event_log::{
    record_of, EventLog, EventRecord, ParamStore, RateLimiter, Region, Settings,
};
use bms_core::inverter::{InverterConfig, InverterNode};
use bms_core::j1939::{J1939Config, J1939Node};
use bms_core::soc::StoredSoc;
use bms_core::{Bms, Controller, Duration, Event, Instant, PowerMode, TimedEvent};

use crate::flash::SimFlash;
use crate::pack::SimPack;
use crate::plot::{self, TracePoint};
use crate::ports::{MockBoard, Sim};
use crate::profile::World;
use crate::scenario::Scenario;

/// Control period while active.
pub const STEP: Duration = Duration::from_millis(100);
/// Control period in sleep.
pub const SLEEP_STEP: Duration = Duration::from_millis(1_000);

/// Which protocol the simulated CAN port speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CanProtocol {
    /// The J1939 node (CAN 2.0B).
    #[default]
    J1939,
    /// The Pylontech-compatible inverter protocol (CAN 2.0A).
    Inverter,
}

/// The CAN side of the simulated board.
pub enum CanPort {
    /// A J1939 node.
    J1939(Box<J1939Node>),
    /// An inverter-protocol node.
    Inverter(Box<InverterNode>),
}

impl CanPort {
    /// A node speaking `protocol` with its default configuration; J1939 commands are
    /// accepted with `command_key`.
    pub fn new(protocol: CanProtocol, command_key: Option<u32>) -> Self {
        match protocol {
            CanProtocol::J1939 => CanPort::J1939(Box::new(J1939Node::new(J1939Config {
                command_key,
                ..J1939Config::default()
            }))),
            CanProtocol::Inverter => {
                CanPort::Inverter(Box::new(InverterNode::new(InverterConfig::default())))
            }
        }
    }

    /// Feeds the step's telemetry, then hands every due frame to `tx` and applies every
    /// authenticated command to the BMS.
    pub fn step(&mut self, bms: &mut Bms, tx: &mut impl FnMut(Instant, &CanFrame)) {
        let now = bms.telemetry().now;
        match self {
            CanPort::J1939(n) => {
                n.update(now, bms.telemetry());
                while let Some(f) = n.poll_transmit(now) {
                    tx(now, &f);
                }
                while let Some(c) = n.poll_command() {
                    c.apply(bms);
                }
            }
            CanPort::Inverter(n) => {
                n.update(now, bms.telemetry());
                while let Some(f) = n.poll_transmit(now) {
                    tx(now, &f);
                }
            }
        }
    }

    /// Hands a received frame to the node.
    pub fn receive(&mut self, now: Instant, frame: &CanFrame) {
        match self {
            CanPort::J1939(n) => n.handle_frame(now, frame),
            CanPort::Inverter(n) => n.handle_frame(now, frame),
        }
    }
}

/// Options of a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Output directory (created).
    pub out: PathBuf,
    /// Extra CAN log path (candump -L), besides `out/can.log`.
    pub can_log: Option<PathBuf>,
    /// Trace row interval; `None`: 100 ms for runs up to 3 h of simulated time, else 1 s.
    pub trace_every: Option<Duration>,
    /// Show a progress bar.
    pub progress: bool,
    /// The CAN protocol.
    pub can_protocol: CanProtocol,
    /// Write the serial status frame once per simulated second as `time_ms,hex` lines.
    pub serial_log: Option<PathBuf>,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    /// Control steps.
    pub steps: u64,
    /// Simulated time.
    pub simulated_ms: u64,
    /// Rows in trace.csv.
    pub trace_rows: u64,
    /// Records in the event log (dumped to events.csv).
    pub events: u64,
    /// Records the flash log refused.
    pub log_rejected: u64,
    /// Faults active at the end of the run.
    pub final_faults: bms_core::FaultSet,
    /// Power modes entered during the run (first entry order).
    pub modes_seen: Vec<PowerMode>,
    /// Power mode at the end of the run.
    pub final_mode: PowerMode,
    /// The SOC state read back from the simulated flash at the end (what a restart resumes).
    pub stored_soc: Option<StoredSoc>,
    /// Most erases of one log sector.
    pub max_sector_erases: u32,
    /// Largest |estimated - true SOC| in permille.
    pub max_soc_error_permille: u16,
    /// Every fault that tripped at least once.
    pub faults_seen: bms_core::FaultSet,
    /// CAN frames transmitted.
    pub can_frames: u64,
    /// End of every charge: the balancing progress.
    pub balance: Vec<EndOfCharge>,
    /// The physics bound on balancing, computed from the pack at the start.
    pub balance_bound: Option<BalanceBound>,
}

/// The state of the pack at the end of one charge.
#[derive(Clone, Copy, Debug, Default)]
pub struct EndOfCharge {
    /// Time, ms.
    pub time_ms: u64,
    /// Highest minus lowest measured cell voltage, mV.
    pub cell_spread_mv: u32,
    /// Highest minus lowest true cell SOC, permille.
    pub soc_spread_permille: u16,
    /// Charge bled so far, all cells, mAh.
    pub bled_mah: u32,
    /// Time balancing was allowed so far, ms.
    pub balance_allowed_ms: u64,
}

/// The least number of cycles passive balancing needs, from the bleed current and the
/// charge to be removed (see `bms_core::balance::cycles_bound`).
#[derive(Clone, Copy, Debug, Default)]
pub struct BalanceBound {
    /// The charge to remove, max(Q_max, sum(Q_i) / channels), mAh.
    pub charge_mah: u32,
    /// Bleed current per channel at the nominal cell voltage, mA.
    pub bleed_ma: i32,
}

/// The balancing verdict of a run: the physics bound and the cycle where the target held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceVerdict {
    /// Least number of cycles the physics allows.
    pub bound_cycles: u32,
    /// First cycle (1-based) whose end of charge met the target, if any.
    pub converged_at: Option<u32>,
    /// Average time per cycle in which balancing was allowed, s.
    pub allowed_per_cycle_s: u32,
}

impl RunSummary {
    /// The acceptance check of a scenario: `Err` says what did not hold.
    ///
    /// - `cycle`: no fault, SOC within 2 points of the truth all along, the SOC state
    ///   persisted in the simulated flash;
    /// - `imbalance`: the balancing target met within 1.5 times the physics bound;
    /// - `faults`: every injected fault class tripped, and all released by the end;
    /// - `storage`: sleep, then deep sleep, then awake again after the manual wake.
    ///
    /// # Errors
    /// The first failed condition, in words.
    pub fn check(
        &self,
        kind: crate::scenario::ScenarioKind,
        chemistry: bms_core::config::Chemistry,
    ) -> Result<(), String> {
        use crate::scenario::ScenarioKind as K;
        use bms_core::Fault as F;
        match kind {
            K::Cycle => {
                if !self.faults_seen.is_empty() {
                    return Err(format!("faults in a normal cycle: {}", self.faults_seen));
                }
                if self.max_soc_error_permille > 20 {
                    return Err(format!(
                        "SOC error {} permille",
                        self.max_soc_error_permille
                    ));
                }
            }
            K::Imbalance => {
                let v = self.balance_verdict(chemistry).ok_or("no balancing data")?;
                let limit = v.bound_cycles * 3 / 2;
                match v.converged_at {
                    Some(c) if c <= limit.max(1) => {}
                    other => {
                        return Err(format!(
                            "balanced at cycle {other:?}, bound {} (limit {limit})",
                            v.bound_cycles
                        ))
                    }
                }
            }
            K::Faults => {
                let want = [
                    F::SensorFault,
                    F::OpenWire,
                    F::AfeComm,
                    F::Sc,
                    F::ChgOt,
                    F::DsgOt,
                ];
                if let Some(f) = want.iter().find(|f| !self.faults_seen.contains(**f)) {
                    return Err(format!("{f} never tripped"));
                }
                if !self.final_faults.is_empty() {
                    return Err(format!("still active at the end: {}", self.final_faults));
                }
            }
            K::Storage => {
                let order = [PowerMode::Sleep, PowerMode::DeepSleep];
                if !order.iter().all(|m| self.modes_seen.contains(m)) {
                    return Err(format!("modes seen {:?}", self.modes_seen));
                }
                if self.final_mode != PowerMode::Active {
                    return Err("not awake after the manual wake".into());
                }
            }
        }
        Ok(())
    }

    /// The verdict against the target: end-of-charge cell spread below 10 mV, or, for LFP
    /// (whose flat curve hides SOC in the voltage), true SOC spread below 1 %.
    pub fn balance_verdict(
        &self,
        chemistry: bms_core::config::Chemistry,
    ) -> Option<BalanceVerdict> {
        let bound = self.balance_bound?;
        let last = self.balance.last()?;
        let cycles = self.balance.len() as u64;
        let per_cycle = Duration::from_millis(
            (last.balance_allowed_ms / cycles).min(u64::from(u32::MAX)) as u32,
        );
        let bound_cycles = bms_core::balance::cycles_bound(
            bms_core::MilliAmpHours::from_mah(bound.charge_mah),
            bms_core::MilliAmps::from_ma(bound.bleed_ma),
            per_cycle,
        )?;
        let lfp = chemistry == bms_core::config::Chemistry::Lfp;
        let met = |e: &EndOfCharge| {
            if lfp {
                e.soc_spread_permille < 10
            } else {
                e.cell_spread_mv < 10
            }
        };
        let converged_at = self.balance.iter().position(met).map(|i| i as u32 + 1);
        Some(BalanceVerdict {
            bound_cycles,
            converged_at,
            allowed_per_cycle_s: per_cycle.as_secs(),
        })
    }
}

/// Q_i = H_max - H_i, where H_i is cell i's charge still missing to full: what top
/// balancing must bleed from each cell so that all reach full together.
fn balance_bound(pack: &SimPack, cfg: &bms_core::config::PackConfig) -> BalanceBound {
    let headroom: Vec<f64> = (0..pack.cell_count())
        .filter_map(|i| Some(pack.cell_capacity_ah(i)? * (1.0 - pack.cell_soc(i)?) * 1000.0))
        .collect();
    let hmax = headroom.iter().copied().fold(0.0, f64::max);
    let q: Vec<f64> = headroom.iter().map(|h| hmax - h).collect();
    let qmax = q.iter().copied().fold(0.0, f64::max);
    let channels = f64::from(cfg.balance.max_channels.max(1));
    let charge = qmax.max(q.iter().sum::<f64>() / channels);
    BalanceBound {
        charge_mah: charge.round() as u32,
        bleed_ma: cfg
            .balance
            .bleed_current(cfg.chemistry.limits().nominal)
            .as_ma(),
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Trace header (DESIGN.md section 7).
pub fn trace_header(cells: usize) -> String {
    let mut h = String::from(
        "time_ms,current_ma,pack_mv,cell_min_mv,cell_max_mv,true_soc_permille,soc_permille,\
         charge_fet,discharge_fet,precharge_fet,balance_mask,faults,mode",
    );
    for k in 1..=cells {
        let _ = write!(h, ",cell{k}_mv");
    }
    h
}

fn trace_row(bms: &Bms, pack: &SimPack) -> (String, TracePoint) {
    let t = bms.telemetry();
    let (min, _) = t.min_cell();
    let (max, _) = t.max_cell();
    let true_soc = pack.true_soc_permille();
    let mut row = format!(
        "{},{},{},{},{},{},{},{},{},{},{:#x},{},{}",
        t.now.as_millis(),
        t.current.as_ma(),
        t.pack_voltage.as_mv(),
        min.as_mv(),
        max.as_mv(),
        true_soc,
        t.soc.as_permille(),
        t.charge_fet as u8,
        t.discharge_fet as u8,
        t.precharge_fet as u8,
        t.balance_mask,
        t.faults,
        t.mode
    );
    for c in t.cells() {
        let _ = write!(row, ",{}", c.as_mv());
    }
    let point = TracePoint {
        t_h: t.now.as_millis() as f64 / 3.6e6,
        current_a: f64::from(t.current.as_ma()) / 1000.0,
        min_v: f64::from(min.as_mv()) / 1000.0,
        max_v: f64::from(max.as_mv()) / 1000.0,
        true_soc: f64::from(true_soc) / 10.0,
        soc: f64::from(t.soc.as_permille()) / 10.0,
        charge_fet: t.charge_fet,
        discharge_fet: t.discharge_fet,
        faults: t.faults.len(),
        balancing: t.balance_mask.count_ones(),
    };
    (row, point)
}

/// The columns of `events.csv`, dumped from the event log in the simulated flash.
pub const EVENTS_HEADER: &str =
    "seq,time_ms,event,repeats,value,min_cell_mv,min_cell,max_cell_mv,max_cell,\
pack_mv,current_ma,t1_dc,t2_dc,mos_dc,soc_permille,faults,charge_fet,discharge_fet,precharge_fet";

/// Flash sectors of the simulated event log (2 KiB each, 32 records per sector).
pub const LOG_SECTORS: usize = 64;
/// Sectors of each parameter store (SOC state, settings) after the log.
pub const STORE_SECTORS: usize = 2;

/// The board's event log: records in a simulated NOR flash, through the rate limiter.
pub struct FlashLog {
    flash: SimFlash<8, 2048>,
    log: EventLog,
    soc_store: ParamStore<{ <StoredSoc as bms_core::event_log::Persist>::MAX_LEN }>,
    settings_store: ParamStore<{ <Settings as bms_core::event_log::Persist>::MAX_LEN }>,
    /// SOC states and setting sets persisted.
    pub stores: u64,
    limiter: RateLimiter<16>,
    sensor_causes: u8,
    /// Records the flash refused (full of torn slots or failing).
    pub rejected: u64,
}

impl FlashLog {
    /// An empty log over a fresh simulated flash.
    ///
    /// # Errors
    /// A message if the log cannot be opened.
    pub fn new(seed: u64) -> Result<Self, String> {
        let mut flash = SimFlash::new(LOG_SECTORS + 2 * STORE_SECTORS, seed);
        let log = EventLog::open(&mut flash, Region::new(0, (LOG_SECTORS * 2048) as u32))
            .map_err(|e| format!("event log: {e:?}"))?;
        let store_len = (STORE_SECTORS * 2048) as u32;
        let soc_at = (LOG_SECTORS * 2048) as u32;
        let soc_store = ParamStore::open(&mut flash, Region::new(soc_at, store_len))
            .map_err(|e| format!("SOC store: {e:?}"))?;
        let settings_store =
            ParamStore::open(&mut flash, Region::new(soc_at + store_len, store_len))
                .map_err(|e| format!("settings store: {e:?}"))?;
        let limiter = RateLimiter::new(RateLimiter::<16>::DEFAULT_WINDOW);
        Ok(FlashLog {
            flash,
            log,
            soc_store,
            settings_store,
            stores: 0,
            limiter,
            sensor_causes: 0,
            rejected: 0,
        })
    }

    /// Logs the BMS's queued events; returns how many it drained.
    pub fn drain(&mut self, bms: &mut Bms) -> Vec<TimedEvent> {
        let mut out = Vec::new();
        while let Some(e) = bms.poll_event() {
            if let Event::SensorCauses(c) = e.event {
                self.sensor_causes = c.bits();
            }
            // A calibration, a boot estimate or a setting change is worth keeping across a reset.
            let stored = match e.event {
                Event::Soc(_) => self
                    .soc_store
                    .store(&mut self.flash, &bms.stored_soc())
                    .is_ok(),
                Event::ConfigChanged => self
                    .settings_store
                    .store(&mut self.flash, &Settings::capture(bms))
                    .is_ok(),
                _ => false,
            };
            self.stores += u64::from(stored);
            if let Some(rec) = record_of(&e.event, bms.telemetry(), self.sensor_causes) {
                if let Some(rec) = self.limiter.offer(rec) {
                    self.append(rec);
                }
            }
            out.push(e);
        }
        while let Some(rec) = self.limiter.poll(bms.telemetry().now) {
            self.append(rec);
        }
        out
    }

    fn append(&mut self, rec: EventRecord) {
        if self.log.append(&mut self.flash, rec).is_err() {
            self.rejected += 1;
        }
    }

    /// Writes held summaries, then every record, oldest first, as CSV.
    ///
    /// # Errors
    /// A message on a flash or I/O error.
    pub fn dump(&mut self, w: &mut impl Write) -> Result<u64, String> {
        while let Some(rec) = self.limiter.flush() {
            self.append(rec);
        }
        writeln!(w, "{EVENTS_HEADER}").map_err(|e| e.to_string())?;
        let mut n = 0;
        for ev in self.log.iter_oldest_first(&mut self.flash) {
            let ev = ev.map_err(|e| format!("event log: {e:?}"))?;
            let r = &ev.record;
            let s = &r.snapshot;
            let temp = |t: Option<bms_core::DeciCelsius>| {
                t.map_or(String::new(), |t| t.as_deci().to_string())
            };
            writeln!(
                w,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                ev.seq.get(),
                r.time.as_millis(),
                r.kind,
                r.repeats,
                r.value,
                s.min_cell.as_mv(),
                u16::from(s.min_cell_index) + 1,
                s.max_cell.as_mv(),
                u16::from(s.max_cell_index) + 1,
                s.pack_voltage.as_mv(),
                s.current.as_ma(),
                temp(s.cell_temps[0]),
                temp(s.cell_temps[1]),
                temp(s.mos_temp),
                s.soc.as_permille(),
                s.faults,
                s.charge_fet as u8,
                s.discharge_fet as u8,
                s.precharge_fet as u8
            )
            .map_err(|e| e.to_string())?;
            n += 1;
        }
        Ok(n)
    }

    /// The SOC state last persisted, read back from the flash (what a restart resumes from).
    pub fn stored_soc(&mut self) -> Option<StoredSoc> {
        self.soc_store.load::<StoredSoc, _>(&mut self.flash).ok()
    }

    /// Erases per sector so far (wear).
    pub fn erase_counts(&self) -> &[u32] {
        self.flash.erase_counts()
    }
}

/// Runs a scenario in closed loop and writes `trace.csv`, `events.csv`, `can.log` and
/// `plot.svg` into `opts.out`.
///
/// # Errors
/// A message for an invalid scenario or an I/O failure.
pub fn run(sc: Scenario, opts: &RunOptions) -> Result<RunSummary, String> {
    std::fs::create_dir_all(&opts.out).map_err(io_err(&opts.out))?;
    let create = |name: &str| -> Result<(PathBuf, BufWriter<File>), String> {
        let p = opts.out.join(name);
        let f = File::create(&p).map_err(io_err(&p))?;
        Ok((p, BufWriter::new(f)))
    };
    let (trace_path, mut trace) = create("trace.csv")?;
    let (events_path, mut events) = create("events.csv")?;
    let (can_path, mut can) = create("can.log")?;

    let mut pack = SimPack::new(sc.pack.clone()).map_err(|e| format!("scenario pack: {e}"))?;
    for (i, &(soc, ah)) in sc.cells.iter().flatten().enumerate() {
        pack.set_cell_capacity_ah(i, ah);
        pack.set_cell_soc(i, soc);
    }
    let mut sim = Sim::new(pack, sc.sensors.clone());
    for (at, inj, d) in &sc.injections {
        sim.inject_at(*at, *inj, *d);
    }
    let board = MockBoard::new(sim);
    let shared = board.sim();
    let bms = Bms::new(sc.config).map_err(|e| format!("scenario configuration: {e}"))?;
    let mut ctl = Controller::new(board, bms);
    let mut can_port = CanPort::new(opts.can_protocol, None);
    let mut summary = RunSummary {
        balance_bound: Some(balance_bound(shared.borrow().pack(), &sc.config)),
        ..RunSummary::default()
    };
    let mut line = String::new();
    let mut serial = match &opts.serial_log {
        Some(p) => Some((
            p.clone(),
            BufWriter::new(File::create(p).map_err(io_err(p))?),
        )),
        None => None,
    };
    let mut next_serial = 0u64;
    let mut world = World::new(sc.profile.clone());
    let mut segment = world.segment_index();
    let total_ms = sc.profile.max_duration_ms();
    let trace_every = opts.trace_every.unwrap_or(if total_ms <= 3 * 3_600_000 {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    });
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(total_ms / 1000);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:40}] {pos}/{len} s simulated {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_prefix(sc.kind.name());
        Some(b)
    } else {
        None
    };

    let cells = sc.config.cells as usize;
    writeln!(trace, "{}", trace_header(cells)).map_err(io_err(&trace_path))?;
    let mut log = FlashLog::new(sc.sensors.seed)?;
    let mut points = Vec::new();
    let mut next_trace = 0u64;
    loop {
        let now = shared.borrow().now();
        let request = {
            let s = shared.borrow();
            world.request(now, s.pack())
        };
        let ended_charge = segment != world.segment_index()
            && segment
                .and_then(|i| sc.profile.segments.get(i))
                .is_some_and(|s| s.charger.is_some());
        segment = world.segment_index();
        if ended_charge {
            let b = ctl.bms().balancer();
            let t = ctl.bms().telemetry();
            let pack = shared.borrow();
            let p = pack.pack();
            let socs: Vec<f64> = (0..p.cell_count()).filter_map(|i| p.cell_soc(i)).collect();
            let spread = socs.iter().copied().fold(f64::MIN, f64::max)
                - socs.iter().copied().fold(f64::MAX, f64::min);
            summary.balance.push(EndOfCharge {
                time_ms: t.now.as_millis(),
                cell_spread_mv: (t.max_cell().0 - t.min_cell().0).as_mv(),
                soc_spread_permille: (spread * 1000.0).round() as u16,
                bled_mah: (0..cells).map(|i| b.bled(i).as_mah()).sum(),
                balance_allowed_ms: b.allowed_time_ms(),
            });
        }
        let Some(mut request) = request else { break };
        // A charger on the BMS's bus follows its limits (charge current and voltage
        // limits, already derated), as CAN-controlled chargers and inverters do.
        if let Some(c) = request.charger.as_mut() {
            let lim = ctl.bms().telemetry().limits;
            c.current_limit_a = c
                .current_limit_a
                .min(f64::from(lim.charge_current.as_ma()) / 1000.0);
            c.voltage_limit_v = c
                .voltage_limit_v
                .min(f64::from(lim.charge_voltage.as_mv()) / 1000.0);
        }
        let dt = if ctl.bms().outputs().mode == PowerMode::Sleep {
            SLEEP_STEP
        } else {
            STEP
        };
        shared.borrow_mut().step(dt, &request);
        ctl.run_once();
        summary.steps += 1;
        let mut io = Ok(());
        can_port.step(ctl.bms_mut(), &mut |t, f| {
            line.clear();
            let _ = write_candump_line(&mut line, t, f);
            summary.can_frames += 1;
            if io.is_ok() {
                io = write!(can, "{line}");
            }
        });
        io.map_err(io_err(&can_path))?;
        for e in log.drain(ctl.bms_mut()) {
            if let Event::FaultTripped(f) = e.event {
                summary.faults_seen.insert(f);
            }
        }
        let t_ms = ctl.bms().telemetry().now.as_millis();
        if let Some((p, w)) = serial.as_mut() {
            if t_ms >= next_serial {
                next_serial = t_ms + 1_000;
                let mut buf = [0u8; bms_core::serial::status::StatusFrame::MAX_LEN];
                let n =
                    bms_core::serial::status::StatusFrame::emit(ctl.bms().telemetry(), &mut buf)
                        .map_err(|e| format!("status frame: {e:?}"))?;
                let hex: String = buf[..n].iter().map(|b| format!("{b:02x}")).collect();
                writeln!(w, "{t_ms},{hex}").map_err(io_err(p))?;
            }
        }
        if t_ms >= next_trace {
            next_trace = t_ms + u64::from(trace_every.as_millis());
            let (row, point) = trace_row(ctl.bms(), shared.borrow().pack());
            let err = point.soc - point.true_soc;
            summary.max_soc_error_permille = summary
                .max_soc_error_permille
                .max((err.abs() * 10.0).round() as u16);
            writeln!(trace, "{row}").map_err(io_err(&trace_path))?;
            summary.trace_rows += 1;
            points.push(point);
        }
        if let Some(b) = &bar {
            if summary.steps % 600 == 0 {
                b.set_position(t_ms / 1000);
            }
        }
        summary.simulated_ms = t_ms;
        let mode = ctl.bms().outputs().mode;
        summary.final_mode = mode;
        if !summary.modes_seen.contains(&mode) {
            summary.modes_seen.push(mode);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    trace.flush().map_err(io_err(&trace_path))?;
    summary.final_faults = ctl.bms().telemetry().faults;
    summary.stored_soc = log.stored_soc();
    summary.events = log.dump(&mut events)?;
    summary.log_rejected = log.rejected;
    summary.max_sector_erases = log.erase_counts().iter().copied().max().unwrap_or(0);
    events.flush().map_err(io_err(&events_path))?;
    can.flush().map_err(io_err(&can_path))?;
    if let Some((p, mut w)) = serial {
        w.flush().map_err(io_err(&p))?;
    }
    if let Some(p) = &opts.can_log {
        std::fs::copy(&can_path, p).map_err(io_err(p))?;
    }
    if !summary.balance.is_empty() {
        let (bp, mut bw) = create("balance.csv")?;
        let mut text = String::from(
            "cycle,time_ms,cell_spread_mv,soc_spread_permille,bled_mah,balance_allowed_ms\n",
        );
        for (i, e) in summary.balance.iter().enumerate() {
            let _ = writeln!(
                text,
                "{},{},{},{},{},{}",
                i + 1,
                e.time_ms,
                e.cell_spread_mv,
                e.soc_spread_permille,
                e.bled_mah,
                e.balance_allowed_ms
            );
        }
        bw.write_all(text.as_bytes())
            .and_then(|()| bw.flush())
            .map_err(io_err(&bp))?;
    }
    let title = format!(
        "bms-sim run --scenario {} ({} {}S)",
        sc.kind.name(),
        sc.config.chemistry,
        cells
    );
    plot::render(&opts.out.join("plot.svg"), &title, &points)?;
    Ok(summary)
}
