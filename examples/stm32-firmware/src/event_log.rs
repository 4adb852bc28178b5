//! A ring of 16-byte event records in a flash partition.
//!
//! Record layout (little-endian): `[0] 0xB5 marker, [1] event kind, [2] event code,
//! [3] reserved 0, [4..12] time in ms since boot, [12..16] sequence number`. An erased
//! slot reads all `0xFF`. At start-up the first erased slot after the highest sequence
//! number is found; each page is erased when the ring enters it, so the oldest page of
//! records is lost first.

use bms_core::{Event, PowerMode, TimedEvent};
use embedded_storage::nor_flash::NorFlash;

const RECORD: u32 = 16;
const MARKER: u8 = 0xB5;

/// The event ring over a flash partition `F`.
pub struct FlashRing<F> {
    flash: F,
    next: u32,
    seq: u32,
}

impl<F: NorFlash> FlashRing<F> {
    /// Opens the ring: scans the partition for the record with the highest sequence number.
    pub fn new(mut flash: F) -> Self {
        let cap = flash.capacity() as u32;
        let (mut next, mut seq) = (0, 0);
        let mut off = 0;
        while off + RECORD <= cap {
            let mut r = [0u8; RECORD as usize];
            if flash.read(off, &mut r).is_ok() && r[0] == MARKER {
                let s = u32::from_le_bytes([r[12], r[13], r[14], r[15]]);
                if s >= seq {
                    seq = s.wrapping_add(1);
                    next = (off + RECORD) % cap;
                }
            }
            off += RECORD;
        }
        FlashRing { flash, next, seq }
    }

    /// Appends one event.
    ///
    /// # Errors
    /// The flash error; the record is then lost.
    pub fn append(&mut self, ev: &TimedEvent) -> Result<(), F::Error> {
        let cap = self.flash.capacity() as u32;
        if cap < RECORD {
            return Ok(());
        }
        if self.next % F::ERASE_SIZE as u32 == 0 {
            self.flash
                .erase(self.next, self.next + F::ERASE_SIZE as u32)?;
        }
        let (kind, code) = encode(&ev.event);
        let mut r = [0u8; RECORD as usize];
        r[0] = MARKER;
        r[1] = kind;
        r[2] = code;
        r[4..12].copy_from_slice(&ev.at.as_millis().to_le_bytes());
        r[12..16].copy_from_slice(&self.seq.to_le_bytes());
        self.flash.write(self.next, &r)?;
        self.seq = self.seq.wrapping_add(1);
        self.next = (self.next + RECORD) % cap;
        Ok(())
    }
}

fn encode(ev: &Event) -> (u8, u8) {
    match ev {
        Event::FaultTripped(f) => (1, *f as u8),
        Event::FaultReleased(f) => (2, *f as u8),
        Event::Warning(f) => (3, *f as u8),
        Event::WarningCleared(f) => (4, *f as u8),
        Event::SensorCauses(_) => (5, 0),
        Event::FetsChanged(s) => (
            6,
            u8::from(s.charge) | u8::from(s.discharge) << 1 | u8::from(s.precharge) << 2,
        ),
        Event::ModeChanged(m) => (
            7,
            match m {
                PowerMode::Active => 0,
                PowerMode::Sleep => 1,
                PowerMode::DeepSleep => 2,
            },
        ),
        Event::FaultsReset => (8, 0),
        Event::ConfigChanged => (9, 0),
        Event::Soc(_) => (10, 0),
        // Kinds added to the core later are logged as "other" until they get a code.
        #[allow(unreachable_patterns)]
        _ => (0xFF, 0),
    }
}
