//! Diagnostic messages (J1939-73): DTCs, lamps, DM1/DM2 payloads and the fault-to-DTC map.
//!
//! Every [`Fault`] maps to one SPN and two FMIs: one for the protection trip (the MOSFETs
//! open) and one for the warning tier below it. Trips light the red stop lamp, warnings the
//! amber warning lamp; the malfunction and protect lamps stay off. While a fault is tripped
//! its own warning DTC is not reported, so each fault contributes at most one active DTC.
//!
//! | Fault | SPN | Trip FMI | Warning FMI | SPN meaning |
//! |---|---|---|---|---|
//! | `cell_ov` | 5922 | 0 | 16 | HVES highest cell voltage |
//! | `cell_uv` | 5923 | 1 | 18 | HVES lowest cell voltage |
//! | `pack_ov` | 5919 | 0 | 16 | HVES voltage level |
//! | `pack_uv` | 5919 | 1 | 18 | HVES voltage level |
//! | `chg_oc` | 5920 | 0 | 16 | HVES current (positive = charging) |
//! | `dsg_oc1` | 5920 | 1 | 18 | HVES current |
//! | `dsg_oc2` | 520198 | 1 | 18 | manufacturer: pulse discharge over-current |
//! | `sc` | 5920 | 6 | 15 | HVES current (FMI 6: current above normal / grounded) |
//! | `chg_ot` | 520200 | 0 | 16 | manufacturer: cell temperature, charge window |
//! | `chg_ut` | 520201 | 1 | 18 | manufacturer: cell temperature, charge window |
//! | `dsg_ot` | 8075 | 0 | 16 | HVES highest cell temperature |
//! | `dsg_ut` | 8076 | 1 | 18 | HVES lowest cell temperature |
//! | `mos_ot` | 8204 | 0 | 16 | HVES electronics temperature |
//! | `cell_imbalance` | 5924 | 0 | 16 | HVES cell voltage differential status |
//! | `open_wire` | 5923 | 5 | 5 | HVES lowest cell voltage (FMI 5: open circuit) |
//! | `afe_comm` | 520207 | 12 | 12 | manufacturer: analog front end |
//! | `sensor_fault` | 520208 | 2 | 2 | manufacturer: measurement plausibility |
//! | `precharge_fail` | 520209 | 12 | 12 | manufacturer: pre-charge circuit |
//!
//! Manufacturer SPNs are `520192 + fault index` (J1939DA "manufacturer assignable"
//! 516096..=524287). The SPN conversion method bit is sent as 0 (the current method, as
//! can-j1939 expects); [`Dtc::decode`] accepts either.
//!
//! # Examples
//! ```
//! use bms_core::j1939::dm::{Dtc, DtcTable};
//! use bms_core::protect::{Fault, FaultSet};
//! let mut t = DtcTable::new();
//! let warn: FaultSet = [Fault::CellOv].into_iter().collect();
//! assert!(t.update(FaultSet::EMPTY, warn));
//! let mut buf = [0u8; bms_core::j1939::dm::MAX_DM_LEN];
//! let n = t.dm1(&mut buf);
//! // Golden vector of the J1939 notes: AWL on, SPN 5922 FMI 16 OC 1.
//! assert_eq!(&buf[..n], &[0x04, 0xFF, 0x22, 0x17, 0x10, 0x01, 0xFF, 0xFF]);
//! assert_eq!(Some(Dtc::decode([0x22, 0x17, 0x10, 0x01])), Dtc::new(5922, 16, 1));
//! ```

use crate::protect::{Fault, FaultSet};

/// Largest DM1/DM2 payload: two lamp bytes and a DTC per fault per tier.
pub const MAX_DM_LEN: usize = 2 + 4 * 2 * Fault::COUNT;

/// First manufacturer-assignable SPN used for faults without a standard SPN.
pub const MANUFACTURER_SPN_BASE: u32 = 520_192;

/// The two tiers of a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Tier {
    /// The protection tripped: MOSFETs opened.
    Trip,
    /// A warning below the trip threshold.
    Warning,
}

/// A diagnostic trouble code: SPN (19 bits), FMI (5 bits), occurrence count (7 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Dtc {
    spn: u32,
    fmi: u8,
    occurrences: u8,
}

impl Dtc {
    /// A DTC; `None` when a field does not fit its bits (SPN 19, FMI 5, count 7).
    pub const fn new(spn: u32, fmi: u8, occurrences: u8) -> Option<Dtc> {
        if spn > 0x7_FFFF || fmi > 31 || occurrences > 127 {
            None
        } else {
            Some(Dtc {
                spn,
                fmi,
                occurrences,
            })
        }
    }

