//! Replays the SOC benchmark datasets through [`SocEstimator`] and scores the estimate the
//! way `soc_bench.py` does: at every truth time, the estimate of the last row at or
//! before it; max and RMS error over the whole run, mean absolute error over its second
//! half, in percentage points.
//!
//! ```text
//! cargo run -p bms-core --example soc_replay -- DATA_DIR [--wrong PERMILLE] [--dt-ms MS]
//! ```
//! `--wrong` starts from the true SOC shifted by that many permille (set after the first
//! step, as a user would with a wrong manual setting), `--dt-ms` feeds every row
//! repeatedly at that step so the 100 ms cadence of the closed loop can be checked;
//! `--add-ma MA` and `--gain-ppm PPM` add current-sensor errors on top of the recorded ones;
//! `--skip-s S` boots the estimator S seconds into the recording (e.g. under load);
//! `--open-s S` reports the current path open (MOSFETs off) for the first S seconds.

use std::error::Error;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use bms_core::soc::{SocConfig, SocEstimator, SocInput};
use bms_core::{DeciCelsius, Instant, MilliAmpHours, MilliAmps, MilliVolts, Soc};
use flate2::read::GzDecoder;

struct Row {
    time_ms: u64,
    current_ma: i32,
    temp_dc: i16,
    cells: Vec<MilliVolts>,
}

fn gz_lines(path: &Path) -> Result<Vec<String>, Box<dyn Error>> {
    let r = BufReader::new(GzDecoder::new(File::open(path)?));
    Ok(r.lines().collect::<Result<_, _>>()?)
}

fn read_rows(path: &Path) -> Result<Vec<Row>, Box<dyn Error>> {
    let lines = gz_lines(path)?;
    let header: Vec<&str> = lines.first().ok_or("empty input")?.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("no column {name}"))
    };
    let (t, i, t1, t2) = (
        col("time_ms")?,
        col("current_ma")?,
        col("t1_dc")?,
        col("t2_dc")?,
    );
    let first_cell = col("cell1_mv")?;
    let mut rows = Vec::new();
    for line in &lines[1..] {
        let f: Vec<&str> = line.split(',').collect();
        let t1v: i32 = f[t1].parse()?;
        let t2v: i32 = f[t2].parse()?;
        rows.push(Row {
            time_ms: f[t].parse()?,
            current_ma: f[i].parse()?,
            temp_dc: ((t1v + t2v) / 2) as i16,
            cells: f[first_cell..]
                .iter()
                .map(|c| c.parse().map(MilliVolts::from_mv))
                .collect::<Result<_, _>>()?,
        });
    }
    Ok(rows)
}

fn read_truth(path: &Path) -> Result<Vec<(f64, f64)>, Box<dyn Error>> {
    let lines = gz_lines(path)?;
    lines[1..]
        .iter()
        .map(|l| {
            let (a, b) = l.split_once(',').ok_or("bad truth row")?;
            Ok((a.parse::<f64>()?, b.parse::<f64>()? * 100.0))
        })
        .collect()
}

