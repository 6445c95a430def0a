//! The training config: a YAML file (see `configs/*.yaml`). Its keys and
//! defaults are the types here; the checks they cannot express are in
//! `validate.rs`, and the `--set key.sub=value` overrides, applied onto the
//! YAML tree before it is deserialised, in `overrides.rs`.

mod overrides;
#[cfg(test)]
mod test_support;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_norway::Value;
use text2sql_data::schema::{SAMPLE_TEXT_MAX_CHARS, SAMPLE_VALUES_PER_COLUMN};
use text2sql_data::serialize::{CompactOptions, ValuesShown};
use text2sql_model::InputFormat;
pub use text2sql_sql::Rule;

use crate::error::{Result, TrainError};
pub use overrides::apply_override;

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
                schema_linking: self.schema.schema_linking,
            },
            external_knowledge: self.schema.external_knowledge,
            schema_symbols: self.schema.symbols,
            symbols_in_schema_order: self.schema.symbols_in_schema_order,
            natural_names: self.schema.natural_names,
            unalias_tables: self.schema.unalias_tables,
            shuffle_schema: self.schema.shuffle_schema,
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
    /// Label each name that has a symbol with the words a question would
    /// use (`<sym12> total horses` for `Total_Horses`).
    #[serde(default)]
    pub natural_names: bool,
    /// Mark each table and column whose name the question mentions (`@`
    /// all of its words, `~` some), as IRNet and RAT-SQL give their models
    /// schema-linking types.
    #[serde(default)]
    pub schema_linking: bool,
    /// Train the model to write table names where the gold SQL has table
    /// aliases (`SELECT singer.name FROM singer JOIN ...` for `SELECT
    /// T1.name FROM singer AS T1 JOIN ...`), as NatSQL does; self-joins
    /// keep theirs.
    #[serde(default)]
    pub unalias_tables: bool,
    /// Show each training example the tables, and each table's columns, in
    /// an order of its own (seeded by the example), so that a name's place
    /// and its symbol say nothing and the model must read the names;
    /// inference keeps the database's order.
    #[serde(default)]
    pub shuffle_schema: bool,
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
            natural_names: false,
            schema_linking: false,
            unalias_tables: false,
            shuffle_schema: false,
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
    /// Micro-batches computed at once, each on its own thread, their
    /// gradients then summed in micro-batch order: the step is the same
    /// whatever the number. More than one keeps both cores busy where one
    /// small model's matrix products cannot, at the cost of holding that
    /// many micro-batches' activations.
    #[serde(default = "default_one")]
    pub parallel_micro_batches: usize,
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
    /// `bf16`: the linear layers multiply bf16-rounded operands and sum in
    /// f32, on CPUs with AVX-512 BF16; weights, activations, gradients and
    /// the optimizer stay f32 (PyTorch's bf16 autocast).
    #[serde(default)]
    pub mixed_precision: MixedPrecision,
    /// A budget of training time in minutes (evaluations included, resumed
    /// sessions added up): training ends at the first step past it as at
    /// `max_steps` (evaluation, checkpoint, best model), so that a recipe
    /// sized for a fast CPU still ends in time on a slow one. The schedule
    /// and the curriculum stay those of `max_steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_minutes: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixedPrecision {
    /// Every product in the training dtype.
    #[default]
    None,
    /// bf16 products, f32 sums (`training.dtype` f32, CPU).
    Bf16,
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
}

#[cfg(test)]
mod tests {
    use super::test_support::{configs_dir, parse, two_sources, MINIMAL};
    use super::*;

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
                natural_names: false,
                unalias_tables: false,
                shuffle_schema: false,
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
        assert!(!c.data.input_format().schema.schema_linking);
        let c = parse(MINIMAL, &["data.schema.schema_linking=true"]).unwrap();
        assert!(c.data.input_format().schema.schema_linking);
        let c = parse(MINIMAL, &["data.schema.unalias_tables=true"]).unwrap();
        assert!(c.data.input_format().unalias_tables);
        let c = parse(MINIMAL, &["data.schema.shuffle_schema=true"]).unwrap();
        assert!(c.data.input_format().shuffle_schema);
        let c = parse(
            MINIMAL,
            &["data.schema.symbols=true", "data.schema.natural_names=true"],
        )
        .unwrap();
        assert!(c.data.input_format().natural_names);
        // Without symbols the model writes names as shown: refused.
        let error = parse(MINIMAL, &["data.schema.natural_names=true"]).unwrap_err();
        assert!(error.to_string().contains("data.schema.symbols"), "{error}");
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
    fn a_phase_without_tiers_takes_them_all() {
        let c = parse(&two_sources(), &["curriculum.phases.0.tiers={}"]).unwrap();
        assert!(c.curriculum.phases[0].normalized_weights().is_empty());
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
