//! The data stream of a run: examples drawn through the curriculum from
//! every source, in windows packed into token-budget batches.
//!
//! Several prepared datasets (`data.sources`) are mixed by weight: each has
//! its own token cache and schemas (so equal `db_id`s of two sources never
//! meet), and each draw picks a source, then that source's next example
//! ([`MixedSampler`]). A source without tiers (Spider) is drawn whole in
//! every curriculum phase; a tiered one follows the phase's tier mix.
//!
//! Exact resume: every random choice is a function of the seed and a
//! counter. Each config phase has its own [`MixedSampler`] (one
//! [`CurriculumSampler`] per source); examples are drawn in windows of
//! [`WINDOW_EXAMPLES`] and packed with a generator seeded by the window's
//! number, and the checkpoint records the mix's position at the window's
//! start plus the batches already consumed, so a resumed run redraws the
//! same window and skips to the same batch.

use std::collections::HashMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use text2sql_data::curriculum::{
    CurriculumSampler, MixPosition, MixSource, MixedSampler, Phase, SamplerPosition,
};
use text2sql_data::loader::ProcessedDataset;
use text2sql_data::prepare::Split;
use text2sql_data::schema::DatabaseSchema;
use text2sql_model::tokenizer::Tokenizer;
use text2sql_model::InputFormat;

use super::seeds::{self, mix_seed};
use super::Trainer;
use crate::batch::{pack_window, ExampleLen};
use crate::config::{DataSource, Tier, TrainConfig};
use crate::encode::{Encoded, ExampleEncoder};
use crate::error::{Result, TrainError};
use crate::token_cache::{CacheEvent, TokenCache, TokenCacheOptions};

/// Examples drawn and length-bucketed together.
pub const WINDOW_EXAMPLES: usize = 256;

/// Where the data stream stands, saved in [`TrainState::data_position`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataPosition {
    /// Config phase the current window belongs to.
    pub phase: usize,
    /// Window number since the start of training (seeds its packing).
    pub window: u64,
    /// The first source's sampler position when the current window was
    /// drawn: the whole position of a one-source run (the format from
    /// before sources could be mixed, so its checkpoints resume).
    pub window_start: SamplerPosition,
    /// Runs on several sources: the mix's position when the current window
    /// was drawn (the draw counter and every source's sampler position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix_start: Option<MixPosition>,
    /// Batches of the current window already trained on.
    pub batches_done: usize,
}

impl DataPosition {
    /// The mix's position at the window's start; a one-source position
    /// (`mix_start` absent) is the first source's.
    pub(super) fn mix_position(&self, first_source: &str) -> MixPosition {
        self.mix_start.clone().unwrap_or_else(|| MixPosition {
            draws: self.window_start.step,
            sources: [(first_source.to_string(), self.window_start.clone())].into(),
        })
    }
}

/// One prepared dataset of the run with its schemas and token cache.
pub(super) struct SourceData {
    pub(super) source: DataSource,
    pub(super) dataset: ProcessedDataset,
    pub(super) schemas: HashMap<String, DatabaseSchema>,
    pub(super) token_cache: TokenCache,
    /// Some train row has a tier: phases' tier mixes apply to it.
    tiered: bool,
    /// The first `eval.val_sample_size` validation examples.
    pub(super) val: Vec<Encoded>,
}

impl SourceData {
    /// Opens `source` for a run that reads inputs as `input_format` with
    /// `tokenizer`: its dataset and schemas, its token cache (reused, or
    /// built reporting to `on_cache`) and its first `val_sample_size`
    /// validation examples.
    pub(super) fn open(
        source: DataSource,
        tokenizer: &Tokenizer,
        tokenizer_files: &[std::path::PathBuf],
        input_format: &InputFormat,
        val_sample_size: usize,
        cache_options: &TokenCacheOptions,
        on_cache: &mut dyn FnMut(CacheEvent<'_>),
    ) -> Result<SourceData> {
        let dataset = ProcessedDataset::open(&source.processed_dir)?;
        let schemas: HashMap<String, DatabaseSchema> = dataset
            .schemas()?
            .into_iter()
            .map(|(id, row)| (id, row.schema))
            .collect();
        for schema in schemas.values() {
            input_format.check_value_index(schema, &dataset.dir().display().to_string())?;
        }
        let token_cache = TokenCache::open_or_build(
            &dataset,
            &ExampleEncoder::new(tokenizer, input_format, &schemas, dataset.dir()),
            tokenizer_files,
            cache_options,
            on_cache,
        )?;
        let train = dataset.split(Split::Train);
        let tiered = train.tier_len(None) < train.len();
        let val = load_val(&token_cache, val_sample_size)?;
        Ok(SourceData {
            source,
            dataset,
            schemas,
            token_cache,
            tiered,
            val,
        })
    }
}

/// A micro-batch and the source (index) of each of its examples.
pub(super) struct QueuedBatch {
    pub(super) examples: Vec<Encoded>,
    pub(super) sources: Vec<usize>,
}

impl Trainer {
    /// The sampler of config phase `phase`: every source of positive
    /// weight in it, a tiered one with the phase's tier mix and a tierless
    /// one whole; and the source index of each member. The first source's
    /// stream is seeded as a one-source run's always was.
    pub(super) fn phase_sampler(
        config: &TrainConfig,
        sources: &[SourceData],
        phase: usize,
    ) -> Result<(MixedSampler, Vec<usize>)> {
        let phase_config = config.curriculum.phases.get(phase);
        let mix: Vec<(Tier, f64)> = phase_config
            .map(|p| p.normalized_weights())
            .unwrap_or_default();
        let seed = mix_seed(config.training.seed, &[seeds::CURRICULUM, phase_seed(&mix)]);
        let (mut members, mut indices) = (Vec::new(), Vec::new());
        for (i, data) in sources.iter().enumerate() {
            let source = &data.source;
            let weight = phase_config
                .and_then(|p| p.sources.get(&source.name))
                .copied()
                .unwrap_or(source.weight);
            if weight <= 0.0 {
                continue;
            }
            let draws = if mix.is_empty() || !data.tiered {
                Phase::all(None)
            } else {
                Phase::mix(&mix, None)
            };
            let source_seed = if i == 0 {
                seed
            } else {
                mix_seed(seed, &[seeds::SOURCE, i as u64])
            };
            let split = data.dataset.split(Split::Train).clone();
            let sampler = CurriculumSampler::new(split, vec![draws], source_seed).map_err(|e| {
                TrainError::Dataset(format!(
                    "source `{}` ({}), curriculum phase {}: {e}",
                    source.name,
                    data.dataset.dir().display(),
                    phase + 1
                ))
            })?;
            members.push(MixSource {
                name: source.name.clone(),
                weight,
                sampler,
            });
            indices.push(i);
        }
        let sampler = MixedSampler::new(
            members,
            mix_seed(config.training.seed, &[seeds::MIX, phase as u64]),
        )?;
        Ok((sampler, indices))
    }

