//! The training loop: data from a prepared dataset through the curriculum,
//! token-budget batches, accumulation, schedule, checkpoints and resume,
//! validation loss and the best checkpoint.
//!
//! Exact resume: every random choice is a function of the seed and a
//! counter. Each config phase has its own [`CurriculumSampler`]; examples are
//! drawn in windows of [`WINDOW_EXAMPLES`] and packed with a generator seeded
//! by the window's number, and the checkpoint records the sampler position at
//! the window's start plus the batches already consumed, so a resumed run
//! redraws the same window and skips to the same batch. Dropout is reseeded
//! from the step for each micro-batch.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use text2sql_data::loader::{ProcessedDataset, SplitReader};
use text2sql_data::prepare::Split;
use text2sql_data::sampler::{CurriculumSampler, Phase, SamplerPosition};
use text2sql_data::schema::DatabaseSchema;
use text2sql_data::serialize::CompactOptions;
use text2sql_data::store::Example;
use text2sql_model::tokenizer::Tokenizer;
use text2sql_model::{loss, shift_right, InputFormat, T5Config, T5Model};

use crate::batch::{pack_window, pad_batch, ExampleLen};
use crate::checkpoint::{
    latest_checkpoint, rotate_checkpoints, save_checkpoint, TrainState, OPTIMIZER_FILE,
};
use crate::config::{Tier, TrainConfig};
use crate::error::{Result, TrainError};
use crate::guard::{check_finite, Quantity};
use crate::metrics::{EventKind, MetricsEvent, MetricsLog};
use crate::optim::{Optimizer, OptimizerSettings};
use crate::plot::render_plots;
use crate::schedule::LrSchedule;

/// Examples drawn and length-bucketed together.
pub const WINDOW_EXAMPLES: usize = 256;

/// Folder of the best checkpoint inside the run directory.
pub const BEST_DIR: &str = "best";

/// Where the data stream stands, saved in [`TrainState::data_position`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataPosition {
    /// Config phase the current window belongs to.
    pub phase: usize,
    /// Window number since the start of training (seeds its packing).
    pub window: u64,
    /// The phase sampler's position when the current window was drawn.
    pub window_start: SamplerPosition,
    /// Batches of the current window already trained on.
    pub batches_done: usize,
}

/// One tokenized training example.
#[derive(Debug, Clone)]
struct Encoded {
    source: Vec<u32>,
    target: Vec<u32>,
}

/// What the loop reports after each optimizer step.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub step: u64,
    pub max_steps: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
    pub val_loss: Option<f64>,
}

/// The end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub steps: u64,
    pub final_loss: Option<f64>,
    pub best_val_loss: Option<f64>,
    pub best_step: Option<u64>,
    pub best_dir: Option<PathBuf>,
    pub last_checkpoint: Option<PathBuf>,
    pub stopped_early: bool,
    pub tokens_seen: u64,
}

pub struct Trainer {
    config: TrainConfig,
    run_dir: PathBuf,
    device: Device,
    model: T5Model,
    optimizer: Optimizer,
    tokenizer: Tokenizer,
    tokenizer_files: Vec<PathBuf>,
    input_format: InputFormat,
    dataset: ProcessedDataset,
    schemas: HashMap<String, DatabaseSchema>,
    state: TrainState,
    position: DataPosition,
    sampler: CurriculumSampler,
    queue: VecDeque<Vec<Encoded>>,
    val: Vec<Encoded>,
    metrics: MetricsLog,
    events: Vec<MetricsEvent>,
}

/// The input contract saved into every checkpoint.
pub fn input_format(config: &TrainConfig) -> InputFormat {
    InputFormat {
        max_source_tokens: config.data.max_source_tokens,
        max_target_tokens: config.data.max_target_tokens,
        schema: CompactOptions::default(),
        external_knowledge: config.data.schema.external_knowledge,
    }
}

/// Files of a tokenizer folder that a checkpoint carries.
fn tokenizer_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| TrainError::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_file()
            && (name.starts_with("tokenizer")
                || name == "spiece.model"
                || name == "special_tokens_map.json")
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The model's trainable variables by name.
fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
    let mut vars: Vec<(String, Var)> = data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Redraws every randomly initialised variable from a generator seeded by