    /// Suspect parameter number.
    pub const fn spn(self) -> u32 {
        self.spn
    }
    /// Failure mode identifier.
    pub const fn fmi(self) -> u8 {
        self.fmi
    }
    /// Occurrence count (127 = not available).
    pub const fn occurrences(self) -> u8 {
        self.occurrences
    }

    /// The four wire bytes (conversion method 0).
    pub const fn encode(self) -> [u8; 4] {
        [
            self.spn as u8,
            (self.spn >> 8) as u8,
            ((self.spn >> 11) as u8 & 0xE0) | (self.fmi & 0x1F),
            self.occurrences & 0x7F,
        ]
    }

    /// Reads four wire bytes; the conversion method bit is ignored. Total: every input
    /// gives a DTC.
    pub const fn decode(b: [u8; 4]) -> Dtc {
        Dtc {
            spn: b[0] as u32 | (b[1] as u32) << 8 | ((b[2] & 0xE0) as u32) << 11,
            fmi: b[2] & 0x1F,
            occurrences: b[3] & 0x7F,
        }
    }
}

/// The SPN and FMI reported for `fault` in `tier` (see the module table).
pub const fn dtc_code(fault: Fault, tier: Tier) -> (u32, u8) {
    let mfr = MANUFACTURER_SPN_BASE + fault as u32;
    let (spn, trip, warn) = match fault {
        Fault::CellOv => (5922, 0, 16),
        Fault::CellUv => (5923, 1, 18),
        Fault::PackOv => (5919, 0, 16),
        Fault::PackUv => (5919, 1, 18),
        Fault::ChgOc => (5920, 0, 16),
        Fault::DsgOc1 => (5920, 1, 18),
        Fault::DsgOc2 => (mfr, 1, 18),
        Fault::Sc => (5920, 6, 15),
        Fault::ChgOt => (mfr, 0, 16),
        Fault::ChgUt => (mfr, 1, 18),
        Fault::DsgOt => (8075, 0, 16),
        Fault::DsgUt => (8076, 1, 18),
        Fault::MosOt => (8204, 0, 16),
        Fault::CellImbalance => (5924, 0, 16),
        Fault::OpenWire => (5923, 5, 5),
        Fault::AfeComm => (mfr, 12, 12),
        Fault::SensorFault => (mfr, 2, 2),
        Fault::PrechargeFail => (mfr, 12, 12),
    };
    match tier {
        Tier::Trip => (spn, trip),
        Tier::Warning => (spn, warn),
    }
}

/// The on/off state of a DM1 lamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Lamp {
    /// `00`.
    Off,
    /// `01`.
    On,
}

impl Lamp {
    const fn bits(self) -> u8 {
        match self {
            Lamp::Off => 0,
            Lamp::On => 1,
        }
    }
}

/// The four DM1 lamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Lamps {
    /// Malfunction indicator lamp (emissions): always off for a battery pack.
    pub mil: Lamp,
    /// Red stop lamp: a protection tripped.
    pub red_stop: Lamp,
    /// Amber warning lamp: a warning is active.
    pub amber_warning: Lamp,
    /// Protect lamp: always off.
    pub protect: Lamp,
}

impl Lamps {
    /// The two lamp bytes: status, then flash (`0xFF`: do not flash).
    pub const fn encode(self) -> [u8; 2] {
        [
            self.mil.bits() << 6
                | self.red_stop.bits() << 4
                | self.amber_warning.bits() << 2
                | self.protect.bits(),
            0xFF,
        ]
    }
}

/// Active and previously active DTCs with occurrence counts, kept in RAM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtcTable {
    active: [FaultSet; 2],
    previous: [FaultSet; 2],
    occurrences: [[u8; Fault::COUNT]; 2],
}

impl Default for DtcTable {
    fn default() -> Self {
        Self::new()
    }
}

const fn tier_index(t: Tier) -> usize {
    match t {
        Tier::Trip => 0,
        Tier::Warning => 1,
    }
}

impl DtcTable {
    /// No DTCs, all counts zero.
    pub const fn new() -> Self {
        DtcTable {
            active: [FaultSet::EMPTY; 2],
            previous: [FaultSet::EMPTY; 2],
            occurrences: [[0; Fault::COUNT]; 2],
        }
    }

    /// Takes the current faults and warnings; returns `true` when the set of active DTCs
    /// changed (DM1 must be sent now). Each inactive-to-active transition counts one
    /// occurrence (saturating at 126; 127 means "not available" on the wire).
    #[inline]
    pub fn update(&mut self, faults: FaultSet, warnings: FaultSet) -> bool {
        let new = [faults, warnings.difference(faults)];
        if new == self.active {
            return false; // the common case: nothing changed
        }
        self.change(new);
        true
    }

