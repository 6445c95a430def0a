//! The curriculum sampler: phases named by tiers (for example Simple, then
//! Simple + Moderate, then + Complex, then all four), each lasting a number
//! of examples and mixing its tiers by weight.
//!
//! Every choice is a pure function of the seed and a counter, so a position
//! ([`SamplerPosition`]) is enough to resume exactly where training stopped.
//! Each tier is read as a pool: its row groups in a seeded order per epoch,
//! the rows of a row group in a seeded order, one row group decoded at a
//! time, so memory does not depend on the dataset's size.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::loader::SplitReader;
use crate::reader::Tier;
use crate::splitmix::splitmix64;
use crate::store::Example;

mod mix;
pub use mix::{MixPosition, MixSource, MixedSampler};

/// One phase of the curriculum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Tier weights (any scale). Empty: every row of the split, each tier
    /// in proportion to its size (and rows without a tier, as in Spider).
    #[serde(default)]
    pub mix: BTreeMap<Tier, f64>,
    /// Examples this phase lasts; `None` for the last phase means forever.
    pub examples: Option<u64>,
}

impl Phase {
    /// These tiers with equal weights.
    pub fn tiers(tiers: &[Tier], examples: Option<u64>) -> Self {
        Self {
            mix: tiers.iter().map(|&t| (t, 1.0)).collect(),
            examples,
        }
    }

    pub fn mix(weights: &[(Tier, f64)], examples: Option<u64>) -> Self {
        Self {
            mix: weights.iter().copied().collect(),
            examples,
        }
    }

    /// The whole split in its natural proportions.
    pub fn all(examples: Option<u64>) -> Self {
        Self {
            mix: BTreeMap::new(),
            examples,
        }
    }
}

/// Where a tier's pool stands: epoch, position in that epoch's row-group
/// order, and position in the current row group's row order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolCursor {
    pub epoch: u64,
    pub group: usize,
    pub row: usize,
}

/// Everything needed to resume: examples drawn so far and each pool's cursor
/// (keyed by tier name, `none` for rows without a tier).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerPosition {
    pub step: u64,
    pub cursors: BTreeMap<String, PoolCursor>,
}

fn pool_name(tier: Option<Tier>) -> &'static str {
    tier.map_or("none", Tier::as_str)
}

/// A phase's pools with positive weights, and the step where it ends.
type ResolvedPhase = (Vec<(Option<Tier>, f64)>, Option<u64>);

struct Loaded {
    epoch: u64,
    group_pos: usize,
    group_order: Arc<Vec<usize>>,
    rows: Arc<Vec<Example>>,
    row_order: Vec<usize>,
}

pub struct CurriculumSampler {
    split: SplitReader,
    phases: Vec<ResolvedPhase>,
    seed: u64,
    position: SamplerPosition,
    pools: BTreeMap<Option<Tier>, Vec<usize>>,
    loaded: BTreeMap<Option<Tier>, Loaded>,
}

