//! `bms-sim run`: the closed loop of the simulated pack and the core.
//!
//! Every 100 ms of simulated time (1 s in sleep): the world asks the pack for current,
//! the physics advances, the [`Controller`] reads the mock ports, steps the core and
//! applies MOSFETs, balancing and outputs to the simulated hardware.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bms_core::{Bms, Controller, Duration, Event, PowerMode, TimedEvent};

use crate::pack::SimPack;
use crate::plot::{self, TracePoint};
use crate::ports::{MockBoard, Sim};
use crate::profile::World;
use crate::scenario::Scenario;

/// Control period while active.
pub const STEP: Duration = Duration::from_millis(100);
/// Control period in sleep.
pub const SLEEP_STEP: Duration = Duration::from_millis(1_000);

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
    /// Events logged.
    pub events: u64,
    /// Largest |estimated - true SOC| in permille.
    pub max_soc_error_permille: u16,
    /// Every fault that tripped at least once.
    pub faults_seen: bms_core::FaultSet,
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

/// `time_ms,event,detail` rows of the events the core queued.
pub const EVENTS_HEADER: &str = "time_ms,event,detail";

fn event_row(e: &TimedEvent) -> String {
    let (kind, detail) = match e.event {
        Event::FaultTripped(f) => ("fault_tripped", f.name().to_string()),
        Event::FaultReleased(f) => ("fault_released", f.name().to_string()),
        Event::Warning(f) => ("warning", f.name().to_string()),
        Event::WarningCleared(f) => ("warning_cleared", f.name().to_string()),
        Event::SensorCauses(c) => ("sensor_causes", format!("{:#04x}", c.bits())),
        Event::FetsChanged(s) => (
            "fets_changed",
            format!(
                "charge={} discharge={} precharge={}",
                s.charge as u8, s.discharge as u8, s.precharge as u8
            ),
        ),
        Event::ModeChanged(m) => ("mode_changed", m.name().to_string()),
        Event::FaultsReset => ("faults_reset", String::new()),
        Event::ConfigChanged => ("config_changed", String::new()),
        Event::Soc(e) => ("soc", format!("{e:?}").replace(',', ";")),
    };
    format!("{},{kind},{detail}", e.at.as_millis())
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

    let pack = SimPack::new(sc.pack.clone()).map_err(|e| format!("scenario pack: {e}"))?;
    let mut sim = Sim::new(pack, sc.sensors.clone());
    for (at, inj, d) in &sc.injections {
        sim.inject_at(*at, *inj, *d);
    }
    let board = MockBoard::new(sim);
    let shared = board.sim();
    let bms = Bms::new(sc.config.clone()).map_err(|e| format!("scenario configuration: {e}"))?;
    let mut ctl = Controller::new(board, bms);
    let mut world = World::new(sc.profile.clone());
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
    writeln!(events, "{EVENTS_HEADER}").map_err(io_err(&events_path))?;
    let mut summary = RunSummary::default();
    let mut points = Vec::new();
    let mut next_trace = 0u64;
    loop {
        let now = shared.borrow().now();
        let request = {
            let s = shared.borrow();
            world.request(now, s.pack())
        };
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
        while let Some(e) = ctl.bms_mut().poll_event() {
            if let Event::FaultTripped(f) = e.event {
                summary.faults_seen.insert(f);
            }
            writeln!(events, "{}", event_row(&e)).map_err(io_err(&events_path))?;
            summary.events += 1;
        }
        let t_ms = ctl.bms().telemetry().now.as_millis();
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
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    trace.flush().map_err(io_err(&trace_path))?;
    events.flush().map_err(io_err(&events_path))?;
    can.flush().map_err(io_err(&can_path))?;
    if let Some(p) = &opts.can_log {
        std::fs::copy(&can_path, p).map_err(io_err(p))?;
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
