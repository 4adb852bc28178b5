//! [`ParameterAccess`] over the [`Bms`]'s [`PackConfig`]: the
//! setting registers of the serial protocol mapped onto the protection table, balancing and
//! capacity.
//!
//! A write edits a copy of the configuration, which must pass `PackConfig::validate()`
//! (chemistry limits included) before it replaces the one in force through
//! [`Bms::set_config`]: atomic, and logged as [`Event::ConfigChanged`](crate::bms::Event).
//! Persisting is the board's job: it stores the configuration when it sees that event
//! (e.g. with [`ParamStore`](crate::event_log::ParamStore)).
//!
//! | register | name | maps to |
//! |---|---|---|
//! | 0x00 / 0x02 | cell OV protect / recover (mV) | `cell_ov` trip / release |
//! | 0x08 / 0x0A | pack OV protect / recover (0.1 V) | `pack_ov` trip / release |
//! | 0x0C / 0x0E | cell UV protect / recover (mV) | `cell_uv` trip / release |
//! | 0x14 / 0x16 | pack UV protect / recover (0.1 V) | `pack_uv` trip / release |
//! | 0x18 / 0x1A | cell delta protect / recover (mV) | `cell_imbalance` trip / release |
//! | 0x20, 0x28, 0x30 | cell OV / UV / delta warning (mV) | `warn` of `cell_ov`, `cell_uv`, `cell_imbalance` |
//! | 0x68 / 0x6A | charge OC (0.1 A) / delay (s) | `chg_oc` trip / delay |
//! | 0x6C / 0x6E | discharge OC (0.1 A) / delay (s) | `dsg_oc1` trip / delay |
//! | 0x70 / 0x72 | discharge OC 2 (0.1 A) / delay (ms) | `dsg_oc2` trip / delay |
//! | 0x74 / 0x76 | short circuit (A) / delay (µs) | `sc` trip / delay (whole ms, rounded up) |
//! | 0x7C, 0x80 | charge / discharge OC warning (0.1 A) | `warn` of `chg_oc`, `dsg_oc1` |
//! | 0x8E, 0x90, 0x92 | balance start (mV), delta on / off (mV) | `[balance]` |
//! | 0xA2 | nominal capacity (µAh) | `capacity_mah` |
//!
//! Every other register of [`REGISTERS`](super::REGISTERS) reads as
//! [`ParamError::UnknownRegister`] and is not writable.

use super::registers::{ParamError, ParameterAccess};
use crate::bms::Bms;
use crate::config::{ConfigError, PackConfig};
use crate::protect::Fault;
use crate::time::Duration;
use crate::units::{MilliAmpHours, MilliVolts};

/// What a register maps to; the protection fields are of the rule named next to them in
/// [`FIELDS`].
#[derive(Clone, Copy)]
enum Field {
    Trip,
    Release,
    Warn,
    DelaySecs,
    DelayMillis,
    DelayMicros,
    BalanceStart,
    BalanceOn,
    BalanceOff,
    Capacity,
}

/// Every mapped register with its field, its protection rule (unused by the fields outside
/// the protection table) and scale: wire value = config value / `div` (e.g. mA / 100 = 0.1 A;
/// only thresholds have a `div` other than 1).
// A table walk instead of a match, and the rule apart from the field: each rule is looked up
// once, not in every arm.
const FIELDS: [(u16, Field, Fault, u16); 27] = {
    use Fault::*;
    use Field::*;
    [
        (0x00, Trip, CellOv, 1),
        (0x02, Release, CellOv, 1),
        (0x08, Trip, PackOv, 100),
        (0x0A, Release, PackOv, 100),
        (0x0C, Trip, CellUv, 1),
        (0x0E, Release, CellUv, 1),
        (0x14, Trip, PackUv, 100),
        (0x16, Release, PackUv, 100),
        (0x18, Trip, CellImbalance, 1),
        (0x1A, Release, CellImbalance, 1),
        (0x20, Warn, CellOv, 1),
        (0x28, Warn, CellUv, 1),
        (0x30, Warn, CellImbalance, 1),
        (0x68, Trip, ChgOc, 100),
        (0x6A, DelaySecs, ChgOc, 1),
        (0x6C, Trip, DsgOc1, 100),
        (0x6E, DelaySecs, DsgOc1, 1),
        (0x70, Trip, DsgOc2, 100),
        (0x72, DelayMillis, DsgOc2, 1),
        (0x74, Trip, Sc, 1_000),
        (0x76, DelayMicros, Sc, 1),
        (0x7C, Warn, ChgOc, 100),
        (0x80, Warn, DsgOc1, 100),
        (0x8E, BalanceStart, CellOv, 1),
        (0x90, BalanceOn, CellOv, 1),
        (0x92, BalanceOff, CellOv, 1),
        (0xA2, Capacity, CellOv, 1),
    ]
};

