//! The `CellMonitor` adapter: channel map, temperatures, open wire, balancing; stacking.
#![allow(clippy::unwrap_used)]
mod common;

use bms_core::ports::{CellMonitor, CurrentSensor, PackVoltage};
use bms_core::units::{DeciCelsius, MilliVolts};
use bms_hal_stm32::bq76952::{
    Bq76952Monitor, ChannelMap, Error, MonitorConfig, StackError, Stacked, TempSensor,
};
use common::*;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::i2c::Transaction as T;

fn block(cells: [u16; 16]) -> T {
    T::write_read(
        DEV,
        vec![CELL1],
        cells.iter().flat_map(|c| c.to_le_bytes()).collect(),
    )
}

/// 8 cells on VC1..VC7 and VC16; unused inputs shorted (read 0).
fn eight_s() -> [u16; 16] {
    [
        3301, 3302, 3303, 3304, 3305, 3306, 3307, 0, 0, 0, 0, 0, 0, 0, 0, 3316,
    ]
}

fn monitor(t: &[T]) -> Bq76952Monitor<embedded_hal_mock::eh1::i2c::Mock> {
    let map = ChannelMap::bottom_and_top(8).unwrap();
    Bq76952Monitor::new(new(t), MonitorConfig::new(map))
}

#[test]
fn channel_maps() {
    let m = ChannelMap::bottom_and_top(16).unwrap();
    assert_eq!(m.vcell_mode(), 0xFFFF);
    assert!(ChannelMap::bottom_and_top(2).is_none());
    assert!(ChannelMap::bottom_and_top(17).is_none());
    assert!(ChannelMap::new(&[1, 3, 2]).is_none());
    assert!(ChannelMap::new(&[0, 1]).is_none());
    assert!(ChannelMap::new(&[1, 17]).is_none());
    let m = ChannelMap::new(&[1, 2, 5, 16]).unwrap();
    assert_eq!(m.cells_to_inputs(0b1100), 0x8010);
}

#[test]
fn read_cells_skips_unused_inputs() {
    let mut mon = monitor(&[block(eight_s())]);
    let mut out = [MilliVolts::ZERO; 8];
    mon.read_cells(&mut out).unwrap();
    let mv: Vec<u32> = out.iter().map(|v| v.as_mv()).collect();
    assert_eq!(mv, [3301, 3302, 3303, 3304, 3305, 3306, 3307, 3316]);
    destroy(mon.release());
}

#[test]
fn read_more_cells_than_mapped_is_an_error() {
    let mut mon = monitor(&[]);
    let mut out = [MilliVolts::ZERO; 9];
    assert_eq!(mon.read_cells(&mut out), Err(Error::InvalidInputData));
    destroy(mon.release());
}

#[test]
fn temperatures_open_ntc_is_none() {
    // TS1 at 25.0 °C, TS3 reads -60 °C (open thermistor).
    let mut mon = monitor(&[read16(TS1, 2_982), read16(TS3, 2_132)]);
    let mut out = [None; 2];
    mon.read_temperatures(&mut out).unwrap();
    assert_eq!(out, [Some(DeciCelsius::from_deci(250)), None]);
    destroy(mon.release());
}

#[test]
fn temperature_source_not_fitted() {
    let map = ChannelMap::bottom_and_top(8).unwrap();
    let cfg = MonitorConfig::new(map).with_temps([Some(TempSensor::Internal), None]);
    let mut mon = Bq76952Monitor::new(new(&[read16(INT_TEMP, 2_732)]), cfg);
    let mut out = [Some(DeciCelsius::from_deci(1)); 2];
    mon.read_temperatures(&mut out).unwrap();
    assert_eq!(out, [Some(DeciCelsius::from_deci(0)), None]);
    destroy(mon.release());
}

#[test]
fn open_wire_flags_low_and_high_cells() {
    // Sense wire between cells 3 and 4 open: cell 3 drifts low, cell 4 high.
    let mut cells = eight_s();
    cells[2] = 120;
    cells[3] = 6_480;
    let mut mon = monitor(&[block(cells), block(eight_s())]);
    assert_eq!(mon.check_open_wire().unwrap(), 0b1100);
    assert_eq!(mon.check_open_wire().unwrap(), 0);
    destroy(mon.release());
}

#[test]
fn balancing_maps_cells_to_inputs() {
    // Cells 1 and 8 -> VC1 and VC16.
    let t = subcmd_write(CB_ACTIVE_CELLS, &[0x01, 0x80]);
    let mut mon = monitor(&t);
    mon.set_balancing(0b1000_0001).unwrap();
    assert_eq!(mon.set_balancing(1 << 8), Err(Error::InvalidInputData));
    destroy(mon.release());
}

#[test]
fn bus_error_surfaces() {
    let nack = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
    let mut mon = monitor(&[block(eight_s()).with_error(nack)]);
    let mut out = [MilliVolts::ZERO; 8];
    assert_eq!(mon.read_cells(&mut out), Err(Error::I2c(nack)));
    destroy(mon.release());
}

/// A fake monitor: cell `i` reads `base + i`, fixed temperature, fixed open-wire mask.
struct Fake {
    base: u32,
    temp: i16,
    open: u32,
    balancing: u32,
    fail: bool,
}

