//! SplitMix64 (Steele, Lea and Flood, 2014), the one seed mixer of the
//! workspace: the train/validation split, the curriculum and mix samplers,
//! and the trainer's per-purpose seeds all derive their numbers from it.
//!
//! Hand-written because what it yields must never change between Rust
//! releases or platforms; it is tiny, public-domain and well studied.

/// The SplitMix64 increment, 2^64 / φ (the golden ratio), odd.
pub const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (a variant of MurmurHash3's finaliser): a
/// bijection of `u64` whose every output bit depends on every input bit.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One SplitMix64 step from state `x`: [`mix64`] of `x + GOLDEN_GAMMA`.
pub fn splitmix64(x: u64) -> u64 {
    mix64(x.wrapping_add(GOLDEN_GAMMA))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // The first outputs of the reference generator seeded with 0
        // (state advanced by GOLDEN_GAMMA before each output).
        let mut state = 0u64;
        let mut next = || {
            let out = splitmix64(state);
            state = state.wrapping_add(GOLDEN_GAMMA);
            out
        };
        assert_eq!(next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(next(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(next(), 0x06C4_5D18_8009_454F);
    }
}
