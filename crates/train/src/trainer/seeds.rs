//! Every random stream of a run is a function of `training.seed` and a
//! purpose, so that a repeated or resumed run draws exactly the same.

use text2sql_data::splitmix::{mix64, GOLDEN_GAMMA};

// The purpose folded in first for each stream. The numbers are the ones runs
// have always used: changing one changes what every seed draws.
/// A curriculum phase's sampler (followed by the phase's tier mix).
pub(super) const CURRICULUM: u64 = 1;
/// The packing of one window into batches (followed by the window number).
pub(super) const PACKING: u64 = 2;
/// Dropout of one micro-batch (followed by the step and micro-batch).
pub(super) const DROPOUT: u64 = 3;
/// The execution-accuracy sample of the val split.
pub(super) const EXEC_SAMPLE: u64 = 4;
/// A source other than the first inside a phase's sampler (folded into the
/// phase's seed, followed by the source index).
pub(super) const SOURCE: u64 = 5;
/// Which source each draw of a phase's mix comes from (followed by the phase).
pub(super) const MIX: u64 = 6;

/// A seed for one purpose (`parts`) of a run seeded by `seed`: each part is
/// folded in with the data crate's SplitMix64.
pub(super) fn mix_seed(seed: u64, parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(seed, |acc, &p| mix64(acc ^ p.wrapping_add(GOLDEN_GAMMA)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_the_ones_earlier_runs_drew() {
        // Values of the hand-inlined SplitMix64 fold this replaced: a run
        // resumed or repeated with the same seed draws the same streams.
        assert_eq!(mix_seed(0, &[4]), 0x6E73_E372_E233_8ACA);
        assert_eq!(mix_seed(42, &[1, 7]), 0xD95B_2A33_7A81_075B);
        assert_eq!(mix_seed(7, &[5, 3, u64::MAX]), 0x0E8A_C175_FD39_F0C5);
    }
}
