//! The two narrow seams between the web server and the rest of the system:
//! executing SQL ([`SqlRunner`], implemented by the `text2sql-sql` sandbox)
//! and writing SQL ([`SqlGenerator`], implemented by the T5 model). The
//! server never executes or generates SQL any other way.

use std::path::Path;
use std::time::Duration;

use text2sql_data::schema::DatabaseSchema;

/// Bounds for one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// The statement is interrupted when it runs longer than this.
    pub timeout: Duration,
    /// At most this many rows are returned; iteration stops at the cap and
    /// [`ResultSet::truncated`] says so.
    pub max_rows: usize,
}

/// The rows of one successful execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<String>,
    /// One JSON value per column: null, integer, real or text (blobs as the
    /// runner chooses to show them).
    pub rows: Vec<Vec<serde_json::Value>>,
    /// True when the query had more rows than [`RunLimits::max_rows`].
    pub truncated: bool,
    pub elapsed: Duration,
}

/// Why a statement did not run to completion.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    /// The sandbox would not run it: it writes, holds several statements,
    /// attaches a database, changes a pragma, ... The text says which.
    #[error("refused: {0}")]
    Refused(String),
    /// It ran past [`RunLimits::timeout`] and was interrupted.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    /// SQLite rejected it; the text is SQLite's message (`no such column: x`).
    #[error("{0}")]
    Sql(String),
    /// The database itself could not be used (missing, corrupt, locked): the
    /// server's fault, not the query's.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

/// Executes one SQL statement on one SQLite file, read-only and bounded.
/// Blocking: the server calls it from its worker pool.
pub trait SqlRunner: Send + Sync + 'static {
    fn run(&self, database: &Path, sql: &str, limits: RunLimits) -> Result<ResultSet, RunError>;
}

/// One SQL the generator proposes, with its score (a log-probability: higher
/// is better).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub sql: String,
    pub score: f64,
}

/// The generator failed as a whole (not: it produced SQL that fails).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct GenerateError {
    pub message: String,
}

impl GenerateError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Writes SQL for a question about a database: up to `beams` candidates, best
/// first. Blocking and CPU-heavy: the server calls it from its bounded
/// inference pool.
pub trait SqlGenerator: Send + Sync + 'static {
    fn generate(
        &self,
        question: &str,
        schema: &DatabaseSchema,
        beams: usize,
    ) -> Result<Vec<Candidate>, GenerateError>;

    /// The query shapes (`select count ( * ) from _`) the SQL for
    /// `question` is held to, best first; none when the generator holds it
    /// to none (a model served without `--skeletons-from`).
    fn query_shapes(&self, _question: &str, _schema: &DatabaseSchema) -> Vec<String> {
        Vec::new()
    }
}
