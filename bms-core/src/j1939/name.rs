//! The 64-bit NAME of J1939-81 (address claim payload, little-endian on the wire).
//!
//! | Bits | Field |
//! |---|---|
//! | 0..=20 | identity number |
//! | 21..=31 | manufacturer code (assigned by SAE) |
//! | 32..=34 | ECU instance |
//! | 35..=39 | function instance |
//! | 40..=47 | function |
//! | 48 | reserved |
//! | 49..=55 | vehicle system |
//! | 56..=59 | vehicle system instance |
//! | 60..=62 | industry group |
//! | 63 | arbitrary address capable |
//!
//! In an address conflict the numerically lower NAME wins.
//!
//! # Examples
//! ```
//! use bms_core::j1939::name::{Name, NameFields};
//! // Golden vector of the J1939 notes (decoded by cantools and can-j1939's `j1939.Name`).
//! let name = Name::from_fields(NameFields {
//!     identity_number: 0x12345,
//!     manufacturer_code: 0x7FF,
//!     function: 0x80,
//!     arbitrary_address_capable: true,
//!     ..NameFields::default()
//! });
//! assert_eq!(name.to_le_bytes(), [0x45, 0x23, 0xE1, 0xFF, 0x00, 0x80, 0x00, 0x80]);
//! assert_eq!(Name::from_le_bytes(name.to_le_bytes()).fields().function, 0x80);
//! ```

/// The fields of a [`Name`]; values wider than their bit field are truncated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NameFields {
    /// Serial-number-like identity, 21 bits.
    pub identity_number: u32,
    /// Manufacturer code, 11 bits (SAE assigned; configure your own).
    pub manufacturer_code: u16,
    /// ECU instance, 3 bits.
    pub ecu_instance: u8,
    /// Function instance, 5 bits (e.g. battery pack number).
    pub function_instance: u8,
    /// Function code, 8 bits.
    pub function: u8,
    /// Vehicle system, 7 bits.
    pub vehicle_system: u8,
    /// Vehicle system instance, 4 bits.
    pub vehicle_system_instance: u8,
    /// Industry group, 3 bits (0 global, 1 on-highway, 4 marine, 5 industrial).
    pub industry_group: u8,
    /// May pick another address after losing a conflict.
    pub arbitrary_address_capable: bool,
}

/// A J1939 NAME.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Name(u64);

impl Name {
    /// From the raw 64-bit value.
    pub const fn from_raw(raw: u64) -> Self {
        Name(raw)
    }

    /// The raw 64-bit value.
    pub const fn to_raw(self) -> u64 {
        self.0
    }

    /// Packs the fields.
    pub const fn from_fields(f: NameFields) -> Self {
        Name(
            (f.identity_number as u64 & 0x1F_FFFF)
                | (f.manufacturer_code as u64 & 0x7FF) << 21
                | (f.ecu_instance as u64 & 0x7) << 32
                | (f.function_instance as u64 & 0x1F) << 35
                | (f.function as u64) << 40
                | (f.vehicle_system as u64 & 0x7F) << 49
                | (f.vehicle_system_instance as u64 & 0xF) << 56
                | (f.industry_group as u64 & 0x7) << 60
                | (f.arbitrary_address_capable as u64) << 63,
        )
    }

    /// Unpacks the fields.
    pub const fn fields(self) -> NameFields {
        let r = self.0;
        NameFields {
            identity_number: (r & 0x1F_FFFF) as u32,
            manufacturer_code: ((r >> 21) & 0x7FF) as u16,
            ecu_instance: ((r >> 32) & 0x7) as u8,
            function_instance: ((r >> 35) & 0x1F) as u8,
            function: (r >> 40) as u8,
            vehicle_system: ((r >> 49) & 0x7F) as u8,
            vehicle_system_instance: ((r >> 56) & 0xF) as u8,
            industry_group: ((r >> 60) & 0x7) as u8,
            arbitrary_address_capable: r >> 63 != 0,
        }
    }

    /// `true` when the node may move to another address after losing a conflict.
    pub const fn is_arbitrary_address_capable(self) -> bool {
        self.0 >> 63 != 0
    }

    /// The 8 wire bytes.
    pub const fn to_le_bytes(self) -> [u8; 8] {
        self.0.to_le_bytes()
    }

    /// From the 8 wire bytes.
    pub const fn from_le_bytes(b: [u8; 8]) -> Self {
        Name(u64::from_le_bytes(b))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let f = NameFields {
            identity_number: 0x1F_FFFF,
            manufacturer_code: 0x123,
            ecu_instance: 5,
            function_instance: 17,
            function: 0xAB,
            vehicle_system: 0x55,
            vehicle_system_instance: 9,
            industry_group: 5,
            arbitrary_address_capable: true,
        };
        assert_eq!(Name::from_fields(f).fields(), f);
        assert!(Name::from_fields(f).is_arbitrary_address_capable());
        // Bit 48 (reserved) stays clear.
        assert_eq!(Name::from_fields(f).to_raw() & (1 << 48), 0);
    }
}
