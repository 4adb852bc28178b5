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
//! # Communication
//! - CAN (FDCAN1, 250 kbit/s): a J1939 node ([`CAN_PROTOCOL`]) or the inverter protocol,
//!   when the part number's port is CAN (`-C`). J1939 commands (charge / discharge switch,
//!   fault reset) need [`J1939_COMMAND_KEY`].
//! - RS485 (USART2, 19200 8N1, DE on PA1): the ANT-compatible serial protocol. Status,
//!   device information and register reads are open; setting writes and control codes need
//!   the password [`SERIAL_PASSWORD`]. Setting writes go through `ParameterAccess for Bms`
//!   (validated, atomic, logged as a configuration change).
//!
//! # Flash (dual-bank, 2 KiB pages)
//! - `0x0800_0000..0x0807_6000`: program (472 KiB, see `memory.x`);
//! - `0x0807_6000..0x0807_7000`: settings written over the serial protocol (4 KiB),
//!   stored on every configuration change and written back over the factory
//!   configuration at start-up;
//! - `0x0807_7000..0x0807_8000`: lifetime statistics (4 KiB), stored hourly;
//! - `0x0807_8000..0x0808_0000`: event log (32 KiB, 512 records of 64 bytes).
//!
//! # Scheduling
//! Every cycle runs the control step first (measure, `Bms::step`, apply), then logs the
//! step's events, feeds the CAN node and applies the queued commands. Between two cycles
//! the task serves received CAN frames, serial bytes and pending serial output, one item
//! at a time, the cycle's timer always polled first. The CAN node's receive budget, the
//! drivers' bounded queues and the bounded event queue keep every part of this bounded.
//!
//! # Watchdog and low power
//! The independent watchdog (1 s) is fed once per cycle. In `sleep` the cycle slows to 1 s
//! and the AFE may enter its own SLEEP; in `deep_sleep` the MOSFETs open, the AFE enters
//! DEEPSLEEP and the MCU waits (WFE between 500 ms timer ticks, watchdog still fed) for
//! the ACC input, then wakes the AFE and restarts the cycle.
#![no_std]
#![no_main]

mod can_port;
mod logbook;

use bms_core::config::{Chemistry, PackConfig, Port, Variant};
use bms_core::event_log::Region;
use bms_core::ports::{Board, BoardTemperature, Clock, DigitalIo};
use bms_core::serial::frame::MAX_FRAME_LEN;
use bms_core::serial::{Command as SerialCommand, Counter, SerialConfig, SerialSession};
use bms_core::{Bms, Controller, DeciCelsius, Instant, PowerMode};
use bms_hal_stm32::bq76952::{
    Bq76952, Bq76952Monitor, ChannelMap, Config as AfeConfig, HwProtection, MonitorConfig,
    ShuntResistance, TempSensor,
};
use bms_hal_stm32::ntc::Divider;
use bms_hal_stm32::ports::{FetPins, IoPins};
use embassy_executor::Spawner;
use embassy_futures::select::{select4, Either4};
use embassy_stm32::adc::{Adc, AdcConfig, AnyAdcChannel, SampleTime};
use embassy_stm32::flash::Flash;
use embassy_stm32::gpio::{Input, Level, Output, Pull, Speed};
use embassy_stm32::i2c::{self, I2c, Master};
use embassy_stm32::mode::Blocking;
use embassy_stm32::peripherals::{ADC1, FDCAN1, USART2};
use embassy_stm32::usart::{self, BufferedUart};
use embassy_stm32::wdg::IndependentWatchdog;
use embassy_stm32::{bind_interrupts, can};
use embassy_time::{Duration, Ticker, Timer};
use panic_halt as _;

use crate::can_port::{CanPort, CanProtocol};
use crate::logbook::Logbook;
use bms_core::event_log::Settings;

bind_interrupts!(struct Irqs {
    FDCAN1_IT0 => can::IT0InterruptHandler<FDCAN1>;
    FDCAN1_IT1 => can::IT1InterruptHandler<FDCAN1>;
    USART2 => usart::BufferedInterruptHandler<USART2>;
});