impl CurriculumSampler {
    pub fn new(split: SplitReader, phases: Vec<Phase>, seed: u64) -> Result<Self, DataError> {
        if phases.is_empty() {
            return Err(DataError::Invalid(
                "a curriculum needs at least one phase".into(),
            ));
        }
        let mut pools: BTreeMap<Option<Tier>, Vec<usize>> = BTreeMap::new();
        for g in 0..split.row_group_count() {
            if let Some((tier, rows)) = split.row_group_info(g) {
                if rows > 0 {
                    pools.entry(tier).or_default().push(g);
                }
            }
        }
        let mut resolved = Vec::with_capacity(phases.len());
        let mut end = Some(0u64);
        for (i, phase) in phases.iter().enumerate() {
            let mix: Vec<(Option<Tier>, f64)> = if phase.mix.is_empty() {
                pools
                    .keys()
                    .map(|&tier| (tier, split.tier_len(tier) as f64))
                    .collect()
            } else {
                phase.mix.iter().map(|(&t, &w)| (Some(t), w)).collect()
            };
            for &(tier, weight) in &mix {
                if !(weight.is_finite() && weight >= 0.0) {
                    return Err(DataError::Invalid(format!(
                        "phase {}: weight {weight} of {} is not a non-negative number",
                        i + 1,
                        pool_name(tier)
                    )));
                }
                if weight > 0.0 && !pools.contains_key(&tier) {
                    return Err(DataError::Invalid(format!(
                        "phase {}: the split has no {} rows",
                        i + 1,
                        pool_name(tier)
                    )));
                }
            }
            let mix: Vec<_> = mix.into_iter().filter(|&(_, w)| w > 0.0).collect();
            if mix.is_empty() {
                return Err(DataError::Invalid(format!(
                    "phase {}: no tier with a positive weight and rows",
                    i + 1
                )));
            }
            end = match (end, phase.examples) {
                (Some(e), Some(n)) => Some(e + n),
                (Some(_), None) if i + 1 == phases.len() => None,
                (Some(_), None) => {
                    return Err(DataError::Invalid(format!(
                        "phase {}: only the last phase may last forever",
                        i + 1
                    )))
                }
                (None, _) => None,
            };
            resolved.push((mix, end));
        }
        Ok(Self {
            split,
            phases: resolved,
            seed,
            position: SamplerPosition::default(),
            pools,
            loaded: BTreeMap::new(),
        })
    }

    /// Continues from a position saved with [`Self::position`].
    pub fn with_position(mut self, position: SamplerPosition) -> Self {
        self.position = position;
        self.loaded.clear();
        self
    }

    pub fn position(&self) -> &SamplerPosition {
        &self.position
    }

    /// The phase (0-based) the next example comes from; `None` when done.
    pub fn phase(&self) -> Option<usize> {
        let step = self.position.step;
        self.phases
            .iter()
            .position(|(_, end)| end.is_none_or(|e| step < e))
    }

    /// The next example, or `None` when the last phase is over.
    pub fn next_example(&mut self) -> Result<Option<Example>, DataError> {
        let Some(phase) = self.phase() else {
            return Ok(None);
        };
        let mix = &self.phases[phase].0;
        let total: f64 = mix.iter().map(|(_, w)| w).sum();
        let unit = (splitmix64(self.seed ^ splitmix64(self.position.step)) >> 11) as f64
            / (1u64 << 53) as f64;
        let mut target = unit * total;
        let mut pool = mix[mix.len() - 1].0;
        for &(tier, weight) in mix {
            if target < weight {
                pool = tier;
                break;
            }
            target -= weight;
        }
        let example = self.draw(pool)?;
        self.position.step += 1;
        Ok(Some(example))
    }

    fn shuffled(&self, n: usize, parts: &[u64]) -> Vec<usize> {
        let seed = parts
            .iter()
            .fold(self.seed, |acc, &p| splitmix64(acc ^ splitmix64(p)));
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        order
    }

