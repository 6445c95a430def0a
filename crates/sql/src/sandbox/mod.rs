//! The one way this project runs SQL that a model or a person wrote: a
//! read-only connection, an authorizer that allows only reads, exactly one
//! statement, a deadline and a cancel handle, SQLite limits on length and
//! memory, and a row cap, all inside a worker process that is killed if the
//! deadline passes anyway ([`run_query`]). Every failure comes back as an
//! [`ExecError`] value.

mod authorizer;
mod pool;
mod protocol;
mod worker;

pub use pool::{QueryWorkers, WorkerCommand, GRACE};
pub use worker::{serve_worker_if_requested, WORKER_ENV};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, InterruptHandle, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::value::Value;

/// The longest deadline a query may be given: a day. Beyond it a deadline
/// is a mistake (`--timeout-s 1e20`), and `Duration` cannot hold every `f64`.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// A deadline given in seconds (a flag or a config value) was not usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("must be a positive number of seconds, at most {max}, got {0}", max = MAX_TIMEOUT.as_secs())]
pub struct InvalidTimeout(pub f64);

/// A query deadline from a number of seconds a user gave: finite, above zero
/// and at most [`MAX_TIMEOUT`]; the one check behind every `--timeout-s`.
pub fn timeout_from_secs(seconds: f64) -> Result<Duration, InvalidTimeout> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= MAX_TIMEOUT.as_secs_f64()) {
        return Err(InvalidTimeout(seconds));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| InvalidTimeout(seconds))
}

/// How far one query may go.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxLimits {
    /// Wall-clock deadline of one query, preparation and row fetching included.
    pub timeout: Duration,
    /// Stop reading rows after this many and mark the result `truncated`;
    /// `None` reads every row.
    pub max_rows: Option<usize>,
    /// Longest SQL text accepted, in bytes (`SQLITE_LIMIT_SQL_LENGTH`).
    pub max_sql_bytes: usize,
    /// Largest string or blob a query may build, in bytes (`SQLITE_LIMIT_LENGTH`).
    pub max_value_bytes: usize,
    /// Largest result read back, in bytes (text and blob lengths, 8 per
    /// number or NULL): a row cap alone lets 1,000 rows of 10 MB values
    /// through. Past it the query is refused ("the result is larger than
    /// ..."); `None` reads any size.
    pub max_result_bytes: Option<usize>,
    /// SQLite heap one query may use, in bytes. [`run_query`] runs each
    /// query alone in a worker process, so this bounds that one query
    /// (SQLite's heap limit is per process); a [`Sandbox`] used directly
    /// shares the process's limit with every other connection.
    pub max_memory_bytes: usize,
}

impl Default for SandboxLimits {
    /// Limits for serving people: 10 s, 10,000 rows, 100 kB of SQL, 10 MB
    /// values, 32 MB of results, 256 MB of SQLite memory.
    fn default() -> Self {
        SandboxLimits {
            timeout: Duration::from_secs(10),
            max_rows: Some(10_000),
            max_sql_bytes: 100_000,
            max_value_bytes: 10_000_000,
            max_result_bytes: Some(32_000_000),
            max_memory_bytes: 256_000_000,
        }
    }
}

impl SandboxLimits {
    /// Limits for scoring: the public scripts fetch every row and build
    /// values up to SQLite's 1 GB default, so the caps are high (one million
    /// rows, 100 MB values, 2 GB of SQLite memory) and only guard memory
    /// against runaway queries.
    pub fn for_eval(timeout: Duration) -> Self {
        SandboxLimits {
            timeout,
            max_rows: Some(1_000_000),
            max_value_bytes: 100_000_000,
            max_result_bytes: Some(1_000_000_000),
            max_memory_bytes: 2_000_000_000,
            ..SandboxLimits::default()
        }
    }
}

