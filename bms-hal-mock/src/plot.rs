//! `plot.svg`: current, cell voltages, SOC, MOSFETs and faults over time.

use std::path::Path;

use plotters::prelude::*;

/// One sample of the trace, in plotting units.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracePoint {
    /// Time, hours.
    pub t_h: f64,
    /// Pack current, A (positive = discharge).
    pub current_a: f64,
    /// Lowest cell, V.
    pub min_v: f64,
    /// Highest cell, V.
    pub max_v: f64,
    /// The simulated pack's own SOC, %.
    pub true_soc: f64,
    /// The core's estimate, %.
    pub soc: f64,
    /// Charge MOSFET closed.
    pub charge_fet: bool,
    /// Discharge MOSFET closed.
    pub discharge_fet: bool,
    /// Active faults.
    pub faults: u32,
    /// Cells being bled.
    pub balancing: u32,
}

/// Buckets per series: each keeps its minimum and maximum, in time order, so spikes stay
/// visible while the SVG stays small whatever the run length.
const BUCKETS: usize = 1_200;

fn decimate(points: &[TracePoint], f: &dyn Fn(&TracePoint) -> f64) -> Vec<(f64, f64)> {
    if points.len() <= 2 * BUCKETS {
        return points.iter().map(|p| (p.t_h, f(p))).collect();
    }
    let per = points.len().div_ceil(BUCKETS);
    let mut out = Vec::with_capacity(2 * BUCKETS);
    for chunk in points.chunks(per) {
        let (mut lo, mut hi) = (0, 0);
        for (i, p) in chunk.iter().enumerate() {
            if f(p) < f(&chunk[lo]) {
                lo = i;
            }
            if f(p) > f(&chunk[hi]) {
                hi = i;
            }
        }
        let (a, b) = (lo.min(hi), lo.max(hi));
        out.push((chunk[a].t_h, f(&chunk[a])));
        if b != a {
            out.push((chunk[b].t_h, f(&chunk[b])));
        }
    }
    out
}

fn range(points: &[TracePoint], f: impl Fn(&TracePoint) -> f64) -> (f64, f64) {
    let (lo, hi) = points
        .iter()
        .map(&f)
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(0.01);
    (lo - pad, hi + pad)
}

/// Draws the four panels into an SVG file.
///
/// # Errors
/// A message if the file cannot be written.
pub fn render(path: &Path, title: &str, points: &[TracePoint]) -> Result<(), String> {
    let e = |x: &dyn std::fmt::Display| format!("{}: {x}", path.display());
    let root = SVGBackend::new(path, (1200, 1100)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(|x| e(&x))?;
    let panels = root.split_evenly((4, 1));
    let t_end = points.last().map_or(1.0, |p| p.t_h.max(1e-3));
    type Series<'a> = Vec<(&'a str, RGBColor, Box<dyn Fn(&TracePoint) -> f64>)>;
    let specs: [(&str, Series); 4] = [
        (
            "pack current [A] (+ = discharge)",
            vec![("current", BLUE, Box::new(|p| p.current_a))],
        ),
        (
            "cell voltage [V]",
            vec![
                ("max cell", RED, Box::new(|p| p.max_v)),
                ("min cell", BLUE, Box::new(|p| p.min_v)),
            ],
        ),
        (
            "state of charge [%]",
            vec![
                ("true", BLACK, Box::new(|p| p.true_soc)),
                ("estimated", RED, Box::new(|p| p.soc)),
            ],
        ),
        (
            "MOSFETs, faults, balancing",
            vec![
                (
                    "charge FET",
                    GREEN,
                    Box::new(|p| if p.charge_fet { 1.0 } else { 0.0 }),
                ),
                (
                    "discharge FET",
                    BLUE,
                    Box::new(|p| if p.discharge_fet { 1.1 } else { 0.1 }),
                ),
                ("faults", RED, Box::new(|p| f64::from(p.faults))),
                (
                    "balancing cells",
                    MAGENTA,
                    Box::new(|p| f64::from(p.balancing)),
                ),
            ],
        ),
    ];
    for (area, (caption, series)) in panels.iter().zip(specs) {
        let (mut lo, mut hi) = (f64::MAX, f64::MIN);
        for (_, _, f) in &series {
            let (a, b) = range(points, f);
            lo = lo.min(a);
            hi = hi.max(b);
        }
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..t_end, lo..hi)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc("time [h]")
            .draw()
            .map_err(|x| e(&x))?;
        for (name, color, f) in series {
            chart
                .draw_series(LineSeries::new(decimate(points, &f), color))
                .map_err(|x| e(&x))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
