//! Transport protocol (J1939-21 section 5.10): the broadcast announce message (BAM).
//!
//! A message of 9..=1785 bytes is announced with a TP.CM BAM frame
//! (`20 size_lo size_hi packets FF pgn0 pgn1 pgn2`, PGN 60416 to the global address) and
//! sent as numbered TP.DT frames (`seq data[7]`, PGN 60160), the last one padded with
//! `0xFF`. The sender waits 50..=200 ms between packets; the receiver gives up after
//! T1 = 750 ms without a packet.
//!
//! [`BamSender`] and [`BamReceiver`] only build and read payloads; the node wraps them into
//! identifiers. Both are sans-I/O: time is an argument.
//!
//! # Examples
//! ```
//! use bms_core::j1939::tp::{BamReceiver, BamSender};
//! use bms_core::j1939::Pgn;
//! use bms_core::time::{Duration, Instant};
//!
//! let data = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10];
//! let t0 = Instant::ZERO;
//! let (mut tx, cm) = BamSender::start(t0, Pgn::DM1, &data, Duration::from_millis(60))?;
//! assert_eq!(cm, [0x20, 10, 0, 2, 0xFF, 0xCA, 0xFE, 0x00]);
//! let mut rx = BamReceiver::new();
//! rx.handle_cm(t0, 0xF3, &cm)?;
//! let mut now = t0;
//! let mut done = None;
//! while let Some(due) = tx.next_due() {
//!     now = due;
//!     let dt = tx.poll(now).unwrap();
//!     if let Some((pgn, msg)) = rx.handle_dt(now, 0xF3, &dt)? {
//!         done = Some((pgn, msg.len()));
//!     }
//! }
//! assert_eq!(done, Some((Pgn::DM1, 10)));
//! # Ok::<(), bms_core::j1939::tp::TpError>(())
//! ```

use core::fmt;

use super::id::Pgn;
use crate::time::{Duration, Instant};

/// Largest message this implementation sends or reassembles (bounded RAM).
pub const MAX_BAM_LEN: usize = 160;

/// Buffer size: whole packets, so the last packet of a maximum-size message fits.
const BUF_LEN: usize = MAX_BAM_LEN.div_ceil(7) * 7;

/// T1: longest gap between two packets of a BAM before the receiver drops it.
pub const T1: Duration = Duration::from_millis(750);

/// Control byte of a TP.CM BAM.
pub const CONTROL_BAM: u8 = 0x20;

/// A transport protocol error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TpError {
    /// A TP frame shorter than 8 bytes.
    Truncated,
    /// A TP.CM that is not a BAM (RTS/CTS is not implemented).
    NotBam(u8),
    /// Size below 9, or packet count not `ceil(size / 7)`.
    BadSize,
    /// Larger than [`MAX_BAM_LEN`].
    TooLong(u16),
    /// An invalid PGN in the TP.CM.
    BadPgn,
    /// A TP.DT out of sequence.
    Sequence {
        /// The sequence number expected.
        expected: u8,
        /// The sequence number received.
        got: u8,
    },
    /// A TP.DT with no BAM open from that source.
    NoSession,
    /// Another source's BAM is being received.
    Busy,
}

impl fmt::Display for TpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TpError::Truncated => f.write_str("TP frame shorter than 8 bytes"),
            TpError::NotBam(c) => write!(f, "TP.CM control {c:#04x} is not a BAM"),
            TpError::BadSize => f.write_str("BAM size and packet count disagree"),
            TpError::TooLong(n) => write!(f, "BAM of {n} bytes is longer than supported"),
            TpError::BadPgn => f.write_str("invalid PGN in TP.CM"),
            TpError::Sequence { expected, got } => {
                write!(f, "TP.DT sequence {got}, expected {expected}")
            }
            TpError::NoSession => f.write_str("TP.DT without a BAM"),
            TpError::Busy => f.write_str("another BAM is being received"),
        }
    }
}

impl core::error::Error for TpError {}

const fn packets_for(len: usize) -> usize {
    len.div_ceil(7)
}

/// Sends one message as a BAM: the TP.CM at start, then one TP.DT per `gap`.
#[derive(Clone, Debug)]
pub struct BamSender {
    pgn: Pgn,
    len: usize,
    buf: [u8; BUF_LEN],
    next_seq: u8,
    packets: u8,
    next_due: Instant,
    gap: Duration,
}