/// Cells in series on this board.
const CELLS: u8 = 16;
/// Current sense resistor between the cells and the MOSFETs.
const SHUNT: ShuntResistance = ShuntResistance::from_micro_ohms(250);
/// Settings: offset from the start of flash, size (2 pages).
const SETTINGS: Region = Region::new(0x7_6000, 4 * 1024);
/// Lifetime statistics: offset from the start of flash, size (2 pages).
const STATS: Region = Region::new(0x7_7000, 4 * 1024);
/// Event log: offset from the start of flash, size (16 pages).
const LOG: Region = Region::new(0x7_8000, 32 * 1024);
/// The CAN protocol when the part number's port is CAN.
const CAN_PROTOCOL: CanProtocol = CanProtocol::J1939;
/// Shared key of the J1939 command frames (`bms_core::j1939::Command`); `None` refuses
/// every command. Set a per-product secret to let a vehicle controller switch the MOSFETs
/// and reset faults.
const J1939_COMMAND_KEY: Option<u32> = None;
/// Password of the serial protocol's write session (1..=16 bytes). Reads need none. The
/// value here is the factory default of compatible apps; change it per product.
const SERIAL_PASSWORD: &[u8] = b"12345678";
/// Frames the CAN driver queues for sending / keeps received.
const CAN_TX_QUEUE: usize = 32;
const CAN_RX_QUEUE: usize = 32;
/// Serial driver buffers: transmit holds one whole response frame.
const UART_TX_BUF: usize = 512;
const UART_RX_BUF: usize = 256;
/// Control period in the active mode and in sleep.
const PERIOD_ACTIVE: Duration = Duration::from_millis(100);
const PERIOD_SLEEP: Duration = Duration::from_millis(1_000);
/// 12-bit ADC, NTCs on 10 kΩ pull-ups to the ADC reference.
const NTC: Divider = Divider::new(10_000, 4_095);

type BoardFlash = Flash<'static, embassy_stm32::flash::Blocking>;
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