    /// The cached ids of a train example of source `source` drawn by the
    /// sampler.
    fn cached_train(&self, source: usize, id: u64) -> Result<Encoded> {
        let cache = &self.sources[source].token_cache;
        let cached = cache.split(Split::Train).by_id(id);
        cached.map(|c| c.to_encoded()).ok_or_else(|| {
            TrainError::Dataset(format!(
                "train example {id} is not in the token cache {}",
                cache.dir().display()
            ))
        })
    }

    /// Draws the next window of examples from the phase of the current step
    /// and packs it into batches.
    /// With `next_phase`, a window drawn after a phase boundary comes from
    /// the new phase; without it (on resume) the saved phase is redrawn.
    fn fill_window(&mut self, next_phase: bool) -> Result<()> {
        let (current, _) = self.config.curriculum.phase_at(self.state.step);
        let phase = if next_phase {
            current
        } else {
            self.position.phase
        };
        if phase != self.position.phase {
            self.position.phase = phase;
            (self.sampler, self.mix_members) =
                Self::phase_sampler(&self.config, &self.sources, phase)?;
        }
        let start = self.sampler.position();
        let first = &self.sources[0].source.name;
        self.position.window_start = start.sources.get(first).cloned().unwrap_or_default();
        self.position.mix_start = (self.sources.len() > 1).then_some(start);
        let mut encoded = Vec::with_capacity(WINDOW_EXAMPLES);
        let mut origins = Vec::with_capacity(WINDOW_EXAMPLES);
        while encoded.len() < WINDOW_EXAMPLES {
            match self.sampler.next_example()? {
                Some((member, example)) => {
                    let source = self.mix_members[member];
                    encoded.push(self.cached_train(source, example.id)?);
                    origins.push(source);
                }
                None => break,
            }
        }
        if encoded.is_empty() {
            return Err(TrainError::Dataset(format!(
                "no train example for curriculum phase {}",
                phase + 1
            )));
        }
        let lens: Vec<ExampleLen> = encoded
            .iter()
            .map(|e| ExampleLen {
                source: e.source.len(),
                target: e.target.len(),
            })
            .collect();
        let all: Vec<usize> = (0..encoded.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(
            self.config.training.seed,
            &[seeds::PACKING, self.position.window],
        ));
        let batches = pack_window(&lens, &all, self.config.batch.max_tokens, &mut rng)?;
        // Each example lands in exactly one batch: move it there.
        let mut encoded: Vec<Option<Encoded>> = encoded.into_iter().map(Some).collect();
        self.queue = batches
            .into_iter()
            .map(|b| QueuedBatch {
                examples: b
                    .indices
                    .iter()
                    .filter_map(|&i| encoded[i].take())
                    .collect(),
                sources: b.indices.iter().map(|&i| origins[i]).collect(),
            })
            .collect();
        self.position.batches_done = 0;
        Ok(())
    }

    pub(super) fn next_batch(&mut self) -> Result<QueuedBatch> {
        if self.queue.is_empty() {
            self.position.window += 1;
            self.fill_window(true)?;
        }
        let batch = self
            .queue
            .pop_front()
            .ok_or_else(|| TrainError::Batch("a window produced no batch".into()))?;
        self.position.batches_done += 1;
        Ok(batch)
    }

    /// On resume: redraws the interrupted window and skips the batches
    /// already trained on.
    pub(super) fn redraw_window(&mut self) -> Result<()> {
        let done = self.position.batches_done;
        self.fill_window(false)?;
        for _ in 0..done {
            self.queue.pop_front();
        }
        self.position.batches_done = done;
        Ok(())
    }
}

/// The first `want` validation examples of a source, in file order.
fn load_val(cache: &TokenCache, want: usize) -> Result<Vec<Encoded>> {
    let val = cache.split(Split::Val);
    (0..val.len().min(want as u64))
        .map(|row| {
            val.get(row).map(|c| c.to_encoded()).ok_or_else(|| {
                TrainError::Dataset(format!(
                    "validation row {row} is not in the token cache {}",
                    cache.dir().display()
                ))
            })
        })
        .collect()
}

/// A stable number for a phase's tier mix, so each phase samples its own
/// stream.
fn phase_seed(mix: &[(Tier, f64)]) -> u64 {
    mix.iter()
        .fold(0u64, |acc, (t, w)| mix_seed(acc, &[*t as u64, w.to_bits()]))
}