fn field(reg: u16) -> Option<(Field, Fault, i32)> {
    FIELDS
        .iter()
        .find(|e| e.0 == reg)
        .map(|&(_, f, x, div)| (f, x, i32::from(div)))
}

fn read(cfg: &PackConfig, reg: u16) -> Result<u32, ParamError> {
    let (f, x, div) = field(reg).ok_or(ParamError::UnknownRegister)?;
    let rule = cfg.protection.get(x);
    // 32-bit: thresholds are `i32` and only they are scaled down (a negative one is out of
    // range); the two fields scaled up may overflow `u32`, which is out of range too.
    let threshold = |v: i32| u32::try_from(v / div).ok();
    let value = match f {
        Field::Trip => threshold(rule.trip),
        Field::Release => threshold(rule.release),
        Field::Warn => threshold(rule.warn.unwrap_or(rule.trip)),
        Field::DelaySecs => Some(rule.delay.as_secs()),
        Field::DelayMillis => Some(rule.delay.as_millis()),
        Field::DelayMicros => rule.delay.as_millis().checked_mul(1_000),
        Field::BalanceStart => Some(cfg.balance.start_voltage.as_mv()),
        Field::BalanceOn => Some(cfg.balance.start_delta.as_mv()),
        Field::BalanceOff => Some(cfg.balance.stop_delta.as_mv()),
        Field::Capacity => cfg.capacity_mah.as_mah().checked_mul(1_000),
    };
    value.ok_or(ParamError::OutOfRange)
}

fn write(cfg: &mut PackConfig, reg: u16, value: u32) -> Result<(), ParamError> {
    let (f, x, mul) = field(reg).ok_or(ParamError::UnknownRegister)?;
    // `value · mul` fits an i32 exactly when both steps do (`mul` is positive).
    let v = i32::try_from(value)
        .ok()
        .and_then(|v| v.checked_mul(mul))
        .ok_or(ParamError::OutOfRange)?;
    let mv = MilliVolts::from_mv(value);
    let rule = cfg.protection.get_mut(x);
    let balance = &mut cfg.balance;
    match f {
        Field::Trip => rule.trip = v,
        Field::Release => rule.release = v,
        Field::Warn => rule.warn = Some(v),
        Field::DelaySecs => rule.delay = Duration::from_secs(value),
        Field::DelayMillis => rule.delay = Duration::from_millis(value),
        // Software protection runs per step: round up to whole milliseconds.
        Field::DelayMicros => rule.delay = Duration::from_millis(value.div_ceil(1_000)),
        Field::BalanceStart => balance.start_voltage = mv,
        Field::BalanceOn => balance.start_delta = mv,
        Field::BalanceOff => balance.stop_delta = mv,
        Field::Capacity => cfg.capacity_mah = MilliAmpHours::from_mah(value / 1_000),
    }
    cfg.validate().map_err(|e| match e {
        ConfigError::BeyondChemistry(_) | ConfigError::Plausibility => ParamError::OutOfRange,
        _ => ParamError::Invalid,
    })
}

impl ParameterAccess for Bms {
    fn read(&self, reg: u16) -> Result<u32, ParamError> {
        read(self.config(), reg)
    }

