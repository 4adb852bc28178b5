//! The `bms-core` control step on an emulated Cortex-M3 (QEMU `lm3s6965evb`, no FPU).
//!
//! A scripted 20S LFP pack (300 A variant) runs for `BMS_STEPS` steps of 100 ms
//! (compile-time environment variable, default [`SCENARIO_STEPS`]):
//! - steps 0..50: all cells at 3300 mV, 10 A discharge, 25 °C;
//! - steps 50..100: cell 5 at 3700 mV, above the LFP `cell_ov` trip (3650 mV, 1 s delay),
//!   pack at rest;
//! - steps 100..200: cell 5 back at 3300 mV (below the 3400 mV release, 2 s delay);
//! - steps 200..203: 450 A discharge, above the `sc` trip (the 300 A pulse rating, no delay);
//! - from step 203: no current.
//!
//! The program records the step at which each fault trips and releases, prints them over
//! semihosting, and checks them against the configuration's delays: it exits with a
//! failure status when a fault trips or releases at another step, or when the MOSFETs do
//! not follow. With fewer than [`SCENARIO_STEPS`] steps the checks are skipped.
//!
//! With `BMS_BENCH=1` at compile time it runs instead the steady 20S workload of
//! `bms-sim bench` (see [`bench`]) for `BMS_STEPS` steps after a warm-up: the
//! instruction-count runs of `benches/qemu-count.sh`. With `BMS_REST=1` as well, the pack
//! rests instead (the current within ±50 mA of zero, the same noise on the cells); with
//! `BMS_STILL=1`, nothing changes from one step to the next but the time (0 A, every cell
//! at 3300 mV).
//!
//! With `BMS_CAN=1` at compile time, each step also feeds a J1939 node the step's
//! telemetry and drains every due frame from it (address claim, periodic PGNs, DM1) with
//! `drain_transmit` (the firmware's CAN port polls the same frames one by one); the
//! program then prints the number of frames and bytes.
#![no_std]
#![no_main]

use bms_core::can::Frame as _;
use bms_core::config::{Chemistry, PackConfig, Port, Variant};
use bms_core::j1939::{J1939Config, J1939Node};
use bms_core::{Bms, Fault, Instant, Measurements, MilliAmps, MilliVolts, Outputs};
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};

/// Steps the scenario needs for its checks.
const SCENARIO_STEPS: u32 = 300;
/// Steps to run: `BMS_STEPS` at compile time, else [`SCENARIO_STEPS`].
const STEPS: u32 = parse_steps(option_env!("BMS_STEPS"));
/// Set (`BMS_BENCH=1`) for instruction-count runs: [`bench`] runs instead of the scenario.
const BENCH: bool = option_env!("BMS_BENCH").is_some();
/// Set (`BMS_CAN=1`) to run a J1939 node after every step and encode its due frames.
const CAN: bool = option_env!("BMS_CAN").is_some();
/// Set (`BMS_REST=1`) to bench the pack at rest instead of under a 10 A discharge.
const REST: bool = option_env!("BMS_REST").is_some();
/// Set (`BMS_STILL=1`) to bench a pack at rest whose readings do not change at all.
const STILL: bool = option_env!("BMS_STILL").is_some();
/// Control period.
const PERIOD_MS: u64 = 100;
const CELLS: u8 = 20;
const OV_FROM: u32 = 50;
const OV_UNTIL: u32 = 100;
const SC_FROM: u32 = 200;
const SC_UNTIL: u32 = 203;

/// Parses a decimal step count at compile time; a malformed value fails the build.
const fn parse_steps(s: Option<&str>) -> u32 {
    let Some(s) = s else {
        return SCENARIO_STEPS;
    };
    let b = s.as_bytes();
    assert!(!b.is_empty(), "BMS_STEPS must be a decimal number");
    let mut n: u32 = 0;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "BMS_STEPS must be a decimal number");
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

/// The snapshot the board would read at `step`.
fn measurements(step: u32) -> Measurements {
    let now = Instant::from_millis(u64::from(step) * PERIOD_MS);
    let mut m = Measurements::uniform(CELLS, MilliVolts::from_mv(3_300), now);
    let mut current_ma = 10_000;
    if (OV_FROM..OV_UNTIL).contains(&step) {
        m.cells[4] = MilliVolts::from_mv(3_700);
        current_ma = 0;
    }
    if step >= OV_UNTIL {
        current_ma = 0;
    }
    if (SC_FROM..SC_UNTIL).contains(&step) {
        current_ma = 450_000;
    }
    let pack = m.cell_sum();
    m.pack = Some(pack);
    m.load = Some(pack);
    m.current = Some(MilliAmps::from_ma(current_ma));
    m
}