impl CellMonitor for Fake {
    type Error = &'static str;
    fn read_cells(&mut self, out: &mut [MilliVolts]) -> Result<(), Self::Error> {
        if self.fail {
            return Err("down");
        }
        for (i, o) in out.iter_mut().enumerate() {
            *o = MilliVolts::from_mv(self.base + i as u32);
        }
        Ok(())
    }
    fn read_temperatures(&mut self, out: &mut [Option<DeciCelsius>; 2]) -> Result<(), Self::Error> {
        *out = [Some(DeciCelsius::from_deci(self.temp)), None];
        Ok(())
    }
    fn check_open_wire(&mut self) -> Result<u32, Self::Error> {
        Ok(self.open)
    }
    fn set_balancing(&mut self, mask: u32) -> Result<(), Self::Error> {
        self.balancing = mask;
        Ok(())
    }
}

fn fake(base: u32, temp: i16, open: u32) -> Fake {
    Fake {
        base,
        temp,
        open,
        balancing: 0,
        fail: false,
    }
}

#[test]
fn stacked_twenty_cells() {
    let mut s = Stacked::new(fake(3_000, 250, 0b1), 10, fake(3_100, 300, 0b10), 10);
    assert_eq!(s.cell_count(), 20);
    let mut out = [MilliVolts::ZERO; 20];
    s.read_cells(&mut out).unwrap();
    assert_eq!(out[0].as_mv(), 3_000);
    assert_eq!(out[9].as_mv(), 3_009);
    assert_eq!(out[10].as_mv(), 3_100);
    assert_eq!(out[19].as_mv(), 3_109);
    let mut t = [None; 2];
    s.read_temperatures(&mut t).unwrap();
    assert_eq!(
        t,
        [
            Some(DeciCelsius::from_deci(250)),
            Some(DeciCelsius::from_deci(300))
        ]
    );
    assert_eq!(s.check_open_wire().unwrap(), 0b1 | 0b10 << 10);
    s.set_balancing(1 << 3 | 1 << 12).unwrap();
    let (lo, hi) = s.parts();
    assert_eq!(lo.balancing, 1 << 3);
    assert_eq!(hi.balancing, 1 << 2);
    assert_eq!(s.set_balancing(1 << 20), Err(StackError::InvalidInputData));
    let mut out = [MilliVolts::ZERO; 21];
    assert_eq!(s.read_cells(&mut out), Err(StackError::InvalidInputData));
}

#[test]
fn stacked_upper_failure_is_reported() {
    let mut upper = fake(3_100, 300, 0);
    upper.fail = true;
    let mut s = Stacked::new(fake(3_000, 250, 0), 9, upper, 8);
    let mut out = [MilliVolts::ZERO; 17];
    assert_eq!(s.read_cells(&mut out), Err(StackError::Upper("down")));
}

#[test]
fn current_and_pack_ports() {
    let mut mon = monitor(&[
        read16(CC2, (-20_000i16) as u16),
        read16(STACK, 2_640),
        read16(LD, 2_600),
    ]);
    // -20 A on the wire (discharge) is +20 A in the core.
    assert_eq!(mon.read_current().unwrap().as_ma(), 20_000);
    assert_eq!(mon.pack_voltage().unwrap().as_mv(), 26_400);
    assert_eq!(mon.load_voltage().unwrap().as_mv(), 26_000);
    destroy(mon.release());
}

#[test]
fn two_bq76952_stacked_for_20s() {
    // Two devices, 10 cells each on VC1..VC9 + VC16; the upper one at address 0x09 is
    // modelled by its own mock bus.
    let lower_cells: [u16; 16] = [
        3000, 3001, 3002, 3003, 3004, 3005, 3006, 3007, 3008, 0, 0, 0, 0, 0, 0, 3009,
    ];
    let upper_cells: [u16; 16] = [
        3100, 3101, 3102, 3103, 3104, 3105, 3106, 3107, 3108, 0, 0, 0, 0, 0, 0, 3109,
    ];
    let map = ChannelMap::bottom_and_top(10).unwrap();
    let lower = Bq76952Monitor::new(new(&[block(lower_cells)]), MonitorConfig::new(map));
    let upper_bus = embedded_hal_mock::eh1::i2c::Mock::new(&[T::write_read(
        0x09,
        vec![CELL1],
        upper_cells.iter().flat_map(|c| c.to_le_bytes()).collect(),
    )]);
    let upper_dev = bms_hal_stm32::bq76952::Bq76952::new(
        upper_bus,
        bms_hal_stm32::bq76952::Config::default().with_address(0x09),
    );
    let upper = Bq76952Monitor::new(upper_dev, MonitorConfig::new(map));
    let mut s = Stacked::new(lower, 10, upper, 10);
    let mut out = [MilliVolts::ZERO; 20];
    s.read_cells(&mut out).unwrap();
    let mv: Vec<u32> = out.iter().map(|v| v.as_mv()).collect();
    let want: Vec<u32> = (0..10)
        .map(|i| 3000 + i)
        .chain((0..10).map(|i| 3100 + i))
        .collect();
    assert_eq!(mv, want);
    let (lo, hi) = s.into_parts();
    destroy(lo.release());
    destroy(hi.release());
}
