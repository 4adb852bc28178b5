//! BMS firmware for an STM32G474RE board with a TI BQ76952 AFE (up to 16 cells in series;
//! 17..=20 cells stack a second BQ76952 with `bms_hal_stm32::bq76952::Stacked`).
//!
//! One control cycle every 100 ms (1 s in sleep): the core's `Controller` reads every port,
//! runs `Bms::step`, and applies the MOSFET, balancing and DO1..DO3 outputs. The BQ76952 also
//! protects on its own (short circuit within microseconds, OCD, OCC, COV, CUV), programmed
//! from the pack configuration at start-up as a backstop beyond the core's thresholds.
//!
//! # Pin map (LQFP64)
//! | Function                         | Pin         | Peripheral                  |
//! |----------------------------------|-------------|-----------------------------|
//! | AFE I2C SCL / SDA (100 kHz)      | PB8 / PB9   | I2C1 (AF4)                  |
//! | AFE ALERT (input, pull-up)       | PB5         | GPIO                        |
//! | AFE RST_SHUT (output, low = run) | PB4         | GPIO                        |
//! | MOSFET NTC (10k B3435 to GND)    | PC0         | ADC1_IN6, 10 kΩ pull-up     |
//! | Balancing NTC (10k B3435)        | PC1         | ADC1_IN7, 10 kΩ pull-up     |
//! | Charge MOSFET driver enable      | PB0         | GPIO, high = on             |
//! | Discharge MOSFET driver enable   | PB1         | GPIO, high = on             |
//! | Pre-charge MOSFET enable         | PB2         | GPIO, high = on             |
//! | DO1 / DO2 / DO3                  | PC6/PC7/PC8 | GPIO, high = active         |
//! | ACC wake input                   | PC13        | GPIO, pull-down             |
//! | Charger detect input             | PC4         | GPIO, pull-down             |
//! | CAN RX / TX (250 kbit/s)         | PA11 / PA12 | FDCAN1 (AF9)                |
//! | RS485 TX / RX (19200 8N1)        | PA2 / PA3   | USART2 (AF7)                |
//! | RS485 driver enable (DE)         | PA1         | USART2_DE, hardware-driven  |
//! | Status LED                       | PA5         | GPIO                        |
//!
//! Cell voltages, the two cell NTCs (TS1, TS3), pack current (CC2 across the shunt on
//! SRP/SRN), battery-side (stack) and load-side (LD) voltages all come from the BQ76952.
//!
//! Each MOSFET gate driver is enabled only when both the MCU pin above and the BQ76952's
//! CHG/DSG output allow it (AND-ed on the board): the AFE opens the MOSFETs on its own
//! hardware trips within microseconds, and the core opens them on its decisions. The AFE's
//! FET outputs stay off until its configuration succeeds (`configure_afe`), so an AFE that
//! cannot be configured keeps the pack switched off.
//!
//! # Flash (dual-bank, 2 KiB pages)
//! - `0x0800_0000..0x0807_6000`: program (472 KiB, see `memory.x`);
//! - `0x0807_6000..0x0807_8000`: parameter store (8 KiB);
//! - `0x0807_8000..0x0808_0000`: event log (32 KiB), a ring of 16-byte records.
//!
//! # Watchdog and low power
//! The independent watchdog (1 s) is fed once per cycle. In `sleep` the cycle slows to 1 s
//! and the AFE may enter its own SLEEP; in `deep_sleep` the MOSFETs open, the AFE enters
//! DEEPSLEEP and the MCU waits (WFE between 500 ms timer ticks, watchdog still fed) for
//! the ACC input, then wakes the AFE and restarts the cycle.
#![no_std]
#![no_main]

mod event_log;

use core::cell::RefCell;