/// Crude JSON reads of the two fields needed (no JSON crate for two numbers).
fn read_meta(path: &Path) -> Result<(String, u32, [u16; 21]), Box<dyn Error>> {
    let mut s = String::new();
    File::open(path)?.read_to_string(&mut s)?;
    let after = |key: &str| -> Result<&str, Box<dyn Error>> {
        let i = s.find(&format!("\"{key}\"")).ok_or(format!("no {key}"))?;
        Ok(s[i + key.len() + 2..].trim_start_matches([' ', ':', '\n']))
    };
    let chem = after("chemistry")?
        .trim_start_matches('"')
        .split('"')
        .next()
        .unwrap_or("")
        .to_string();
    let cap: u32 = after("capacity_mah")?
        .split([',', '\n', '}'])
        .next()
        .unwrap_or("")
        .trim()
        .parse()?;
    let arr = after("ocv_mv")?.trim_start_matches('[');
    let arr = arr.split(']').next().unwrap_or("");
    let mut ocv = [0u16; 21];
    for (o, v) in ocv.iter_mut().zip(arr.split(',')) {
        *o = v.trim().parse()?;
    }
    Ok((chem, cap, ocv))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .ok_or("usage: soc_replay DATA_DIR [--wrong PERMILLE] [--dt-ms MS] [--events]")?;
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let wrong: i32 = opt("--wrong").map(|s| s.parse()).transpose()?.unwrap_or(0);
    let dt_ms: u64 = opt("--dt-ms")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000);
    let show_events = args.iter().any(|a| a == "--events");
    // Extra sensor error on top of the recorded one: `--add-ma` offset, `--gain-ppm` gain.
    let add_ma: i32 = opt("--add-ma").map(|s| s.parse()).transpose()?.unwrap_or(0);
    let gain_ppm: i64 = opt("--gain-ppm")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(0);
    // Boot part-way through the recording (e.g. under load), scoring only from there.
    let skip_s: u64 = opt("--skip-s").map(|s| s.parse()).transpose()?.unwrap_or(0);
    // The current path is reported open (MOSFETs off) for the first S seconds.
    let open_s: u64 = opt("--open-s").map(|s| s.parse()).transpose()?.unwrap_or(0);

    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .collect();
    names.sort();
    println!(
        "{:28} {:>6} {:>6} {:>6}  (percentage points)",
        "dataset", "max", "rmse", "mae2"
    );
    for name in names {
        let base = Path::new(dir);
        let (chem, cap, ocv) = read_meta(&base.join(format!("{name}.json")))?;
        let mut rows = read_rows(&base.join(format!("{name}.m.csv.gz")))?;
        let mut truth = read_truth(&base.join(format!("{name}.truth.csv.gz")))?;
        rows.retain(|r| r.time_ms >= skip_s * 1_000);
        truth.retain(|t| t.0 >= skip_s as f64);
        let mut cfg = match chem.as_str() {
            "lfp" => SocConfig::lfp(),
            "lto" => SocConfig::lto(),
            _ => SocConfig::nmc(),
        };
        cfg.ocv_mv = ocv;
        let mut est = SocEstimator::new(cfg, MilliAmpHours::from_mah(cap), None);
        let mut out: Vec<(f64, f64)> = Vec::with_capacity(rows.len());
        for (k, r) in rows.iter().enumerate() {
            let next = rows.get(k + 1).map_or(r.time_ms + 1_000, |n| n.time_ms);
            let mut t = r.time_ms;
            loop {
                let input = SocInput {
                    now: Instant::from_millis(t),
                    current: MilliAmps::from_ma(
                        (i64::from(r.current_ma) * (1_000_000 + gain_ppm) / 1_000_000) as i32
                            + add_ma,
                    ),
                    cells: &r.cells,
                    temperature: Some(DeciCelsius::from_deci(r.temp_dc)),
                    current_path_open: t < (skip_s + open_s) * 1_000,
                };
                est.update(&input);
                t += dt_ms;
                if t >= next {
                    break;
                }
            }
            if k == 0 && wrong != 0 {
                let start = (truth[0].1 * 10.0).round() as i32 + wrong;
                est.set_soc(Soc::from_permille_clamped(start));
            }
            while let Some(e) = est.poll_event() {
                if show_events {
                    println!("  {name} t={}s {e:?}", r.time_ms / 1000);
                }
            }
            out.push((
                r.time_ms as f64 / 1000.0,
                f64::from(est.soc().as_permille()) / 10.0,
            ));
        }
        let mut errs = Vec::new();
        let mut i = 0;
        for &(t, s) in &truth {
            while i + 1 < out.len() && out[i + 1].0 <= t + 1e-6 {
                i += 1;
            }
            if out[i].0 <= t + 1e-6 {
                errs.push((t, out[i].1 - s));
            }
        }
        let last = errs.last().map_or(0.0, |e| e.0);
        let mx = errs.iter().map(|e| e.1.abs()).fold(0.0, f64::max);
        let rmse = (errs.iter().map(|e| e.1 * e.1).sum::<f64>() / errs.len() as f64).sqrt();
        let half: Vec<f64> = errs
            .iter()
            .filter(|e| e.0 >= last / 2.0)
            .map(|e| e.1.abs())
            .collect();
        let mae2 = half.iter().sum::<f64>() / half.len() as f64;
        if args.iter().any(|a| a == "--trace") {
            for e in errs.iter().step_by(300) {
                println!("  {name} t={:6.0} err={:+.2}", e.0, e.1);
            }
            let worst =
                errs.iter().fold(
                    (0.0, 0.0),
                    |w, e| if e.1.abs() > f64::abs(w.1) { *e } else { w },
                );
            println!("  {name} worst at t={:.0}: {:+.2}", worst.0, worst.1);
        }
        println!("{name:28} {mx:6.2} {rmse:6.2} {mae2:6.2}");
        if wrong != 0 {
            // Error after the first rest of rest_time: report the first time it drops below 5.
            let below = errs
                .iter()
                .find(|e| e.0 > 60.0 && e.1.abs() < 5.0)
                .map(|e| e.0);
            println!("{:28} first below 5 points at t = {:?} s", "", below);
        }
    }
    Ok(())
}
