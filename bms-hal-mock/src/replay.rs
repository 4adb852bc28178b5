//! `bms-sim replay`: open loop, one core step per input row (DESIGN.md section 7).
//!
//! Input `M.csv`: `time_ms,current_ma,pack_mv,load_mv,t1_dc,t2_dc,mos_dc,cell1_mv,...,cellN_mv`
//! with N = 8..=20, current > 0 = discharge, `_dc` in tenths of a degree Celsius. An
//! empty field means "no reading" (a sensor that did not answer; an empty cell field means
//! the cell monitor did not answer), so recorded faults can be replayed.
//!
//! Output `D.csv`: `time_ms,soc_permille,charge_fet,discharge_fet,precharge_fet,balance_mask,faults,mode`.

use std::fmt;
use std::io::{BufRead, Write};

use bms_core::{Bms, DeciCelsius, Instant, Measurements, MilliAmps, MilliVolts, MAX_CELLS};

/// The fixed leading columns of `M.csv`.
pub const INPUT_PREFIX: [&str; 7] = [
    "time_ms",
    "current_ma",
    "pack_mv",
    "load_mv",
    "t1_dc",
    "t2_dc",
    "mos_dc",
];

/// The header of `D.csv`.
pub const OUTPUT_HEADER: &str =
    "time_ms,soc_permille,charge_fet,discharge_fet,precharge_fet,balance_mask,faults,mode";

/// A malformed input file: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column number (0 when the whole line is wrong).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.column > 0 {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.message
            )
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for ReplayError {}

fn err(line: usize, column: usize, message: impl Into<String>) -> ReplayError {
    ReplayError {
        line,
        column,
        message: message.into(),
    }
}

/// Parses the header; returns the number of cell columns.
///
/// # Errors
/// A [`ReplayError`] naming the first wrong column.
pub fn parse_header(line: &str) -> Result<usize, ReplayError> {
    let cols: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
    for (i, want) in INPUT_PREFIX.iter().enumerate() {
        match cols.get(i) {
            Some(c) if c.trim() == *want => {}
            Some(c) => {
                return Err(err(
                    1,
                    i + 1,
                    format!("expected column `{want}`, found `{c}`"),
                ))
            }
            None => return Err(err(1, i + 1, format!("missing column `{want}`"))),
        }
    }
    let cells = cols.len() - INPUT_PREFIX.len();
    for k in 0..cells {
        let want = format!("cell{}_mv", k + 1);
        let c = cols[INPUT_PREFIX.len() + k].trim();
        if c != want {
            return Err(err(
                1,
                INPUT_PREFIX.len() + k + 1,
                format!("expected column `{want}`, found `{c}`"),
            ));
        }
    }
    if !(8..=MAX_CELLS).contains(&cells) {
        return Err(err(1, 0, format!("{cells} cell columns: 8..=20 required")));
    }
    Ok(cells)
}

fn field<T: std::str::FromStr>(
    line: usize,
    col: usize,
    name: &str,
    s: &str,
) -> Result<Option<T>, ReplayError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| err(line, col + 1, format!("`{s}` is not a valid {name}")))
}

/// Parses one data row into a snapshot.
///
/// # Errors
/// A [`ReplayError`] naming the line and column of the first bad field.
pub fn parse_row(line_no: usize, line: &str, cells: usize) -> Result<Measurements, ReplayError> {
    let cols: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
    let want = INPUT_PREFIX.len() + cells;
    if cols.len() != want {
        return Err(err(
            line_no,
            cols.len().min(want) + 1,
            format!("{} fields, expected {want}", cols.len()),
        ));
    }
    let time: u64 = field(line_no, 0, "time_ms (integer milliseconds)", cols[0])?
        .ok_or_else(|| err(line_no, 1, "time_ms is required"))?;
    let mut m = Measurements::uniform(cells as u8, MilliVolts::ZERO, Instant::from_millis(time));
    m.current =
        field::<i32>(line_no, 1, "current_ma (integer mA)", cols[1])?.map(MilliAmps::from_ma);
    m.pack = field::<u32>(line_no, 2, "pack_mv (non-negative integer mV)", cols[2])?
        .map(MilliVolts::from_mv);
    m.load = field::<u32>(line_no, 3, "load_mv (non-negative integer mV)", cols[3])?
        .map(MilliVolts::from_mv);
    let temp = |i: usize, name| {
        field::<i16>(line_no, i, name, cols[i]).map(|t| t.map(DeciCelsius::from_deci))
    };
    m.cell_temps = [
        temp(4, "t1_dc (tenths of °C)")?,
        temp(5, "t2_dc (tenths of °C)")?,
    ];
    m.mos_temp = temp(6, "mos_dc (tenths of °C)")?;
    for k in 0..cells {
        let i = INPUT_PREFIX.len() + k;
        match field::<u32>(
            line_no,
            i,
            "cell voltage (non-negative integer mV)",
            cols[i],
        )? {
            Some(v) => m.cells[k] = MilliVolts::from_mv(v),
            None => m.afe_ok = false,
        }
    }
    Ok(m)
}

