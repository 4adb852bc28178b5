//! Iteration over the set bits of a mask (message sets, cell masks).

/// The indices of the set bits of `mask`, lowest first: a count of trailing zeros and a
/// clear of the lowest bit per index.
#[inline(always)]
pub(crate) fn set_bits(mut mask: u32) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        let i = mask.trailing_zeros();
        mask &= mask.wrapping_sub(1);
        (i < 32).then_some(i as usize)
    })
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn yields_exactly_the_set_bits_in_order(mask: u32) {
            let expected: heapless::Vec<usize, 32> = (0..32).filter(|i| mask >> i & 1 != 0).collect();
            let got: heapless::Vec<usize, 32> = set_bits(mask).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
