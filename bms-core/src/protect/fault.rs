//! The fault catalogue: one fieldless enum, also the index of every per-fault table.

use core::fmt;

macro_rules! faults {
    ($( $(#[$doc:meta])* $v:ident = $name:literal, )*) => {
        /// A protection fault (DESIGN.md section 4). The discriminant indexes per-fault tables.
        ///
        /// `Display` prints the contract name used in CSV files, TOML keys and logs.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[repr(u8)]
        pub enum Fault {
            $( $(#[$doc])* $v, )*
        }

        impl Fault {
            /// Every fault, in discriminant order.
            pub const ALL: [Fault; Fault::COUNT] = [ $( Fault::$v, )* ];

            /// The contract name (`cell_ov`, `dsg_oc1`, ...).
            pub const fn name(self) -> &'static str {
                match self { $( Fault::$v => $name, )* }
            }

            /// Looks a fault up by its contract name.
            pub fn from_name(name: &str) -> Option<Fault> {
                match name { $( $name => Some(Fault::$v), )* _ => None }
            }
        }
    };
}

faults! {
    /// A cell above its over-voltage limit.
    CellOv = "cell_ov",
    /// A cell below its under-voltage limit.
    CellUv = "cell_uv",
    /// Pack voltage above its limit.
    PackOv = "pack_ov",
    /// Pack voltage below its limit.
    PackUv = "pack_uv",
    /// Charge over-current.
    ChgOc = "chg_oc",
    /// Discharge over-current, level 1 (sustained).
    DsgOc1 = "dsg_oc1",
    /// Discharge over-current, level 2 (pulse).
    DsgOc2 = "dsg_oc2",
    /// Short circuit.
    Sc = "sc",
    /// Over-temperature while charging.
    ChgOt = "chg_ot",
    /// Under-temperature while charging.
    ChgUt = "chg_ut",
    /// Over-temperature while discharging.
    DsgOt = "dsg_ot",
    /// Under-temperature while discharging.
    DsgUt = "dsg_ut",
    /// MOSFET over-temperature.
    MosOt = "mos_ot",
    /// Cell voltage spread above its limit.
    CellImbalance = "cell_imbalance",
    /// A cell sense wire is open.
    OpenWire = "open_wire",
    /// Communication with the analog front end lost.
    AfeComm = "afe_comm",
    /// An implausible, stuck or out-of-range reading.
    SensorFault = "sensor_fault",
    /// The pre-charge did not reach its target voltage in time.
    PrechargeFail = "precharge_fail",
}

impl Fault {
    /// Number of faults.
    pub const COUNT: usize = 18;

    /// Index into per-fault tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The bit of this fault in a [`FaultSet`].
    pub const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

const _: () = assert!(Fault::COUNT == Fault::ALL.len() && Fault::COUNT <= 32);

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of faults as a bit mask (bit `n` = `Fault::ALL[n]`).
///
/// # Examples
/// ```
/// use bms_core::protect::{Fault, FaultSet};
/// let mut s = FaultSet::EMPTY;
/// s.insert(Fault::CellOv);
/// s.insert(Fault::Sc);
/// assert!(s.contains(Fault::Sc));
/// assert_eq!(s.iter().count(), 2);
/// assert_eq!(format!("{s}"), "cell_ov|sc");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FaultSet(u32);

impl FaultSet {
    /// No faults.
    pub const EMPTY: FaultSet = FaultSet(0);

    /// From a raw mask; bits above [`Fault::COUNT`] are dropped.
    pub const fn from_bits(bits: u32) -> Self {
        FaultSet(bits & ((1 << Fault::COUNT) - 1))
    }
    /// The raw mask.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// `true` when no fault is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// `true` when `f` is set.
    pub const fn contains(self, f: Fault) -> bool {
        self.0 & f.bit() != 0
    }
    /// Sets `f`.
    pub fn insert(&mut self, f: Fault) {
        self.0 |= f.bit();
    }
    /// Clears `f`.
    pub fn remove(&mut self, f: Fault) {
        self.0 &= !f.bit();
    }
    /// Sets or clears `f`.
    pub fn set(&mut self, f: Fault, on: bool) {
        if on {
            self.insert(f)
        } else {
            self.remove(f)
        }
    }
    /// Faults in `self` or `other`.
    pub const fn union(self, other: FaultSet) -> FaultSet {
        FaultSet(self.0 | other.0)
    }
    /// Faults in `self` but not in `other`.
    pub const fn difference(self, other: FaultSet) -> FaultSet {
        FaultSet(self.0 & !other.0)
    }
    /// Number of faults set.
    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }
    /// `true` when `self` and `other` share a fault.
    pub const fn intersects(self, other: FaultSet) -> bool {
        self.0 & other.0 != 0
    }
    /// The faults set, in discriminant order.
    pub fn iter(self) -> impl Iterator<Item = Fault> {
        let mut bits = self.0;
        // Visits set bits only (lowest first), not every fault.
        core::iter::from_fn(move || {
            let f = Fault::ALL.get(bits.trailing_zeros() as usize).copied();
            bits &= bits.wrapping_sub(1);
            f
        })
    }
}

impl FromIterator<Fault> for FaultSet {
    fn from_iter<I: IntoIterator<Item = Fault>>(iter: I) -> Self {
        let mut s = FaultSet::EMPTY;
        for f in iter {
            s.insert(f);
        }
        s
    }
}

/// Prints the names joined by `|` (the CSV contract), empty for no faults.
impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for x in self.iter() {
            if !first {
                f.write_str("|")?;
            }
            first = false;
            f.write_str(x.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Fault::ALL {
            assert_eq!(Fault::from_name(f.name()), Some(f));
            assert_eq!(Fault::ALL[f.index()], f);
        }
        assert_eq!(Fault::from_name("nope"), None);
    }

    #[test]
    fn from_bits_masks_unknown() {
        assert_eq!(FaultSet::from_bits(u32::MAX).len(), Fault::COUNT as u32);
    }
}
