//! Product variants and part numbers (`ANT20S-300A-C`).
//!
//! The part number names the series count, the pulse current rating and the communication
//! port. Everything else about a variant follows from the current rating (see [`Variant`]).
//!
//! # Examples
//! ```
//! use bms_core::config::{Port, Variant};
//! let v: Variant = "ANT20S-300A-C".parse()?;
//! assert_eq!(v.cells, 20);
//! assert_eq!(v.pulse_current.as_ma(), 300_000);
//! assert_eq!(v.port, Port::Can);
//! assert!("ANT7S-80A-T".parse::<Variant>().is_err()); // fewer than 8 cells
//! # Ok::<(), bms_core::config::PartNumberError>(())
//! ```

use core::fmt;
use core::str::FromStr;

use crate::measure::{MAX_CELLS, MIN_CELLS};
use crate::units::MilliAmps;

/// The one communication port a product has (CAN, RS485 and TTL are exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Port {
    /// CAN 2.0A/B: J1939 or the inverter protocol (`-C`).
    #[default]
    Can,
    /// RS485 at 19200 baud (`-R`).
    Rs485,
    /// TTL UART at 19200 baud (`-T`).
    Ttl,
}

/// A product variant: series count, current rating and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Variant {
    /// Cells in series, 8..=20.
    pub cells: u8,
    /// Pulse current rating (the number in the part number), 30 s at most.
    pub pulse_current: MilliAmps,
    /// Continuous current rating.
    pub rated_current: MilliAmps,
    /// Communication port.
    pub port: Port,
}

/// Why a part number was not understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PartNumberError {
    /// It does not have the shape `ANT<cells>S-<amps>A-<port>`.
    Malformed,
    /// The series count is outside 8..=20.
    CellCount(u8),
    /// No product with this pulse current (known: 80 A, 300 A).
    UnknownCurrent(u16),
    /// The port letter is not C, R or T.
    UnknownPort(char),
}

impl fmt::Display for PartNumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartNumberError::Malformed => f.write_str(
                "part number must look like ANT16S-300A-C (cells, pulse amps, port C/R/T)",
            ),
            PartNumberError::CellCount(n) => write!(f, "{n} cells in series: supported 8..=20"),
            PartNumberError::UnknownCurrent(a) => {
                write!(
                    f,
                    "no {a} A variant: known pulse ratings are 80 A and 300 A"
                )
            }
            PartNumberError::UnknownPort(c) => write!(f, "unknown port letter '{c}': C, R or T"),
        }
    }
}

impl core::error::Error for PartNumberError {}

/// Known current ratings: (pulse A, continuous A).
const RATINGS: [(u16, u16); 2] = [(80, 40), (300, 100)];

impl Variant {
    /// The variant with `cells` in series and pulse rating `pulse_amps`.
    ///
    /// # Errors
    /// [`PartNumberError::CellCount`] or [`PartNumberError::UnknownCurrent`].
    pub fn new(cells: u8, pulse_amps: u16, port: Port) -> Result<Self, PartNumberError> {
        if !(MIN_CELLS..=MAX_CELLS).contains(&(cells as usize)) {
            return Err(PartNumberError::CellCount(cells));
        }
        let &(_, rated) = RATINGS
            .iter()
            .find(|(p, _)| *p == pulse_amps)
            .ok_or(PartNumberError::UnknownCurrent(pulse_amps))?;
        Ok(Variant {
            cells,
            pulse_current: MilliAmps::from_amps(pulse_amps as i32),
            rated_current: MilliAmps::from_amps(rated as i32),
            port,
        })
    }
}

fn number(s: &str) -> Result<u16, PartNumberError> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PartNumberError::Malformed);
    }
    s.parse().map_err(|_| PartNumberError::Malformed)
}

impl FromStr for Variant {
    type Err = PartNumberError;

    fn from_str(s: &str) -> Result<Self, PartNumberError> {
        let rest = s.strip_prefix("ANT").ok_or(PartNumberError::Malformed)?;
        let mut parts = rest.split('-');
        let (Some(cells), Some(amps), Some(port), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PartNumberError::Malformed);
        };
        let cells = number(cells.strip_suffix('S').ok_or(PartNumberError::Malformed)?)?;
        let amps = number(amps.strip_suffix('A').ok_or(PartNumberError::Malformed)?)?;
        let mut chars = port.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return Err(PartNumberError::Malformed);
        };
        let port = match c {
            'C' => Port::Can,
            'R' => Port::Rs485,
            'T' => Port::Ttl,
            other => return Err(PartNumberError::UnknownPort(other)),
        };
        let cells = u8::try_from(cells).map_err(|_| PartNumberError::CellCount(u8::MAX))?;
        Variant::new(cells, amps, port)
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = match self.port {
            Port::Can => 'C',
            Port::Rs485 => 'R',
            Port::Ttl => 'T',
        };
        write!(
            f,
            "ANT{}S-{}A-{}",
            self.cells,
            self.pulse_current.as_ma() / 1000,
            port
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn parses_spec_examples() {
        let v: Variant = "ANT20S-80A-T".parse().unwrap();
        assert_eq!(
            (v.cells, v.pulse_current.as_ma(), v.port),
            (20, 80_000, Port::Ttl)
        );
        assert_eq!(v.rated_current.as_ma(), 40_000);
        let v: Variant = "ANT16S-300A-R".parse().unwrap();
        assert_eq!(
            (v.cells, v.rated_current.as_ma(), v.port),
            (16, 100_000, Port::Rs485)
        );
        assert_eq!(v.to_string(), "ANT16S-300A-R");
    }

    #[test]
    fn rejects_bad_part_numbers() {
        use PartNumberError::*;
        for (s, e) in [
            ("", Malformed),
            ("ANT16S-300A", Malformed),
            ("ANT16-300A-C", Malformed),
            ("ANT16S-300A-C-X", Malformed),
            ("ANT16S-300A-CC", Malformed),
            ("ANT21S-300A-C", CellCount(21)),
            ("ANT999S-300A-C", CellCount(u8::MAX)),
            ("ANT16S-100A-C", UnknownCurrent(100)),
            ("ANT16S-300A-X", UnknownPort('X')),
            ("ANT16S-+3A-C", Malformed),
            ("ANT16S-99999A-C", Malformed),
        ] {
            assert_eq!(s.parse::<Variant>(), Err(e), "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = s.parse::<Variant>();
        }

        #[test]
        fn display_round_trips(cells in 8u8..=20, hi in proptest::bool::ANY, port in 0u8..3) {
            let port = [Port::Can, Port::Rs485, Port::Ttl][port as usize];
            let v = Variant::new(cells, if hi { 300 } else { 80 }, port).unwrap();
            proptest::prop_assert_eq!(v.to_string().parse::<Variant>(), Ok(v));
        }
    }
}