/// Why a query produced no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum ExecError {
    /// The sandbox would not run it (not a single read-only statement).
    #[error("refused: {0}")]
    Refused(String),
    /// The deadline passed before the last row was read.
    #[error("timed out after {0:.1} s")]
    Timeout(f64),
    /// Someone called [`CancelHandle::cancel`].
    #[error("cancelled")]
    Cancelled,
    /// SQLite rejected or failed the statement; the text is SQLite's message.
    #[error("SQL error: {0}")]
    #[serde(rename = "sql_error")]
    Sql(String),
    /// The database could not be opened.
    #[error("cannot open database {0}")]
    #[serde(rename = "open_error")]
    Open(String),
    /// No worker process could run the query (it could not start, or broke
    /// its protocol).
    #[error("SQL worker failed: {0}")]
    #[serde(rename = "worker_error")]
    Worker(String),
}

impl ExecError {
    /// A short stable name, the same as the `kind` field of its JSON:
    /// `refused`, `timeout`, `cancelled`, `sql_error`, `open_error`,
    /// `worker_error`.
    pub fn kind(&self) -> &'static str {
        match self {
            ExecError::Refused(_) => "refused",
            ExecError::Timeout(_) => "timeout",
            ExecError::Cancelled => "cancelled",
            ExecError::Sql(_) => "sql_error",
            ExecError::Open(_) => "open_error",
            ExecError::Worker(_) => "worker_error",
        }
    }
}

/// The rows of one query.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// The row cap stopped reading before the last row.
    pub truncated: bool,
    /// Time from preparing the statement to the last row read.
    #[serde(serialize_with = "serialize_ms")]
    pub elapsed: Duration,
}

fn serialize_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Stops the query running on a [`Sandbox`] from another thread.
#[derive(Clone)]
pub struct CancelHandle {
    interrupt: Arc<InterruptHandle>,
    cancelled: Arc<AtomicBool>,
}

impl CancelHandle {
    /// The running query (if any) fails with [`ExecError::Cancelled`].
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.interrupt.interrupt();
    }
}

/// SQLite's memory ceiling for the whole process (`sqlite3_hard_heap_limit64`):
/// SQLite has no per-connection memory limit, so one ceiling covers every
/// connection; a query that needs more fails with "out of memory".
pub const DEFAULT_HEAP_LIMIT_BYTES: i64 = 2 << 30;

static HEAP_LIMIT: Once = Once::new();

/// Sets SQLite's process-wide hard heap limit; the first [`Sandbox::open`]
/// sets [`DEFAULT_HEAP_LIMIT_BYTES`] unless this was called before.
pub fn set_sqlite_heap_limit(bytes: i64) {
    HEAP_LIMIT.call_once(|| {});
    // SAFETY: sqlite3_hard_heap_limit64 only stores an integer under SQLite's
    // own mutex; it is safe to call at any time from any thread.
    unsafe {
        rusqlite::ffi::sqlite3_hard_heap_limit64(bytes);
    }
}

fn ensure_heap_limit() {
    HEAP_LIMIT.call_once(|| {
        // SAFETY: as in set_sqlite_heap_limit.
        unsafe {
            rusqlite::ffi::sqlite3_hard_heap_limit64(DEFAULT_HEAP_LIMIT_BYTES);
        }
    });
}

/// A read-only connection to one database that runs one statement at a time
/// under [`SandboxLimits`].
pub struct Sandbox {
    conn: Connection,
    limits: SandboxLimits,
    path: PathBuf,
    cancelled: Arc<AtomicBool>,
    interrupt: Arc<InterruptHandle>,
    refusal: Arc<Mutex<Option<String>>>,
}