    fn write(&mut self, reg: u16, value: u32) -> Result<(), ParamError> {
        let mut cfg = *self.config();
        write(&mut cfg, reg, value)?;
        let now = self.telemetry().now;
        self.set_config(now, cfg).map_err(|_| ParamError::Invalid)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::config::Chemistry;

    fn bms() -> Bms {
        Bms::new(PackConfig::preset(
            "ANT16S-300A-C".parse().unwrap(),
            Chemistry::Lfp,
        ))
        .unwrap()
    }

    /// Which rule field a register maps to, written out register by register (the mapping
    /// before the table).
    enum RefField {
        Trip(Fault, i32),
        Release(Fault, i32),
        Warn(Fault, i32),
        Secs(Fault),
        Millis(Fault),
        Micros(Fault),
        Start,
        On,
        Off,
        Capacity,
    }

    fn ref_field(reg: u16) -> Option<RefField> {
        use Fault::*;
        use RefField::*;
        Some(match reg {
            0x00 => Trip(CellOv, 1),
            0x02 => Release(CellOv, 1),
            0x08 => Trip(PackOv, 100),
            0x0A => Release(PackOv, 100),
            0x0C => Trip(CellUv, 1),
            0x0E => Release(CellUv, 1),
            0x14 => Trip(PackUv, 100),
            0x16 => Release(PackUv, 100),
            0x18 => Trip(CellImbalance, 1),
            0x1A => Release(CellImbalance, 1),
            0x20 => Warn(CellOv, 1),
            0x28 => Warn(CellUv, 1),
            0x30 => Warn(CellImbalance, 1),
            0x68 => Trip(ChgOc, 100),
            0x6A => Secs(ChgOc),
            0x6C => Trip(DsgOc1, 100),
            0x6E => Secs(DsgOc1),
            0x70 => Trip(DsgOc2, 100),
            0x72 => Millis(DsgOc2),
            0x74 => Trip(Sc, 1_000),
            0x76 => Micros(Sc),
            0x7C => Warn(ChgOc, 100),
            0x80 => Warn(DsgOc1, 100),
            0x8E => Start,
            0x90 => On,
            0x92 => Off,
            0xA2 => Capacity,
            _ => return None,
        })
    }

    fn ref_read(cfg: &PackConfig, reg: u16) -> Result<u32, ParamError> {
        let p = &cfg.protection;
        let thr = |v: i32, d: i32| u32::try_from(v / d).map_err(|_| ParamError::OutOfRange);
        match ref_field(reg).ok_or(ParamError::UnknownRegister)? {
            RefField::Trip(x, d) => thr(p.get(x).trip, d),
            RefField::Release(x, d) => thr(p.get(x).release, d),
            RefField::Warn(x, d) => thr(p.get(x).warn.unwrap_or(p.get(x).trip), d),
            RefField::Secs(x) => Ok(p.get(x).delay.as_millis() / 1_000),
            RefField::Millis(x) => Ok(p.get(x).delay.as_millis()),
            RefField::Micros(x) => (p.get(x).delay.as_millis() as u64 * 1_000)
                .try_into()
                .map_err(|_| ParamError::OutOfRange),
            RefField::Start => Ok(cfg.balance.start_voltage.as_mv()),
            RefField::On => Ok(cfg.balance.start_delta.as_mv()),
            RefField::Off => Ok(cfg.balance.stop_delta.as_mv()),
            RefField::Capacity => (cfg.capacity_mah.as_mah() as u64 * 1_000)
                .try_into()
                .map_err(|_| ParamError::OutOfRange),
        }
    }

    fn ref_write(cfg: &mut PackConfig, reg: u16, value: u32) -> Result<(), ParamError> {
        let f = ref_field(reg).ok_or(ParamError::UnknownRegister)?;
        let scaled = |d: i32| {
            let v = value as i64 * d as i64;
            i32::try_from(v).map_err(|_| ParamError::OutOfRange)
        };
        let p = &mut cfg.protection;
        match f {
            RefField::Trip(x, d) => p.get_mut(x).trip = scaled(d)?,
            RefField::Release(x, d) => p.get_mut(x).release = scaled(d)?,
            RefField::Warn(x, d) => p.get_mut(x).warn = Some(scaled(d)?),
            RefField::Secs(x) => {
                scaled(1)?;
                p.get_mut(x).delay = Duration::from_secs(value)
            }
            RefField::Millis(x) => {
                scaled(1)?;
                p.get_mut(x).delay = Duration::from_millis(value)
            }
            RefField::Micros(x) => {
                scaled(1)?;
                p.get_mut(x).delay = Duration::from_millis(value.div_ceil(1_000))
            }
            RefField::Start => {
                scaled(1)?;
                cfg.balance.start_voltage = MilliVolts::from_mv(value)
            }
            RefField::On => {
                scaled(1)?;
                cfg.balance.start_delta = MilliVolts::from_mv(value)
            }
            RefField::Off => {
                scaled(1)?;
                cfg.balance.stop_delta = MilliVolts::from_mv(value)
            }
            RefField::Capacity => {
                scaled(1)?;
                cfg.capacity_mah = MilliAmpHours::from_mah(value / 1_000)
            }
        }
        cfg.validate().map_err(|e| match e {
            ConfigError::BeyondChemistry(_) | ConfigError::Plausibility => ParamError::OutOfRange,
            _ => ParamError::Invalid,
        })
    }

    proptest::proptest! {
        /// Reads and writes through the table equal the register-by-register mapping, on
        /// the same sequence of writes (values near each register's present one and wild).
        #[test]
        fn table_equals_the_plain_mapping(
            ops in proptest::collection::vec(
                (0usize..40, proptest::prelude::any::<u32>(), -300i32..300, proptest::prelude::any::<bool>()),
                1..40,
            ),
            lfp: bool,
        ) {
            let chem = if lfp { Chemistry::Lfp } else { Chemistry::Nmc };
            let base = PackConfig::preset("ANT16S-300A-C".parse().unwrap(), chem);
            let (mut a, mut b) = (base, base);
            for (i, wild, delta, use_wild) in ops {
                let reg = FIELDS.get(i).map_or(0x9C + 2 * i as u16, |e| e.0);
                proptest::prop_assert_eq!(read(&a, reg), ref_read(&b, reg));
                let value = if use_wild {
                    wild
                } else {
                    read(&a, reg).unwrap_or(0).wrapping_add_signed(delta)
                };
                let (mut ta, mut tb) = (a, b);
                let ra = write(&mut ta, reg, value);
                let rb = ref_write(&mut tb, reg, value);
                proptest::prop_assert_eq!(ra, rb);
                proptest::prop_assert_eq!(&ta, &tb);
                if ra.is_ok() {
                    a = ta;
                    b = tb;
                }
            }
            for &(reg, ..) in FIELDS.iter() {
                proptest::prop_assert_eq!(read(&a, reg), ref_read(&b, reg));
            }
        }
    }

    #[test]
    fn reads_in_wire_units() {
        let b = bms();
        assert_eq!(ParameterAccess::read(&b, 0x00), Ok(3_650));
        assert_eq!(ParameterAccess::read(&b, 0x08), Ok(16 * 3_670 / 100));
        assert_eq!(ParameterAccess::read(&b, 0x74), Ok(300));
        assert_eq!(ParameterAccess::read(&b, 0x68), Ok(1_200));
        assert_eq!(ParameterAccess::read(&b, 0xA2), Ok(100_000_000));
        assert_eq!(
            ParameterAccess::read(&b, 0x17A),
            Err(ParamError::UnknownRegister)
        );
    }

    #[test]
    fn every_mapped_register_is_in_the_table_once() {
        for (i, &(reg, _, _, div)) in FIELDS.iter().enumerate() {
            assert!(super::super::registers::lookup(reg).is_some(), "{reg:#x}");
            assert!(div > 0);
            assert!(FIELDS[..i].iter().all(|e| e.0 != reg), "{reg:#x} twice");
        }
        let b = bms();
        let mapped = crate::serial::REGISTERS
            .iter()
            .filter(|r| ParameterAccess::read(&b, r.addr).is_ok())
            .count();
        assert_eq!(mapped, FIELDS.len());
    }

    #[test]
    fn valid_write_applies_and_logs() {
        let mut b = bms();
        assert_eq!(ParameterAccess::write(&mut b, 0x00, 3_620), Ok(()));
        assert_eq!(b.config().protection.get(Fault::CellOv).trip, 3_620);
        assert_eq!(
            b.poll_event().map(|e| e.event),
            Some(crate::bms::Event::ConfigChanged)
        );
        assert_eq!(ParameterAccess::write(&mut b, 0x76, 1_500), Ok(()));
        assert_eq!(b.config().protection.get(Fault::Sc).delay.as_millis(), 2);
    }

    #[test]
    fn rejected_writes_change_nothing() {
        let mut b = bms();
        let before = *b.config();
        // Beyond LFP's absolute limit, release above trip, warn above trip, OC order broken.
        for (reg, v, e) in [
            (0x00, 3_900, ParamError::OutOfRange),
            (0x02, 3_700, ParamError::Invalid),
            (0x20, 3_700, ParamError::Invalid),
            (0x6C, 3_000, ParamError::Invalid),
            (0xA2, 0, ParamError::Invalid),
            (0x9C, 1, ParamError::UnknownRegister),
        ] {
            assert_eq!(ParameterAccess::write(&mut b, reg, v), Err(e), "{reg:#x}");
            assert_eq!(b.config(), &before);
        }
        assert_eq!(b.poll_event(), None);
    }
}