impl BamSender {
    /// Starts a BAM at `now`; returns the sender and the TP.CM payload to send now.
    ///
    /// # Errors
    /// [`TpError::BadSize`] below 9 bytes (send a single frame instead),
    /// [`TpError::TooLong`] above [`MAX_BAM_LEN`].
    pub fn start(
        now: Instant,
        pgn: Pgn,
        data: &[u8],
        gap: Duration,
    ) -> Result<(Self, [u8; 8]), TpError> {
        let len = data.len();
        if len < 9 {
            return Err(TpError::BadSize);
        }
        if len > MAX_BAM_LEN {
            return Err(TpError::TooLong(len.min(usize::from(u16::MAX)) as u16));
        }
        let mut buf = [0xFF; BUF_LEN];
        buf[..len].copy_from_slice(data);
        let packets = packets_for(len) as u8;
        let p = pgn.to_le_bytes();
        let cm = [
            CONTROL_BAM,
            len as u8,
            (len >> 8) as u8,
            packets,
            0xFF,
            p[0],
            p[1],
            p[2],
        ];
        Ok((
            BamSender {
                pgn,
                len,
                buf,
                next_seq: 1,
                packets,
                next_due: now + gap,
                gap,
            },
            cm,
        ))
    }

    /// The PGN being sent.
    pub fn pgn(&self) -> Pgn {
        self.pgn
    }

    /// The message length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a BAM carries at least 9 bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// When the next TP.DT is due; `None` when every packet was sent.
    pub fn next_due(&self) -> Option<Instant> {
        (self.next_seq <= self.packets).then_some(self.next_due)
    }

    /// The next TP.DT payload if it is due at `now`. The following one is due `gap` later.
    #[must_use]
    pub fn poll(&mut self, now: Instant) -> Option<[u8; 8]> {
        if self.next_seq > self.packets || now < self.next_due {
            return None;
        }
        let start = usize::from(self.next_seq - 1) * 7;
        let mut dt = [0xFF; 8];
        dt[0] = self.next_seq;
        if let Some(chunk) = self.buf.get(start..start + 7) {
            dt[1..].copy_from_slice(chunk);
        }
        self.next_seq += 1;
        self.next_due = now + self.gap;
        Some(dt)
    }
}

#[derive(Clone, Copy, Debug)]
struct RxSession {
    source: u8,
    pgn: Pgn,
    len: usize,
    packets: u8,
    next_seq: u8,
    deadline: Instant,
}

/// Reassembles one BAM at a time (a second source's BAM meanwhile is refused).
#[derive(Clone, Debug)]
pub struct BamReceiver {
    session: Option<RxSession>,
    buf: [u8; BUF_LEN],
}

impl Default for BamReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl BamReceiver {
    /// An idle receiver.
    pub const fn new() -> Self {
        BamReceiver {
            session: None,
            buf: [0; BUF_LEN],
        }
    }

    /// Takes a TP.CM from `source`. A BAM from the source of the open session replaces it.
    ///
    /// # Errors
    /// [`TpError::Truncated`], [`TpError::NotBam`], [`TpError::BadSize`],
    /// [`TpError::TooLong`], [`TpError::BadPgn`], or [`TpError::Busy`] while another
    /// source's BAM is open.
    pub fn handle_cm(&mut self, now: Instant, source: u8, data: &[u8]) -> Result<(), TpError> {
        self.handle_timeout(now);
        let d: &[u8; 8] = data
            .get(..8)
            .and_then(|s| s.try_into().ok())
            .ok_or(TpError::Truncated)?;
        if d[0] != CONTROL_BAM {
            return Err(TpError::NotBam(d[0]));
        }
        let len = usize::from(u16::from_le_bytes([d[1], d[2]]));
        if !(9..=1785).contains(&len) || usize::from(d[3]) != packets_for(len) {
            return Err(TpError::BadSize);
        }
        if len > MAX_BAM_LEN {
            return Err(TpError::TooLong(len as u16));
        }
        let pgn = Pgn::from_le_bytes([d[5], d[6], d[7]]).map_err(|_| TpError::BadPgn)?;
        if matches!(self.session, Some(s) if s.source != source) {
            return Err(TpError::Busy);
        }
        self.session = Some(RxSession {
            source,
            pgn,
            len,
            packets: d[3],
            next_seq: 1,
            deadline: now + T1,
        });
        Ok(())
    }

    /// Takes a TP.DT from `source`; returns the PGN and message when it completes.
    ///
    /// # Errors
    /// [`TpError::Truncated`], [`TpError::NoSession`], or [`TpError::Sequence`] (the
    /// session is dropped).
    pub fn handle_dt(
        &mut self,
        now: Instant,
        source: u8,
        data: &[u8],
    ) -> Result<Option<(Pgn, &[u8])>, TpError> {
        self.handle_timeout(now);
        let mut s = match self.session {
            Some(s) if s.source == source => s,
            _ => return Err(TpError::NoSession),
        };
        let d: &[u8; 8] = data
            .get(..8)
            .and_then(|x| x.try_into().ok())
            .ok_or(TpError::Truncated)?;
        if d[0] != s.next_seq {
            self.session = None;
            return Err(TpError::Sequence {
                expected: s.next_seq,
                got: d[0],
            });
        }
        let start = usize::from(s.next_seq - 1) * 7;
        if let Some(dst) = self.buf.get_mut(start..start + 7) {
            dst.copy_from_slice(&d[1..]);
        }
        s.deadline = now + T1;
        if s.next_seq == s.packets {
            self.session = None;
            return Ok(self.buf.get(..s.len).map(|m| (s.pgn, m)));
        }
        s.next_seq += 1;
        self.session = Some(s);
        Ok(None)
    }

