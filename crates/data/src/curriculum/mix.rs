//! Mixing several prepared datasets ("sources") into one stream, as OmniSQL
//! trains on SynSQL plus Spider and BIRD: each draw first picks a source by
//! weight, then takes that source's next example from its own
//! [`CurriculumSampler`].
//!
//! The source of draw `n` is a pure function of the seed and `n`, and each
//! source's sampler is resumable on its own, so a [`MixPosition`] (the draw
//! counter and every source's position) resumes the whole stream exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CurriculumSampler, SamplerPosition};
use crate::error::DataError;
use crate::splitmix::splitmix64;
use crate::store::Example;

/// One source of a mix: a name (unique in the mix), its weight (any scale)
/// and the sampler that draws its examples.
pub struct MixSource {
    pub name: String,
    pub weight: f64,
    pub sampler: CurriculumSampler,
}

/// Where a mix stands: draws so far and each source's sampler position, by
/// source name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MixPosition {
    pub draws: u64,
    pub sources: BTreeMap<String, SamplerPosition>,
}

/// Draws from several sources by weight.
pub struct MixedSampler {
    sources: Vec<MixSource>,
    seed: u64,
    draws: u64,
}

impl MixedSampler {
    /// A mix of `sources`; those of weight 0 are never drawn. At least one
    /// needs a positive weight, and names must be distinct.
    pub fn new(sources: Vec<MixSource>, seed: u64) -> Result<Self, DataError> {
        for (i, source) in sources.iter().enumerate() {
            if !(source.weight.is_finite() && source.weight >= 0.0) {
                return Err(DataError::Invalid(format!(
                    "source `{}`: weight {} is not a non-negative number",
                    source.name, source.weight
                )));
            }
            if sources[..i].iter().any(|s| s.name == source.name) {
                return Err(DataError::Invalid(format!(
                    "two sources are named `{}`",
                    source.name
                )));
            }
        }
        if !sources.iter().any(|s| s.weight > 0.0) {
            return Err(DataError::Invalid(
                "a mix needs a source with a positive weight".into(),
            ));
        }
        Ok(Self {
            sources,
            seed,
            draws: 0,
        })
    }

    /// Continues from a position saved with [`Self::position`]; a source
    /// the position does not name starts from its beginning.
    pub fn with_position(mut self, position: MixPosition) -> Self {
        self.draws = position.draws;
        let mut saved = position.sources;
        self.sources = self
            .sources
            .into_iter()
            .map(|mut s| {
                let at = saved.remove(&s.name).unwrap_or_default();
                s.sampler = s.sampler.with_position(at);
                s
            })
            .collect();
        self
    }

    pub fn position(&self) -> MixPosition {
        MixPosition {
            draws: self.draws,
            sources: self
                .sources
                .iter()
                .map(|s| (s.name.clone(), s.sampler.position().clone()))
                .collect(),
        }
    }

