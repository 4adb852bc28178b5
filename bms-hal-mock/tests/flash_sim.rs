//! The simulated NOR flash keeps the rules of a real part.
#![allow(clippy::unwrap_used)]

use bms_hal_mock::flash::{SimFlash, SimFlashError};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

type Flash = SimFlash<8, 1024>;

fn read(f: &mut Flash, at: u32, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    f.read(at, &mut b).unwrap();
    b
}

#[test]
fn starts_erased_and_reports_geometry() {
    let mut f = Flash::new(4, 1);
    assert_eq!(f.capacity(), 4096);
    assert_eq!(<Flash as NorFlash>::WRITE_SIZE, 8);
    assert_eq!(<Flash as NorFlash>::ERASE_SIZE, 1024);
    assert!(read(&mut f, 0, 4096).iter().all(|&b| b == 0xFF));
}

#[test]
fn alignment_and_bounds() {
    let mut f = Flash::new(4, 1);
    assert_eq!(f.write(4, &[0; 8]), Err(SimFlashError::NotAligned));
    assert_eq!(f.write(0, &[0; 4]), Err(SimFlashError::NotAligned));
    assert_eq!(f.write(4096, &[0; 8]), Err(SimFlashError::OutOfBounds));
    assert_eq!(f.erase(512, 1024), Err(SimFlashError::NotAligned));
    assert_eq!(f.erase(0, 5120), Err(SimFlashError::OutOfBounds));
    assert_eq!(f.erase(2048, 1024), Err(SimFlashError::OutOfBounds));
    let mut b = [0u8; 2];
    assert_eq!(f.read(4095, &mut b), Err(SimFlashError::OutOfBounds));
}

#[test]
fn erase_sets_ff_and_counts_per_sector() {
    let mut f = Flash::new(4, 1);
    f.write(1024, &[0x11; 16]).unwrap();
    f.erase(1024, 3072).unwrap();
    f.erase(1024, 2048).unwrap();
    assert_eq!(f.erase_counts(), &[0, 2, 1, 0]);
    assert!(read(&mut f, 1024, 16).iter().all(|&b| b == 0xFF));
}

#[test]
fn and_programming_when_not_strict() {
    let mut f = Flash::new(1, 1).strict(false);
    f.write(0, &[0b1100_1100; 8]).unwrap();
    f.write(0, &[0b1010_1010; 8]).unwrap();
    assert_eq!(read(&mut f, 0, 8), vec![0b1000_1000; 8]);
    // Bits never come back to 1 without an erase.
    f.write(0, &[0xFF; 8]).unwrap();
    assert_eq!(read(&mut f, 0, 8), vec![0b1000_1000; 8]);
}

#[test]
fn strict_refuses_a_second_program_of_a_word() {
    let mut f = Flash::new(1, 1);
    f.write(0, &[0xFE; 8]).unwrap();
    assert_eq!(f.write(0, &[0xFC; 8]), Err(SimFlashError::NotErased));
    assert_eq!(f.write(0, &[0xFF; 16]), Ok(()));
}

#[test]
fn a_cut_write_leaves_a_prefix_and_a_partial_word() {
    for seed in 1..50u64 {
        let mut f = Flash::new(1, seed);
        f.cut_after(13);
        assert_eq!(f.write(0, &[0x00; 32]), Err(SimFlashError::PowerLost));
        assert!(f.is_dead());
        assert_eq!(f.write_cuts(), 1);
        let after = f.contents()[..32].to_vec();
        assert!(after[..13].iter().all(|&b| b == 0x00), "prefix programmed");
        assert!(
            after[16..].iter().all(|&b| b == 0xFF),
            "nothing after the word"
        );
        // Bytes 13..16 are in the word at the cut: each either programmed or not, any mix.
        // Dead until restart, reads too.
        assert_eq!(f.write(64, &[0; 8]), Err(SimFlashError::PowerLost));
        assert_eq!(f.erase(0, 1024), Err(SimFlashError::PowerLost));
        let mut b = [0u8; 1];
        assert_eq!(f.read(0, &mut b), Err(SimFlashError::PowerLost));
        f.restart();
        assert_eq!(f.write(64, &[0; 8]), Ok(()));
    }
}

#[test]
fn partial_word_bits_vary_with_the_seed() {
    let mut seen = std::collections::HashSet::new();
    for seed in 1..200u64 {
        let mut f = Flash::new(1, seed);
        f.cut_after(2);
        let _ = f.write(0, &[0x00; 8]);
        let c = f.contents();
        assert_eq!(&c[..2], &[0, 0]);
        seen.insert(c[2..8].to_vec());
    }
    assert!(
        seen.len() > 100,
        "only {} distinct partial words",
        seen.len()
    );
}

#[test]
fn a_cut_erase_leaves_random_bits_and_counts() {
    let mut f = Flash::new(2, 9);
    f.write(1024, &[0x00; 1024]).unwrap();
    f.cut_after(300);
    assert_eq!(f.erase(1024, 2048), Err(SimFlashError::PowerLost));
    assert_eq!((f.erase_cuts(), f.erase_count(1)), (1, 1));
    let s = &f.contents()[1024..2048];
    assert!(s[..300].iter().all(|&b| b == 0xFF));
    let rest = &s[300..];
    assert!(rest.iter().any(|&b| b != 0xFF) && rest.iter().any(|&b| b != 0x00));
    f.restart();
    f.erase(1024, 2048).unwrap();
    assert!(f.contents()[1024..].iter().all(|&b| b == 0xFF));
}

#[test]
fn disarm_and_budget_spanning_operations() {
    let mut f = Flash::new(2, 3);
    f.cut_after(20);
    f.write(0, &[0; 8]).unwrap();
    f.write(8, &[0; 8]).unwrap();
    assert_eq!(f.write(16, &[0; 8]), Err(SimFlashError::PowerLost));
    f.restart();
    f.cut_after(10);
    f.disarm();
    f.erase(0, 2048).unwrap();
    assert_eq!(f.bytes_written(), 20);
}
