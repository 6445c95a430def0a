use std::path::PathBuf;

/// Errors of the model stage. Each names the file and, for checkpoints, the
/// tensor, so a user can tell which input is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: field `{field}`: {message}")]
    Config {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// Every tensor that is missing or has the wrong shape, all at once.
    #[error("{path}: {} tensor problem(s): {}", problems.len(), problems.join("; "))]
    Tensors {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    /// A processed dataset or schema the model reads (`predict_split`).
    #[error(transparent)]
    Data(#[from] text2sql_data::DataError),
    /// Text the tokenizer could not encode, or ids it could not decode.
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<text2sql_data::AtomicError> for ModelError {
    fn from(e: text2sql_data::AtomicError) -> Self {
        ModelError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
