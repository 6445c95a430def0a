//! The training loop: a run's model, optimizer and data from its config,
//! accumulation over micro-batches, the schedule, periodic evaluation,
//! checkpoints and resume, and early stopping. Dropout is reseeded from the
//! step for each micro-batch.
//!
//! Beside it: the data stream ([`stream`]), evaluation during training
//! ([`evaluation`]), the best model ([`best`]), a fresh model's seeded start
//! ([`init`]) and the seed of every random stream ([`seeds`]).

mod best;
mod evaluation;
mod init;
mod seeds;
mod stream;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use serde::Serialize;
use text2sql_data::curriculum::MixedSampler;
use text2sql_data::prepare::Split;
use text2sql_data::schema::DatabaseSchema;
use text2sql_model::tokenizer::Tokenizer;
use text2sql_model::{loss, shift_right, InputFormat, T5Model, IGNORED_LABEL};

pub use best::{BestSummary, BEST_DIR};
pub use evaluation::EVAL_DIR;
pub use stream::{DataPosition, WINDOW_EXAMPLES};

use crate::batch::pad_batch;
use crate::checkpoint::{
    latest_checkpoint, rotate_checkpoints, save_checkpoint, TrainState, OPTIMIZER_FILE,
};
use crate::config::{MixedPrecision, TrainConfig};
use crate::encode::Encoded;
use crate::error::{Result, TrainError};
use crate::exec_eval::ExecSample;
use crate::guard::{check_finite, Quantity};
use crate::metrics::{EventKind, MetricsEvent, MetricsLog};
use crate::optim::{Optimizer, OptimizerSettings};
use crate::schedule::LrSchedule;
use crate::token_cache::{CacheEvent, TokenCache, TokenCacheOptions};
use seeds::mix_seed;
use stream::{QueuedBatch, SourceData};

/// What the loop reports after each optimizer step.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub step: u64,
    pub max_steps: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
    /// Set on evaluation steps (when measured).
    pub val_loss: Option<f64>,
    /// Each source's validation loss on evaluation steps of a run on
    /// several sources.
    pub val_loss_by_source: BTreeMap<String, f64>,
    /// Set on evaluation steps when `eval.exec_sample` > 0.
    pub exec_accuracy: Option<f64>,
    pub exec_accuracy_by_tier: BTreeMap<String, f64>,
    /// Set when gold queries of the execution sample failed (see
    /// [`MetricsEvent::exec_gold_errors`]).
    pub exec_gold_errors: Option<usize>,
}

/// The end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub steps: u64,
    pub final_loss: Option<f64>,
    /// Results of the last evaluation of this session.
    pub last_val_loss: Option<f64>,
    pub last_exec_accuracy: Option<f64>,
    pub last_exec_accuracy_by_tier: BTreeMap<String, f64>,
    /// Examples scored for execution accuracy at each evaluation.
    pub exec_sample: usize,
    pub best: Option<BestSummary>,
    pub last_checkpoint: Option<PathBuf>,
    pub stopped_early: bool,
    /// Training ended at `training.max_minutes` before `max_steps`.
    pub out_of_time: bool,
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
    sources: Vec<SourceData>,
    /// The source whose val split gives the validation loss and the
    /// execution-accuracy sample.
    eval_source: usize,
    state: TrainState,
    position: DataPosition,
    sampler: MixedSampler,
    /// The source index of each of the sampler's members (sources of
    /// weight 0 in the phase are left out of it).
    mix_members: Vec<usize>,
    queue: VecDeque<QueuedBatch>,
    /// `None` when `eval.exec_sample` is 0.
    exec_sample: Option<ExecSample>,
    metrics: MetricsLog,
    events: Vec<MetricsEvent>,
}

/// The input contract saved into every checkpoint (see
/// [`crate::config::DataConfig::input_format`]).
pub fn input_format(config: &TrainConfig) -> InputFormat {
    config.data.input_format()
}

impl Trainer {
    /// Prepares a run: a fresh model (from `model.init_from` or the
    /// architecture) or, with `resume`, the latest checkpoint of the run.
    /// The dataset's token cache is reused, or built without reporting.
    pub fn new(config: TrainConfig, device: Device, resume: bool) -> Result<Trainer> {
        Self::with_token_cache(
            config,
            device,
            resume,
            &TokenCacheOptions::default(),
            &mut |_| {},
        )
    }