    /// The body of [`DtcTable::update`] when the active sets change to `new`.
    ///
    /// Trick: out of line (cold), so that the common "nothing changed" is inlined in the
    /// caller's step.
    #[cold]
    #[inline(never)]
    fn change(&mut self, new: [FaultSet; 2]) {
        let tiers = self.occurrences.iter_mut().zip(&mut self.previous);
        for ((counts, previous), (old, new)) in tiers.zip(self.active.iter().zip(new)) {
            let rose = new.difference(*old);
            for f in rose.iter() {
                let c = &mut counts[f.index()];
                *c = c.saturating_add(1).min(126);
            }
            *previous = previous.difference(rose).union(old.difference(new));
        }
        self.active = new;
    }

    /// Active faults per tier (trip, warning without tripped ones).
    pub fn active(&self, tier: Tier) -> FaultSet {
        self.active[tier_index(tier)]
    }

    /// Number of active DTCs.
    pub fn active_count(&self) -> usize {
        (self.active[0].len() + self.active[1].len()) as usize
    }

    /// `true` when at most one DTC is active (`active_count() <= 1`): DM1 then fits one
    /// frame.
    ///
    /// Trick: `x & (x - 1)` clears the lowest set bit, so no bit count (a long sequence on
    /// targets without a population count instruction).
    pub fn dm1_fits_frame(&self) -> bool {
        let [trips, warnings] = self.active.map(FaultSet::bits);
        let all = trips | warnings;
        all & all.wrapping_sub(1) == 0 && trips & warnings == 0
    }

    /// The DTC of `fault` in `tier` with its current occurrence count.
    pub fn dtc(&self, fault: Fault, tier: Tier) -> Dtc {
        let (spn, fmi) = dtc_code(fault, tier);
        let oc = self.occurrences[tier_index(tier)][fault.index()];
        Dtc {
            spn,
            fmi,
            occurrences: oc,
        }
    }

    /// Lamps for DM1: red stop when a trip is active, amber when a warning is.
    pub fn lamps(&self) -> Lamps {
        let on = |b: bool| if b { Lamp::On } else { Lamp::Off };
        Lamps {
            mil: Lamp::Off,
            red_stop: on(!self.active[0].is_empty()),
            amber_warning: on(!self.active[1].is_empty()),
            protect: Lamp::Off,
        }
    }

    /// DM3: forgets previously active DTCs and their counts.
    pub fn clear_previous(&mut self) {
        for i in 0..2 {
            for f in self.previous[i].difference(self.active[i]).iter() {
                self.occurrences[i][f.index()] = 0;
            }
            self.previous[i] = FaultSet::EMPTY;
        }
    }

    /// DM11: forgets the history of active DTCs as well; still-active DTCs restart at
    /// one occurrence (the condition is still there and is reported again).
    pub fn clear_active(&mut self) {
        self.clear_previous();
        for i in 0..2 {
            for f in Fault::ALL {
                self.occurrences[i][f.index()] = u8::from(self.active[i].contains(f));
            }
        }
    }

    /// Writes the DM1 payload into `out`; returns its length (8 for zero or one DTC,
    /// else `2 + 4n`, which needs the transport protocol).
    pub fn dm1(&self, out: &mut [u8; MAX_DM_LEN]) -> usize {
        let lamps = self.lamps();
        self.emit(lamps, self.active, out)
    }

    /// The DM1 payload when it fits one frame (at most one active DTC, see
    /// [`DtcTable::dm1_fits_frame`]): the bytes [`DtcTable::dm1`] writes, without its
    /// buffer.
    ///
    /// Trick: the periodic single-frame DM1 is built in registers, not by filling and
    /// copying out of a buffer of [`MAX_DM_LEN`] bytes.
    pub fn dm1_single(&self) -> Option<[u8; 8]> {
        if !self.dm1_fits_frame() {
            return None;
        }
        let [l0, l1] = self.lamps().encode();
        let dtc = [Tier::Trip, Tier::Warning]
            .into_iter()
            .find_map(|tier| {
                let f = self.active(tier).iter().next()?;
                Some(self.dtc(f, tier).encode())
            })
            .unwrap_or([0; 4]); // no active DTC: SPN 0, FMI 0, count 0
        Some([l0, l1, dtc[0], dtc[1], dtc[2], dtc[3], 0xFF, 0xFF])
    }

