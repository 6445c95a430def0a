//! Seeded, stable hashing for the train/validation split and the subset.
//!
//! Hand-written because the split must never change between Rust releases
//! or platforms (std's `DefaultHasher` promises neither); FNV-1a and
//! SplitMix64 ([`crate::splitmix`]) are tiny, public-domain and well studied.

use serde::{Deserialize, Serialize};

use crate::reader::Tier;
use crate::splitmix::splitmix64;

/// What the split keeps apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitBy {
    /// Every database lies on one side, so validation measures unseen schemas.
    Database,
    /// Each example is assigned on its own; databases appear on both sides.
    Example,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A uniform number in [0, 1) from the seed and a key.
fn unit(seed: u64, key: u64) -> f64 {
    (splitmix64(seed ^ splitmix64(key)) >> 11) as f64 / (1u64 << 53) as f64
}

/// The side of a database under `--split-by database`.
pub fn database_split(seed: u64, db_id: &str, val_ratio: f64) -> Split {
    if unit(seed, fnv1a(db_id.as_bytes())) < val_ratio {
        Split::Val
    } else {
        Split::Train
    }
}

/// The side of a record under `--split-by example`.
pub fn example_split(seed: u64, record_id: u64, val_ratio: f64) -> Split {
    // A different stream than the subset's so the two choices are independent.
    if unit(seed ^ 0x5EED_5EED, record_id) < val_ratio {
        Split::Val
    } else {
        Split::Train
    }
}

/// Picks `size` of the records `(id, tier)` with the tiers in proportion
/// (largest remainder), each tier's share chosen by the smallest seeded
/// hashes. Returns the chosen ids, sorted.
pub fn stratified_subset(records: &[(u64, Option<Tier>)], size: u64, seed: u64) -> Vec<u64> {
    let mut by_tier: std::collections::BTreeMap<Option<Tier>, Vec<(u64, u64)>> = Default::default();
    for &(id, tier) in records {
        by_tier
            .entry(tier)
            .or_default()
            .push((splitmix64(seed ^ splitmix64(id ^ 0xA5A5_A5A5)), id));
    }
    let total = records.len() as u64;
    let size = size.min(total);
    if total == 0 {
        return Vec::new();
    }
    // Largest remainder: floor shares first, then the biggest fractions.
    let mut quotas: Vec<(Option<Tier>, u64, u64)> = by_tier
        .iter()
        .map(|(tier, ids)| {
            let exact = u128::from(size) * ids.len() as u128;
            (
                *tier,
                (exact / u128::from(total)) as u64,
                (exact % u128::from(total)) as u64,
            )
        })
        .collect();
    let mut left = size - quotas.iter().map(|q| q.1).sum::<u64>();
    let mut order: Vec<usize> = (0..quotas.len()).collect();
    order.sort_by(|&a, &b| quotas[b].2.cmp(&quotas[a].2).then(a.cmp(&b)));
    for i in order {
        if left == 0 {
            break;
        }
        quotas[i].1 += 1;
        left -= 1;
    }
    let mut chosen = Vec::with_capacity(size as usize);
    for (tier, quota, _) in quotas {
        let Some(ids) = by_tier.get_mut(&tier) else {
            continue;
        };
        let quota = quota as usize;
        if quota < ids.len() {
            ids.select_nth_unstable(quota);
        }
        chosen.extend(ids.iter().take(quota).map(|&(_, id)| id));
    }
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_ratio_is_close_to_the_requested_one_and_seeded() {
        let val = (0..100_000u64)
            .filter(|&i| example_split(42, i, 0.05) == Split::Val)
            .count();
        assert!((4_500..5_500).contains(&val), "{val}");
        let a: Vec<_> = (0..200)
            .map(|i| database_split(1, &format!("db{i}"), 0.5))
            .collect();
        let b: Vec<_> = (0..200)
            .map(|i| database_split(2, &format!("db{i}"), 0.5))
            .collect();
        assert_ne!(a, b, "the seed changes the split");
        assert_eq!(database_split(7, "x", 1.0), Split::Val);
        assert_eq!(database_split(7, "x", 0.0), Split::Train);
    }

    #[test]
    fn subset_is_exact_stratified_and_seeded() {
        let records: Vec<(u64, Option<Tier>)> = (0..1000u64)
            .map(|i| {
                (
                    i,
                    Some(if i % 10 < 7 {
                        Tier::Simple
                    } else {
                        Tier::Complex
                    }),
                )
            })
            .collect();
        let chosen = stratified_subset(&records, 101, 3);
        assert_eq!(chosen.len(), 101);
        let simple = chosen.iter().filter(|&&i| i % 10 < 7).count();
        assert!(simple == 71 || simple == 70, "{simple}");
        assert_eq!(chosen, stratified_subset(&records, 101, 3));
        assert_ne!(chosen, stratified_subset(&records, 101, 4));
        assert_eq!(stratified_subset(&records, 5000, 3).len(), 1000);
    }
}
