//! The declarative protection table: one [`ProtectionRule`] per [`Fault`].
//!
//! What each fault measures, in which direction it trips and which MOSFETs it opens is
//! fixed by the fault catalogue ([`Fault::quantity`], [`Fault::direction`],
//! [`Fault::action`]): those are safety properties, not tunables. Thresholds, delays,
//! hysteresis and the latch policy are configuration ([`ProtectionRule`]).
//!
//! | fault | measures | unit of `trip`/`release` | trips when | opens |
//! |---|---|---|---|---|
//! | `cell_ov` | highest cell | mV | above | charge |
//! | `cell_uv` | lowest cell | mV | below | discharge |
//! | `pack_ov` | pack voltage | mV | above | charge |
//! | `pack_uv` | pack voltage | mV | below | discharge |
//! | `chg_oc` | charge current (magnitude) | mA | above | charge |
//! | `dsg_oc1`, `dsg_oc2`, `sc` | discharge current | mA | above | discharge |
//! | `chg_ot` / `chg_ut` | hottest / coldest NTC | 0.1 °C | above / below | charge |
//! | `dsg_ot` / `dsg_ut` | hottest / coldest NTC | 0.1 °C | above / below | discharge |
//! | `mos_ot` | MOSFET temperature | 0.1 °C | above | both |
//! | `cell_imbalance` | highest - lowest cell | mV | above | both |
//! | `open_wire` | open sense wires | count | above | both |
//! | `afe_comm` | failed cell-monitor reads | 0/1 | above | both |
//! | `sensor_fault` | implausible readings | 0/1 | above | both |
//! | `precharge_fail` | pre-charge timed out | 0/1 | above | discharge |
//!
//! "Above" trips when the value is `>= trip` for `delay_ms` and releases when it is
//! `<= release` for `release_delay_ms`; "below" mirrors it. `release` must lie on the safe
//! side of `trip` (checked by [`ProtectionTable::validate`]).

use core::fmt;

use super::{Fault, FaultSet};
use crate::time::Duration;

/// The physical quantity a fault watches, and so the unit of its thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Quantity {
    /// A cell voltage or cell-voltage difference, mV.
    CellVoltage,
    /// The pack voltage, mV.
    PackVoltage,
    /// A current magnitude, mA.
    Current,
    /// A temperature, 0.1 °C.
    Temperature,
    /// A count or a 0/1 condition.
    Count,
}

impl Quantity {
    /// The unit of thresholds, as written in configuration files and docs.
    pub const fn unit(self) -> &'static str {
        match self {
            Quantity::CellVoltage | Quantity::PackVoltage => "mV",
            Quantity::Current => "mA",
            Quantity::Temperature => "0.1 degC",
            Quantity::Count => "count",
        }
    }
}

/// Which side of the threshold is the fault side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Direction {
    /// Trips at `value >= trip`, releases at `value <= release`.
    Above,
    /// Trips at `value <= trip`, releases at `value >= release`.
    Below,
}

/// Which MOSFETs a fault opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Action {
    /// Opens the charge MOSFET: no more charge current.
    OpenCharge,
    /// Opens the discharge MOSFET (and pre-charge): no more discharge current.
    OpenDischarge,
    /// Opens both.
    OpenAll,
}

impl Action {
    /// `true` if this action blocks charging.
    pub const fn blocks_charge(self) -> bool {
        matches!(self, Action::OpenCharge | Action::OpenAll)
    }
    /// `true` if this action blocks discharging.
    pub const fn blocks_discharge(self) -> bool {
        matches!(self, Action::OpenDischarge | Action::OpenAll)
    }
}

/// Catalogue row: (quantity, direction, action), indexed by `Fault as usize`.
const CATALOGUE: [(Quantity, Direction, Action); Fault::COUNT] = {
    use Action::*;
    use Direction::*;
    use Quantity::*;
    [
        (CellVoltage, Above, OpenCharge),    // cell_ov
        (CellVoltage, Below, OpenDischarge), // cell_uv
        (PackVoltage, Above, OpenCharge),    // pack_ov
        (PackVoltage, Below, OpenDischarge), // pack_uv
        (Current, Above, OpenCharge),        // chg_oc
        (Current, Above, OpenDischarge),     // dsg_oc1
        (Current, Above, OpenDischarge),     // dsg_oc2
        (Current, Above, OpenDischarge),     // sc
        (Temperature, Above, OpenCharge),    // chg_ot
        (Temperature, Below, OpenCharge),    // chg_ut
        (Temperature, Above, OpenDischarge), // dsg_ot
        (Temperature, Below, OpenDischarge), // dsg_ut
        (Temperature, Above, OpenAll),       // mos_ot
        (CellVoltage, Above, OpenAll),       // cell_imbalance
        (Count, Above, OpenAll),             // open_wire
        (Count, Above, OpenAll),             // afe_comm
        (Count, Above, OpenAll),             // sensor_fault
        (Count, Above, OpenDischarge),       // precharge_fail
    ]
};