    /// Drops an open session whose T1 expired; returns `true` if one was dropped.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if matches!(self.session, Some(s) if now > s.deadline) {
            self.session = None;
            return true;
        }
        false
    }

    /// When the open session times out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.session.map(|s| s.deadline)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    // The 4-DTC DM1 of the J1939 notes, as sent by (and byte-identical to) can-j1939.
    const CM: [u8; 8] = [0x20, 0x12, 0x00, 0x03, 0xFF, 0xCA, 0xFE, 0x00];
    const DT: [[u8; 8]; 3] = [
        [0x01, 0x14, 0xFF, 0x22, 0x17, 0x00, 0x01, 0x8B],
        [0x02, 0x1F, 0x10, 0x02, 0x00, 0xF0, 0xEC, 0x01],
        [0x03, 0x23, 0x17, 0x12, 0x03, 0xFF, 0xFF, 0xFF],
    ];
    const PAYLOAD: [u8; 18] = [
        0x14, 0xFF, 0x22, 0x17, 0x00, 0x01, 0x8B, 0x1F, 0x10, 0x02, 0x00, 0xF0, 0xEC, 0x01, 0x23,
        0x17, 0x12, 0x03,
    ];

    #[test]
    fn test_emit_golden() {
        let gap = Duration::from_millis(60);
        let (mut tx, cm) = BamSender::start(Instant::ZERO, Pgn::DM1, &PAYLOAD, gap).unwrap();
        assert_eq!(cm, CM);
        assert_eq!(tx.poll(Instant::from_millis(59)), None);
        for (i, dt) in DT.iter().enumerate() {
            let t = Instant::from_millis(60 * (i as u64 + 1));
            assert_eq!(tx.next_due(), Some(t));
            assert_eq!(tx.poll(t).as_ref(), Some(dt));
        }
        assert_eq!(tx.next_due(), None);
    }

    #[test]
    fn test_parse_golden() {
        let mut rx = BamReceiver::new();
        rx.handle_cm(Instant::ZERO, 0xF3, &CM).unwrap();
        assert_eq!(
            rx.handle_dt(Instant::from_millis(50), 0xF3, &DT[0]),
            Ok(None)
        );
        assert_eq!(
            rx.handle_dt(Instant::from_millis(100), 0xF3, &DT[1]),
            Ok(None)
        );
        let r = rx
            .handle_dt(Instant::from_millis(150), 0xF3, &DT[2])
            .unwrap();
        assert_eq!(r, Some((Pgn::DM1, &PAYLOAD[..])));
    }

    #[test]
    fn t1_timeout_and_errors() {
        let mut rx = BamReceiver::new();
        rx.handle_cm(Instant::ZERO, 0xF3, &CM).unwrap();
        assert_eq!(rx.poll_timeout(), Some(Instant::from_millis(750)));
        assert_eq!(rx.handle_cm(Instant::ZERO, 0x10, &CM), Err(TpError::Busy));
        rx.handle_dt(Instant::from_millis(700), 0xF3, &DT[0])
            .unwrap();
        // 751 ms after the last packet: dropped.
        assert_eq!(
            rx.handle_dt(Instant::from_millis(1_451), 0xF3, &DT[1]),
            Err(TpError::NoSession)
        );
        rx.handle_cm(Instant::ZERO, 0xF3, &CM).unwrap();
        assert_eq!(
            rx.handle_dt(Instant::ZERO, 0xF3, &DT[1]),
            Err(TpError::Sequence {
                expected: 1,
                got: 2
            })
        );
        let mut bad = CM;
        bad[3] = 4;
        assert_eq!(rx.handle_cm(Instant::ZERO, 1, &bad), Err(TpError::BadSize));
        assert_eq!(
            rx.handle_cm(Instant::ZERO, 1, &CM[..7]),
            Err(TpError::Truncated)
        );
        bad = CM;
        bad[0] = 0x10;
        assert_eq!(
            rx.handle_cm(Instant::ZERO, 1, &bad),
            Err(TpError::NotBam(0x10))
        );
    }

    #[test]
    fn sender_limits() {
        let g = Duration::from_millis(60);
        assert!(BamSender::start(Instant::ZERO, Pgn::DM1, &[0; 8], g).is_err());
        assert_eq!(
            BamSender::start(Instant::ZERO, Pgn::DM1, &[0; MAX_BAM_LEN + 1], g).err(),
            Some(TpError::TooLong(MAX_BAM_LEN as u16 + 1))
        );
    }
}
