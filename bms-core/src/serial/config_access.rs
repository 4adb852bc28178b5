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
use crate::protect::{Fault, ProtectionRule};
use crate::time::Duration;
use crate::units::{MilliAmpHours, MilliVolts};

#[derive(Clone, Copy)]
enum Field {
    Trip(Fault),
    Release(Fault),
    Warn(Fault),
    DelaySecs(Fault),
    DelayMillis(Fault),
    DelayMicros(Fault),
    BalanceStart,
    BalanceOn,
    BalanceOff,
    Capacity,
}

/// Wire value = config value / `div` (e.g. mA / 100 = 0.1 A).
fn field(reg: u16) -> Option<(Field, i32)> {
    use Fault::*;
    use Field::*;
    Some(match reg {
        0x00 => (Trip(CellOv), 1),
        0x02 => (Release(CellOv), 1),
        0x08 => (Trip(PackOv), 100),
        0x0A => (Release(PackOv), 100),
        0x0C => (Trip(CellUv), 1),
        0x0E => (Release(CellUv), 1),
        0x14 => (Trip(PackUv), 100),
        0x16 => (Release(PackUv), 100),
        0x18 => (Trip(CellImbalance), 1),
        0x1A => (Release(CellImbalance), 1),
        0x20 => (Warn(CellOv), 1),
        0x28 => (Warn(CellUv), 1),
        0x30 => (Warn(CellImbalance), 1),
        0x68 => (Trip(ChgOc), 100),
        0x6A => (DelaySecs(ChgOc), 1),
        0x6C => (Trip(DsgOc1), 100),
        0x6E => (DelaySecs(DsgOc1), 1),
        0x70 => (Trip(DsgOc2), 100),
        0x72 => (DelayMillis(DsgOc2), 1),
        0x74 => (Trip(Sc), 1_000),
        0x76 => (DelayMicros(Sc), 1),
        0x7C => (Warn(ChgOc), 100),
        0x80 => (Warn(DsgOc1), 100),
        0x8E => (BalanceStart, 1),
        0x90 => (BalanceOn, 1),
        0x92 => (BalanceOff, 1),
        0xA2 => (Capacity, 1),
        _ => return None,
    })
}

fn read(cfg: &PackConfig, reg: u16) -> Result<u32, ParamError> {
    let (f, div) = field(reg).ok_or(ParamError::UnknownRegister)?;
    let rule = |x: Fault| cfg.protection.get(x);
    let raw: i64 = match f {
        Field::Trip(x) => i64::from(rule(x).trip),
        Field::Release(x) => i64::from(rule(x).release),
        Field::Warn(x) => i64::from(rule(x).warn.unwrap_or(rule(x).trip)),
        Field::DelaySecs(x) => i64::from(rule(x).delay.as_secs()),
        Field::DelayMillis(x) => i64::from(rule(x).delay.as_millis()),
        Field::DelayMicros(x) => i64::from(rule(x).delay.as_millis()) * 1_000,
        Field::BalanceStart => i64::from(cfg.balance.start_voltage.as_mv()),
        Field::BalanceOn => i64::from(cfg.balance.start_delta.as_mv()),
        Field::BalanceOff => i64::from(cfg.balance.stop_delta.as_mv()),
        Field::Capacity => i64::from(cfg.capacity_mah.as_mah()) * 1_000,
    };
    u32::try_from(raw / i64::from(div)).map_err(|_| ParamError::OutOfRange)
}

fn write(cfg: &mut PackConfig, reg: u16, value: u32) -> Result<(), ParamError> {
    let (f, mul) = field(reg).ok_or(ParamError::UnknownRegister)?;
    let scaled = i64::from(value) * i64::from(mul);
    let v = i32::try_from(scaled).map_err(|_| ParamError::OutOfRange)?;
    let mv = MilliVolts::from_mv(value);
    let edit = |cfg: &mut PackConfig, x: Fault, g: &dyn Fn(&mut ProtectionRule)| {
        g(cfg.protection.get_mut(x))
    };
    match f {
        Field::Trip(x) => edit(cfg, x, &|r| r.trip = v),
        Field::Release(x) => edit(cfg, x, &|r| r.release = v),
        Field::Warn(x) => edit(cfg, x, &|r| r.warn = Some(v)),
        Field::DelaySecs(x) => {
            let d = Duration::from_secs(value);
            edit(cfg, x, &|r| r.delay = d)
        }
        Field::DelayMillis(x) => {
            let d = Duration::from_millis(value);
            edit(cfg, x, &|r| r.delay = d)
        }
        Field::DelayMicros(x) => {
            // Software protection runs per step: round up to whole milliseconds.
            let d = Duration::from_millis(value.div_ceil(1_000));
            edit(cfg, x, &|r| r.delay = d)
        }
        Field::BalanceStart => cfg.balance.start_voltage = mv,
        Field::BalanceOn => cfg.balance.start_delta = mv,
        Field::BalanceOff => cfg.balance.stop_delta = mv,
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
        let mut cfg = self.config().clone();
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
        let before = b.config().clone();
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