/// Formats one output row from the BMS state after a step.
pub fn output_row(bms: &Bms) -> String {
    let t = bms.telemetry();
    format!(
        "{},{},{},{},{},{:#x},{},{}",
        t.now.as_millis(),
        t.soc.as_permille(),
        t.charge_fet as u8,
        t.discharge_fet as u8,
        t.precharge_fet as u8,
        t.balance_mask,
        t.faults,
        t.mode
    )
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayStats {
    /// Rows (core steps).
    pub rows: usize,
    /// Cells in series.
    pub cells: usize,
}

/// Runs the replay: every row of `input` is one [`Bms::step`]; `each_step` sees the BMS
/// after each step (for CAN logs), and a row is written to `output`.
///
/// # Errors
/// A [`ReplayError`] for malformed input, or an I/O error as a [`ReplayError`] at line 0.
pub fn run(
    input: impl BufRead,
    mut output: impl Write,
    bms: &mut Bms,
    mut each_step: impl FnMut(&mut Bms),
) -> Result<ReplayStats, ReplayError> {
    let io = |e: std::io::Error| err(0, 0, format!("I/O error: {e}"));
    let mut lines = input.lines();
    let header = lines
        .next()
        .ok_or_else(|| err(1, 0, "empty input"))?
        .map_err(io)?;
    let cells = parse_header(&header)?;
    if cells != bms.config().cells as usize {
        return Err(err(
            1,
            0,
            format!(
                "{cells} cell columns but the configuration has {} cells",
                bms.config().cells
            ),
        ));
    }
    writeln!(output, "{OUTPUT_HEADER}").map_err(io)?;
    let mut last: Option<u64> = None;
    let mut rows = 0;
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let m = parse_row(line_no, &line, cells)?;
        let t = m.timestamp.as_millis();
        if last.is_some_and(|l| t < l) {
            return Err(err(line_no, 1, format!("time_ms {t} goes backwards")));
        }
        last = Some(t);
        bms.step(&m);
        each_step(bms);
        writeln!(output, "{}", output_row(bms)).map_err(io)?;
        rows += 1;
    }
    Ok(ReplayStats { rows, cells })
}

#[cfg(test)]
mod test {
    use super::*;

    fn header(n: usize) -> String {
        let mut h = INPUT_PREFIX.join(",");
        for k in 1..=n {
            h.push_str(&format!(",cell{k}_mv"));
        }
        h
    }

    #[test]
    fn header_errors_name_the_column() {
        assert_eq!(parse_header(&header(16)), Ok(16));
        let e = parse_header("time_ms,current_A").unwrap_err();
        assert_eq!((e.line, e.column), (1, 2));
        let e = parse_header(&header(16).replace("cell9_mv", "cell10_mv")).unwrap_err();
        assert_eq!(e.column, 7 + 9);
        assert!(parse_header(&header(7)).is_err());
        assert!(parse_header(&header(21)).is_err());
    }

    #[test]
    fn row_errors_name_line_and_column() {
        let row = |s: &str| parse_row(5, s, 8);
        assert!(
            row("0,100,26400,26400,250,250,300,3300,3300,3300,3300,3300,3300,3300,3300").is_ok()
        );
        let e = row("0,1e3,26400,26400,250,250,300,3300,3300,3300,3300,3300,3300,3300,3300")
            .unwrap_err();
        assert_eq!((e.line, e.column), (5, 2));
        let e =
            row("0,100,26400,26400,250,250,300,3300,3300,3300,-1,3300,3300,3300,3300").unwrap_err();
        assert_eq!(e.column, 11);
        let e = row("0,100,26400,26400,250,250,99999,3300,3300,3300,3300,3300,3300,3300,3300")
            .unwrap_err();
        assert_eq!(e.column, 7);
        let e = row("0,100,26400").unwrap_err();
        assert_eq!(e.column, 4);
        let m = row("7,,26400,,250,,300,3300,3300,3300,3300,,3300,3300,3300").unwrap();
        assert_eq!(
            (m.current, m.load, m.cell_temps[1], m.afe_ok),
            (None, None, None, false)
        );
    }
}
