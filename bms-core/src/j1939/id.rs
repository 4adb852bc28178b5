//! The 29-bit J1939 identifier ([`J1939Id`]) and parameter group numbers ([`Pgn`]).
//!
//! J1939-21 section 5.2: `priority(3) | EDP(1) | DP(1) | PF(8) | PS(8) | SA(8)`.
//! With `PF < 240` (PDU1) `PS` is the destination address and not part of the PGN; with
//! `PF >= 240` (PDU2) `PS` is the group extension and the message is a broadcast.
//!
//! # Examples
//! ```
//! use bms_core::j1939::{J1939Id, Pgn};
//! // HVES1D1 from SA 0xF3 at priority 3 (golden vector of the J1939 notes).
//! let id = J1939Id::from_raw(0x0CF0_90F3)?;
//! assert_eq!(id.priority(), 3);
//! assert_eq!(id.pgn(), Pgn::new(0xF090)?);
//! assert_eq!(id.source_address(), 0xF3);
//! assert_eq!(id.destination(), None);
//! assert_eq!(J1939Id::new(3, Pgn::new(0xF090)?, 0xFF, 0xF3)?.to_raw(), 0x0CF0_90F3);
//! # Ok::<(), bms_core::j1939::IdError>(())
//! ```

use core::fmt;

/// The global (broadcast) destination address.
pub const GLOBAL: u8 = 0xFF;
/// The null address, source of "cannot claim address".
pub const NULL: u8 = 0xFE;

/// Why an identifier or PGN is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum IdError {
    /// The raw identifier does not fit 29 bits.
    TooLarge(u32),
    /// A PGN above 18 bits, or a PDU1 PGN with a non-zero low byte.
    InvalidPgn(u32),
    /// A priority above 7.
    InvalidPriority(u8),
    /// A CAN 2.0A (11-bit) identifier where J1939 needs a 29-bit one.
    NotExtended,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::TooLarge(v) => write!(f, "identifier {v:#x} does not fit 29 bits"),
            IdError::InvalidPgn(v) => write!(f, "invalid PGN {v:#x}"),
            IdError::InvalidPriority(p) => write!(f, "invalid priority {p}"),
            IdError::NotExtended => f.write_str("not a 29-bit identifier"),
        }
    }
}

impl core::error::Error for IdError {}

/// A parameter group number: 18 bits `EDP | DP | PF | PS`, `PS = 0` for PDU1 groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Pgn(u32);

impl Pgn {
    /// Request, PGN 59904 (J1939-21).
    pub const REQUEST: Pgn = Pgn(0xEA00);
    /// Acknowledgment, PGN 59392 (J1939-21).
    pub const ACKNOWLEDGMENT: Pgn = Pgn(0xE800);
    /// Address claimed, PGN 60928 (J1939-81).
    pub const ADDRESS_CLAIMED: Pgn = Pgn(0xEE00);
    /// Transport protocol connection management, PGN 60416.
    pub const TP_CM: Pgn = Pgn(0xEC00);
    /// Transport protocol data transfer, PGN 60160.
    pub const TP_DT: Pgn = Pgn(0xEB00);
    /// Proprietary A, PGN 61184 (PDU1, peer to peer).
    pub const PROPRIETARY_A: Pgn = Pgn(0xEF00);
    /// DM1 active diagnostic trouble codes, PGN 65226.
    pub const DM1: Pgn = Pgn(0xFECA);
    /// DM2 previously active diagnostic trouble codes, PGN 65227.
    pub const DM2: Pgn = Pgn(0xFECB);
    /// DM3 clear previously active DTCs, PGN 65228 (requested, never sent).
    pub const DM3: Pgn = Pgn(0xFECC);
    /// DM11 clear active DTCs, PGN 65235 (requested, never sent).
    pub const DM11: Pgn = Pgn(0xFED3);

    /// A PGN from its 18-bit value.
    ///
    /// # Errors
    /// [`IdError::InvalidPgn`] above 18 bits or for a PDU1 PGN (`PF < 240`) whose low byte
    /// is not zero (that byte is the destination address, not part of the PGN).
    pub const fn new(raw: u32) -> Result<Pgn, IdError> {
        let pf = (raw >> 8) & 0xFF;
        if raw > 0x3_FFFF || (pf < 240 && raw & 0xFF != 0) {
            Err(IdError::InvalidPgn(raw))
        } else {
            Ok(Pgn(raw))
        }
    }

    /// A PGN from a value known to be valid (crate constants, checked by tests).
    pub(crate) const fn from_const(raw: u32) -> Pgn {
        Pgn(raw & 0x3_FFFF)
    }

    /// The 18-bit value.
    pub const fn as_u32(self) -> u32 {
        self.0
    }

    /// The PDU format byte (PF).
    pub const fn pdu_format(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// `true` for a PDU1 (destination-specific) group, `PF < 240`.
    pub const fn is_pdu1(self) -> bool {
        self.pdu_format() < 240
    }

    /// The three little-endian bytes used in requests, TP.CM and acknowledgments.
    pub const fn to_le_bytes(self) -> [u8; 3] {
        [self.0 as u8, (self.0 >> 8) as u8, (self.0 >> 16) as u8]
    }

    /// Reads the three little-endian bytes of a request or TP.CM.
    ///
    /// # Errors
    /// [`IdError::InvalidPgn`] as for [`Pgn::new`].
    pub const fn from_le_bytes(b: [u8; 3]) -> Result<Pgn, IdError> {
        Pgn::new(b[0] as u32 | (b[1] as u32) << 8 | (b[2] as u32) << 16)
    }
}

impl fmt::Display for Pgn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#06X})", self.0, self.0)
    }
}

