//! How [`Fault`]s appear on the wire: MOSFET status codes and the protection/warning masks.
//!
//! The MOSFET status codes are the ones the legacy protocol documents (and the new protocol's
//! clients print); the u64 protection and warning masks at bytes 10 and 18 of the status
//! frame are not publicly decoded, so this firmware defines them (table below).
//!
//! ## Protection / warning mask (new status frame bytes 10..18 and 18..26, u64 LE)
//!
//! Bit `n + 1` is the fault with discriminant `n`; bit 0 and bits 19..63 stay 0. Bit 1
//! (`cell_ov`) matches real devices, which set bit 1 when a cell is full. The protection mask
//! carries `Telemetry::faults`, the warning mask `Telemetry::warnings`.
//!
//! | bit | fault | bit | fault | bit | fault |
//! |---|---|---|---|---|---|
//! | 1 | `cell_ov` | 7 | `dsg_oc2` | 13 | `mos_ot` |
//! | 2 | `cell_uv` | 8 | `sc` | 14 | `cell_imbalance` |
//! | 3 | `pack_ov` | 9 | `chg_ot` | 15 | `open_wire` |
//! | 4 | `pack_uv` | 10 | `chg_ut` | 16 | `afe_comm` |
//! | 5 | `chg_oc` | 11 | `dsg_ot` | 17 | `sensor_fault` |
//! | 6 | `dsg_oc1` | 12 | `dsg_ut` | 18 | `precharge_fail` |
//!
//! ## MOSFET status codes
//!
//! A closed (conducting) MOSFET is `1` (on). An open one reports the first active fault of
//! its column, in the order of the table; an open MOSFET with no fault reports `0` (off).
//!
//! | fault | charge code | discharge code |
//! |---|---|---|
//! | `sc` | 8 abnormal current | 12 short-circuit protection |
//! | `cell_ov` | 2 over-charge protection | — |
//! | `pack_ov` | 5 pack over-voltage | — |
//! | `cell_uv` | — | 2 over-discharge protection |
//! | `pack_uv` | — | 5 pack under-voltage |
//! | `chg_oc` | 3 over-current protection | — |
//! | `dsg_oc1` | — | 3 over-current protection |
//! | `dsg_oc2` | — | 4 second-level over-current |
//! | `chg_ot` | 6 battery over-temperature | — |
//! | `dsg_ot` | — | 6 battery over-temperature |
//! | `mos_ot` | 7 MOSFET over-temperature | 7 MOSFET over-temperature |
//! | `chg_ut` | 17 low-temperature protection | — |
//! | `dsg_ut` | — | 17 low-temperature protection |
//! | `open_wire` | 9 balance wire dropped | 9 balance wire dropped |
//! | `cell_imbalance` | 18 voltage difference exceeded | 18 voltage difference exceeded |
//! | `precharge_fail` | — | 14 start exception |
//! | `afe_comm`, `sensor_fault` | 20 self-detect error | 19 self-detect error |
//!
//! Balancer status: `4` (automatic balancing) while any cell bleeds, `0` otherwise; both
//! aiobmsble (`x & 4`) and ESPHome (`== 4`) read that as "balancing".

use crate::protect::{Fault, FaultSet};

/// MOSFET status code: off.
pub const MOS_OFF: u8 = 0;
/// MOSFET status code: on.
pub const MOS_ON: u8 = 1;
/// Balancer status code: balancing.
pub const BALANCER_ACTIVE: u8 = 4;
/// Balancer status code: idle.
pub const BALANCER_OFF: u8 = 0;

/// Why the charge MOSFET is open, first match wins.
pub const CHARGE_CODES: &[(Fault, u8)] = &[
    (Fault::Sc, 8),
    (Fault::CellOv, 2),
    (Fault::PackOv, 5),
    (Fault::ChgOc, 3),
    (Fault::ChgOt, 6),
    (Fault::MosOt, 7),
    (Fault::ChgUt, 17),
    (Fault::OpenWire, 9),
    (Fault::CellImbalance, 18),
    (Fault::AfeComm, 20),
    (Fault::SensorFault, 20),
];

/// Why the discharge MOSFET is open, first match wins.
pub const DISCHARGE_CODES: &[(Fault, u8)] = &[
    (Fault::Sc, 12),
    (Fault::CellUv, 2),
    (Fault::PackUv, 5),
    (Fault::DsgOc1, 3),
    (Fault::DsgOc2, 4),
    (Fault::DsgOt, 6),
    (Fault::MosOt, 7),
    (Fault::DsgUt, 17),
    (Fault::OpenWire, 9),
    (Fault::CellImbalance, 18),
    (Fault::PrechargeFail, 14),
    (Fault::AfeComm, 19),
    (Fault::SensorFault, 19),
];

/// The status code of a MOSFET: [`MOS_ON`] when closed, else the first fault of `table`
/// present in `faults`, else [`MOS_OFF`].
pub fn mos_code(closed: bool, faults: FaultSet, table: &[(Fault, u8)]) -> u8 {
    if closed {
        return MOS_ON;
    }
    table
        .iter()
        .find(|(f, _)| faults.contains(*f))
        .map_or(MOS_OFF, |&(_, c)| c)
}

/// The protection/warning mask of `faults` (bit `n + 1` = fault `n`).
pub const fn fault_mask(faults: FaultSet) -> u64 {
    (faults.bits() as u64) << 1
}

/// The faults of a protection/warning mask; bits without a fault are ignored.
pub const fn faults_from_mask(mask: u64) -> FaultSet {
    FaultSet::from_bits((mask >> 1) as u32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    #[test]
    fn mask_round_trips_and_cell_ov_is_bit_1() {
        let mut s = FaultSet::EMPTY;
        s.insert(Fault::CellOv);
        assert_eq!(fault_mask(s), 0b10);
        s.insert(Fault::PrechargeFail);
        assert_eq!(fault_mask(s), 0b10 | 1 << 18);
        assert_eq!(faults_from_mask(fault_mask(s)), s);
        assert_eq!(faults_from_mask(u64::MAX).len(), Fault::COUNT as u32);
    }

    #[test]
    fn every_fault_that_opens_a_fet_has_a_code() {
        for f in Fault::ALL {
            let s: FaultSet = [f].into_iter().collect();
            let c = mos_code(false, s, CHARGE_CODES);
            let d = mos_code(false, s, DISCHARGE_CODES);
            assert!(c != MOS_OFF || d != MOS_OFF, "{f} has no code");
            assert_eq!(mos_code(true, s, CHARGE_CODES), MOS_ON);
        }
    }

    #[test]
    fn short_circuit_wins_over_under_voltage() {
        let s: FaultSet = [Fault::CellUv, Fault::Sc].into_iter().collect();
        assert_eq!(mos_code(false, s, DISCHARGE_CODES), 12);
        assert_eq!(mos_code(false, FaultSet::EMPTY, DISCHARGE_CODES), MOS_OFF);
    }
}