use bms_core::config::{Chemistry, PackConfig, Port, Variant};
use bms_core::ports::{Board, BoardTemperature, Clock, DigitalIo};
use bms_core::{Bms, Controller, DeciCelsius, Instant, PowerMode};
use bms_hal_stm32::bq76952::{
    Bq76952, Bq76952Monitor, ChannelMap, Config as AfeConfig, HwProtection, MonitorConfig,
    ShuntResistance, TempSensor,
};
use bms_hal_stm32::ntc::Divider;
use bms_hal_stm32::ports::{FetPins, IoPins};
use embassy_embedded_hal::flash::partition::BlockingPartition;
use embassy_executor::Spawner;
use embassy_futures::select::{select, Either};
use embassy_stm32::adc::{Adc, AdcConfig, AnyAdcChannel, SampleTime};
use embassy_stm32::flash::Flash;
use embassy_stm32::gpio::{Input, Level, Output, Pull, Speed};
use embassy_stm32::i2c::{self, I2c, Master};
use embassy_stm32::mode::Blocking;
use embassy_stm32::peripherals::{ADC1, FDCAN1};
use embassy_stm32::usart::{self, Uart};
use embassy_stm32::wdg::IndependentWatchdog;
use embassy_stm32::{bind_interrupts, can};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_time::{Duration, Ticker, Timer};
use panic_halt as _;

use crate::event_log::FlashRing;

bind_interrupts!(struct Irqs {
    FDCAN1_IT0 => can::IT0InterruptHandler<FDCAN1>;
    FDCAN1_IT1 => can::IT1InterruptHandler<FDCAN1>;
});

/// Cells in series on this board.
const CELLS: u8 = 16;
/// Current sense resistor between the cells and the MOSFETs.
const SHUNT: ShuntResistance = ShuntResistance::from_micro_ohms(250);
/// Parameter store: offset from the start of flash, size.
const PARAMS: (u32, u32) = (0x7_6000, 8 * 1024);
/// Event log: offset from the start of flash, size.
const LOG: (u32, u32) = (0x7_8000, 32 * 1024);
/// Control period in the active mode and in sleep.
const PERIOD_ACTIVE: Duration = Duration::from_millis(100);
const PERIOD_SLEEP: Duration = Duration::from_millis(1_000);
/// 12-bit ADC, NTCs on 10 kΩ pull-ups to the ADC reference.
const NTC: Divider = Divider::new(10_000, 4_095);

type AfeBus = I2c<'static, Blocking, Master>;
type Afe = Bq76952Monitor<AfeBus>;
type Fets = FetPins<Output<'static>, Output<'static>, Output<'static>>;
type Io = IoPins<Output<'static>, Output<'static>, Output<'static>, Input<'static>, Input<'static>>;

/// The MOSFET and balancing-resistor NTCs on the MCU's ADC.
struct BoardNtcs {
    adc: Adc<'static, ADC1>,
    mos: AnyAdcChannel<'static, ADC1>,
    balance: AnyAdcChannel<'static, ADC1>,
}

/// An NTC reading out of range (open or shorted sensor).
#[derive(Debug)]
struct NtcFault;

impl BoardTemperature for BoardNtcs {
    type Error = NtcFault;

    fn mos_temperature(&mut self) -> Result<DeciCelsius, Self::Error> {
        let counts = self
            .adc
            .blocking_read(&mut self.mos, SampleTime::CYCLES247_5);
        NTC.celsius_from_counts(counts).ok_or(NtcFault)
    }

    fn balance_temperature(&mut self) -> Result<Option<DeciCelsius>, Self::Error> {
        let counts = self
            .adc
            .blocking_read(&mut self.balance, SampleTime::CYCLES247_5);
        Ok(NTC.celsius_from_counts(counts))
    }
}

/// Milliseconds since boot from the embassy time driver.
struct SysClock;

impl Clock for SysClock {
    fn now(&mut self) -> Instant {
        Instant::from_millis(embassy_time::Instant::now().as_millis())
    }
}

/// Every port of the board.
struct G474Board {
    afe: Afe,
    ntcs: BoardNtcs,
    fets: Fets,
    io: Io,
    clock: SysClock,
}

impl Board for G474Board {
    type Afe = Afe;
    type Current = Afe;
    type Voltage = Afe;
    type Temp = BoardNtcs;
    type Switches = Fets;
    type Io = Io;
    type Clock = SysClock;