/// The faults whose catalogue action is `a` or, with `or_all`, also [`Action::OpenAll`].
const fn faults_with(a: Action, or_all: bool) -> FaultSet {
    let mut bits = 0;
    let mut i = 0;
    while i < Fault::COUNT {
        let action = CATALOGUE[i].2;
        if action as u8 == a as u8 || (or_all && matches!(action, Action::OpenAll)) {
            bits |= 1 << i;
        }
        i += 1;
    }
    FaultSet::from_bits(bits)
}

impl Action {
    /// Every fault that blocks charging (its action opens the charge MOSFET).
    pub const CHARGE_BLOCKING: FaultSet = faults_with(Action::OpenCharge, true);
    /// Every fault that blocks discharging.
    pub const DISCHARGE_BLOCKING: FaultSet = faults_with(Action::OpenDischarge, true);
    /// Every fault that opens both MOSFETs.
    pub const BOTH_BLOCKING: FaultSet = faults_with(Action::OpenAll, false);
}

impl Fault {
    /// What this fault measures (the unit of its thresholds).
    pub const fn quantity(self) -> Quantity {
        CATALOGUE[self as usize].0
    }
    /// Which side of the threshold is the fault.
    pub const fn direction(self) -> Direction {
        CATALOGUE[self as usize].1
    }
    /// Which MOSFETs this fault opens.
    pub const fn action(self) -> Action {
        CATALOGUE[self as usize].2
    }
}

/// When a tripped fault may release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Latch {
    /// Releases when the value has been on the release side for `release_delay_ms`.
    #[default]
    Auto,
    /// Additionally waits until the load is removed (discharge faults).
    LoadRemoved,
    /// Additionally waits until the charger is removed (charge faults).
    ChargerRemoved,
    /// Stays tripped until an explicit reset.
    Reset,
}

impl Latch {
    /// The configuration name.
    pub const fn name(self) -> &'static str {
        match self {
            Latch::Auto => "auto",
            Latch::LoadRemoved => "load_removed",
            Latch::ChargerRemoved => "charger_removed",
            Latch::Reset => "reset",
        }
    }
}

/// Thresholds, delays and latch policy of one fault.
///
/// `trip`, `release` and `warn` are in the unit of the fault's [`Quantity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct ProtectionRule {
    /// Trip threshold.
    pub trip: i32,
    /// Release threshold (hysteresis), on the safe side of `trip`.
    pub release: i32,
    /// How long the value must stay beyond `trip` before the fault trips.
    #[cfg_attr(feature = "serde", serde(rename = "delay_ms"))]
    pub delay: Duration,
    /// How long the value must stay beyond `release` before the fault releases.
    #[cfg_attr(feature = "serde", serde(rename = "release_delay_ms"))]
    pub release_delay: Duration,
    /// Release policy.
    pub latch: Latch,
    /// Warning threshold (a first tier on the safe side of `trip`); warnings use the same
    /// delays and the distance `trip - release` as hysteresis. `None`: no warning.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub warn: Option<i32>,
    /// Trips that may auto-release within the retry window before the fault latches until
    /// reset; `0` = unlimited.
    #[cfg_attr(feature = "serde", serde(default))]
    pub retries: u8,
    /// Whether the fault is evaluated at all. Faults that guard against unknown input
    /// (`afe_comm`, `sensor_fault`, `open_wire`) cannot be disabled.
    #[cfg_attr(feature = "serde", serde(default = "enabled"))]
    pub enabled: bool,
}

#[cfg(feature = "serde")]
fn enabled() -> bool {
    true
}

impl ProtectionRule {
    /// A rule that releases automatically, with no warning tier and no retry limit.
    pub const fn new(trip: i32, release: i32, delay_ms: u32, release_delay_ms: u32) -> Self {
        ProtectionRule {
            trip,
            release,
            delay: Duration::from_millis(delay_ms),
            release_delay: Duration::from_millis(release_delay_ms),
            latch: Latch::Auto,
            warn: None,
            retries: 0,
            enabled: true,
        }
    }
    /// With a latch policy.
    pub const fn latch(mut self, latch: Latch) -> Self {
        self.latch = latch;
        self
    }
    /// With a warning threshold.
    pub const fn warn(mut self, warn: i32) -> Self {
        self.warn = Some(warn);
        self
    }
    /// With a retry budget.
    pub const fn retries(mut self, retries: u8) -> Self {
        self.retries = retries;
        self
    }
}

