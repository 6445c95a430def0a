//! The training config: a YAML file (see `configs/*.yaml`), with
//! `--set key.sub=value` overrides applied onto the YAML tree before it is
//! deserialised, so an override is type-checked exactly like the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_norway::Value;
use text2sql_data::schema::{SAMPLE_TEXT_MAX_CHARS, SAMPLE_VALUES_PER_COLUMN};
use text2sql_data::serialize::{CompactOptions, ValuesShown};
use text2sql_model::InputFormat;
pub use text2sql_sql::Rule;

use crate::error::{Result, TrainError};

/// The four SQL complexity tiers of SynSQL-2.5M, shared with the data stage.
/// The original project scheduled a `Medium` tier that does not exist and
/// never `Highly Complex`: names are checked when the config is read.
pub use text2sql_data::reader::Tier;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub run: RunConfig,
    pub model: ModelConfig,
    pub data: DataConfig,
    pub curriculum: CurriculumConfig,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    pub batch: BatchConfig,
    pub training: TrainingConfig,
    pub eval: EvalConfig,
    pub checkpoint: CheckpointConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Runs are written to `dir/name/`.
    #[serde(default = "default_runs_dir")]
    pub dir: PathBuf,
    pub name: String,
}

fn default_runs_dir() -> PathBuf {
    PathBuf::from("runs")
}

impl RunConfig {
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join(&self.name)
    }
}

/// Either fine-tune an existing checkpoint (`init_from`) or train a fresh
/// model from `architecture` with the tokenizer in `tokenizer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A checkpoint folder in Hugging Face layout (`config.json`,
    /// `model.safetensors`, `tokenizer.json`).
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// A T5 shape for random initialisation (Hugging Face `config.json` names).
    #[serde(default)]
    pub architecture: Option<T5Architecture>,
    /// Folder holding `tokenizer.json`; required with `architecture`.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
}

/// The shape of a T5 for random initialisation: the model crate's, with the
/// field names, defaults and validation of Hugging Face's `T5Config`.
pub use text2sql_model::T5Architecture;

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Output folder of `text2sql prepare`: the one source of a run that
    /// trains on one dataset (give either this or `sources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_dir: Option<PathBuf>,
    /// Several prepared datasets mixed by weight, as OmniSQL trains on
    /// SynSQL plus Spider and BIRD (give either this or `processed_dir`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceConfig>,
    pub max_source_tokens: usize,
    pub max_target_tokens: usize,
    /// Folder of SQLite databases laid out as `<db_id>/<db_id>.sqlite` (what
    /// `text2sql sample` writes and `text2sql eval --db-dir` takes) for
    /// `processed_dir`; needed for execution accuracy (`eval.exec_sample`).
    /// With `sources`, each source names its own.
    #[serde(default)]
    pub databases: Option<PathBuf>,
    #[serde(default)]
    pub schema: SchemaOptions,
}

/// One prepared dataset of a mix (`data.sources`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Names the source in `eval.source`, `curriculum.phases[i].sources`,
    /// metrics and checkpoints; default: the folder name of `processed_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Output folder of `text2sql prepare`.
    pub processed_dir: PathBuf,
    /// This source's `<db_id>/<db_id>.sqlite` folder (execution accuracy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databases: Option<PathBuf>,
    /// Share of the drawn examples (any scale; normalised over the sources).
    #[serde(default = "default_weight")]
    pub weight: f64,
}

fn default_weight() -> f64 {
    1.0
}

/// A source with its name resolved and the config key that names it in
/// errors (`data` for the single `processed_dir` form, else
/// `data.sources[i]`).
#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    pub name: String,
    pub key: String,
    pub processed_dir: PathBuf,
    pub databases: Option<PathBuf>,
    pub weight: f64,
}

impl DataSource {
    /// The config key of this source's `databases`.
    pub fn databases_key(&self) -> String {
        format!("{}.databases", self.key)
    }
}

/// The name of the single `processed_dir` source, and of a listed source
/// whose folder has no name.
pub const DEFAULT_SOURCE_NAME: &str = "data";