    fn afe(&mut self) -> &mut Afe {
        &mut self.afe
    }
    fn current(&mut self) -> &mut Afe {
        &mut self.afe
    }
    fn voltage(&mut self) -> &mut Afe {
        &mut self.afe
    }
    fn temperature(&mut self) -> &mut BoardNtcs {
        &mut self.ntcs
    }
    fn switches(&mut self) -> &mut Fets {
        &mut self.fets
    }
    fn io(&mut self) -> &mut Io {
        &mut self.io
    }
    fn clock(&mut self) -> &mut SysClock {
        &mut self.clock
    }
}

/// Programs the AFE (cell map, protections, open-wire check, shunt) and, only when all of
/// it was written, enables its autonomous FET control. On failure the AFE's FET outputs stay
/// off (FET_EN clear), which keeps the AND-ed gate drivers off whatever the core decides.
fn configure_afe(mut dev: Bq76952<AfeBus>, map: ChannelMap, cfg: &PackConfig) -> Bq76952<AfeBus> {
    let hw = HwProtection::backstop(cfg, SHUNT);
    let mut upd = match dev.into_config_update() {
        Ok(upd) => upd,
        Err(e) => return e.dev,
    };
    let written = upd
        .set_vcell_mode(map.vcell_mode())
        .and_then(|()| upd.set_shunt(SHUNT))
        .and_then(|()| upd.set_hw_protection(&hw))
        .and_then(|()| upd.set_open_wire_check_time(5));
    dev = match upd.into_normal() {
        Ok(dev) => dev,
        // Still in CONFIG_UPDATE (FETs off in the device): restart and try again.
        Err(_) => cortex_m::peripheral::SCB::sys_reset(),
    };
    if written.is_ok() {
        let _ = dev.set_autonomous_fets(true);
        let _ = dev.all_fets_on();
    }
    dev
}

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    let p = embassy_stm32::init(embassy_stm32::Config::default());

    let mut wdg = IndependentWatchdog::new(p.IWDG, 1_000_000);
    wdg.unleash();

    // MOSFET drivers first, all open.
    let fets = match FetPins::new(
        Output::new(p.PB0, Level::Low, Speed::Low),
        Output::new(p.PB1, Level::Low, Speed::Low),
        Output::new(p.PB2, Level::Low, Speed::Low),
    ) {
        Ok(f) => f,
        Err(_) => cortex_m::peripheral::SCB::sys_reset(),
    };
    let io = IoPins {
        do1: Output::new(p.PC6, Level::Low, Speed::Low),
        do2: Output::new(p.PC7, Level::Low, Speed::Low),
        do3: Output::new(p.PC8, Level::Low, Speed::Low),
        acc: Input::new(p.PC13, Pull::Down),
        charger: Input::new(p.PC4, Pull::Down),
    };
    let _afe_alert = Input::new(p.PB5, Pull::Up);
    let _afe_rst_shut = Output::new(p.PB4, Level::Low, Speed::Low);
    let mut led = Output::new(p.PA5, Level::Low, Speed::Low);

    // Pack configuration: a 16S 300 A LFP pack on CAN. The parameter store overrides it
    // once the serial/CAN parameter protocol writes one.
    let cfg = match Variant::new(CELLS, 300, Port::Can) {
        Ok(v) => PackConfig::preset(v, Chemistry::Lfp),
        Err(_) => cortex_m::peripheral::SCB::sys_reset(),
    };

    // AFE on I2C1.
    let mut i2c_cfg = i2c::Config::default();
    i2c_cfg.frequency = embassy_stm32::time::Hertz(100_000);
    let bus = I2c::new_blocking(p.I2C1, p.PB8, p.PB9, i2c_cfg);
    let map = ChannelMap::bottom_and_top(CELLS).unwrap_or_else(|| {
        cortex_m::peripheral::SCB::sys_reset();
    });
    let dev = configure_afe(Bq76952::new(bus, AfeConfig::default()), map, &cfg);
    let afe = Bq76952Monitor::new(
        dev,
        MonitorConfig::new(map).with_temps([Some(TempSensor::Ts1), Some(TempSensor::Ts3)]),
    );

    // Board NTCs on ADC1.
    let adc = Adc::new(p.ADC1, AdcConfig::default());
    let ntcs = BoardNtcs {
        adc,
        mos: embassy_stm32::adc::AdcChannel::degrade_adc(p.PC0),
        balance: embassy_stm32::adc::AdcChannel::degrade_adc(p.PC1),
    };

    // CAN at 250 kbit/s (J1939 or the inverter protocol, per the configured port).
    let mut can_cfg = can::CanConfigurator::new(p.FDCAN1, p.PA11, p.PA12, Irqs);
    can_cfg.set_bitrate(250_000);
    let can = can_cfg.start(can::OperatingMode::NormalOperationMode);
    // The transmit half is for the protocol layer (J1939 / inverter frames).
    let (_can_tx, mut can_rx, _can_props) = can.split();
    let mut can_frames: u32 = 0;

    // RS485 at 19200 8N1, DE driven by the USART.
    let mut uart_cfg = usart::Config::default();
    uart_cfg.baudrate = 19_200;
    let mut rs485 = match Uart::new_blocking_with_de(p.USART2, p.PA3, p.PA2, p.PA1, uart_cfg) {
        Ok(u) => u,
        Err(_) => cortex_m::peripheral::SCB::sys_reset(),
    };

    // Flash: parameter store and event log partitions.
    let flash: Mutex<NoopRawMutex, RefCell<Flash<'static, embassy_stm32::flash::Blocking>>> =
        Mutex::new(RefCell::new(Flash::new_blocking(p.FLASH)));
    let _params = BlockingPartition::new(&flash, PARAMS.0, PARAMS.1);
    let mut log = FlashRing::new(BlockingPartition::new(&flash, LOG.0, LOG.1));

    let bms = match Bms::new(cfg) {
        Ok(b) => b,
        Err(_) => cortex_m::peripheral::SCB::sys_reset(),
    };
    let mut ctl = Controller::new(
        G474Board {
            afe,
            ntcs,
            fets,
            io,
            clock: SysClock,
        },
        bms,
    );

    let mut period = PERIOD_ACTIVE;
    let mut ticker = Ticker::every(period);
    loop {
        let out = ctl.run_once();
        wdg.pet();
        while let Some(ev) = ctl.bms_mut().poll_event() {
            let _ = log.append(&ev);
        }
        led.toggle();

        // Drain what the serial port received; the protocol layer consumes it when wired in.
        while embedded_hal_nb::serial::Read::read(&mut rs485).is_ok() {}

        let want = match out.mode {
            PowerMode::Active => PERIOD_ACTIVE,
            PowerMode::Sleep => PERIOD_SLEEP,
            PowerMode::DeepSleep => {
                deep_sleep(&mut ctl, &mut wdg).await;
                PERIOD_ACTIVE
            }
        };
        if want != period {
            period = want;
            ticker = Ticker::every(period);
        }
        // Wait for the next cycle, receiving CAN frames meanwhile.
        while let Either::Second(_) = select(ticker.next(), can_rx.read()).await {
            can_frames = can_frames.wrapping_add(1);
        }
    }
}

/// Deep sleep: MOSFETs open, AFE in DEEPSLEEP, MCU idle until ACC wakes it.
async fn deep_sleep(
    ctl: &mut Controller<G474Board>,
    wdg: &mut IndependentWatchdog<'_, embassy_stm32::peripherals::IWDG>,
) {
    let board = ctl.board_mut();
    let _ = bms_core::ports::PowerSwitches::set_fets(&mut board.fets, bms_core::FetState::OPEN);
    let _ = board.afe.device().enter_deep_sleep();
    while !board.io.acc_active() {
        wdg.pet();
        Timer::after_millis(500).await;
    }
    let _ = board.afe.device().exit_deep_sleep();
}