/// A validated 29-bit J1939 identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct J1939Id(u32);

impl J1939Id {
    /// Builds an identifier. `destination` is used only for PDU1 PGNs; PDU2 PGNs are
    /// broadcasts and carry their group extension in `PS` instead.
    ///
    /// # Errors
    /// [`IdError::InvalidPriority`] above 7.
    pub const fn new(priority: u8, pgn: Pgn, destination: u8, source: u8) -> Result<Self, IdError> {
        if priority > 7 {
            return Err(IdError::InvalidPriority(priority));
        }
        let ps = if pgn.is_pdu1() { destination as u32 } else { 0 };
        Ok(J1939Id(
            (priority as u32) << 26 | pgn.as_u32() << 8 | ps << 8 | source as u32,
        ))
    }

    /// Reads a raw identifier.
    ///
    /// # Errors
    /// [`IdError::TooLarge`] when `raw` does not fit 29 bits.
    pub const fn from_raw(raw: u32) -> Result<Self, IdError> {
        if raw > 0x1FFF_FFFF {
            Err(IdError::TooLarge(raw))
        } else {
            Ok(J1939Id(raw))
        }
    }

    /// The raw 29-bit value.
    pub const fn to_raw(self) -> u32 {
        self.0
    }

    /// Priority 0 (highest) ..= 7.
    pub const fn priority(self) -> u8 {
        (self.0 >> 26) as u8 & 7
    }

    /// The PDU format byte.
    pub const fn pdu_format(self) -> u8 {
        (self.0 >> 16) as u8
    }

    /// The PDU specific byte (destination address or group extension).
    pub const fn pdu_specific(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// The parameter group number (PDU1: without the destination byte).
    pub const fn pgn(self) -> Pgn {
        let edp_dp_pf = (self.0 >> 16) & 0x3FF;
        let ps = if self.pdu_format() < 240 {
            0
        } else {
            self.pdu_specific() as u32
        };
        Pgn(edp_dp_pf << 8 | ps)
    }

    /// The destination address of a PDU1 message (`Some(0xFF)` = global); `None` for PDU2.
    pub const fn destination(self) -> Option<u8> {
        if self.pdu_format() < 240 {
            Some(self.pdu_specific())
        } else {
            None
        }
    }

    /// The source address.
    pub const fn source_address(self) -> u8 {
        self.0 as u8
    }

    /// `true` when a node at `address` must process this message (broadcast or to it).
    pub const fn is_for(self, address: u8) -> bool {
        match self.destination() {
            None => true,
            Some(d) => d == GLOBAL || d == address,
        }
    }
}

impl TryFrom<embedded_can::Id> for J1939Id {
    type Error = IdError;
    fn try_from(id: embedded_can::Id) -> Result<Self, IdError> {
        match id {
            embedded_can::Id::Extended(e) => J1939Id::from_raw(e.as_raw()),
            embedded_can::Id::Standard(_) => Err(IdError::NotExtended),
        }
    }
}

impl fmt::Display for J1939Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}", self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    #[test]
    fn test_deconstruct() {
        // Vectors from the J1939 notes (checked with can-j1939 / cantools).
        let claim = J1939Id::from_raw(0x18EE_FFF3).unwrap();
        assert_eq!(claim.priority(), 6);
        assert_eq!(claim.pgn(), Pgn::ADDRESS_CLAIMED);
        assert_eq!(claim.destination(), Some(GLOBAL));
        let req = J1939Id::from_raw(0x18EA_F3F9).unwrap();
        assert_eq!(req.pgn(), Pgn::REQUEST);
        assert_eq!(req.destination(), Some(0xF3));
        assert_eq!(req.source_address(), 0xF9);
        assert!(req.is_for(0xF3));
        assert!(!req.is_for(0xF4));
        let dt = J1939Id::from_raw(0x1CEB_FFF3).unwrap();
        assert_eq!((dt.priority(), dt.pgn()), (7, Pgn::TP_DT));
        let dp = J1939Id::from_raw(0x19F0_4080).unwrap();
        assert_eq!(dp.pgn().as_u32(), 0x1_F040);
    }

    #[test]
    fn test_construct() {
        let id = J1939Id::new(7, Pgn::TP_CM, 0xFF, 0xF3).unwrap();
        assert_eq!(id.to_raw(), 0x1CEC_FFF3);
        let dm1 = J1939Id::new(6, Pgn::DM1, 0x12, 0xF3).unwrap();
        assert_eq!(dm1.to_raw(), 0x18FE_CAF3);
        assert_eq!(
            J1939Id::new(8, Pgn::DM1, 0, 0),
            Err(IdError::InvalidPriority(8))
        );
    }

    #[test]
    fn invalid() {
        assert_eq!(
            J1939Id::from_raw(0x2000_0000),
            Err(IdError::TooLarge(0x2000_0000))
        );
        assert!(Pgn::new(0xEA01).is_err());
        assert!(Pgn::new(0x4_0000).is_err());
        assert!(Pgn::new(0xFF01).is_ok());
        assert_eq!(
            Pgn::from_le_bytes([0x00, 0xEE, 0x00]),
            Ok(Pgn::ADDRESS_CLAIMED)
        );
    }
}
