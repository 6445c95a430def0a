use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the server could not start or stopped abnormally. Request-level
/// failures are HTTP responses, not this type.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: SQLite error: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Data(#[from] text2sql_data::DataError),
    #[error(
        "{0}: no database found; expected one folder per database holding <db_id>/<db_id>.sqlite"
    )]
    NoDatabases(PathBuf),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("the server stopped: {0}")]
    Server(#[source] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}