    /// [`Self::new`], opening the token cache with `cache_options` and
    /// passing its build progress and warnings to `on_cache`.
    pub fn with_token_cache(
        config: TrainConfig,
        device: Device,
        resume: bool,
        cache_options: &TokenCacheOptions,
        on_cache: &mut dyn FnMut(CacheEvent<'_>),
    ) -> Result<Trainer> {
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
        // The model crate's one list of tokenizer files, so that every format
        // `Tokenizer::from_dir` reads travels with `best/` and checkpoints.
        let tokenizer_files = text2sql_model::checkpoint::tokenizer_files_in(&tokenizer_dir);

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
            init::fresh_model(
                arch,
                &tokenizer,
                &tokenizer_dir,
                dtype,
                &device,
                config.training.seed,
            )?
        };
        let mut optimizer = Optimizer::new(
            init::named_vars(&varmap),
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

        let input_format = input_format(&config);
        input_format.check_tokenizer(&tokenizer)?;
        let sources = config
            .data
            .sources()
            .into_iter()
            .map(|source| {
                SourceData::open(
                    source,
                    &tokenizer,
                    &tokenizer_files,
                    &input_format,
                    config.eval.val_sample_size,
                    cache_options,
                    &mut *on_cache,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let eval_source = match &config.eval.source {
            Some(name) => sources
                .iter()
                .position(|s| &s.source.name == name)
                .unwrap_or(0),
            None => sources
                .iter()
                .position(|s| !s.dataset.split(Split::Val).is_empty())
                .unwrap_or(0),
        };
        let (sampler, mix_members) = Self::phase_sampler(&config, &sources, position.phase)?;
        let sampler = sampler.with_position(position.mix_position(&sources[0].source.name));
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
            sources,
            eval_source,
            state,
            position,
            sampler,
            mix_members,
            queue: VecDeque::new(),
            exec_sample: None,
            metrics,
            events: Vec::new(),
        };
        trainer.exec_sample = trainer.load_exec_sample()?;
        trainer.reconcile_best(latest.is_some())?;
        if latest.is_some() {
            trainer.redraw_window()?;
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

    /// The tokenizer the run trains with (to decode generated ids).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The evaluated source's database schemas by `db_id` (to build inputs
    /// for generation; training examples come from the token caches).
    pub fn schemas(&self) -> &HashMap<String, DatabaseSchema> {
        &self.sources[self.eval_source].schemas
    }

    /// The token cache of the first source.
    pub fn token_cache(&self) -> &TokenCache {
        &self.sources[0].token_cache
    }

    /// Every source's name and token cache, in config order.
    pub fn token_caches(&self) -> impl Iterator<Item = (&str, &TokenCache)> {
        self.sources
            .iter()
            .map(|s| (s.source.name.as_str(), &s.token_cache))
    }

    /// The name of the source that validation and execution accuracy use.
    pub fn eval_source(&self) -> &str {
        &self.sources[self.eval_source].source.name
    }

    /// Teacher-forced loss of `batch` and its number of real tokens;
    /// dropout on, with masks seeded by `dropout_seed`, when given.
    fn batch_loss(&self, batch: &[Encoded], dropout_seed: Option<u64>) -> Result<(Tensor, usize)> {
        // Per thread: micro-batches build their graphs on rayon's workers.
        let _mixed = match self.config.training.mixed_precision {
            MixedPrecision::Bf16 => {
                Some(text2sql_model::ops::bf16_products().map_err(|message| {
                    TrainError::InvalidValue {
                        path: self.run_dir.clone(),
                        key: "training.mixed_precision".into(),
                        message,
                    }
                })?)
            }
            MixedPrecision::None => None,
        };
        let cfg = self.model.config();
        let sources: Vec<Vec<u32>> = batch.iter().map(|e| e.source.clone()).collect();
        let (input_ids, mask) = pad_batch(&sources, cfg.pad_token(), &self.device)?;
        let longest = batch.iter().map(|e| e.target.len()).max().unwrap_or(0);
        let labels: Vec<Vec<i64>> = batch
            .iter()
            .map(|e| {
                let mut row: Vec<i64> = e.target.iter().map(|&t| i64::from(t)).collect();
                row.resize(longest, IGNORED_LABEL);
                row
            })
            .collect();
        let decoder_inputs = shift_right(&labels, cfg.decoder_start_token(), cfg.pad_token());
        let (decoder_ids, _) = pad_batch(&decoder_inputs, cfg.pad_token(), &self.device)?;
        // A pointer cannot choose a symbol its input does not show (the
        // schema was cut to the token budget): such a label teaches nothing
        // and would cost 1e9, so the loss skips it (the decoder still reads it).
        let mut flat: Vec<i64> = labels.concat();
        if let Some(ids) = self.model.pointed_symbols() {
            for (label, example) in flat.chunks_mut(longest.max(1)).zip(batch) {
                for l in label.iter_mut() {
                    let unshown = u32::try_from(*l)
                        .is_ok_and(|t| ids.index(t).is_some() && !example.source.contains(&t));
                    if unshown {
                        *l = IGNORED_LABEL;
                    }
                }
            }
        }
        let labels = Tensor::from_vec(flat, (batch.len(), longest), &self.device)?;
        let logits = match dropout_seed {
            Some(seed) => self.model.forward_train_seeded(
                &input_ids,
                Some(&mask),
                &decoder_ids,
                None,
                seed,
            )?,
            None => self
                .model
                .forward_train(&input_ids, Some(&mask), &decoder_ids, None, false)?,
        };
        let tokens = batch.iter().map(|e| e.source.len() + e.target.len()).sum();
        Ok((loss(&logits, &labels)?, tokens))
    }

    /// Loss, tokens and gradients of `batches`, micro-batches `first..` of
    /// optimizer step `step`, each with its own dropout seed: at once on
    /// rayon's threads when `parallel`, else one after another here.
    fn micro_batches(
        &self,
        batches: &[QueuedBatch],
        first: usize,
        step: u64,
        parallel: bool,
    ) -> Vec<Result<MicroResult>> {
        let micro_step = |(i, batch): (usize, &QueuedBatch)| -> Result<MicroResult> {
            let micro = (first + i) as u64;
            let seed = mix_seed(self.config.training.seed, &[seeds::DROPOUT, step, micro]);
            let (l, n) = self.batch_loss(&batch.examples, Some(seed))?;
            let value = loss_value(&l)?;
            Ok((value, n, l.backward()?))
        };
        if parallel {
            batches.par_iter().enumerate().map(micro_step).collect()
        } else {
            batches.iter().enumerate().map(micro_step).collect()
        }
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

    /// Trains until `training.max_steps` (or early stopping, or the end of
    /// `training.max_minutes`), calling `on_step` after every optimizer step.
    pub fn train(&mut self, mut on_step: impl FnMut(&StepReport)) -> Result<TrainSummary> {
        crate::alloc::keep_freed_memory();
        let max_steps = self.config.training.max_steps;
        let accum = self.config.batch.grad_accum.max(1);
        let parallel = self.config.batch.parallel_micro_batches.clamp(1, accum);
        let eval_every = self.config.eval.every_steps;
        let ckpt_every = self.config.checkpoint.every_steps;
        let log_every = self.config.training.log_every_steps.max(1);
        let started = Instant::now();
        let elapsed_before = self.state.elapsed_s;
        let mut last_loss = None;
        let mut last_checkpoint = latest_checkpoint(&self.run_dir)?.map(|c| c.path);
        let mut stopped_early = false;
        let budget_s = self.config.training.max_minutes.map(|m| m * 60.0);
        let past_budget = |elapsed_s: f64| budget_s.is_some_and(|b| elapsed_s >= b);
        // A resumed run whose budget is already spent trains no further.
        let mut out_of_time = past_budget(self.state.elapsed_s);
        let mut last_eval: Option<MetricsEvent> = None;
        let (mut window_tokens, mut window_start) = (0usize, Instant::now());
        // Examples drawn from each source since the last train line.
        let mut drawn = vec![0u64; self.sources.len()];
        while self.state.step < max_steps && !out_of_time {
            let step = self.state.step + 1;
            let lr = self.state.schedule.lr_at(self.state.step);
            let mut loss_sum = 0f64;
            let mut tokens = 0usize;
            let mut batches = Vec::with_capacity(accum);
            for _ in 0..accum {
                let batch = self.next_batch()?;
                for &source in &batch.sources {
                    drawn[source] += 1;
                }
                batches.push(batch);
            }
            for (first, chunk) in (0..accum).step_by(parallel).zip(batches.chunks(parallel)) {
                let results = self.micro_batches(chunk, first, step, parallel > 1);
                // Summed in micro-batch order, as a sequential loop would.
                for result in results {
                    let (value, n, grads) = result?;
                    check_finite(Quantity::Loss, value, step)?;
                    self.optimizer.accumulate(&grads)?;
                    loss_sum += value;
                    tokens += n;
                }
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
            out_of_time = past_budget(self.state.elapsed_s);
            // The step that ends training, by count or by time.
            let last = step == max_steps || out_of_time;

            if step.is_multiple_of(log_every) || last {
                let mut event = MetricsEvent::new(EventKind::Train, step);
                event.loss = Some(loss);
                event.lr = Some(lr);
                event.grad_norm = Some(stats.grad_norm);
                event.tokens_per_s = Some(tokens_per_s);
                event.elapsed_s = Some(self.state.elapsed_s);
                event.phase = Some(self.phase_name(step - 1));
                if self.sources.len() > 1 {
                    event.examples_by_source = self
                        .sources
                        .iter()
                        .zip(&drawn)
                        .map(|(s, &n)| (s.source.name.clone(), n))
                        .collect();
                }
                drawn.iter_mut().for_each(|n| *n = 0);
                self.metrics.append(&event)?;
                self.events.push(event);
                (window_tokens, window_start) = (0, Instant::now());
            }

            let is_eval = eval_every > 0 && (step.is_multiple_of(eval_every) || last);
            let eval_event = if is_eval {
                let event = self.evaluate(step)?;
                last_eval = Some(event.clone());
                Some(event)
            } else {
                None
            };
            let patience_out = self
                .config
                .eval
                .early_stopping_patience
                .is_some_and(|p| self.state.evals_without_improvement >= p);
            if (ckpt_every > 0 && step.is_multiple_of(ckpt_every)) || last || patience_out {
                last_checkpoint = Some(self.save()?);
            }
            on_step(&StepReport {
                step,
                max_steps,
                loss,
                lr,
                grad_norm: stats.grad_norm,
                tokens_per_s,
                val_loss: eval_event.as_ref().and_then(|e| e.val_loss),
                val_loss_by_source: eval_event
                    .as_ref()
                    .map(|e| e.val_loss_by_source.clone())
                    .unwrap_or_default(),
                exec_accuracy: eval_event.as_ref().and_then(|e| e.exec_accuracy),
                exec_gold_errors: eval_event.as_ref().and_then(|e| e.exec_gold_errors),
                exec_accuracy_by_tier: eval_event
                    .map(|e| e.exec_accuracy_by_tier)
                    .unwrap_or_default(),
            });
            if patience_out {
                stopped_early = true;
                break;
            }
        }
        let best = self.best_summary();
        let last_eval = last_eval.unwrap_or_else(|| MetricsEvent::new(EventKind::Eval, 0));
        Ok(TrainSummary {
            steps: self.state.step,
            final_loss: last_loss,
            last_val_loss: last_eval.val_loss,
            last_exec_accuracy: last_eval.exec_accuracy,
            last_exec_accuracy_by_tier: last_eval.exec_accuracy_by_tier,
            exec_sample: self.exec_sample_len(),
            best,
            last_checkpoint,
            stopped_early,
            out_of_time: out_of_time && self.state.step < max_steps,
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
}

/// The value of a loss tensor of any dtype.
/// One micro-batch's loss, real tokens and gradients.
type MicroResult = (f64, usize, candle_core::backprop::GradStore);

fn loss_value(loss: &Tensor) -> Result<f64> {
    Ok(f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?))
}