/// A rule that does not make sense, with the fault it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RuleError {
    /// `release` is not on the safe side of `trip` (no hysteresis or inverted).
    ReleaseWrongSide(Fault),
    /// `warn` is not strictly between the safe side and `trip`.
    WarnWrongSide(Fault),
    /// A safety fault that may not be disabled was disabled.
    MandatoryDisabled(Fault),
    /// A negative threshold where the quantity is a magnitude.
    Negative(Fault),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleError::ReleaseWrongSide(x) => {
                write!(
                    f,
                    "protection.{x}: release threshold is on the wrong side of trip"
                )
            }
            RuleError::WarnWrongSide(x) => {
                write!(
                    f,
                    "protection.{x}: warn threshold must lie on the safe side of trip"
                )
            }
            RuleError::MandatoryDisabled(x) => write!(f, "protection.{x}: cannot be disabled"),
            RuleError::Negative(x) => write!(f, "protection.{x}: thresholds must not be negative"),
        }
    }
}

/// The protection table: one rule per fault, indexed by [`Fault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ProtectionTable {
    rules: [ProtectionRule; Fault::COUNT],
}

impl ProtectionTable {
    /// A table from rules in [`Fault::ALL`] order.
    pub const fn from_rules(rules: [ProtectionRule; Fault::COUNT]) -> Self {
        ProtectionTable { rules }
    }
    /// The rule of `fault`.
    pub const fn get(&self, fault: Fault) -> &ProtectionRule {
        &self.rules[fault as usize]
    }
    /// The rule of `fault`, mutable.
    pub fn get_mut(&mut self, fault: Fault) -> &mut ProtectionRule {
        &mut self.rules[fault as usize]
    }
    /// `(fault, rule)` pairs in [`Fault::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Fault, &ProtectionRule)> {
        Fault::ALL.iter().copied().zip(self.rules.iter())
    }

    /// Checks every rule on its own (hysteresis sides, warning tier, mandatory faults).
    ///
    /// # Errors
    /// The first [`RuleError`] found, in [`Fault::ALL`] order.
    pub fn validate(&self) -> Result<(), RuleError> {
        for (f, r) in self.iter() {
            if !r.enabled && matches!(f, Fault::AfeComm | Fault::SensorFault | Fault::OpenWire) {
                return Err(RuleError::MandatoryDisabled(f));
            }
            if matches!(
                f.quantity(),
                Quantity::Current | Quantity::Count | Quantity::CellVoltage | Quantity::PackVoltage
            ) && (r.trip < 0 || r.release < 0)
            {
                return Err(RuleError::Negative(f));
            }
            let ok = match f.direction() {
                Direction::Above => r.release < r.trip,
                Direction::Below => r.release > r.trip,
            };
            if !ok {
                return Err(RuleError::ReleaseWrongSide(f));
            }
            if let Some(w) = r.warn {
                let ok = match f.direction() {
                    Direction::Above => w < r.trip,
                    Direction::Below => w > r.trip,
                };
                if !ok {
                    return Err(RuleError::WarnWrongSide(f));
                }
            }
        }
        Ok(())
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! `[protection.<fault>]` tables keyed by the contract names.
    use super::*;
    use serde::de::{Error as _, MapAccess, Visitor};
    use serde::ser::SerializeMap;

    impl serde::Serialize for ProtectionTable {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(Fault::COUNT))?;
            for (f, r) in self.iter() {
                m.serialize_entry(f.name(), r)?;
            }
            m.end()
        }
    }

    impl<'de> serde::Deserialize<'de> for ProtectionTable {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = ProtectionTable;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a table with one entry per fault (cell_ov, cell_uv, ...)")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<ProtectionTable, A::Error> {
                    let mut rules: [Option<ProtectionRule>; Fault::COUNT] = [None; Fault::COUNT];
                    while let Some(f) = map.next_key::<Fault>()? {
                        if rules[f.index()].is_some() {
                            return Err(A::Error::custom(format_args!("duplicate fault `{f}`")));
                        }
                        rules[f.index()] = Some(map.next_value()?);
                    }
                    let mut out = [ProtectionRule::new(0, 0, 0, 0); Fault::COUNT];
                    for f in Fault::ALL {
                        out[f.index()] = rules[f.index()].ok_or_else(|| {
                            A::Error::custom(format_args!("missing [protection.{}]", f.name()))
                        })?;
                    }
                    Ok(ProtectionTable::from_rules(out))
                }
            }
            d.deserialize_map(V)
        }
    }

    impl serde::Serialize for Fault {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(self.name())
        }
    }

    impl<'de> serde::Deserialize<'de> for Fault {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Fault;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a fault name such as `cell_ov`")
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Fault, E> {
                    Fault::from_name(v)
                        .ok_or_else(|| E::custom(format_args!("unknown fault `{v}`")))
                }
            }
            d.deserialize_str(V)
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn blocking_masks_follow_the_catalogue() {
        for f in Fault::ALL {
            let a = f.action();
            assert_eq!(
                Action::CHARGE_BLOCKING.contains(f),
                a.blocks_charge(),
                "{f}"
            );
            assert_eq!(
                Action::DISCHARGE_BLOCKING.contains(f),
                a.blocks_discharge(),
                "{f}"
            );
            assert_eq!(
                Action::BOTH_BLOCKING.contains(f),
                a == Action::OpenAll,
                "{f}"
            );
        }
    }
}
