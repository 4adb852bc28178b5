//! `bms-sim`: the host simulator and replay tool of `bms-core` (DESIGN.md section 7).

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use bms_core::config::{Chemistry, PackConfig};
use bms_core::Bms;
use bms_hal_mock::scenario::{self, ScenarioKind};
use bms_hal_mock::{config_file, replay, sim};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "bms-sim",
    version,
    about = "Host simulator and replay tool of the bms core"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Chem {
    Lfp,
    Nmc,
    Lto,
}

impl From<Chem> for Chemistry {
    fn from(c: Chem) -> Self {
        match c {
            Chem::Lfp => Chemistry::Lfp,
            Chem::Nmc => Chemistry::Nmc,
            Chem::Lto => Chemistry::Lto,
        }
    }
}

#[derive(clap::Args)]
struct PresetArgs {
    /// Product part number.
    #[arg(long, default_value = "ANT16S-300A-C")]
    preset: String,
    /// Cell chemistry.
    #[arg(long, value_enum, default_value = "lfp")]
    chemistry: Chem,
}

impl PresetArgs {
    fn config(&self) -> Result<PackConfig, String> {
        config_file::preset(&self.preset, self.chemistry.into())
            .map_err(|e| format!("--preset {}: {e}", self.preset))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ScenarioArg {
    Cycle,
    Imbalance,
    Faults,
    Storage,
}

impl From<ScenarioArg> for ScenarioKind {
    fn from(s: ScenarioArg) -> Self {
        match s {
            ScenarioArg::Cycle => ScenarioKind::Cycle,
            ScenarioArg::Imbalance => ScenarioKind::Imbalance,
            ScenarioArg::Faults => ScenarioKind::Faults,
            ScenarioArg::Storage => ScenarioKind::Storage,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum CanArg {
    J1939,
    Inverter,
}

impl From<CanArg> for sim::CanProtocol {
    fn from(c: CanArg) -> Self {
        match c {
            CanArg::J1939 => sim::CanProtocol::J1939,
            CanArg::Inverter => sim::CanProtocol::Inverter,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Closed loop: a simulated pack and the core; writes trace.csv, events.csv, can.log, plot.svg.
    Run {
        #[command(flatten)]
        preset: PresetArgs,
        /// Scenario to run.
        #[arg(long, value_enum, default_value = "cycle")]
        scenario: ScenarioArg,
        /// Output directory.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Also write every transmitted CAN frame (candump -L) to this file.
        #[arg(long)]
        can_log: Option<PathBuf>,
        /// Trace row interval in ms (default: 100 ms up to 3 h simulated, else 1000 ms).
        #[arg(long)]
        trace_ms: Option<u32>,
        /// Exit non-zero unless the scenario's acceptance check holds (see the README).
        #[arg(long)]
        check: bool,
        /// Seed of the pack spread, sensor noise and fault draws.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Protocol of the simulated CAN port.
        #[arg(long, value_enum, default_value = "j1939")]
        can_protocol: CanArg,
        /// Write the serial (RS485/TTL/BLE) status frame once per simulated second to this
        /// file, as `time_ms,hex` lines.
        #[arg(long)]
        serial_log: Option<PathBuf>,
    },
    /// Print the effective configuration as TOML (the schema `--config` reads).
    Config {
        #[command(flatten)]
        preset: PresetArgs,
    },
    /// Open loop: one core step per row of a recorded measurement file.
    Replay {
        /// Measurements: time_ms,current_ma,pack_mv,load_mv,t1_dc,t2_dc,mos_dc,cell1_mv..cellN_mv
        #[arg(long)]
        input: PathBuf,
        /// Decisions: time_ms,soc_permille,charge_fet,discharge_fet,precharge_fet,balance_mask,faults,mode
        #[arg(long)]
        output: PathBuf,
        /// Configuration file (TOML, as printed by `bms-sim config`); default: the preset.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        preset: PresetArgs,
        /// Write every transmitted CAN frame (candump -L) to this file.
        #[arg(long)]
        can_log: Option<PathBuf>,
        /// Protocol of the CAN port (with --can-log).
        #[arg(long, value_enum, default_value = "j1939")]
        can_protocol: CanArg,
    },
    /// In memory: N control steps over pre-generated snapshots (for instruction counts).
    Bench {
        /// Measured steps (after a fixed warm-up).
        #[arg(long, default_value_t = 10_000)]
        steps: usize,
        /// Cells in series (8..=20).
        #[arg(long, default_value_t = 20)]
        cells: u8,
        /// Keep faults active (cell over-voltage, charge over-temperature).
        #[arg(long)]
        faults: bool,
        /// No change between snapshots but the time (no current, no noise).
        #[arg(long, conflicts_with = "faults")]
        still: bool,
        /// At rest as with --still, but with noise on the cells and the current.
        #[arg(long, conflicts_with_all = ["faults", "still"])]
        rest: bool,
        /// Also update a J1939 node and drain its due frames every step.
        #[arg(long)]
        can: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bms-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Run {
            preset,
            scenario,
            out,
            can_log,
            trace_ms,
            seed,
            can_protocol,
            serial_log,
            check,
        } => {
            let sc = scenario::build(scenario.into(), preset.config()?, seed);
            let chemistry = sc.config.chemistry;
            let opts = sim::RunOptions {
                out: out.clone(),
                can_log,
                trace_every: trace_ms.map(bms_core::Duration::from_millis),
                progress: std::io::stderr().is_terminal(),
                can_protocol: can_protocol.into(),
                serial_log,
            };
            let started = std::time::Instant::now();
            let s = sim::run(sc, &opts)?;
            eprintln!(
                "{} steps, {:.1} h simulated in {:.1} s; {} trace rows, {} events, {} CAN frames; max |SOC error| {:.1} %; faults seen: {}",
                s.steps,
                s.simulated_ms as f64 / 3.6e6,
                started.elapsed().as_secs_f64(),
                s.trace_rows,
                s.events,
                s.can_frames,
                f64::from(s.max_soc_error_permille) / 10.0,
                if s.faults_seen.is_empty() { "none".to_string() } else { s.faults_seen.to_string() },
            );
            if let (ScenarioKind::Imbalance, Some(v)) =
                (ScenarioKind::from(scenario), s.balance_verdict(chemistry))
            {
                let b = s.balance_bound.unwrap_or_default();
                eprintln!(
                    "balancing: {} mAh to bleed at {} mA, {} s allowed per cycle: physics bound {} cycles; \
                     target met at cycle {} (1.5 x bound = {:.1}); per cycle in balance.csv",
                    b.charge_mah,
                    b.bleed_ma,
                    v.allowed_per_cycle_s,
                    v.bound_cycles,
                    v.converged_at.map_or("never".to_string(), |c| c.to_string()),
                    1.5 * f64::from(v.bound_cycles),
                );
            }
            eprintln!(
                "wrote {}/{{trace.csv,events.csv,can.log,plot.svg}}",
                out.display()
            );
            if check {
                s.check(scenario.into(), chemistry).map_err(|e| {
                    format!(
                        "scenario {} check failed: {e}",
                        ScenarioKind::from(scenario).name()
                    )
                })?;
                eprintln!(
                    "scenario {} check passed",
                    ScenarioKind::from(scenario).name()
                );
            }
            Ok(())
        }
        Command::Config { preset } => {
            print!("{}", config_file::render(&preset.config()?));
            Ok(())
        }
        Command::Replay {
            input,
            output,
            config,
            preset,
            can_log,
            can_protocol,
        } => {
            let cfg = match config {
                Some(p) => config_file::load(&p).map_err(|e| format!("{}: {e}", p.display()))?,
                None => preset.config()?,
            };
            let mut bms = Bms::new(cfg).map_err(|e| e.to_string())?;
            let inp = File::open(&input).map_err(|e| format!("{}: {e}", input.display()))?;
            let out = File::create(&output).map_err(|e| format!("{}: {e}", output.display()))?;
            let mut out = BufWriter::new(out);
            let mut can = match &can_log {
                Some(p) => Some((
                    p,
                    BufWriter::new(File::create(p).map_err(|e| format!("{}: {e}", p.display()))?),
                    sim::CanPort::new(can_protocol.into(), None),
                )),
                None => None,
            };
            let mut can_err = Ok(());
            let mut line = String::new();
            let stats = replay::run(BufReader::new(inp), &mut out, &mut bms, |bms| {
                if let Some((_, w, port)) = can.as_mut() {
                    port.step(bms, &mut |t, f| {
                        line.clear();
                        let _ = bms_core::can::write_candump_line(&mut line, t, f);
                        if can_err.is_ok() {
                            can_err = w.write_all(line.as_bytes());
                        }
                    });
                }
            })
            .map_err(|e| format!("{}: {e}", input.display()))?;
            out.flush()
                .map_err(|e| format!("{}: {e}", output.display()))?;
            if let Some((p, mut w, _)) = can {
                can_err
                    .and_then(|()| w.flush())
                    .map_err(|e| format!("{}: {e}", p.display()))?;
            }
            eprintln!("replayed {} rows of {} cells", stats.rows, stats.cells);
            Ok(())
        }
        Command::Bench {
            steps,
            cells,
            faults,
            still,
            rest,
            can,
        } => {
            use bms_hal_mock::bench::State;
            let state = match (faults, still, rest) {
                (true, _, _) => State::Faults,
                (_, true, _) => State::Still,
                (_, _, true) => State::Rest,
                _ => State::Steady,
            };
            bms_hal_mock::bench::cli(steps, cells, state, can)
        }
    }
}