extern "C" {
    /// Lowest address the stack may grow to (end of `.bss`), from cortex-m-rt's `link.x`.
    static _stack_end: u32;
    /// Initial stack pointer (top of RAM), from cortex-m-rt's `link.x`.
    static _stack_start: u32;
}

/// Word written over the free stack before the run.
const PAINT: u32 = 0x5AA5_5AA5;

/// Fills the free stack, from `_stack_end` to 256 bytes below the stack pointer, with
/// [`PAINT`].
fn paint_stack() {
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = bottom;
    while p + 256 < sp {
        // SAFETY: `p` is word-aligned, within RAM, below the live stack frames.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// Bytes of stack used so far: from the top of RAM down to the lowest overwritten word.
fn stack_peak() -> usize {
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut p = bottom;
    // SAFETY: word-aligned reads within RAM.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    top - p
}

/// Steps at which things happened.
#[derive(Default)]
struct Record {
    discharge_closed: Option<u32>,
    ov_trip: Option<u32>,
    ov_release: Option<u32>,
    sc_trip: Option<u32>,
    charge_open_during_ov: bool,
    discharge_open_after_sc: bool,
    other_faults: u32,
}

impl Record {
    fn observe(&mut self, step: u32, bms: &Bms, out: &Outputs) {
        let faults = bms.telemetry().faults;
        if out.fets.discharge && self.discharge_closed.is_none() {
            self.discharge_closed = Some(step);
        }
        if faults.contains(Fault::CellOv) && self.ov_trip.is_none() {
            self.ov_trip = Some(step);
        }
        if !faults.contains(Fault::CellOv) && self.ov_trip.is_some() && self.ov_release.is_none() {
            self.ov_release = Some(step);
        }
        if faults.contains(Fault::Sc) && self.sc_trip.is_none() {
            self.sc_trip = Some(step);
        }
        if step == OV_UNTIL - 1 {
            self.charge_open_during_ov = !out.fets.charge;
        }
        if step == SC_UNTIL {
            self.discharge_open_after_sc = !out.fets.discharge;
        }
        let expected = Fault::CellOv.bit() | Fault::Sc.bit();
        self.other_faults |= faults.bits() & !expected;
    }
}

/// `Some(s)` with `lo <= s <= hi`.
fn within(v: Option<u32>, lo: u32, hi: u32) -> bool {
    matches!(v, Some(s) if (lo..=hi).contains(&s))
}

#[entry]
fn main() -> ! {
    if !BENCH {
        paint_stack();
    }
    let cfg = match Variant::new(CELLS, 300, Port::Can) {
        Ok(v) => PackConfig::preset(v, Chemistry::Lfp),
        Err(_) => fail("variant"),
    };
    let ov_delay = cfg.protection.get(Fault::CellOv).delay.as_millis() as u64;
    let ov_release_delay = cfg.protection.get(Fault::CellOv).release_delay.as_millis() as u64;
    let mut bms = match Bms::new(cfg) {
        Ok(b) => b,
        Err(_) => fail("configuration"),
    };

    let mut node = J1939Node::new(J1939Config::default());
    if BENCH {
        bench(&mut bms, &mut node);
    }
    let (mut can_frames, mut can_bytes) = (0u32, 0u32);
    let mut rec = Record::default();
    for step in 0..STEPS {
        let m = measurements(step);
        let out = bms.step(&m);
        rec.observe(step, &bms, &out);
        while bms.poll_event().is_some() {}
        if CAN {
            let now = m.timestamp;
            node.update(now, bms.telemetry());
            while let Some(f) = node.poll_transmit(now) {
                let f = core::hint::black_box(f);
                can_frames += 1;
                can_bytes += f.dlc() as u32;
            }
        }
    }

    hprintln!("steps={}", STEPS);
    hprintln!("discharge_closed_at={:?}", rec.discharge_closed);
    hprintln!("cell_ov_trip_at={:?}", rec.ov_trip);
    hprintln!("cell_ov_release_at={:?}", rec.ov_release);
    hprintln!("sc_trip_at={:?}", rec.sc_trip);
    if CAN {
        hprintln!("can_frames={} can_bytes={}", can_frames, can_bytes);
    }
    if !BENCH {
        use core::mem::size_of;
        hprintln!("bms_state_bytes={}", size_of::<Bms>());
        let parts = [
            size_of::<PackConfig>(),
            size_of::<bms_core::protect::Protection>(),
            size_of::<bms_core::soc::SocEstimator>(),
            size_of::<bms_core::balance::Balancer>(),
            size_of::<bms_core::Telemetry>(),
        ];
        hprintln!(
            "of which config={} protection={} soc={} balancer={} telemetry={} rest={}",
            parts[0],
            parts[1],
            parts[2],
            parts[3],
            parts[4],
            size_of::<Bms>() - parts.iter().sum::<usize>(),
        );
        hprintln!("j1939_node_bytes={}", size_of::<J1939Node>());
        hprintln!("stack_peak_bytes={}", stack_peak());
    }
    if STEPS < SCENARIO_STEPS {
        hprintln!("checks skipped");
        debug::exit(debug::EXIT_SUCCESS);
        loop {
            cortex_m::asm::wfi();
        }
    }

    // Expected steps from the configuration: the value must stay beyond the trip (release)
    // threshold for the whole delay; one step of slack for where the detector starts its
    // timer.
    let period = PERIOD_MS;
    let ov_trip = OV_FROM + (ov_delay / period) as u32;
    let ov_release = OV_UNTIL + (ov_release_delay / period) as u32;
    let checks = [
        (
            "discharge closes before the over-voltage",
            matches!(rec.discharge_closed, Some(s) if s < OV_FROM),
        ),
        (
            "cell_ov trips after its delay",
            within(rec.ov_trip, ov_trip, ov_trip + 1),
        ),
        (
            "charge is open while cell_ov is active",
            rec.charge_open_during_ov,
        ),
        (
            "cell_ov releases after its release delay",
            within(rec.ov_release, ov_release, ov_release + 1),
        ),
        (
            "sc trips on the first sample",
            within(rec.sc_trip, SC_FROM, SC_FROM),
        ),
        ("discharge is open after sc", rec.discharge_open_after_sc),
        ("no other fault", rec.other_faults == 0),
    ];
    let mut failed = 0;
    for (name, ok) in checks {
        hprintln!("{} {}", if ok { "PASS" } else { "FAIL" }, name);
        if !ok {
            failed += 1;
        }
    }
    hprintln!("{} passed, {} failed", checks.len() - failed, failed);
    debug::exit(if failed == 0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

/// Snapshots in the bench ring (a power of two: the index is a mask).
const RING: usize = 16;
/// Steps run before the measured ones (boot, pre-charge, address claim), as `bms-sim bench`.
const WARM_UP: u32 = 100;

/// The steady 20S workload of `bms-sim bench`: 10 A discharge with +-50 mA of noise, every
/// cell at 3298..=3302 mV (so no reading is "stuck"), 25 degC; a ring of [`RING`] snapshots
/// built once, so that a step costs the loop nothing but the timestamp. With [`REST`], the
/// rest workload: the same noise around 0 A; with [`STILL`], no noise and no current.
fn steady_ring() -> [Measurements; RING] {
    let mut x: u32 = 0x5eed_1234;
    let mut next = move || {
        // xorshift32
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    core::array::from_fn(|_| {
        let mut m = Measurements::uniform(CELLS, MilliVolts::from_mv(3_300), Instant::ZERO);
        if STILL {
            m.current = Some(MilliAmps::ZERO);
        } else {
            for c in &mut m.cells[..usize::from(CELLS)] {
                *c = MilliVolts::from_mv(3_298 + next() % 5);
            }
            let load = if REST { 0 } else { 10_000 };
            m.current = Some(MilliAmps::from_ma(load + (next() % 101) as i32 - 50));
        }
        let pack = m.cell_sum();
        m.pack = Some(pack);
        m.load = Some(pack);
        m
    })
}

/// Runs [`WARM_UP`] + `STEPS` steps of the steady workload (with `BMS_CAN`, each step also
/// updates the J1939 node and drains its due frames), prints what it ran and exits.
fn bench(bms: &mut Bms, node: &mut J1939Node) -> ! {
    let mut ring = steady_ring();
    let (mut frames, mut faults) = (0u32, 0u32);
    for step in 0..WARM_UP + STEPS {
        let m = &mut ring[step as usize % RING];
        m.timestamp = Instant::from_millis(u64::from(step) * PERIOD_MS);
        let out = core::hint::black_box(bms.step(m));
        while bms.poll_event().is_some() {}
        if CAN {
            node.update(m.timestamp, bms.telemetry());
            node.drain_transmit(m.timestamp, |f| {
                core::hint::black_box(f);
                frames += 1;
            });
        }
        faults |= bms.telemetry().faults.bits() | u32::from(!out.fets.discharge) << 31;
    }
    hprintln!(
        "bench steps={} warm_up={} can_frames={}",
        STEPS,
        WARM_UP,
        frames
    );
    // The workload is fault-free once pre-charge is done; anything else is a broken bench.
    let ok = bms.telemetry().faults.is_empty() && faults & !(1 << 31) == 0;
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

fn fail(what: &str) -> ! {
    hprintln!("FAIL {}", what);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