    fn draw(&mut self, pool: Option<Tier>) -> Result<Example, DataError> {
        let pool_id = pool.map_or(0, |t| t as u64 + 1);
        let groups_len = self.pools.get(&pool).map_or(0, Vec::len);
        let name = pool_name(pool).to_string();
        let mut cursor = self
            .position
            .cursors
            .get(&name)
            .copied()
            .unwrap_or_default();
        if cursor.group >= groups_len {
            cursor = PoolCursor {
                epoch: cursor.epoch + 1,
                group: 0,
                row: 0,
            };
        }
        let fresh = !self
            .loaded
            .get(&pool)
            .is_some_and(|l| l.epoch == cursor.epoch && l.group_pos == cursor.group);
        if fresh {
            let group_order = match self.loaded.get(&pool) {
                Some(l) if l.epoch == cursor.epoch => l.group_order.clone(),
                _ => {
                    let mut order = self.shuffled(groups_len, &[pool_id, cursor.epoch]);
                    let groups = &self.pools[&pool];
                    order.iter_mut().for_each(|g| *g = groups[*g]);
                    Arc::new(order)
                }
            };
            let group = group_order[cursor.group];
            let rows = self.split.read_row_group(group)?;
            let row_order = self.shuffled(rows.len(), &[pool_id, cursor.epoch, group as u64]);
            self.loaded.insert(
                pool,
                Loaded {
                    epoch: cursor.epoch,
                    group_pos: cursor.group,
                    group_order,
                    rows,
                    row_order,
                },
            );
        }
        let loaded = &self.loaded[&pool];
        let example = loaded.rows[loaded.row_order[cursor.row]].clone();
        cursor.row += 1;
        if cursor.row >= loaded.rows.len() {
            cursor.group += 1;
            cursor.row = 0;
        }
        self.position.cursors.insert(name, cursor);
        Ok(example)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use crate::loader::ProcessedDataset;
    use crate::prepare::{prepare, PrepareOptions};
    use crate::reader::Format;

    /// A processed dataset of `n` records over one one-table database, all
    /// in train: SynSQL records whose tiers cycle through `tiers`, or
    /// Spider records (which have none) when `tiers` is empty.
    pub(crate) fn dataset(dir: &std::path::Path, n: usize, tiers: &[&str]) -> ProcessedDataset {
        let records: Vec<String> = (0..n)
            .map(|i| {
                if tiers.is_empty() {
                    serde_json::json!({"db_id": "shop", "question": format!("q{i}"),
                        "query": format!("SELECT {i}")})
                } else {
                    serde_json::json!({"db_id": "shop", "sql_complexity": tiers[i % tiers.len()],
                        "question_style": "Vague", "question": format!("q{i}"),
                        "external_knowledge": "", "sql": format!("SELECT {i}")})
                }
                .to_string()
            })
            .collect();
        let data = dir.join("data.json");
        std::fs::write(&data, format!("[{}]", records.join(","))).unwrap();
        let tables = dir.join("tables.json");
        std::fs::write(
            &tables,
            r#"[{"db_id":"shop","table_names_original":["t"],"table_names":["t"],
               "column_names_original":[[-1,"*"],[0,"a"]],"column_names":[[-1,"*"],[0,"a"]],
               "column_types":["text","number"],"primary_keys":[],"foreign_keys":[]}]"#,
        )
        .unwrap();
        let out = dir.join("out");
        let mut options = PrepareOptions::new(&data, &tables, &out);
        options.val_ratio = Some(0.0);
        if tiers.is_empty() {
            options.format = Format::Spider;
        }
        prepare(&options, &|_| {}).unwrap();
        ProcessedDataset::open(&out).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::loader::ProcessedDataset;
    use crate::prepare::Split;

    const TIERS: [&str; 4] = ["simple", "Moderate", "COMPLEX", "Highly Complex"];

    /// A processed dataset of `per_tier` Simple, Moderate, Complex and
    /// Highly Complex records each, all in train.
    fn dataset(dir: &std::path::Path, per_tier: usize) -> ProcessedDataset {
        test_support::dataset(dir, per_tier * 4, &TIERS)
    }

    fn curriculum() -> Vec<Phase> {
        vec![
            Phase::tiers(&[Tier::Simple], Some(100)),
            Phase::tiers(&[Tier::Simple, Tier::Moderate], Some(200)),
            Phase::mix(
                &[(Tier::Complex, 3.0), (Tier::HighlyComplex, 1.0)],
                Some(400),
            ),
            Phase::all(Some(300)),
        ]
    }

    fn draw(sampler: &mut CurriculumSampler, n: usize) -> Vec<Example> {
        (0..n)
            .map(|_| sampler.next_example().unwrap().unwrap())
            .collect()
    }

