//! A serial session fed arbitrary byte chunks, answering through `poll_transmit`.
#![no_main]

use bms_core::serial::registers::lookup;
use bms_core::serial::{
    Packet, ParamError, ParameterAccess, SerialConfig, SerialSession, REGISTERS,
};
use bms_core::{Duration, Instant, Telemetry};
use bms_fuzz::Bytes;
use libfuzzer_sys::fuzz_target;

/// Setting registers held in RAM; writes are checked against the table range only, and
/// every fifth register refuses writes so that the error answers are exercised.
struct Regs {
    values: Vec<u32>,
}

impl Regs {
    fn new() -> Self {
        Regs {
            values: REGISTERS.iter().map(|r| r.min).collect(),
        }
    }

    fn index(reg: u16) -> Result<usize, ParamError> {
        REGISTERS
            .iter()
            .position(|r| r.addr == reg)
            .ok_or(ParamError::UnknownRegister)
    }
}

impl ParameterAccess for Regs {
    fn read(&self, reg: u16) -> Result<u32, ParamError> {
        Ok(self.values[Self::index(reg)?])
    }

    fn write(&mut self, reg: u16, value: u32) -> Result<(), ParamError> {
        let i = Self::index(reg)?;
        let r = lookup(reg).ok_or(ParamError::UnknownRegister)?;
        if i % 5 == 4 {
            return Err(ParamError::ReadOnly);
        }
        if !r.contains(value) {
            return Err(ParamError::OutOfRange);
        }
        self.values[i] = value;
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let mut cfg = SerialConfig::new(b"123456").expect("valid password");
    if b.bool() {
        cfg.rx_gap = None;
    } else {
        cfg.rx_gap = Some(Duration::from_millis(u32::from(b.u16())));
    }
    let mut session = SerialSession::new(cfg);
    let mut params = Regs::new();
    let telemetry = Telemetry::empty(b.u8());
    let mut out = [0u8; 512];
    let mut now = 0u64;
    while !b.is_empty() {
        now = now.saturating_add(u64::from(b.u16()));
        let t = Instant::from_millis(now);
        let chunk = b.slice(255);
        session.handle_bytes(t, chunk, &mut params);
        let mut answers = 0;
        while let Some(n) = session.poll_transmit(t, &telemetry, &params, &mut out) {
            assert!(n <= out.len());
            // New-protocol answers must be valid frames; legacy answers start with AA 55.
            if out[0] == 0x7E {
                assert!(
                    Packet::new_checked(&out[..n]).is_ok(),
                    "invalid answer frame"
                );
            }
            answers += 1;
            assert!(answers <= 64, "answers never drain");
        }
        while session.poll_command().is_some() {}
        let _ = (session.stats(), session.is_authenticated(t));
    }
});