impl Sandbox {
    /// Opens `db_path` read-only. The file must exist; it is never written.
    pub fn open(db_path: &Path, limits: SandboxLimits) -> Result<Self, ExecError> {
        ensure_heap_limit();
        let open_error =
            |message: String| ExecError::Open(format!("{}: {message}", db_path.display()));
        if !db_path.is_file() {
            return Err(open_error("no such file".to_string()));
        }
        // Read-only, no URI parsing (a path cannot smuggle `?mode=rw`), no
        // shared cache; `immutable=1` is not used: plain read-only already
        // leaves the file byte-identical (tested) and still honours locks.
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn =
            Connection::open_with_flags(db_path, flags).map_err(|e| open_error(e.to_string()))?;
        let setup = |conn: &mut Connection| -> rusqlite::Result<()> {
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
            // Sorts, DISTINCT and materialised subqueries that outgrow the
            // page cache go to memory (bounded by the heap limit), never to
            // temporary files on the server's disk.
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            conn.pragma_update(None, "query_only", true)?;
            conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
            conn.set_limit(
                Limit::SQLITE_LIMIT_SQL_LENGTH,
                clamp_i32(limits.max_sql_bytes),
            )?;
            conn.set_limit(
                Limit::SQLITE_LIMIT_LENGTH,
                clamp_i32(limits.max_value_bytes),
            )?;
            Ok(())
        };
        setup(&mut conn).map_err(|e| open_error(e.to_string()))?;
        let refusal = Arc::new(Mutex::new(None));
        conn.authorizer(Some(authorizer::read_only(Arc::clone(&refusal))))
            .map_err(|e| open_error(e.to_string()))?;
        let interrupt = Arc::new(conn.get_interrupt_handle());
        Ok(Sandbox {
            conn,
            limits,
            path: db_path.to_path_buf(),
            cancelled: Arc::new(AtomicBool::new(false)),
            interrupt,
            refusal,
        })
    }

    /// The database this sandbox reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle that stops the running query from another thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            interrupt: Arc::clone(&self.interrupt),
            cancelled: Arc::clone(&self.cancelled),
        }
    }

    /// Runs `sql`, which must be exactly one read-only statement.
    pub fn query(&mut self, sql: &str) -> Result<QueryResult, ExecError> {
        // SQLite reads text up to the first NUL: it would run the part before
        // it, which is not the query the user sent.
        if sql.contains('\0') {
            return Err(ExecError::Refused(
                "the SQL contains a NUL byte".to_string(),
            ));
        }
        self.cancelled.store(false, Ordering::SeqCst);
        if let Ok(mut slot) = self.refusal.lock() {
            *slot = None;
        }
        let start = Instant::now();
        let deadline = start + self.limits.timeout;
        let timed_out = Arc::new(AtomicBool::new(false));
        {
            let timed_out = Arc::clone(&timed_out);
            let cancelled = Arc::clone(&self.cancelled);
            // Called every 1000 virtual-machine steps: returning true
            // interrupts the statement.
            self.conn
                .progress_handler(
                    1000,
                    Some(move || {
                        if cancelled.load(Ordering::Relaxed) {
                            return true;
                        }
                        if Instant::now() >= deadline {
                            timed_out.store(true, Ordering::Relaxed);
                            return true;
                        }
                        false
                    }),
                )
                .map_err(|e| ExecError::Sql(e.to_string()))?;
        }
        let outcome = self.run(sql, deadline, start, &timed_out);
        outcome.map_err(|error| self.classify(error, &timed_out))
    }

    fn run(
        &self,
        sql: &str,
        deadline: Instant,
        start: Instant,
        timed_out: &AtomicBool,
    ) -> Result<QueryResult, RunError> {
        let mut stmt = self.conn.prepare(sql).map_err(RunError::Sqlite)?;
        if !stmt.readonly() {
            return Err(RunError::Refused("the statement would write".to_string()));
        }
        let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let width = columns.len();
        let mut rows_out = Vec::new();
        let mut truncated = false;
        let mut result_bytes = 0usize;
        let mut rows = stmt.query([]).map_err(RunError::Sqlite)?;
        loop {
            if Instant::now() >= deadline {
                timed_out.store(true, Ordering::Relaxed);
                return Err(RunError::Deadline);
            }
            let Some(row) = rows.next().map_err(RunError::Sqlite)? else {
                break;
            };
            if self
                .limits
                .max_rows
                .is_some_and(|cap| rows_out.len() >= cap)
            {
                truncated = true;
                break;
            }
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                let cell = row.get_ref(i).map_err(RunError::Sqlite)?;
                // Counted before the copy: a `zeroblob` is small inside
                // SQLite and grows only when read.
                result_bytes = result_bytes.saturating_add(match cell {
                    ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes.len(),
                    _ => 8,
                });
                if let Some(cap) = self.limits.max_result_bytes {
                    if result_bytes > cap {
                        return Err(RunError::Refused(format!(
                            "the result is larger than {}",
                            human_bytes(cap)
                        )));
                    }
                }
                values.push(to_value(cell));
            }
            rows_out.push(values);
        }
        Ok(QueryResult {
            columns,
            rows: rows_out,
            truncated,
            elapsed: start.elapsed(),
        })
    }

    fn classify(&self, error: RunError, timed_out: &AtomicBool) -> ExecError {
        if timed_out.load(Ordering::Relaxed) {
            return ExecError::Timeout(self.limits.timeout.as_secs_f64());
        }
        if self.cancelled.load(Ordering::SeqCst) {
            return ExecError::Cancelled;
        }
        let refusal = self.refusal.lock().ok().and_then(|slot| slot.clone());
        match error {
            RunError::Refused(why) => ExecError::Refused(why),
            RunError::Deadline => ExecError::Timeout(self.limits.timeout.as_secs_f64()),
            RunError::Sqlite(e) => {
                if let Some(why) = refusal {
                    return ExecError::Refused(why);
                }
                match e {
                    rusqlite::Error::MultipleStatement => {
                        ExecError::Refused("more than one statement".to_string())
                    }
                    rusqlite::Error::Empty => ExecError::Refused("no SQL statement".to_string()),
                    rusqlite::Error::SqliteFailure(failure, _)
                        if failure.code == rusqlite::ErrorCode::OutOfMemory =>
                    {
                        ExecError::Refused(format!(
                            "the query needs more than {} of memory",
                            human_bytes(self.limits.max_memory_bytes)
                        ))
                    }
                    rusqlite::Error::SqliteFailure(_, Some(message)) => ExecError::Sql(message),
                    rusqlite::Error::SqlInputError { msg, .. } => ExecError::Sql(msg),
                    other => ExecError::Sql(other.to_string()),
                }
            }
        }
    }
}

