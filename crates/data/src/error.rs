use std::path::PathBuf;

/// Errors of the data stage. Each names the file and, where there is one, the
/// record and the field, so a user can find the bad input.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: invalid JSON at line {line}, column {column}: {message}")]
    Json {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: database #{index} ({db_id}), field `{field}`: {message}")]
    Schema {
        file: String,
        index: usize,
        db_id: String,
        field: String,
        message: String,
    },
    #[error("{file}: record #{index} (byte offset {offset}), field `{field}`: {message}")]
    Record {
        file: String,
        index: u64,
        offset: u64,
        field: String,
        message: String,
    },
    #[error("{path}: SQLite error: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl From<crate::atomic::AtomicError> for DataError {
    fn from(e: crate::atomic::AtomicError) -> Self {
        DataError::Io {
            path: e.path,
            source: e.source,
        }
    }
}