    /// Names of the sources, in the order [`Self::next_example`] indexes them.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().map(|s| s.name.as_str())
    }

    /// The source (index) of draw `draw`: a pure function of the seed and
    /// the draw number.
    fn source_of(&self, draw: u64) -> usize {
        let total: f64 = self.sources.iter().map(|s| s.weight).sum();
        let unit = (splitmix64(self.seed ^ splitmix64(draw)) >> 11) as f64 / (1u64 << 53) as f64;
        let mut target = unit * total;
        let mut chosen = None;
        for (i, source) in self.sources.iter().enumerate() {
            if source.weight <= 0.0 {
                continue;
            }
            chosen = Some(i);
            if target < source.weight {
                break;
            }
            target -= source.weight;
        }
        // `new` guarantees a positive weight; rounding may overshoot the
        // last one, which then takes the draw.
        chosen.unwrap_or(0)
    }

    /// The next example and the index of its source, or `None` when the
    /// chosen source's curriculum is over.
    pub fn next_example(&mut self) -> Result<Option<(usize, Example)>, DataError> {
        let source = self.source_of(self.draws);
        let Some(example) = self.sources[source].sampler.next_example()? else {
            return Ok(None);
        };
        self.draws += 1;
        Ok(Some((source, example)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curriculum::Phase;
    use crate::loader::ProcessedDataset;
    use crate::prepare::Split;
    use crate::reader::Tier;

    /// A processed dataset of `n` records over one database; SynSQL records
    /// cycle through the tiers, Spider records have none.
    fn dataset(dir: &std::path::Path, n: usize, spider: bool) -> ProcessedDataset {
        let tiers: &[&str] = if spider {
            &[]
        } else {
            &["Simple", "Moderate", "Complex", "Highly Complex"]
        };
        crate::curriculum::test_support::dataset(dir, n, tiers)
    }

    fn mix(
        tiered: &ProcessedDataset,
        spider: &ProcessedDataset,
        phase: Phase,
        weights: [f64; 2],
        seed: u64,
    ) -> MixedSampler {
        let source = |name: &str, data: &ProcessedDataset, phase: Phase, weight: f64| MixSource {
            name: name.into(),
            weight,
            sampler: CurriculumSampler::new(data.split(Split::Train).clone(), vec![phase], seed)
                .unwrap(),
        };
        MixedSampler::new(
            vec![
                source("synsql", tiered, phase, weights[0]),
                source("spider", spider, Phase::all(None), weights[1]),
            ],
            seed,
        )
        .unwrap()
    }

    fn draw(sampler: &mut MixedSampler, n: usize) -> Vec<(usize, Example)> {
        (0..n)
            .map(|_| sampler.next_example().unwrap().unwrap())
            .collect()
    }

    #[test]
    fn sources_are_drawn_in_their_weight_ratio_and_a_tier_phase_keeps_the_tierless_one() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let tiered = dataset(&a, 2000, false);
        let spider = dataset(&b, 500, true);
        assert_eq!(spider.split(Split::Train).tier_len(None), 500);
        let simple_only = Phase::tiers(&[Tier::Simple], None);
        let mut sampler = mix(&tiered, &spider, simple_only, [3.0, 1.0], 7);
        let drawn = draw(&mut sampler, 4000);
        let from_spider = drawn.iter().filter(|(s, _)| *s == 1).count();
        assert!(
            (900..1100).contains(&from_spider),
            "1:3 mix gave {from_spider} of 4000 from spider"
        );
        for (source, example) in &drawn {
            match source {
                0 => assert_eq!(example.tier, Some(Tier::Simple)),
                _ => assert_eq!(example.tier, None),
            }
        }
        // The tierless source is drawn whole: every one of its 500 rows.
        let ids: std::collections::HashSet<u64> = drawn
            .iter()
            .filter(|(s, _)| *s == 1)
            .map(|(_, e)| e.id)
            .collect();
        assert_eq!(ids.len(), 500);

        let mut off = mix(&tiered, &spider, Phase::all(None), [1.0, 0.0], 7);
        assert!(draw(&mut off, 300).iter().all(|(s, _)| *s == 0));
    }

    #[test]
    fn a_saved_mix_position_resumes_the_same_stream() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let tiered = dataset(&a, 400, false);
        let spider = dataset(&b, 100, true);
        let key = |xs: &[(usize, Example)]| xs.iter().map(|(s, e)| (*s, e.id)).collect::<Vec<_>>();
        let mut whole = mix(&tiered, &spider, Phase::all(None), [1.0, 1.0], 3);
        let all = draw(&mut whole, 900);
        let mut first = mix(&tiered, &spider, Phase::all(None), [1.0, 1.0], 3);
        let head = draw(&mut first, 333);
        let saved: MixPosition =
            serde_json::from_str(&serde_json::to_string(&first.position()).unwrap()).unwrap();
        assert_eq!(saved.sources.len(), 2, "the position covers every source");
        let mut resumed =
            mix(&tiered, &spider, Phase::all(None), [1.0, 1.0], 3).with_position(saved);
        let tail = draw(&mut resumed, 567);
        assert_eq!(key(&all[..333]), key(&head));
        assert_eq!(key(&all[333..]), key(&tail));
    }

    #[test]
    fn a_mix_without_weight_or_with_twin_names_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dataset(dir.path(), 20, false);
        let source = |name: &str, weight: f64| MixSource {
            name: name.into(),
            weight,
            sampler: CurriculumSampler::new(
                data.split(Split::Train).clone(),
                vec![Phase::all(None)],
                1,
            )
            .unwrap(),
        };
        let err = MixedSampler::new(vec![source("a", 0.0)], 1).err().unwrap();
        assert!(err.to_string().contains("positive weight"), "{err}");
        let err = MixedSampler::new(vec![source("a", 1.0), source("a", 1.0)], 1)
            .err()
            .unwrap();
        assert!(err.to_string().contains("named `a`"), "{err}");
    }
}