enum RunError {
    Sqlite(rusqlite::Error),
    Refused(String),
    Deadline,
}

/// `32 MB`, `1.5 kB`: a size as a person reads it in an error message.
pub(crate) fn human_bytes(n: usize) -> String {
    let n = n as f64;
    let (value, unit) = if n >= 1e9 {
        (n / 1e9, "GB")
    } else if n >= 1e6 {
        (n / 1e6, "MB")
    } else if n >= 1e3 {
        (n / 1e3, "kB")
    } else {
        (n, "bytes")
    };
    if value.fract() == 0.0 {
        format!("{value} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

fn clamp_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Text is decoded as Python's `text_factory = lambda b: b.decode(errors="ignore")`
/// in the Spider scripts: invalid UTF-8 bytes are dropped.
fn to_value(cell: ValueRef<'_>) -> Value {
    match cell {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(bytes) => Value::Text(decode_ignoring_errors(bytes)),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    }
}

fn decode_ignoring_errors(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(error) => {
                let (valid, rest) = bytes.split_at(error.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let skip = error.error_len().unwrap_or(rest.len());
                bytes = &rest[skip..];
            }
        }
    }
}

/// Runs one query on `db_path` in a worker process of
/// [`QueryWorkers::shared`]: the way to run SQL nobody vetted. The answer
/// comes within `limits.timeout` + [`GRACE`] whatever the SQL does.
pub fn run_query(
    db_path: &Path,
    sql: &str,
    limits: &SandboxLimits,
) -> Result<QueryResult, ExecError> {
    QueryWorkers::shared().query(db_path, sql, limits)
}

#[cfg(test)]
mod tests;