    #[test]
    fn phases_serve_their_tiers_in_order_and_end() {
        let dir = tempfile::tempdir().unwrap();
        let data = dataset(dir.path(), 5000);
        let train = data.split(Split::Train).clone();
        assert!(train.row_group_count() >= 8, "several row groups per tier");
        let mut sampler = CurriculumSampler::new(train, curriculum(), 1).unwrap();
        let tiers = |xs: &[Example]| xs.iter().map(|e| e.tier.unwrap()).collect::<HashSet<_>>();
        let first = draw(&mut sampler, 100);
        assert_eq!(tiers(&first), HashSet::from([Tier::Simple]));
        assert_eq!(sampler.phase(), Some(1));
        let second = draw(&mut sampler, 200);
        assert_eq!(
            tiers(&second),
            HashSet::from([Tier::Simple, Tier::Moderate])
        );
        let third = draw(&mut sampler, 400);
        let complex = third
            .iter()
            .filter(|e| e.tier == Some(Tier::Complex))
            .count();
        assert!(
            (240..360).contains(&complex),
            "3:1 mix gave {complex} of 400"
        );
        assert_eq!(
            tiers(&third),
            HashSet::from([Tier::Complex, Tier::HighlyComplex])
        );
        let fourth = draw(&mut sampler, 300);
        assert_eq!(tiers(&fourth).len(), 4);
        assert_eq!(sampler.next_example().unwrap(), None);
        assert_eq!(sampler.phase(), None);
    }

    #[test]
    fn a_tier_is_drawn_without_repeats_within_an_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let data = dataset(dir.path(), 5000);
        let phases = vec![Phase::tiers(&[Tier::Moderate], None)];
        let mut sampler =
            CurriculumSampler::new(data.split(Split::Train).clone(), phases, 9).unwrap();
        let epoch = draw(&mut sampler, 5000);
        let ids: HashSet<u64> = epoch.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 5000, "each Moderate row exactly once");
        let in_order = epoch.windows(2).filter(|w| w[0].id < w[1].id).count();
        assert!(
            in_order < 3500,
            "rows are shuffled ({in_order} ascending pairs)"
        );
        assert_eq!(sampler.position().cursors["Moderate"].epoch, 0);
        draw(&mut sampler, 1);
        assert_eq!(sampler.position().cursors["Moderate"].epoch, 1);
    }

    #[test]
    fn same_seed_same_stream_and_a_saved_position_resumes_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dataset(dir.path(), 1500);
        let train = data.split(Split::Train).clone();
        let mut a = CurriculumSampler::new(train.clone(), curriculum(), 5).unwrap();
        let whole = draw(&mut a, 1000);

        let mut b = CurriculumSampler::new(train.clone(), curriculum(), 5).unwrap();
        let head = draw(&mut b, 250);
        let saved = serde_json::to_string(b.position()).unwrap();
        let position: SamplerPosition = serde_json::from_str(&saved).unwrap();
        let mut resumed = CurriculumSampler::new(train.clone(), curriculum(), 5)
            .unwrap()
            .with_position(position);
        let tail = draw(&mut resumed, 750);
        let ids = |xs: &[Example]| xs.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(&whole[..250]), ids(&head));
        assert_eq!(ids(&whole[250..]), ids(&tail));

        let mut other = CurriculumSampler::new(train, curriculum(), 6).unwrap();
        assert_ne!(ids(&draw(&mut other, 100)), ids(&whole[..100]));
    }

    #[test]
    fn impossible_curricula_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dataset(dir.path(), 10);
        let val = data.split(Split::Val).clone();
        assert!(val.is_empty());
        let err = CurriculumSampler::new(val, vec![Phase::tiers(&[Tier::Simple], None)], 1)
            .err()
            .unwrap();
        assert!(err.to_string().contains("no Simple rows"), "{err}");
        let train = data.split(Split::Train).clone();
        let forever_first = vec![Phase::all(None), Phase::all(Some(5))];
        assert!(CurriculumSampler::new(train.clone(), forever_first, 1).is_err());
        let zero = vec![Phase::mix(&[(Tier::Simple, 0.0)], Some(5))];
        assert!(CurriculumSampler::new(train, zero, 1).is_err());
    }
}