    /// Writes the DM2 payload (previously active DTCs, lamps off) into `out`.
    pub fn dm2(&self, out: &mut [u8; MAX_DM_LEN]) -> usize {
        let lamps = Lamps {
            mil: Lamp::Off,
            red_stop: Lamp::Off,
            amber_warning: Lamp::Off,
            protect: Lamp::Off,
        };
        self.emit(lamps, self.previous, out)
    }

    fn emit(&self, lamps: Lamps, sets: [FaultSet; 2], out: &mut [u8; MAX_DM_LEN]) -> usize {
        out.fill(0xFF);
        out[..2].copy_from_slice(&lamps.encode());
        let mut len = 2;
        for tier in [Tier::Trip, Tier::Warning] {
            for f in sets[tier_index(tier)].iter() {
                if let Some(slot) = out.get_mut(len..len + 4) {
                    slot.copy_from_slice(&self.dtc(f, tier).encode());
                    len += 4;
                }
            }
        }
        match len {
            2 => {
                out[2..6].fill(0);
                8
            }
            6 => 8,
            n => n,
        }
    }
}

/// A parsed DM1/DM2 payload (lamp bytes and DTCs), for tools and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmMessage<'a> {
    lamps: [u8; 2],
    dtcs: &'a [u8],
}

impl<'a> DmMessage<'a> {
    /// Parses a DM1/DM2 payload.
    ///
    /// # Errors
    /// [`super::DecodeError::Truncated`] below 6 bytes; [`super::DecodeError::Malformed`]
    /// when a multi-packet payload is not `2 + 4n` bytes.
    pub fn parse(data: &'a [u8]) -> Result<Self, super::DecodeError> {
        let (lamps, rest) = data
            .split_first_chunk::<2>()
            .ok_or(super::DecodeError::Truncated)?;
        if rest.len() < 4 {
            return Err(super::DecodeError::Truncated);
        }
        let dtcs = if data.len() == 8 {
            &rest[..4]
        } else if rest.len() % 4 == 0 {
            rest
        } else {
            return Err(super::DecodeError::Malformed);
        };
        Ok(DmMessage {
            lamps: *lamps,
            dtcs,
        })
    }

    /// The lamp status byte.
    pub fn lamp_status(&self) -> u8 {
        self.lamps[0]
    }

