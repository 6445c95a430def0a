//! The production [`SqlRunner`]: every statement the server executes goes
//! through the `text2sql-sql` sandbox (read-only, reads-only authorizer, one
//! statement, deadline, row cap) in a worker process that is killed when the
//! deadline passes, so no query can hold a server thread past it.

use std::path::Path;

use text2sql_sql::{run_query, ExecError, SandboxLimits, Value};

use crate::backend::{ResultSet, RunError, RunLimits, SqlRunner};

/// Runs SQL in a fresh sandbox per request, in one of the shared worker
/// processes: opening a read-only SQLite connection costs well under a
/// millisecond, and a connection per request means no state can leak
/// between users.
#[derive(Debug, Default, Clone, Copy)]
pub struct SandboxRunner;

impl SqlRunner for SandboxRunner {
    fn run(&self, database: &Path, sql: &str, limits: RunLimits) -> Result<ResultSet, RunError> {
        let sandbox_limits = SandboxLimits {
            timeout: limits.timeout,
            max_rows: Some(limits.max_rows),
            ..SandboxLimits::default()
        };
        let result = run_query(database, sql, &sandbox_limits).map_err(|e| match e {
            // The reply names the database by its file name only: the
            // server's folders are nobody's business; the log keeps the path.
            ExecError::Open(message) => {
                tracing::warn!("{message}");
                let name = database
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                RunError::Unavailable(message.replace(&database.display().to_string(), &name))
            }
            ExecError::Timeout(_) => RunError::TimedOut(limits.timeout),
            other => to_run_error(other),
        })?;
        Ok(ResultSet {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(to_json).collect())
                .collect(),
            truncated: result.truncated,
            elapsed: result.elapsed,
        })
    }
}

fn to_run_error(error: ExecError) -> RunError {
    match error {
        ExecError::Refused(why) => RunError::Refused(why),
        ExecError::Timeout(seconds) => {
            RunError::TimedOut(std::time::Duration::from_secs_f64(seconds))
        }
        ExecError::Cancelled => RunError::Refused("cancelled".to_string()),
        ExecError::Sql(message) => RunError::Sql(message),
        ExecError::Open(message) => RunError::Unavailable(message),
        ExecError::Worker(message) => {
            tracing::error!("{message}");
            RunError::Unavailable("the SQL worker could not run the query".to_string())
        }
    }
}

fn to_json(value: Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => i.into(),
        // JSON has no NaN or infinity: show those as text rather than lose them.
        Value::Real(f) => serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| serde_json::Value::String(f.to_string())),
        Value::Text(s) => serde_json::Value::String(s),
        Value::Blob(bytes) => serde_json::Value::String(format!("<{} bytes>", bytes.len())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn database() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.sqlite");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL);
             INSERT INTO items VALUES (1, 'pen', 1.5), (2, 'book', 12.0), (3, 'lamp', NULL);",
        )
        .unwrap();
        (dir, path)
    }

    fn limits(max_rows: usize) -> RunLimits {
        RunLimits {
            timeout: Duration::from_secs(5),
            max_rows,
        }
    }

    #[test]
    fn reads_rows_as_json_and_applies_the_row_cap() {
        let (_dir, path) = database();
        let result = SandboxRunner
            .run(
                &path,
                "SELECT id, name, price FROM items ORDER BY id",
                limits(2),
            )
            .unwrap();
        assert_eq!(result.columns, vec!["id", "name", "price"]);
        assert_eq!(result.rows.len(), 2);
        assert!(result.truncated);
        assert_eq!(
            result.rows[0],
            vec![
                serde_json::json!(1),
                serde_json::json!("pen"),
                serde_json::json!(1.5)
            ]
        );
    }

    #[test]
    fn writes_are_refused_and_the_file_is_unchanged() {
        let (_dir, path) = database();
        let before = std::fs::read(&path).unwrap();
        for sql in [
            "DELETE FROM items",
            "DROP TABLE items",
            "SELECT 1; DELETE FROM items",
        ] {
            let err = SandboxRunner.run(&path, sql, limits(10)).unwrap_err();
            assert!(matches!(err, RunError::Refused(_)), "{sql}: {err:?}");
        }
        assert_eq!(before, std::fs::read(&path).unwrap());
    }

    #[test]
    fn sql_errors_and_missing_files_say_why() {
        let (dir, path) = database();
        let err = SandboxRunner
            .run(&path, "SELECT nme FROM items", limits(10))
            .unwrap_err();
        assert!(
            matches!(&err, RunError::Sql(m) if m.contains("nme")),
            "{err:?}"
        );
        let err = SandboxRunner
            .run(&dir.path().join("absent.sqlite"), "SELECT 1", limits(10))
            .unwrap_err();
        let folder = dir.path().display().to_string();
        assert!(
            matches!(&err, RunError::Unavailable(m) if m.contains("absent.sqlite") && !m.contains(&folder)),
            "{err:?}"
        );
    }

    #[test]
    fn runaway_queries_time_out() {
        let (_dir, path) = database();
        let sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r";
        let err = SandboxRunner
            .run(
                &path,
                sql,
                RunLimits {
                    timeout: Duration::from_millis(300),
                    max_rows: 10,
                },
            )
            .unwrap_err();
        assert!(matches!(err, RunError::TimedOut(_)), "{err:?}");
    }
}