impl DataConfig {
    /// The datasets this config trains on, in config order: `processed_dir`
    /// as one source of weight 1, or `sources`.
    pub fn sources(&self) -> Vec<DataSource> {
        let folder_name = |dir: &Path| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| DEFAULT_SOURCE_NAME.to_string())
        };
        match &self.processed_dir {
            Some(dir) => vec![DataSource {
                name: DEFAULT_SOURCE_NAME.to_string(),
                key: "data".into(),
                processed_dir: dir.clone(),
                databases: self.databases.clone(),
                weight: 1.0,
            }],
            None => self
                .sources
                .iter()
                .enumerate()
                .map(|(i, s)| DataSource {
                    name: s
                        .name
                        .clone()
                        .unwrap_or_else(|| folder_name(&s.processed_dir)),
                    key: format!("data.sources[{i}]"),
                    processed_dir: s.processed_dir.clone(),
                    databases: s.databases.clone(),
                    weight: s.weight,
                })
                .collect(),
        }
    }

    /// The model input contract this config trains with; it is saved into
    /// every checkpoint as `text2sql_input.json`, so `ask`, `eval` and
    /// `serve` rebuild the inputs exactly. Only meaningful for a config that
    /// passed validation (which rejects options the format cannot express).
    pub fn input_format(&self) -> InputFormat {
        let values = match (
            self.schema.sample_values,
            self.schema.values_in_question_only,
        ) {
            (0, _) => ValuesShown::None,
            (_, true) => ValuesShown::MatchingQuestion,
            (_, false) => ValuesShown::All,
        };
        InputFormat {
            max_source_tokens: self.max_source_tokens,
            max_target_tokens: self.max_target_tokens,
            schema: CompactOptions {
                values,
                foreign_keys: self.schema.foreign_keys,
                retrieved_values: self.schema.value_retrieval,
            },
            external_knowledge: self.schema.external_knowledge,
            schema_symbols: self.schema.symbols,
            symbols_in_schema_order: self.schema.symbols_in_schema_order,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaFormat {
    /// `question | db_id | table : col , col ( value ) | ...`, the T5 custom.
    Compact,
    /// OmniSQL's `CREATE TABLE` form with comments and example values.
    CreateTable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaOptions {
    #[serde(default = "default_schema_format")]
    pub format: SchemaFormat,
    /// Example values per column: 0 (none) or 2 (all that `text2sql prepare`
    /// stored, which samples 2 per column as OmniSQL does).
    #[serde(default = "default_sample_values")]
    pub sample_values: usize,
    /// Example strings are cut at this many characters: the only value
    /// accepted is [`SAMPLE_TEXT_MAX_CHARS`], where `prepare` (like OmniSQL)
    /// cuts them when sampling.
    #[serde(default = "default_value_chars")]
    pub max_value_chars: usize,
    /// Show only the example values that occur in the question (as PICARD
    /// does) instead of all of them.
    #[serde(default)]
    pub values_in_question_only: bool,
    /// Show the database values each question mentions next to their
    /// columns (`city ( Lyon )`), retrieved from the processed folder's
    /// `values.parquet`, and keep those columns when pruning.
    #[serde(default)]
    pub value_retrieval: bool,
    /// Label each table and column name with a schema symbol (`<sym3>
    /// singer`) and train the model to write symbols instead of names, so it
    /// learns to point at the schema it is shown (needs a tokenizer trained
    /// with `--schema-symbols`).
    #[serde(default)]
    pub symbols: bool,
    /// Number each training example's names in schema order, as inference
    /// does, instead of drawing its symbols at random.
    #[serde(default)]
    pub symbols_in_schema_order: bool,
    /// Append `| t.c = t2.c` foreign-key segments after the tables.
    #[serde(default = "default_true")]
    pub foreign_keys: bool,
    /// Append the SynSQL/BIRD `external_knowledge` to the question when present.
    #[serde(default = "default_true")]
    pub external_knowledge: bool,
}

fn default_schema_format() -> SchemaFormat {
    SchemaFormat::Compact
}
fn default_sample_values() -> usize {
    SAMPLE_VALUES_PER_COLUMN
}
/// `text2sql prepare` cuts example strings where the data crate's schema
/// enrichment does: [`SAMPLE_TEXT_MAX_CHARS`].
fn default_value_chars() -> usize {
    SAMPLE_TEXT_MAX_CHARS
}

impl Default for SchemaOptions {
    fn default() -> Self {
        SchemaOptions {
            format: default_schema_format(),
            sample_values: default_sample_values(),
            max_value_chars: default_value_chars(),
            values_in_question_only: false,
            value_retrieval: false,
            symbols: false,
            symbols_in_schema_order: false,
            foreign_keys: true,
            external_knowledge: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurriculumConfig {
    /// Run in order, each for `steps` optimizer steps; the last one continues
    /// until `training.max_steps`.
    pub phases: Vec<CurriculumPhase>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurriculumPhase {
    #[serde(default)]
    pub name: Option<String>,
    pub steps: u64,
    /// Mixing weight per tier; they need not sum to 1 (they are normalised).
    /// Empty: every tier in proportion to its size. A source without tiers
    /// (Spider) is drawn whole in every phase whatever the tiers.
    #[serde(default)]
    pub tiers: BTreeMap<Tier, f64>,
    /// Weights of the sources in this phase, by source name, replacing their
    /// `data.sources[i].weight`; a source not named keeps its own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, f64>,
}

impl CurriculumPhase {
    /// The mixing weights normalised to sum to 1, in tier order.
    pub fn normalized_weights(&self) -> Vec<(Tier, f64)> {
        let total: f64 = self.tiers.values().sum();
        self.tiers
            .iter()
            .filter(|(_, w)| **w > 0.0)
            .map(|(t, w)| (*t, w / total))
            .collect()
    }
}

impl CurriculumConfig {
    /// The phase in force at optimizer step `step` (0-based) and its index.
    pub fn phase_at(&self, step: u64) -> (usize, &CurriculumPhase) {
        let mut end = 0u64;
        for (i, phase) in self.phases.iter().enumerate() {
            end = end.saturating_add(phase.steps);
            if step < end {
                return (i, phase);
            }
        }
        let last = self.phases.len() - 1;
        (last, &self.phases[last])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Adamw,
    Adafactor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub lr: f64,
    /// AdamW's (beta1, beta2). Adafactor uses `betas[0]` as its optional
    /// first-moment beta when `adafactor_momentum` is true.
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// Global gradient-norm clip; 0 or absent disables clipping.
    #[serde(default)]
    pub clip_norm: Option<f64>,
    #[serde(default)]
    pub adafactor_momentum: bool,
    /// Adafactor's own `1/sqrt(step)` step size instead of `lr` and the schedule.
    #[serde(default)]
    pub adafactor_relative_step: bool,
    /// Adafactor scales the step by the parameter's RMS.
    #[serde(default)]
    pub adafactor_scale_parameter: bool,
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn default_eps() -> f64 {
    1e-8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    Constant,
    Linear,
    Cosine,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub kind: ScheduleKind,
    #[serde(default)]
    pub warmup_steps: u64,
    /// The learning rate decays to `lr * min_lr_ratio` at `max_steps`.
    #[serde(default)]
    pub min_lr_ratio: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            kind: ScheduleKind::Constant,
            warmup_steps: 0,
            min_lr_ratio: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Padded tokens per micro-batch: rows × (longest source + longest target).
    pub max_tokens: usize,
    /// Micro-batches per optimizer step.
    #[serde(default = "default_one")]
    pub grad_accum: usize,
}

fn default_one() -> usize {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DTypeChoice {
    /// f32 on CPU, bf16 on CUDA/Metal.
    Auto,
    F32,
    Bf16,
    /// Rejected at validation: T5 overflows to NaN in fp16.
    F16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    Metal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    pub max_steps: u64,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_dtype")]
    pub dtype: DTypeChoice,
    #[serde(default = "default_device")]
    pub device: DeviceChoice,
    /// Log a training metrics line every this many steps.
    #[serde(default = "default_log_every")]
    pub log_every_steps: u64,
}

fn default_dtype() -> DTypeChoice {
    DTypeChoice::Auto
}
fn default_device() -> DeviceChoice {
    DeviceChoice::Cpu
}
fn default_log_every() -> u64 {
    10
}

impl TrainingConfig {
    /// The dtype to train in: `auto` is f32 on CPU and bf16 on GPUs.
    pub fn resolved_dtype(&self) -> candle_core::DType {
        match (self.dtype, self.device) {
            (DTypeChoice::Auto, DeviceChoice::Cpu) | (DTypeChoice::F32, _) => {
                candle_core::DType::F32
            }
            (DTypeChoice::Auto, _) | (DTypeChoice::Bf16, _) => candle_core::DType::BF16,
            (DTypeChoice::F16, _) => candle_core::DType::F16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub every_steps: u64,
    /// Validation examples whose teacher-forced loss is measured at each
    /// eval (the first ones of the split; 0: no validation loss).
    pub val_sample_size: usize,
    /// Validation examples decoded and executed for execution accuracy at
    /// each eval: a fixed sample, seeded by `training.seed`, spread over the
    /// tiers in proportion. 0 (the default) turns execution accuracy off.
    #[serde(default)]
    pub exec_sample: usize,
    /// Beam width for the execution-accuracy sample; every beam is a
    /// candidate and the first one is scored, as `text2sql eval --model`.
    #[serde(default = "default_one")]
    pub beams: usize,
    /// Longest generated SQL in tokens; default `data.max_target_tokens`,
    /// which is what `ask` and `eval --model` use. Smaller is faster but
    /// cuts long queries, so it can score below `eval --model`.
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
    /// Execution-accuracy rule: `spider` (test-suite) or `bird` (set of rows).
    #[serde(default)]
    pub rule: Rule,
    /// Seconds each query may run; a prediction that runs longer is wrong.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// Questions generated together in one batch (bounds eval memory).
    #[serde(default = "default_generation_batch")]
    pub batch_size: usize,
    /// Constrained decoding for the execution-accuracy sample (only SQL that
    /// parses and names the database's real tables and columns), as `ask`
    /// and `eval --model` decode by default; false to compare without.
    #[serde(default = "default_true")]
    pub constrain: bool,
    /// Which metric picks the best checkpoint and drives early stopping;
    /// default `exec_accuracy` when `exec_sample` > 0, else `val_loss`.
    #[serde(default)]
    pub best_metric: Option<BestMetricKind>,
    /// Stop after this many evals without a better best metric.
    #[serde(default)]
    pub early_stopping_patience: Option<u32>,
    /// The source (`data.sources[i].name`) whose val split gives the
    /// validation loss and the execution-accuracy sample; default: the
    /// first source with validation examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

fn default_timeout_s() -> f64 {
    10.0
}
fn default_generation_batch() -> usize {
    8
}

/// The metric that chooses the best checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BestMetricKind {
    /// Execution accuracy on the `exec_sample` (higher is better).
    ExecAccuracy,
    /// Validation loss on the `val_sample_size` examples (lower is better).
    ValLoss,
}

impl BestMetricKind {
    /// The name used in `metrics.jsonl` and the train state.
    pub fn name(self) -> &'static str {
        match self {
            BestMetricKind::ExecAccuracy => "exec_accuracy",
            BestMetricKind::ValLoss => "val_loss",
        }
    }

    pub fn higher_is_better(self) -> bool {
        self == BestMetricKind::ExecAccuracy
    }
}

impl EvalConfig {
    /// `best_metric`, or its default.
    pub fn resolved_best_metric(&self) -> BestMetricKind {
        self.best_metric.unwrap_or(if self.exec_sample > 0 {
            BestMetricKind::ExecAccuracy
        } else {
            BestMetricKind::ValLoss
        })
    }

    /// The generation length for the execution-accuracy sample.
    pub fn resolved_max_new_tokens(&self, data: &DataConfig) -> usize {
        self.max_new_tokens.unwrap_or(data.max_target_tokens)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    pub every_steps: u64,
    /// Checkpoints kept besides the best one.
    pub keep_last: usize,
}

impl TrainConfig {
    /// Reads `path`, applies `overrides` (`key.sub=value`), and validates.
    pub fn load(path: &Path, overrides: &[String]) -> Result<TrainConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        TrainConfig::from_yaml(&text, path, overrides)
    }

    /// Parses YAML text; `path` is only used to name the source in errors.
    pub fn from_yaml(text: &str, path: &Path, overrides: &[String]) -> Result<TrainConfig> {
        let mut tree: Value = serde_norway::from_str(text).map_err(|e| TrainError::Config {
            path: path.to_path_buf(),
            message: format!("invalid YAML: {e}"),
        })?;
        for assignment in overrides {
            apply_override(&mut tree, assignment)?;
        }
        let config: TrainConfig =
            serde_path_to_error::deserialize(tree).map_err(|e| TrainError::Config {
                path: path.to_path_buf(),
                message: format!("`{}`: {}", e.path(), e.inner()),
            })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Writes the config as resolved (overrides applied, defaults filled) to
    /// `run_dir/config.yaml`, so a run records exactly what it trained with.
    pub fn save_resolved(&self, run_dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
        let path = run_dir.join("config.yaml");
        let text = serde_norway::to_string(self).map_err(|e| TrainError::Config {
            path: path.clone(),
            message: e.to_string(),
        })?;
        text2sql_data::atomic::write_file(&path, text.as_bytes())?;
        Ok(path)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let invalid = |key: &str, message: String| TrainError::InvalidValue {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        if self.run.name.trim().is_empty() || self.run.name.contains(['/', '\\']) {
            return Err(invalid(
                "run.name",
                "must be a non-empty folder name without slashes".into(),
            ));
        }
        match (&self.model.init_from, &self.model.architecture) {
            (Some(_), Some(_)) => return Err(invalid(
                "model",
                "give either `init_from` (a checkpoint) or `architecture` (random init), not both"
                    .into(),
            )),
            (None, None) => {
                return Err(invalid(
                    "model",
                    "give `init_from` (a checkpoint) or `architecture` with `tokenizer`".into(),
                ))
            }
            (None, Some(arch)) => {
                if self.model.tokenizer.is_none() {
                    return Err(invalid(
                        "model.tokenizer",
                        "required when training from `architecture`".into(),
                    ));
                }
                // The model crate's rules for a T5 shape, keyed in this file.
                arch.to_config().validate().map_err(|(field, message)| {
                    invalid(&format!("model.architecture.{field}"), message)
                })?;
            }
            (Some(_), None) => {}
        }
        self.validate_sources(&invalid)?;
        if self.data.max_source_tokens == 0 || self.data.max_target_tokens == 0 {
            return Err(invalid(
                "data.max_source_tokens",
                "token limits must be positive".into(),
            ));
        }
        if self.curriculum.phases.is_empty() {
            return Err(invalid(
                "curriculum.phases",
                "at least one phase is needed".into(),
            ));
        }
        for (i, phase) in self.curriculum.phases.iter().enumerate() {
            let key = format!("curriculum.phases[{i}]");
            if phase.steps == 0 {
                return Err(invalid(&format!("{key}.steps"), "must be positive".into()));
            }
            if let Some((tier, w)) = phase
                .tiers
                .iter()
                .find(|(_, w)| !w.is_finite() || **w < 0.0)
            {
                return Err(invalid(
                    &format!("{key}.tiers.{tier}"),
                    format!("weight {w} must be finite and not negative"),
                ));
            }
            if !phase.tiers.is_empty() && phase.tiers.values().sum::<f64>() <= 0.0 {
                return Err(invalid(
                    &format!("{key}.tiers"),
                    "at least one tier needs a positive weight (or leave tiers out: all of them)"
                        .into(),
                ));
            }
            let sources = self.data.sources();
            for (name, &w) in &phase.sources {
                if !sources.iter().any(|s| &s.name == name) {
                    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
                    return Err(invalid(
                        &format!("{key}.sources.{name}"),
                        format!(
                            "no source is named `{name}` (sources: {})",
                            names.join(", ")
                        ),
                    ));
                }
                if !(w.is_finite() && w >= 0.0) {
                    return Err(invalid(
                        &format!("{key}.sources.{name}"),
                        format!("weight {w} must be finite and not negative"),
                    ));
                }
            }
            if sources
                .iter()
                .all(|s| phase.sources.get(&s.name).copied().unwrap_or(s.weight) <= 0.0)
            {
                return Err(invalid(
                    &format!("{key}.sources"),
                    "every source has weight 0 in this phase".into(),
                ));
            }
        }
        let opt = &self.optimizer;
        if !(opt.lr.is_finite() && opt.lr > 0.0) {
            return Err(invalid(
                "optimizer.lr",
                format!("{} must be positive", opt.lr),
            ));
        }
        for (i, beta) in opt.betas.iter().enumerate() {
            if !(0.0..1.0).contains(beta) {
                return Err(invalid(
                    &format!("optimizer.betas[{i}]"),
                    format!("{beta} is not in [0, 1)"),
                ));
            }
        }
        if !(opt.eps.is_finite() && opt.eps > 0.0) {
            return Err(invalid(
                "optimizer.eps",
                format!("{} must be positive", opt.eps),
            ));
        }
        if !(opt.weight_decay.is_finite() && opt.weight_decay >= 0.0) {
            return Err(invalid(
                "optimizer.weight_decay",
                format!("{} must not be negative", opt.weight_decay),
            ));
        }
        if let Some(clip) = opt.clip_norm {
            if !(clip.is_finite() && clip >= 0.0) {
                return Err(invalid(
                    "optimizer.clip_norm",
                    format!("{clip} must not be negative"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.schedule.min_lr_ratio) {
            return Err(invalid(
                "schedule.min_lr_ratio",
                format!("{} is not in [0, 1]", self.schedule.min_lr_ratio),
            ));
        }
        if self.batch.max_tokens == 0 || self.batch.grad_accum == 0 {
            return Err(invalid(
                "batch",
                "max_tokens and grad_accum must be positive".into(),
            ));
        }
        let longest = self.data.max_source_tokens + self.data.max_target_tokens;
        if self.batch.max_tokens < longest {
            return Err(invalid(
                "batch.max_tokens",
                format!(
                    "{} cannot hold one example of max_source_tokens + max_target_tokens = {longest}",
                    self.batch.max_tokens
                ),
            ));
        }
        if self.training.max_steps == 0 {
            return Err(invalid("training.max_steps", "must be positive".into()));
        }
        let mut start = 0u64;
        for (i, phase) in self.curriculum.phases.iter().enumerate() {
            if start >= self.training.max_steps {
                return Err(invalid(
                    &format!("curriculum.phases[{i}]"),
                    format!(
                        "starts at step {start}, at or after training.max_steps = {}: it would never run",
                        self.training.max_steps
                    ),
                ));
            }
            start = start.saturating_add(phase.steps);
        }
        if self.training.dtype == DTypeChoice::F16 {
            return Err(invalid(
                "training.dtype",
                "f16 is not supported: T5 overflows to NaN in fp16; use f32 (CPU) or bf16 (GPU)"
                    .into(),
            ));
        }
        if self.training.log_every_steps == 0 {
            return Err(invalid(
                "training.log_every_steps",
                "must be positive".into(),
            ));
        }
        if self.eval.every_steps == 0 {
            return Err(invalid("eval.every_steps", "must be positive".into()));
        }
        if self.checkpoint.every_steps == 0 {
            return Err(invalid("checkpoint.every_steps", "must be positive".into()));
        }
        if self.eval.beams == 0 {
            return Err(invalid("eval.beams", "must be at least 1".into()));
        }
        self.validate_schema(&invalid)?;
        self.validate_eval(&invalid)
    }

    /// `data.processed_dir` or `data.sources`, with distinct names and
    /// usable weights.
    fn validate_sources(&self, invalid: &dyn Fn(&str, String) -> TrainError) -> Result<()> {
        let data = &self.data;
        match (&data.processed_dir, data.sources.is_empty()) {
            (Some(_), false) => {
                return Err(invalid(
                    "data.sources",
                    "give either `processed_dir` (one dataset) or `sources` (a mix), not both"
                        .into(),
                ))
            }
            (None, true) => {
                return Err(invalid(
                    "data.processed_dir",
                    "required (the output folder of `text2sql prepare`), or a list of `sources`"
                        .into(),
                ))
            }
            (None, false) if data.databases.is_some() => {
                return Err(invalid(
                    "data.databases",
                    "with `sources`, give each source its own `databases`".into(),
                ))
            }
            _ => {}
        }
        let sources = data.sources();
        for (i, source) in sources.iter().enumerate() {
            if source.name.trim().is_empty() {
                return Err(invalid(
                    &format!("{}.name", source.key),
                    "must not be empty".into(),
                ));
            }
            if let Some(twin) = sources[..i].iter().find(|s| s.name == source.name) {
                return Err(invalid(
                    &format!("{}.name", source.key),
                    format!(
                        "`{}` is also the name of {}; give each source its own name",
                        source.name, twin.key
                    ),
                ));
            }
            if !(source.weight.is_finite() && source.weight >= 0.0) {
                return Err(invalid(
                    &format!("{}.weight", source.key),
                    format!("{} must be finite and not negative", source.weight),
                ));
            }
        }
        if sources.iter().all(|s| s.weight <= 0.0) {
            return Err(invalid(
                "data.sources",
                "at least one source needs a positive weight".into(),
            ));
        }
        if let Some(name) = &self.eval.source {
            if !sources.iter().any(|s| &s.name == name) {
                let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
                return Err(invalid(
                    "eval.source",
                    format!(
                        "no source is named `{name}` (sources: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The schema options the saved input format can express; anything
    /// else is refused rather than silently trained differently.
    fn validate_schema(&self, invalid: &dyn Fn(&str, String) -> TrainError) -> Result<()> {
        let schema = &self.data.schema;
        if schema.format != SchemaFormat::Compact {
            return Err(invalid(
                "data.schema.format",
                "only `compact` can be trained: the model input format \
                 (text2sql_input.json, read by ask, eval and serve) has no CREATE TABLE form"
                    .into(),
            ));
        }
        if schema.sample_values != 0 && schema.sample_values != SAMPLE_VALUES_PER_COLUMN {
            return Err(invalid(
                "data.schema.sample_values",
                format!(
                    "{} cannot be honoured: `text2sql prepare` stores {SAMPLE_VALUES_PER_COLUMN} \
                     example values per column, so use 0 (none) or {SAMPLE_VALUES_PER_COLUMN} (all)",
                    schema.sample_values
                ),
            ));
        }
        let chars = SAMPLE_TEXT_MAX_CHARS;
        if schema.max_value_chars != chars {
            return Err(invalid(
                "data.schema.max_value_chars",
                format!(
                    "{} cannot be honoured: `text2sql prepare` cuts example strings at {chars} \
                     characters, so it must be {chars}",
                    schema.max_value_chars
                ),
            ));
        }
        if schema.values_in_question_only && schema.sample_values == 0 {
            return Err(invalid(
                "data.schema.values_in_question_only",
                "needs example values (sample_values: 2); with sample_values: 0 none are shown"
                    .into(),
            ));
        }
        Ok(())
    }

    fn validate_eval(&self, invalid: &dyn Fn(&str, String) -> TrainError) -> Result<()> {
        let eval = &self.eval;
        if eval.exec_sample > 0 {
            // The source evaluated is only known once the datasets are open
            // (the first with a val split) unless `eval.source` names it:
            // then it needs databases, otherwise some source must have them.
            let sources = self.data.sources();
            let named = sources
                .iter()
                .find(|s| eval.source.as_ref() == Some(&s.name));
            let required = match named {
                Some(source) => Some(source),
                None if sources.iter().all(|s| s.databases.is_none()) => sources.first(),
                None => None,
            };
            if let Some(source) = required.filter(|s| s.databases.is_none()) {
                return Err(invalid(
                    &source.databases_key(),
                    format!(
                        "required for execution accuracy (eval.exec_sample = {}): the folder \
                         of <db_id>/<db_id>.sqlite databases",
                        eval.exec_sample
                    ),
                ));
            }
            for source in &sources {
                if let Some(dir) = source.databases.as_ref().filter(|d| !d.is_dir()) {
                    return Err(invalid(
                        &source.databases_key(),
                        format!(
                            "{} is not a folder (needed for eval.exec_sample = {}; \
                             set eval.exec_sample=0 to train without execution accuracy)",
                            dir.display(),
                            eval.exec_sample
                        ),
                    ));
                }
            }
        }
        match eval.best_metric {
            Some(BestMetricKind::ExecAccuracy) if eval.exec_sample == 0 => {
                return Err(invalid(
                    "eval.best_metric",
                    "exec_accuracy needs eval.exec_sample > 0".into(),
                ))
            }
            Some(BestMetricKind::ValLoss) if eval.val_sample_size == 0 => {
                return Err(invalid(
                    "eval.best_metric",
                    "val_loss needs eval.val_sample_size > 0".into(),
                ))
            }
            _ => {}
        }
        if let Err(e) = text2sql_sql::timeout_from_secs(eval.timeout_s) {
            return Err(invalid("eval.timeout_s", e.to_string()));
        }
        if eval.max_new_tokens == Some(0) {
            return Err(invalid("eval.max_new_tokens", "must be at least 1".into()));
        }
        if eval.batch_size == 0 {
            return Err(invalid("eval.batch_size", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// Applies one `a.b.c=value` onto the YAML tree. The value is parsed as a YAML
/// scalar, so `3e-4` is a number, `true` a bool and `runs/x` a string; numeric
/// segments index into lists (`curriculum.phases.0.steps=100`), and the index
/// just past the end appends (`data.sources.2.processed_dir=bird-train`).
pub fn apply_override(tree: &mut Value, assignment: &str) -> Result<()> {
    let fail = |message: String| TrainError::Override {
        assignment: assignment.to_string(),
        message,
    };
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| fail("expected KEY=VALUE, e.g. optimizer.lr=3e-4".into()))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(fail(
            "the key must be dotted names like optimizer.lr".into(),
        ));
    }
    let value: Value = serde_norway::from_str(raw)
        .map_err(|e| fail(format!("the value is not valid YAML: {e}")))?;
    let segments: Vec<&str> = key.split('.').collect();
    let mut node = tree;
    for (depth, segment) in segments.iter().enumerate() {
        let last = depth + 1 == segments.len();
        let walked = segments[..=depth].join(".");
        if node.is_null() {
            *node = Value::Mapping(Default::default());
        }
        node = match node {
            Value::Mapping(map) => {
                let k = Value::String((*segment).to_string());
                if last {
                    map.insert(k, value);
                    return Ok(());
                }
                map.entry(k).or_insert(Value::Null)
            }
            Value::Sequence(items) => {
                let index: usize = segment.parse().map_err(|_| {
                    fail(format!(
                        "`{walked}`: a list is indexed by number, not `{segment}`"
                    ))
                })?;
                let len = items.len();
                // The index one past the end appends an item (a new source).
                if index == len {
                    items.push(Value::Null);
                }
                let slot = items.get_mut(index).ok_or_else(|| {
                    fail(format!(
                        "`{walked}`: index {index} is past the list's {len} items \
                         (index {len} appends one)"
                    ))
                })?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => {
                return Err(fail(format!(
                    "`{}` is a single value, it has no `{segment}`",
                    segments[..depth].join(".")
                )))
            }
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
    }

    const MINIMAL: &str = r#"
run: {name: test}
model: {init_from: ckpt/t5-small}
data: {processed_dir: processed, max_source_tokens: 256, max_target_tokens: 128}
curriculum:
  phases:
    - {steps: 10, tiers: {simple: 1}}
    - {steps: 10, tiers: {Simple: 1, Moderate: 1, Complex: 1, "Highly Complex": 1}}
optimizer: {kind: adamw, lr: 3.0e-4}
schedule: {kind: cosine, warmup_steps: 5}
batch: {max_tokens: 4096}
training: {max_steps: 100}
eval: {every_steps: 50, val_sample_size: 64}
checkpoint: {every_steps: 50, keep_last: 2}
"#;

    fn parse(text: &str, overrides: &[&str]) -> Result<TrainConfig> {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        TrainConfig::from_yaml(text, Path::new("test.yaml"), &overrides)
    }

    #[test]
    fn committed_configs_parse_and_validate() {
        // Their database folders exist once the data is downloaded or sampled.
        let databases = tempfile::tempdir().unwrap();
        let set_databases = format!("data.databases={}", databases.path().display());
        for name in ["t5_finetune.yaml", "quickstart.yaml"] {
            let path = configs_dir().join(name);
            let err = TrainConfig::load(&path, &[]).unwrap_err().to_string();
            assert!(
                err.contains("data.databases") && err.contains("not a folder"),
                "{name}: {err}"
            );
            let config = TrainConfig::load(&path, std::slice::from_ref(&set_databases))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(config.eval.exec_sample > 0, "{name}");
            assert_eq!(
                config.eval.resolved_best_metric(),
                BestMetricKind::ExecAccuracy
            );
            let scheduled: Vec<Tier> = config
                .curriculum
                .phases
                .iter()
                .flat_map(|p| p.tiers.keys().copied())
                .collect();
            assert!(scheduled.contains(&Tier::HighlyComplex), "{name}");
        }
    }

    #[test]
    fn minimal_config_fills_defaults() {
        let c = parse(MINIMAL, &[]).unwrap();
        assert_eq!(c.run.run_dir(), PathBuf::from("runs/test"));
        assert_eq!(c.optimizer.betas, [0.9, 0.999]);
        assert_eq!(c.batch.grad_accum, 1);
        assert_eq!(c.training.resolved_dtype(), candle_core::DType::F32);
        assert_eq!(c.curriculum.phases[0].tiers[&Tier::Simple], 1.0);
        assert_eq!(c.curriculum.phase_at(0).0, 0);
        assert_eq!(c.curriculum.phase_at(10).0, 1);
        assert_eq!(c.curriculum.phase_at(1000).0, 1);
        let w = c.curriculum.phases[1].normalized_weights();
        assert_eq!(w.len(), 4);
        assert!((w[3].1 - 0.25).abs() < 1e-12 && w[3].0 == Tier::HighlyComplex);
    }

    #[test]
    fn overrides_are_type_aware() {
        let c = parse(
            MINIMAL,
            &[
                "optimizer.lr=1e-3",
                "optimizer.kind=adafactor",
                "training.seed=7",
                "run.name=other",
                "optimizer.adafactor_momentum=true",
                "curriculum.phases.0.steps=3",
                "eval.early_stopping_patience=4",
            ],
        )
        .unwrap();
        assert_eq!(c.optimizer.lr, 1e-3);
        assert_eq!(c.optimizer.kind, OptimizerKind::Adafactor);
        assert_eq!(c.training.seed, 7);
        assert_eq!(c.run.name, "other");
        assert!(c.optimizer.adafactor_momentum);
        assert_eq!(c.curriculum.phases[0].steps, 3);
        assert_eq!(c.eval.early_stopping_patience, Some(4));
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let err = parse(MINIMAL, &["optimizer.learning_rate=1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.yaml"), "{err}");
        assert!(
            err.contains("`optimizer.learning_rate`: unknown field"),
            "{err}"
        );
        let text = MINIMAL.replace(
            "batch: {max_tokens: 4096}",
            "batch: {max_tokens: 4096, bach: 1}",
        );
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(err.contains("`batch.bach`: unknown field"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let err = parse(MINIMAL, &["optimizer.lr=fast"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("optimizer.lr"), "{err}");
    }

    #[test]
    fn the_nonexistent_medium_tier_is_rejected() {
        let text = MINIMAL.replace("{simple: 1}", "{Medium: 1}");
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(
            err.contains("`Medium`") && err.contains("Highly Complex"),
            "{err}"
        );
        assert!(err.contains("curriculum.phases[0].tiers"), "{err}");
    }

    #[test]
    fn invalid_values_are_rejected_with_their_key() {
        for (set, key) in [
            ("optimizer.lr=0", "optimizer.lr"),
            ("optimizer.betas=[0.9, 1.5]", "optimizer.betas[1]"),
            ("training.dtype=f16", "training.dtype"),
            ("batch.max_tokens=100", "batch.max_tokens"),
            (
                "curriculum.phases.0.tiers={Simple: 0}",
                "curriculum.phases[0].tiers",
            ),
            ("model.architecture={vocab_size: 8}", "model"),
            ("training.max_steps=10", "curriculum.phases[1]"),
            ("checkpoint.every_steps=0", "checkpoint.every_steps"),
        ] {
            let err = parse(MINIMAL, &[set]).unwrap_err().to_string();
            assert!(err.contains(key), "{set}: {err}");
        }
    }

    #[test]
    fn architecture_rules_come_from_the_model_crate_keyed_here() {
        let shape = "model.architecture={vocab_size: 8, d_model: 4, d_kv: 2, d_ff: 8, \
                     num_layers: 1, num_heads: 2}";
        let base = ["model.init_from=null", "model.tokenizer=tok", shape];
        let c = parse(MINIMAL, &base).unwrap();
        let arch = c.model.architecture.unwrap();
        assert_eq!(arch.relative_attention_num_buckets, 32);
        assert_eq!(arch.dropout_rate, 0.1);
        assert_eq!(arch.feed_forward_proj, "relu");
        for (set, key, says) in [
            (
                "model.architecture.d_model=0",
                "model.architecture.d_model",
                "must be positive",
            ),
            (
                "model.architecture.dropout_rate=1.5",
                "model.architecture.dropout_rate",
                "1.5 is not in [0, 1)",
            ),
            (
                "model.architecture.feed_forward_proj=gated-wobble",
                "model.architecture.feed_forward_proj",
                "wobble",
            ),
        ] {
            let mut sets = base.to_vec();
            sets.push(set);
            let err = parse(MINIMAL, &sets).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{set}: {err}");
        }
    }

    #[test]
    fn every_schema_option_reaches_the_saved_input_format() {
        let c = parse(MINIMAL, &[]).unwrap();
        assert_eq!(
            c.data.input_format(),
            InputFormat {
                max_source_tokens: 256,
                max_target_tokens: 128,
                schema: CompactOptions::default(),
                external_knowledge: true,
                schema_symbols: false,
                symbols_in_schema_order: false,
            }
        );
        let c = parse(
            MINIMAL,
            &[
                "data.schema.sample_values=0",
                "data.schema.foreign_keys=false",
                "data.schema.external_knowledge=false",
            ],
        )
        .unwrap();
        let format = c.data.input_format();
        assert_eq!(format.schema.values, ValuesShown::None);
        assert!(!format.schema.foreign_keys && !format.external_knowledge);
        let c = parse(MINIMAL, &["data.schema.values_in_question_only=true"]).unwrap();
        assert_eq!(
            c.data.input_format().schema.values,
            ValuesShown::MatchingQuestion
        );
        assert!(!c.data.input_format().schema.retrieved_values);
        let c = parse(MINIMAL, &["data.schema.value_retrieval=true"]).unwrap();
        assert!(c.data.input_format().schema.retrieved_values);
        let c = parse(MINIMAL, &["data.schema.symbols=true"]).unwrap();
        assert!(c.data.input_format().schema_symbols);
    }

    #[test]
    fn schema_options_that_cannot_be_honoured_are_refused() {
        for (set, key, says) in [
            (
                "data.schema.format=create_table",
                "data.schema.format",
                "compact",
            ),
            (
                "data.schema.sample_values=1",
                "data.schema.sample_values",
                "0 (none) or 2",
            ),
            (
                "data.schema.sample_values=5",
                "data.schema.sample_values",
                "0 (none) or 2",
            ),
            (
                "data.schema.max_value_chars=20",
                "data.schema.max_value_chars",
                "40",
            ),
        ] {
            let err = parse(MINIMAL, &[set]).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{set}: {err}");
        }
        let err = parse(
            MINIMAL,
            &[
                "data.schema.sample_values=0",
                "data.schema.values_in_question_only=true",
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("values_in_question_only"), "{err}");
    }

    #[test]
    fn execution_accuracy_settings_are_checked_at_load() {
        let dbs = tempfile::tempdir().unwrap();
        let set_dbs = format!("data.databases={}", dbs.path().display());
        // Off by default; the best metric is then the validation loss.
        let c = parse(MINIMAL, &[]).unwrap();
        assert_eq!(c.eval.exec_sample, 0);
        assert_eq!(c.eval.resolved_best_metric(), BestMetricKind::ValLoss);
        assert_eq!(c.eval.resolved_max_new_tokens(&c.data), 128);
        let c = parse(
            MINIMAL,
            &[
                &set_dbs,
                "eval.exec_sample=50",
                "eval.rule=bird",
                "eval.max_new_tokens=64",
            ],
        )
        .unwrap();
        assert_eq!(c.eval.resolved_best_metric(), BestMetricKind::ExecAccuracy);
        assert_eq!(c.eval.rule, Rule::Bird);
        assert_eq!(c.eval.resolved_max_new_tokens(&c.data), 64);
        let c = parse(
            MINIMAL,
            &[&set_dbs, "eval.exec_sample=50", "eval.best_metric=val_loss"],
        )
        .unwrap();
        assert_eq!(c.eval.resolved_best_metric(), BestMetricKind::ValLoss);

        for (sets, key, says) in [
            (vec!["eval.exec_sample=5"], "data.databases", "required"),
            (
                vec!["eval.exec_sample=5", "data.databases=/nonexistent/dbs"],
                "data.databases",
                "/nonexistent/dbs is not a folder",
            ),
            (
                vec!["eval.best_metric=exec_accuracy"],
                "eval.best_metric",
                "exec_sample",
            ),
            (
                vec!["eval.best_metric=val_loss", "eval.val_sample_size=0"],
                "eval.best_metric",
                "val_sample_size",
            ),
            (
                vec!["eval.best_metric=accuracy"],
                "eval.best_metric",
                "unknown variant",
            ),
            (vec!["eval.rule=strict"], "eval.rule", "unknown variant"),
            (vec!["eval.timeout_s=0"], "eval.timeout_s", "positive"),
            (vec!["eval.timeout_s=1e20"], "eval.timeout_s", "at most"),
            (
                vec!["eval.max_new_tokens=0"],
                "eval.max_new_tokens",
                "at least 1",
            ),
            (vec!["eval.batch_size=0"], "eval.batch_size", "at least 1"),
        ] {
            let err = parse(MINIMAL, &sets).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{sets:?}: {err}");
        }
    }

    /// MINIMAL with two sources instead of `processed_dir`.
    fn two_sources() -> String {
        MINIMAL.replace(
            "data: {processed_dir: processed, max_source_tokens: 256, max_target_tokens: 128}",
            "data:
  sources:
    - {processed_dir: out/synsql, weight: 3}
    - {name: spider, processed_dir: out/spider_train}
  max_source_tokens: 256
  max_target_tokens: 128",
        )
    }

    #[test]
    fn one_processed_dir_is_one_source_of_weight_one() {
        let c = parse(MINIMAL, &[]).unwrap();
        let sources = c.data.sources();
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].name, DEFAULT_SOURCE_NAME);
        assert_eq!(sources[0].processed_dir, PathBuf::from("processed"));
        assert_eq!(sources[0].weight, 1.0);
        assert_eq!(sources[0].databases_key(), "data.databases");
    }

    #[test]
    fn sources_are_named_weighted_and_reached_by_overrides() {
        let text = two_sources();
        let c = parse(&text, &[]).unwrap();
        let sources = c.data.sources();
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["synsql", "spider"], "folder name unless named");
        assert_eq!((sources[0].weight, sources[1].weight), (3.0, 1.0));
        let dbs = tempfile::tempdir().unwrap();
        let c = parse(
            &text,
            &[
                "data.sources.1.weight=0.5",
                &format!("data.sources.1.databases={}", dbs.path().display()),
                "data.sources.0.name=sample",
                "eval.source=spider",
                "eval.exec_sample=10",
                "curriculum.phases.0.sources={spider: 0}",
            ],
        )
        .unwrap();
        let sources = c.data.sources();
        assert_eq!(sources[1].weight, 0.5);
        assert_eq!(sources[1].databases.as_deref(), Some(dbs.path()));
        assert_eq!(sources[0].name, "sample");
        assert_eq!(c.eval.source.as_deref(), Some("spider"));
        assert_eq!(c.curriculum.phases[0].sources["spider"], 0.0);
        // The index past the end appends a source.
        let c = parse(
            &text,
            &[
                "data.sources.2.processed_dir=out/bird_train",
                "data.sources.2.weight=2",
            ],
        )
        .unwrap();
        let sources = c.data.sources();
        assert_eq!(sources.len(), 3);
        assert_eq!(
            (sources[2].name.as_str(), sources[2].weight),
            ("bird_train", 2.0)
        );
        // A whole new list can be given too.
        let c = parse(
            &text,
            &["data.sources=[{processed_dir: a}, {processed_dir: b, weight: 2}]"],
        )
        .unwrap();
        assert_eq!(c.data.sources()[1].name, "b");
        // The resolved config reloads to the same value.
        let dir = tempfile::tempdir().unwrap();
        let path = c.save_resolved(dir.path()).unwrap();
        assert_eq!(TrainConfig::load(&path, &[]).unwrap(), c);
    }

    #[test]
    fn a_phase_without_tiers_takes_them_all() {
        let c = parse(&two_sources(), &["curriculum.phases.0.tiers={}"]).unwrap();
        assert!(c.curriculum.phases[0].normalized_weights().is_empty());
    }

    #[test]
    fn bad_sources_are_refused_naming_the_key() {
        let text = two_sources();
        let dbs = tempfile::tempdir().unwrap();
        let set_dbs = format!("data.sources.0.databases={}", dbs.path().display());
        for (sets, key, says) in [
            (vec!["data.processed_dir=p"], "data.sources", "not both"),
            (vec!["data.sources=[]"], "data.processed_dir", "required"),
            (
                vec!["data.sources.1.name=synsql"],
                "data.sources[1].name",
                "also the name of data.sources[0]",
            ),
            (
                vec!["data.sources.0.weight=-1"],
                "data.sources[0].weight",
                "not negative",
            ),
            (
                vec!["data.sources.0.weight=0", "data.sources.1.weight=0"],
                "data.sources",
                "positive weight",
            ),
            (
                vec!["data.sources.0.wieght=2"],
                "data.sources[0].wieght",
                "unknown field",
            ),
            (vec!["data.databases=dbs"], "data.databases", "its own"),
            (
                vec!["eval.source=bird"],
                "eval.source",
                "no source is named `bird`",
            ),
            (
                vec!["curriculum.phases.1.sources={bird: 1}"],
                "curriculum.phases[1].sources.bird",
                "no source",
            ),
            (
                vec!["curriculum.phases.1.sources={synsql: 0, spider: 0}"],
                "curriculum.phases[1].sources",
                "weight 0",
            ),
            (
                vec![&set_dbs, "eval.exec_sample=5", "eval.source=spider"],
                "data.sources[1].databases",
                "required",
            ),
            (
                vec![
                    "eval.exec_sample=5",
                    "data.sources.1.databases=/nonexistent/dbs",
                ],
                "data.sources[1].databases",
                "not a folder",
            ),
        ] {
            let err = parse(&text, &sets).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{sets:?}: {err}");
        }
        let c = parse(&text, &[&set_dbs, "eval.exec_sample=5"]).unwrap();
        assert_eq!(c.eval.exec_sample, 5, "some source has databases");
    }

    #[test]
    fn malformed_overrides_are_explained() {
        let err = parse(MINIMAL, &["optimizer.lr"]).unwrap_err().to_string();
        assert!(err.contains("KEY=VALUE"), "{err}");
        let err = parse(MINIMAL, &["optimizer.lr.x=1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("single value"), "{err}");
        let err = parse(MINIMAL, &["curriculum.phases.9.steps=1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("past the list"), "{err}");
    }

    #[test]
    fn the_resolved_config_reloads_to_the_same_value() {
        let c = parse(MINIMAL, &["optimizer.lr=5e-4"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = c.save_resolved(dir.path()).unwrap();
        assert_eq!(TrainConfig::load(&path, &[]).unwrap(), c);
    }

    #[test]
    fn missing_file_is_named() {
        let err = TrainConfig::load(Path::new("/nonexistent/x.yaml"), &[]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.yaml"));
    }
}