    /// The DTCs, skipping the all-zero "no DTC" placeholder.
    pub fn dtcs(&self) -> impl Iterator<Item = Dtc> + 'a {
        self.dtcs
            .chunks_exact(4)
            .filter_map(|c| <[u8; 4]>::try_from(c).ok())
            .filter(|b| b != &[0; 4])
            .map(Dtc::decode)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod test {
    use super::*;

    fn set(fs: &[Fault]) -> FaultSet {
        fs.iter().copied().collect()
    }

    /// `dm1_fits_frame` is `active_count() <= 1` for none, one and two active DTCs in
    /// either tier (each pair of faults, the same fault in both tiers too).
    #[test]
    fn dm1_fits_frame_is_at_most_one_active() {
        let mut t = DtcTable::new();
        assert!(t.dm1_fits_frame());
        for &a in Fault::ALL.iter() {
            for &b in Fault::ALL.iter() {
                for (faults, warnings) in [
                    (set(&[a]), FaultSet::EMPTY),
                    (FaultSet::EMPTY, set(&[a, b])),
                    (set(&[a, b]), FaultSet::EMPTY),
                    (set(&[a]), set(&[b])),
                ] {
                    t.update(faults, warnings);
                    assert_eq!(t.dm1_fits_frame(), t.active_count() <= 1, "{a:?} {b:?}");
                }
            }
        }
    }

    /// `dm1_single` is the payload of `dm1` whenever it fits a frame, `None` otherwise,
    /// for none, one and two active DTCs in either tier.
    #[test]
    fn dm1_single_is_dm1() {
        let mut t = DtcTable::new();
        for &a in Fault::ALL.iter() {
            for &b in Fault::ALL.iter() {
                for (faults, warnings) in [
                    (FaultSet::EMPTY, FaultSet::EMPTY),
                    (set(&[a]), FaultSet::EMPTY),
                    (FaultSet::EMPTY, set(&[b])),
                    (FaultSet::EMPTY, set(&[a, b])),
                    (set(&[a, b]), FaultSet::EMPTY),
                    (set(&[a]), set(&[b])),
                ] {
                    t.update(faults, warnings);
                    let mut buf = [0; MAX_DM_LEN];
                    let n = t.dm1(&mut buf);
                    let expected = (n == 8).then(|| <[u8; 8]>::try_from(&buf[..8]).unwrap());
                    assert_eq!(t.dm1_single(), expected, "{a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn test_emit_no_fault() {
        let t = DtcTable::new();
        let mut b = [0; MAX_DM_LEN];
        let n = t.dm1(&mut b);
        assert_eq!(&b[..n], &[0x00, 0xFF, 0, 0, 0, 0, 0xFF, 0xFF]);
        assert_eq!(DmMessage::parse(&b[..n]).unwrap().dtcs().count(), 0);
    }

    #[test]
    fn test_emit_golden_four_dtcs() {
        // The 18-byte payload of the J1939 notes (reassembled by can-j1939):
        // RSL+AWL, 5922/0/1, 8075/16/2, 520192/12/1, 5923/18/3.
        let golden = [
            0x14, 0xFF, 0x22, 0x17, 0x00, 0x01, 0x8B, 0x1F, 0x10, 0x02, 0x00, 0xF0, 0xEC, 0x01,
            0x23, 0x17, 0x12, 0x03,
        ];
        let m = DmMessage::parse(&golden).unwrap();
        let d: heapless::Vec<Dtc, 4> = m.dtcs().collect();
        assert_eq!(
            &d[..],
            &[
                Dtc::new(5922, 0, 1).unwrap(),
                Dtc::new(8075, 16, 2).unwrap(),
                Dtc::new(520_192, 12, 1).unwrap(),
                Dtc::new(5923, 18, 3).unwrap(),
            ]
        );
        for x in d {
            let e = x.encode();
            assert!(golden.windows(4).any(|w| w == e));
        }
        // Our table with CellOv tripped and DsgOt warning gives those DTCs' bytes.
        let mut t = DtcTable::new();
        t.update(set(&[Fault::CellOv]), set(&[Fault::DsgOt]));
        let mut b = [0; MAX_DM_LEN];
        let n = t.dm1(&mut b);
        assert_eq!(
            &b[..n],
            &[0x14, 0xFF, 0x22, 0x17, 0x00, 0x01, 0x8B, 0x1F, 0x10, 0x01]
        );
    }

    #[test]
    fn codes_are_unique() {
        let mut seen: heapless::Vec<(u32, u8, Fault), 64> = heapless::Vec::new();
        for f in Fault::ALL {
            for tier in [Tier::Trip, Tier::Warning] {
                let (spn, fmi) = dtc_code(f, tier);
                assert!(spn <= 0x7_FFFF && fmi <= 31);
                for &(s, m, g) in &seen {
                    assert!(!(s == spn && m == fmi && g != f), "{f} collides with {g}");
                }
                seen.push((spn, fmi, f)).unwrap();
            }
        }
    }

    #[test]
    fn occurrences_and_history() {
        let mut t = DtcTable::new();
        let ov = set(&[Fault::CellOv]);
        assert!(t.update(ov, FaultSet::EMPTY));
        assert!(!t.update(ov, FaultSet::EMPTY));
        assert!(t.update(FaultSet::EMPTY, FaultSet::EMPTY));
        assert!(t.update(ov, ov)); // warning suppressed while tripped
        assert_eq!(t.active(Tier::Warning), FaultSet::EMPTY);
        assert_eq!(t.dtc(Fault::CellOv, Tier::Trip).occurrences(), 2);
        t.update(FaultSet::EMPTY, FaultSet::EMPTY);
        let mut b = [0; MAX_DM_LEN];
        let n = t.dm2(&mut b);
        assert_eq!(&b[..n], &[0x00, 0xFF, 0x22, 0x17, 0x00, 0x02, 0xFF, 0xFF]);
        t.clear_previous();
        let n = t.dm2(&mut b);
        assert_eq!(&b[2..n], &[0, 0, 0, 0, 0xFF, 0xFF]);
        assert_eq!(t.dtc(Fault::CellOv, Tier::Trip).occurrences(), 0);
    }

    #[test]
    fn all_faults_fit() {
        let mut t = DtcTable::new();
        let all = FaultSet::from_bits(u32::MAX);
        t.update(all, FaultSet::EMPTY);
        t.update(FaultSet::EMPTY, all);
        t.update(FaultSet::EMPTY, FaultSet::EMPTY);
        let mut b = [0; MAX_DM_LEN];
        assert_eq!(t.dm2(&mut b), MAX_DM_LEN);
        t.update(all, FaultSet::EMPTY);
        assert_eq!(t.dm1(&mut b), 2 + 4 * Fault::COUNT);
    }

    #[test]
    fn parse_never_panics() {
        for len in 0..20 {
            let b = [0xA5u8; 20];
            let _ = DmMessage::parse(&b[..len]).map(|m| m.dtcs().count());
        }
    }
}
