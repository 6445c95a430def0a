//! The published hostile suite, `crates/sql/data/hostile_sql.json`: SQL that
//! attacks the sandbox (writes, files, runaway time and memory, parser
//! depth), one query per entry with what it attacks and the outcomes that
//! count as holding. The sandbox, `eval`, `sql run` (the code path of
//! `ask --run`) and `serve`'s `/api/execute` are each tested against all of
//! it; every entry must be refused or cut off within its deadline + 1 s,
//! leave the database file unchanged, create no file, and leave the next
//! query answered.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The suite's text, as committed.
pub const SUITE_JSON: &str = include_str!("../../data/hostile_sql.json");

/// Every file an entry tries to create starts with this, so that a test can
/// look for any of them in one pass.
pub const CREATED_FILE_PREFIX: &str = "hostile-";

/// One hostile query.
#[derive(Debug, Clone)]
pub struct HostileQuery {
    pub name: String,
    /// What the query attacks, in a sentence.
    pub attacks: String,
    /// The bytes to send where the channel carries bytes (an HTTP body, a
    /// file): not always UTF-8.
    pub bytes: Vec<u8>,
    /// The query as text: [`Self::bytes`] with invalid UTF-8 replaced.
    pub sql: String,
    /// Outcomes that count as the sandbox holding: `refused`, `timeout`,
    /// `sql_error` (the kinds of [`crate::ExecError`]) or `ok`.
    pub expect: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    attacks: String,
    #[serde(default)]
    sql: Option<String>,
    #[serde(default)]
    sql_hex: Option<String>,
    /// `{"name": [text, times]}`: `{name}` in `sql` becomes `text` repeated,
    /// so that megabyte queries stay one line in the file.
    #[serde(default)]
    repeat: BTreeMap<String, (String, usize)>,
    expect: Vec<String>,
}

/// The suite file could not be read as a suite.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("hostile_sql.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("hostile_sql.json: entry `{name}`: {message}")]
    Entry { name: String, message: String },
}

const OUTCOMES: [&str; 4] = ["refused", "timeout", "sql_error", "ok"];

/// The suite, with repeats expanded.
pub fn hostile_suite() -> Result<Vec<HostileQuery>, SuiteError> {
    let entries: Vec<Entry> = serde_json::from_str(SUITE_JSON)?;
    entries.into_iter().map(expand).collect()
}

fn expand(entry: Entry) -> Result<HostileQuery, SuiteError> {
    let fail = |message: String| SuiteError::Entry {
        name: entry.name.clone(),
        message,
    };
    let bytes = match (&entry.sql, &entry.sql_hex) {
        (Some(sql), None) => {
            let mut sql = sql.clone();
            for (marker, (text, times)) in &entry.repeat {
                let placeholder = format!("{{{marker}}}");
                if !sql.contains(&placeholder) {
                    return Err(fail(format!(
                        "repeat `{marker}` has no {placeholder} in sql"
                    )));
                }
                sql = sql.replace(&placeholder, &text.repeat(*times));
            }
            sql.into_bytes()
        }
        (None, Some(hex)) => decode_hex(hex).ok_or_else(|| fail("sql_hex is not hex".into()))?,
        _ => return Err(fail("needs exactly one of sql and sql_hex".into())),
    };
    if let Some(unknown) = entry
        .expect
        .iter()
        .find(|e| !OUTCOMES.contains(&e.as_str()))
    {
        return Err(fail(format!(
            "unknown outcome `{unknown}` (one of {OUTCOMES:?})"
        )));
    }
    Ok(HostileQuery {
        sql: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
        name: entry.name,
        attacks: entry.attacks,
        expect: entry.expect,
    })
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The database the suite is written against: table `t (x INTEGER, name
/// TEXT)` with 3,000 rows, so that cross joins are large and every query
/// names real columns.
pub fn create_target_database(path: &Path) -> rusqlite::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "CREATE TABLE t (x INTEGER, name TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO t SELECT i, 'row ' || i FROM n;",
    )
}

/// The query every consumer's test sends after each hostile one, and the
/// answer it must get.
pub const CONTROL_QUERY: &str = "SELECT count(*) FROM t";
pub const CONTROL_ANSWER: i64 = 3000;

/// Files whose names start with [`CREATED_FILE_PREFIX`] in any of `folders`.
pub fn created_files(folders: &[&Path]) -> Vec<std::path::PathBuf> {
    folders
        .iter()
        .filter_map(|folder| std::fs::read_dir(folder).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(CREATED_FILE_PREFIX)
        })
        .map(|entry| entry.path())
        .collect()
}

#[cfg(test)]
mod tests;