/// The factory configuration: a 16S 300 A LFP pack on CAN.
fn factory_config() -> Option<PackConfig> {
    let v = Variant::new(CELLS, 300, Port::Can).ok()?;
    Some(PackConfig::preset(v, Chemistry::Lfp))
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

    // Pack configuration: a 16S 300 A LFP pack on CAN; the settings stored from the serial
    // protocol are written over it below, and its writes change it at run time.
    let Some(cfg) = factory_config() else {
        cortex_m::peripheral::SCB::sys_reset();
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

    // CAN: J1939 at 250 kbit/s or the inverter protocol at 500 kbit/s, when the part
    // number's port is CAN. The driver's queues are filled and drained without waiting.
    let mut can_cfg = can::CanConfigurator::new(p.FDCAN1, p.PA11, p.PA12, Irqs);
    can_cfg.set_bitrate(match CAN_PROTOCOL {
        CanProtocol::J1939 => 250_000,
        CanProtocol::Inverter => 500_000,
    });
    let can_tx_buf = cortex_m::singleton!(: can::TxBuf<CAN_TX_QUEUE> = can::TxBuf::new());
    let can_rx_buf = cortex_m::singleton!(: can::RxBuf<CAN_RX_QUEUE> = can::RxBuf::new());
    let (Some(can_tx_buf), Some(can_rx_buf)) = (can_tx_buf, can_rx_buf) else {
        cortex_m::peripheral::SCB::sys_reset();
    };
    let can = can_cfg
        .start(can::OperatingMode::NormalOperationMode)
        .buffered(can_tx_buf, can_rx_buf);
    let can_rx = can.reader();
    let mut can_port = (cfg.variant.port == Port::Can)
        .then(|| CanPort::new(CAN_PROTOCOL, J1939_COMMAND_KEY, can.writer()));

    // RS485 at 19200 8N1, DE driven by the USART, interrupt-driven ring buffers.
    let mut uart_cfg = usart::Config::default();
    uart_cfg.baudrate = 19_200;
    let mut uart_tx_buf = [0u8; UART_TX_BUF];
    let mut uart_rx_buf = [0u8; UART_RX_BUF];
    let rs485 = match BufferedUart::new_with_de(
        p.USART2,
        p.PA3,
        p.PA2,
        p.PA1,
        Irqs,
        &mut uart_tx_buf,
        &mut uart_rx_buf,
        uart_cfg,
    ) {
        Ok(u) => u,
        Err(_) => cortex_m::peripheral::SCB::sys_reset(),
    };
    let (mut uart_tx, mut uart_rx) = rs485.split();
    let mut session = match SerialConfig::new(SERIAL_PASSWORD) {
        Ok(c) => SerialSession::new(c),
        Err(_) => cortex_m::peripheral::SCB::sys_reset(),
    };

    // Flash: event log and statistics (offsets from the start of flash).
    let mut logbook = Logbook::open(
        Flash::new_blocking(p.FLASH),
        LOG,
        STATS,
        SETTINGS,
        SysClock.now(),
    );

    let mut bms = match Bms::new(cfg) {
        Ok(b) => b,
        Err(_) => cortex_m::peripheral::SCB::sys_reset(),
    };
    if let Some(stored) = logbook.load_settings() {
        stored.apply(&mut bms);
        // Restoring is not a change to log.
        while bms.poll_event().is_some() {}
    }
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
    // The serial response being sent: `out[sent..len]` is still to go.
    let mut out = [0u8; MAX_FRAME_LEN];
    let (mut sent, mut len) = (0usize, 0usize);
    let mut rx = [0u8; 64];
    loop {
        // 1. Protection first: measure, step, apply.
        let step = ctl.run_once();
        wdg.pet();
        led.toggle();

        // 2. The step's events into the flash log, statistics.
        if logbook.drain(ctl.bms_mut()) {
            logbook.store_settings(&Settings::capture(ctl.bms()));
        }

        // 3. CAN: the step's telemetry, due frames, commands.
        if let Some(port) = can_port.as_mut() {
            port.step(ctl.bms_mut());
        }

        // 4. Serial commands received since the last step (at most `MAX_COMMANDS`).
        let mut shutdown = false;
        while let Some(c) = session.poll_command() {
            shutdown |= apply_serial(c, &mut ctl, &mut logbook);
        }

        let want = match step.mode {
            PowerMode::Active => PERIOD_ACTIVE,
            PowerMode::Sleep => PERIOD_SLEEP,
            PowerMode::DeepSleep => {
                logbook.flush(ctl.bms().telemetry().now);
                deep_sleep(&mut ctl, &mut wdg).await;
                PERIOD_ACTIVE
            }
        };
        if shutdown && step.mode != PowerMode::DeepSleep {
            logbook.flush(ctl.bms().telemetry().now);
            deep_sleep(&mut ctl, &mut wdg).await;
        }
        if want != period {
            period = want;
            ticker = Ticker::every(period);
        }

        // 5. Until the next cycle (the timer is polled first): CAN frames, serial bytes,
        // serial output.
        loop {
            let write = async {
                if sent < len {
                    embedded_io_async::Write::write(&mut uart_tx, &out[sent..len]).await
                } else {
                    core::future::pending().await
                }
            };
            let event = select4(
                ticker.next(),
                can_rx.receive(),
                embedded_io_async::Read::read(&mut uart_rx, &mut rx),
                write,
            )
            .await;
            let now = SysClock.now();
            match event {
                Either4::First(()) => break,
                Either4::Second(Ok(envelope)) => {
                    if let Some(port) = can_port.as_mut() {
                        port.receive(now, &envelope.frame);
                    }
                }
                // Bus errors: the controller recovers on its own; nothing to answer.
                Either4::Second(Err(_)) => {}
                Either4::Third(Ok(n)) => {
                    session.handle_bytes(now, rx.get(..n).unwrap_or(&[]), ctl.bms_mut());
                }
                // Framing or overrun: the session's receive gap resynchronises.
                Either4::Third(Err(_)) => {}
                Either4::Fourth(Ok(n)) => sent = sent.saturating_add(n).min(len),
                Either4::Fourth(Err(_)) => sent = len,
            }
            if sent >= len {
                let bms = ctl.bms();
                len = session
                    .poll_transmit(now, bms.telemetry(), bms, &mut out)
                    .unwrap_or(0);
                sent = 0;
            }
            // J1939 BAM data frames fall due between steps.
            if let Some(port) = can_port.as_mut() {
                if port.poll_timeout().is_some_and(|t| t <= now) {
                    port.transmit(now);
                }
            }
        }
    }
}

/// Applies one authenticated serial command; returns `true` for a shutdown request.
fn apply_serial(
    c: SerialCommand,
    ctl: &mut Controller<G474Board>,
    logbook: &mut Logbook<BoardFlash>,
) -> bool {
    let bms = ctl.bms_mut();
    let now = bms.telemetry().now;
    let mut sw = bms.switches();
    match c {
        SerialCommand::SetChargeFet(on) => sw.charge = on,
        SerialCommand::SetDischargeFet(on) => sw.discharge = on,
        SerialCommand::SetBalancer(on) => sw.balance = on,
        SerialCommand::Restart => {
            logbook.flush(now);
            cortex_m::peripheral::SCB::sys_reset();
        }
        SerialCommand::Shutdown => return true,
        SerialCommand::FactoryReset => {
            if let Some(cfg) = factory_config() {
                // A rejected configuration leaves the one in force.
                let _ = bms.set_config(now, cfg);
            }
        }
        SerialCommand::ClearEventLog => logbook.clear_log(),
        SerialCommand::ClearCounter(Counter::ChargedAh) => logbook.clear_counters(now, true, false),
        SerialCommand::ClearCounter(Counter::DischargedAh) => {
            logbook.clear_counters(now, false, true)
        }
        // Setting writes are applied when written; the time counters are not kept and the
        // BQ76952's current offset is calibrated in production, not from the field.
        SerialCommand::ApplySettings
        | SerialCommand::ZeroCurrent
        | SerialCommand::ClearCounter(_) => {}
    }
    bms.set_switches(sw);
    false
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