/// `seed` with the spread candle's initialiser gave it: candle's CPU random
/// source cannot be seeded, and identical runs need identical starts.
/// Constant tensors (layer-norm weights) are left as they are.
fn reseed_init(vars: &[(String, Var)], seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (_, var) in vars {
        let t = var.as_tensor().to_dtype(DType::F32)?.flatten_all()?;
        let values = t.to_vec1::<f32>()?;
        let n = values.len().max(1) as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var_ = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        if var_ == 0.0 {
            continue;
        }
        let std = var_.sqrt();
        // Box-Muller: rand 0.9 without rand_distr has no normal sampler.
        let fresh: Vec<f32> = (0..values.len())
            .map(|_| {
                let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                let u2: f64 = rng.random::<f64>();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (mean + std * z) as f32
            })
            .collect();
        let fresh = Tensor::from_vec(fresh, var.shape(), var.device())?.to_dtype(var.dtype())?;
        var.set(&fresh)?;
    }
    Ok(())
}

fn mix_seed(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(seed, |acc, &p| {
        let mut z = acc ^ p.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

impl Trainer {
    /// Prepares a run: a fresh model (from `model.init_from` or the
    /// architecture) or, with `resume`, the latest checkpoint of the run.
    pub fn new(config: TrainConfig, device: Device, resume: bool) -> Result<Trainer> {
        let run_dir = config.run.run_dir();
        let dtype = config.training.resolved_dtype();
        let latest = if resume {
            let latest = latest_checkpoint(&run_dir)?;
            if latest.is_none() {
                return Err(TrainError::Checkpoint {
                    path: run_dir.clone(),
                    message: "--resume: no checkpoint to resume from".into(),
                });
            }
            latest
        } else {
            if latest_checkpoint(&run_dir)?.is_some() {
                return Err(TrainError::Checkpoint {
                    path: run_dir.clone(),
                    message: "the run already has checkpoints; pass --resume to continue it \
                              or choose another run.name"
                        .into(),
                });
            }
            None
        };

        let tokenizer_dir = config
            .model
            .tokenizer
            .clone()
            .or_else(|| config.model.init_from.clone())
            .ok_or_else(|| TrainError::Config {
                path: run_dir.clone(),
                message: "model.tokenizer (or model.init_from) is required".into(),
            })?;
        let tokenizer = Tokenizer::from_dir(&tokenizer_dir)?;
        let tokenizer_files = tokenizer_files(&tokenizer_dir)?;

        let (model, varmap) = if let Some(ckpt) = &latest {
            T5Model::load_trainable(&ckpt.path, dtype, &device)?
        } else if let Some(init) = &config.model.init_from {
            T5Model::load_trainable(init, dtype, &device)?
        } else {
            let arch = config
                .model
                .architecture
                .as_ref()
                .ok_or_else(|| TrainError::Config {
                    path: run_dir.clone(),
                    message: "model.architecture is required without model.init_from".into(),
                })?;
            let json = serde_json::to_value(arch).map_err(|source| TrainError::Json {
                path: run_dir.clone(),
                source,
            })?;
            let mut t5: T5Config =
                serde_json::from_value(json).map_err(|source| TrainError::Json {
                    path: run_dir.clone(),
                    source,
                })?;
            t5.pad_token_id = Some(tokenizer.pad_id());
            t5.eos_token_id = Some(tokenizer.eos_id());
            t5.decoder_start_token_id = Some(tokenizer.pad_id());
            if tokenizer.vocab_size() > t5.vocab_size {
                return Err(TrainError::Config {
                    path: tokenizer_dir.clone(),
                    message: format!(
                        "the tokenizer has {} tokens, more than model.architecture.vocab_size = {}",
                        tokenizer.vocab_size(),
                        t5.vocab_size
                    ),
                });
            }
            let varmap = VarMap::new();
            let model = T5Model::new(VarBuilder::from_varmap(&varmap, dtype, &device), &t5)?;
            reseed_init(&named_vars(&varmap), config.training.seed)?;
            (model, varmap)
        };
        let mut optimizer = Optimizer::new(
            named_vars(&varmap),
            OptimizerSettings::from_config(&config.optimizer),
        )?;

        let max_steps = config.training.max_steps;
        let (state, position) = match &latest {
            Some(ckpt) => {
                optimizer.load_state(&ckpt.path.join(OPTIMIZER_FILE))?;
                let state = TrainState::load(&ckpt.path)?;
                let position: DataPosition = serde_json::from_value(state.data_position.clone())
                    .map_err(|source| TrainError::Json {
                        path: ckpt.path.clone(),
                        source,
                    })?;
                (state, position)
            }
            None => {
                let schedule = LrSchedule::new(&config.schedule, config.optimizer.lr, max_steps);
                (TrainState::new(schedule), DataPosition::default())
            }
        };

        let dataset = ProcessedDataset::open(&config.data.processed_dir)?;
        let schemas = dataset
            .schemas()?
            .into_iter()
            .map(|(id, row)| (id, row.schema))
            .collect();
        let input_format = input_format(&config);
        let sampler = Self::phase_sampler(&config, dataset.split(Split::Train), position.phase)?
            .with_position(position.window_start.clone());
        let resume_step = latest.as_ref().map(|c| c.step);
        let metrics = MetricsLog::open(&run_dir, resume_step)?;
        config.save_resolved(&run_dir)?;

        let mut trainer = Trainer {
            config,
            run_dir,
            device,
            model,
            optimizer,
            tokenizer,
            tokenizer_files,
            input_format,
            dataset,
            schemas,
            state,
            position,
            sampler,
            queue: VecDeque::new(),
            val: Vec::new(),
            metrics,
            events: Vec::new(),
        };
        trainer.val = trainer.load_val()?;
        if latest.is_some() {
            // Redraw the interrupted window and skip what was trained on.
            let done = trainer.position.batches_done;
            trainer.fill_window(false)?;
            for _ in 0..done {
                trainer.queue.pop_front();
            }
            trainer.position.batches_done = done;
        }
        Ok(trainer)
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn step(&self) -> u64 {
        self.state.step
    }

    pub fn num_parameters(&self) -> usize {
        self.optimizer.num_parameters()
    }

    fn phase_sampler(
        config: &TrainConfig,
        split: &SplitReader,
        phase: usize,
    ) -> Result<CurriculumSampler> {
        let phases = &config.curriculum.phases;
        let mix: Vec<(Tier, f64)> = phases
            .get(phase)
            .map(|p| p.normalized_weights())
            .unwrap_or_default();
        let phase = if mix.is_empty() {
            Phase::all(None)
        } else {
            Phase::mix(&mix, None)
        };
        Ok(CurriculumSampler::new(
            split.clone(),
            vec![phase],
            mix_seed(config.training.seed, &[1, phase_seed(&mix)]),
        )?)
    }

    fn encode(&self, example: &Example) -> Result<Encoded> {
        let schema = self.schemas.get(&example.db_id).ok_or_else(|| {
            TrainError::Dataset(format!(
                "example {} names database `{}`, which is not in {}",
                example.id,
                example.db_id,
                self.dataset.dir().display()
            ))
        })?;
        let text = self.input_format.source_text(
            &example.question,
            &example.external_knowledge,
            schema,
            Some(&example.sql),
            &self.tokenizer,
        );
        let mut source = self.tokenizer.encode(&text.text, true)?;
        truncate_keeping_eos(&mut source, self.config.data.max_source_tokens);
        let mut target = self.tokenizer.encode(&example.sql, true)?;
        truncate_keeping_eos(&mut target, self.config.data.max_target_tokens);
        Ok(Encoded { source, target })
    }

    fn load_val(&self) -> Result<Vec<Encoded>> {
        let want = self.config.eval.val_sample_size;
        let split = self.dataset.split(Split::Val);
        let mut out = Vec::new();
        for example in split.iter().take(want) {
            out.push(self.encode(&example?)?);
        }
        Ok(out)
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
            self.sampler =
                Self::phase_sampler(&self.config, self.dataset.split(Split::Train), phase)?;
        }
        self.position.window_start = self.sampler.position().clone();
        let mut encoded = Vec::with_capacity(WINDOW_EXAMPLES);
        while encoded.len() < WINDOW_EXAMPLES {
            match self.sampler.next_example()? {
                Some(example) => encoded.push(self.encode(&example)?),
                None => break,
            }
        }
        if encoded.is_empty() {
            return Err(TrainError::Dataset(format!(
                "the train split of {} has no example for phase {}",
                self.dataset.dir().display(),
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
            &[2, self.position.window],
        ));
        let batches = pack_window(&lens, &all, self.config.batch.max_tokens, &mut rng)?;
        self.queue = batches
            .into_iter()
            .map(|b| b.indices.iter().map(|&i| encoded[i].clone()).collect())
            .collect();
        self.position.batches_done = 0;
        Ok(())
    }

    fn next_batch(&mut self) -> Result<Vec<Encoded>> {
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

    /// Teacher-forced loss of `batch` and its number of real tokens.
    fn batch_loss(&self, batch: &[Encoded], train: bool) -> Result<(Tensor, usize)> {
        let cfg = self.model.config();
        let sources: Vec<Vec<u32>> = batch.iter().map(|e| e.source.clone()).collect();
        let (input_ids, mask) = pad_batch(&sources, cfg.pad_token(), &self.device)?;
        let longest = batch.iter().map(|e| e.target.len()).max().unwrap_or(0);
        let labels: Vec<Vec<i64>> = batch
            .iter()
            .map(|e| {
                let mut row: Vec<i64> = e.target.iter().map(|&t| i64::from(t)).collect();
                row.resize(longest, -100);
                row
            })
            .collect();
        let decoder_inputs = shift_right(&labels, cfg.decoder_start_token(), cfg.pad_token());
        let (decoder_ids, _) = pad_batch(&decoder_inputs, cfg.pad_token(), &self.device)?;
        let flat: Vec<i64> = labels.concat();
        let labels = Tensor::from_vec(flat, (batch.len(), longest), &self.device)?;
        let logits =
            self.model
                .forward_train(&input_ids, Some(&mask), &decoder_ids, None, train)?;
        let tokens = batch.iter().map(|e| e.source.len() + e.target.len()).sum();
        Ok((loss(&logits, &labels)?, tokens))
    }

    /// Mean validation loss over the fixed validation sample.
    pub fn validation_loss(&self) -> Result<Option<f64>> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let (mut sum, mut count) = (0f64, 0usize);
        for chunk in self.val.chunks(16) {
            let (l, _) = self.batch_loss(chunk, false)?;
            sum += f64::from(l.to_dtype(DType::F32)?.to_scalar::<f32>()?) * chunk.len() as f64;
            count += chunk.len();
        }
        Ok(Some(check_finite(
            Quantity::ValLoss,
            sum / count as f64,
            self.state.step,
        )?))
    }

    fn write_model(&self, dir: &Path) -> Result<()> {
        self.model.save_pretrained(dir, &self.tokenizer_files)?;
        self.input_format.save(dir)?;
        Ok(())
    }

    fn save(&mut self) -> Result<PathBuf> {
        self.state.data_position =
            serde_json::to_value(&self.position).map_err(|source| TrainError::Json {
                path: self.run_dir.clone(),
                source,
            })?;
        let path = save_checkpoint(&self.run_dir, &self.state, &self.optimizer, |dir| {
            self.write_model(dir).map_err(|e| Box::new(e) as _)
        })?;
        let best = self.state.best.as_ref().map(|b| b.step);
        rotate_checkpoints(&self.run_dir, self.config.checkpoint.keep_last.max(1), best)?;
        Ok(path)
    }

    /// Trains until `training.max_steps` (or early stopping), calling
    /// `on_step` after every optimizer step.
    pub fn train(&mut self, mut on_step: impl FnMut(&StepReport)) -> Result<TrainSummary> {
        crate::alloc::keep_freed_memory();
        let max_steps = self.config.training.max_steps;
        let accum = self.config.batch.grad_accum.max(1);
        let eval_every = self.config.eval.every_steps;
        let ckpt_every = self.config.checkpoint.every_steps;
        let log_every = self.config.training.log_every_steps.max(1);
        let started = Instant::now();
        let elapsed_before = self.state.elapsed_s;
        let mut last_loss = None;
        let mut last_checkpoint = latest_checkpoint(&self.run_dir)?.map(|c| c.path);
        let mut stopped_early = false;
        let (mut window_tokens, mut window_start) = (0usize, Instant::now());
        while self.state.step < max_steps {
            let step = self.state.step + 1;
            let lr = self.state.schedule.lr_at(self.state.step);
            let mut loss_sum = 0f64;
            let mut tokens = 0usize;
            for micro in 0..accum {
                let batch = self.next_batch()?;
                self.model.set_dropout_seed(mix_seed(
                    self.config.training.seed,
                    &[3, step, micro as u64],
                ));
                let (l, n) = self.batch_loss(&batch, true)?;
                let value = f64::from(l.to_dtype(DType::F32)?.to_scalar::<f32>()?);
                check_finite(Quantity::Loss, value, step)?;
                let grads = l.backward()?;
                self.optimizer.accumulate(&grads)?;
                loss_sum += value;
                tokens += n;
            }
            let stats = self.optimizer.step(lr)?;
            let loss = loss_sum / accum as f64;
            self.state.step = step;
            self.state.tokens_seen += tokens as u64;
            window_tokens += tokens;
            let tokens_per_s =
                window_tokens as f64 / window_start.elapsed().as_secs_f64().max(1e-9);
            self.state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
            last_loss = Some(loss);

            if step % log_every == 0 || step == max_steps {
                let mut event = MetricsEvent::new(EventKind::Train, step);
                event.loss = Some(loss);
                event.lr = Some(lr);
                event.grad_norm = Some(stats.grad_norm);
                event.tokens_per_s = Some(tokens_per_s);
                event.elapsed_s = Some(self.state.elapsed_s);
                event.phase = Some(self.phase_name(step - 1));
                self.metrics.append(&event)?;
                self.events.push(event);
                (window_tokens, window_start) = (0, Instant::now());
            }

            let mut val_loss = None;
            let is_eval = eval_every > 0 && (step % eval_every == 0 || step == max_steps);
            if is_eval {
                val_loss = self.validation_loss()?;
                if let Some(v) = val_loss {
                    let mut event = MetricsEvent::new(EventKind::Eval, step);
                    event.val_loss = Some(v);
                    event.elapsed_s = Some(self.state.elapsed_s);
                    self.metrics.append(&event)?;
                    self.events.push(event);
                    if self.state.record_eval("val_loss", v, false) {
                        self.write_model_atomically(&self.run_dir.join(BEST_DIR))?;
                    }
                }
                render_plots(&self.run_dir, &self.events)?;
            }
            let patience_out = self
                .config
                .eval
                .early_stopping_patience
                .is_some_and(|p| self.state.evals_without_improvement >= p);
            if (ckpt_every > 0 && step % ckpt_every == 0) || step == max_steps || patience_out {
                last_checkpoint = Some(self.save()?);
            }
            on_step(&StepReport {
                step,
                max_steps,
                loss,
                lr,
                grad_norm: stats.grad_norm,
                tokens_per_s,
                val_loss,
            });
            if patience_out {
                stopped_early = true;
                break;
            }
        }
        let best = self.state.best.clone();
        Ok(TrainSummary {
            steps: self.state.step,
            final_loss: last_loss,
            best_val_loss: best.as_ref().map(|b| b.value),
            best_step: best.as_ref().map(|b| b.step),
            best_dir: best.map(|_| self.run_dir.join(BEST_DIR)),
            last_checkpoint,
            stopped_early,
            tokens_seen: self.state.tokens_seen,
        })
    }

    fn phase_name(&self, step: u64) -> String {
        let (i, phase) = self.config.curriculum.phase_at(step);
        phase
            .name
            .clone()
            .unwrap_or_else(|| format!("phase {}", i + 1))
    }

    /// Writes the model (weights, config, tokenizer, input format) to `dir`
    /// through a temporary folder, replacing an older copy.
    fn write_model_atomically(&self, dir: &Path) -> Result<()> {
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-best-")
            .tempdir_in(parent)
            .map_err(|e| TrainError::io(parent, e))?;
        let staged = tmp.path().join("model");
        self.write_model(&staged)?;
        let old = tmp.path().join("old");
        if dir.exists() {
            std::fs::rename(dir, &old).map_err(|e| TrainError::io(dir, e))?;
        }
        std::fs::rename(&staged, dir).map_err(|e| TrainError::io(dir, e))?;
        Ok(())
    }
}

/// A stable number for a phase's tier mix, so each phase samples its own
/// stream.
fn phase_seed(mix: &[(Tier, f64)]) -> u64 {
    mix.iter()
        .fold(0u64, |acc, (t, w)| mix_seed(acc, &[*t as u64, w.to_bits()]))
}

/// Cuts `ids` to `max` tokens, keeping the end-of-sequence token last.
fn truncate_keeping_eos(ids: &mut Vec<u32>, max: usize) {
    if ids.len() > max && max > 0 {
        let eos = ids[ids.len() - 1];
        ids.truncate(max);
        ids[max - 1] = eos;
    }
}
