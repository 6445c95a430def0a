//! The error type of the training crate.

use std::path::PathBuf;

/// Everything that can go wrong while configuring or running training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The YAML file could not be parsed or does not match the config schema.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    /// A `--set key.path=value` override that cannot be applied.
    #[error("override `{assignment}`: {message}")]
    Override { assignment: String, message: String },

    /// A config value that parses but is not allowed (key path in `key`).
    #[error("{path}: `{key}`: {message}")]
    InvalidValue {
        path: PathBuf,
        key: String,
        message: String,
    },

    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),

    /// A parameter took part in the optimizer but received no gradient from
    /// backward: a silent no-op for that weight, which is always a bug.
    #[error("parameter `{name}` received no gradient")]
    MissingGradient { name: String },

    /// Optimizer state does not match the parameters it is loaded for.
    #[error("optimizer state {path}: {message}")]
    OptimizerState { path: PathBuf, message: String },

    /// A loss or gradient norm that is NaN or infinite.
    #[error("{0}")]
    NonFinite(#[from] crate::guard::NonFiniteError),

    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("plot {path}: {message}")]
    Plot { path: PathBuf, message: String },

    #[error("batching: {0}")]
    Batch(String),

    /// The optimizer was used in a way that cannot work (e.g. a step
    /// without gradients).
    #[error("optimizer: {0}")]
    Optimizer(String),

    #[error(transparent)]
    Model(#[from] text2sql_model::ModelError),

    #[error("tokenizer: {0}")]
    Tokenizer(#[from] text2sql_model::tokenizer::TokenizerError),

    #[error(transparent)]
    Data(#[from] text2sql_data::DataError),

    /// Training data that cannot be used (unknown database, empty split).
    #[error("training data: {0}")]
    Dataset(String),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<text2sql_data::AtomicError> for TrainError {
    fn from(e: text2sql_data::AtomicError) -> Self {
        TrainError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
