use super::*;
use sha2::{Digest, Sha256};

fn fixture_db(dir: &Path) -> PathBuf {
    let path = dir.join("fixture.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (x INTEGER, name TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO t SELECT i, 'row ' || i FROM n;
         CREATE TABLE raw (b BLOB);
         INSERT INTO raw VALUES (CAST(X'61FF62' AS TEXT));",
    )
    .unwrap();
    path
}

fn checksum(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn fast_limits() -> SandboxLimits {
    limits_with_deadline(Duration::from_millis(500))
}

/// The default limits but for the deadline.
fn limits_with_deadline(timeout: Duration) -> SandboxLimits {
    SandboxLimits {
        timeout,
        ..SandboxLimits::default()
    }
}

#[test]
fn reads_rows_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let result = run_query(
        &db,
        "SELECT x, name FROM t WHERE x <= 2 ORDER BY x",
        &fast_limits(),
    )
    .unwrap();
    assert_eq!(result.columns, ["x", "name"]);
    assert_eq!(
        result.rows,
        vec![
            vec![Value::Integer(1), Value::Text("row 1".into())],
            vec![Value::Integer(2), Value::Text("row 2".into())],
        ]
    );
    assert!(!result.truncated);
    let info = run_query(&db, "PRAGMA table_info(t)", &fast_limits()).unwrap();
    assert_eq!(info.rows.len(), 2);
}

#[test]
fn invalid_utf8_text_drops_the_bad_bytes_like_python() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let result = run_query(&db, "SELECT b FROM raw", &fast_limits()).unwrap();
    assert_eq!(result.rows, vec![vec![Value::Text("ab".into())]]);
}

#[test]
fn adversarial_sql_is_refused_or_cut_off_and_the_file_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let before = checksum(&db);
    let refused = [
        "SELECT 1; DROP TABLE t",
        "SELECT 1; SELECT 2",
        "ATTACH DATABASE 'other.sqlite' AS other",
        "PRAGMA writable_schema = ON",
        "PRAGMA writable_schema",
        "PRAGMA journal_mode = DELETE",
        "WITH d AS (SELECT 1) DELETE FROM t",
        "INSERT INTO t VALUES (1, 'x')",
        "UPDATE t SET x = 0",
        "DELETE FROM t",
        "DROP TABLE t",
        "CREATE TABLE evil (x)",
        "CREATE TEMP TABLE evil (x)",
        "ALTER TABLE t ADD COLUMN y",
        "BEGIN",
        "VACUUM",
        "SELECT load_extension('/tmp/evil.so')",
        "",
        "-- only a comment",
    ];
    for sql in refused {
        let error = run_query(&db, sql, &fast_limits()).unwrap_err();
        assert!(matches!(error, ExecError::Refused(_)), "{sql}: {error:?}");
    }
    // A data-modifying CTE is not even SQLite syntax: it fails as SQL.
    let error = run_query(
        &db,
        "WITH d AS (DELETE FROM t RETURNING x) SELECT * FROM d",
        &fast_limits(),
    )
    .unwrap_err();
    assert!(matches!(error, ExecError::Sql(_)), "{error:?}");
    // randomblob(2e9) is beyond the length limit: an error, not 2 GB of memory.
    let error = run_query(&db, "SELECT length(randomblob(2e9))", &fast_limits()).unwrap_err();
    assert!(
        matches!(&error, ExecError::Sql(m) if m.contains("too big")),
        "{error:?}"
    );
    // A recursive CTE that never ends is stopped by the deadline...
    let forever =
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT count(*) FROM c";
    let error = run_query(&db, forever, &fast_limits()).unwrap_err();
    assert_eq!(error, ExecError::Timeout(0.5));
    // ...or by the row cap when it streams rows.
    let limits = SandboxLimits {
        max_rows: Some(100),
        ..fast_limits()
    };
    let endless_rows =
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT i FROM c";
    let result = run_query(&db, endless_rows, &limits).unwrap();
    assert!(result.truncated);
    assert_eq!(result.rows.len(), 100);
    // A cross join of 3000^3 rows.
    let cross = "SELECT count(*) FROM t a, t b, t c";
    let error = run_query(&db, cross, &fast_limits()).unwrap_err();
    assert_eq!(error.kind(), "timeout");
    assert_eq!(checksum(&db), before);
    assert!(!dir.path().join("other.sqlite").exists());
    assert!(!dir.path().join("fixture.sqlite-journal").exists());
}

#[test]
fn results_are_bounded_in_bytes_not_only_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let limits = SandboxLimits {
        max_result_bytes: Some(1_000_000),
        ..fast_limits()
    };
    // 20 rows of 100 kB blobs, each tiny inside SQLite until read.
    let err = run_query(&db, "SELECT zeroblob(100000) FROM t LIMIT 20", &limits).unwrap_err();
    assert_eq!(
        err,
        ExecError::Refused("the result is larger than 1 MB".to_string())
    );
    // Under the budget the same query runs.
    let ok = run_query(&db, "SELECT zeroblob(100000) FROM t LIMIT 5", &limits).unwrap();
    assert_eq!(ok.rows.len(), 5);
}

#[test]
fn temporary_storage_stays_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let mut sandbox = Sandbox::open(&db, fast_limits()).unwrap();
    // The sandbox's authorizer refuses PRAGMA; the test reads it without.
    sandbox
        .conn
        .authorizer(None::<fn(rusqlite::hooks::AuthContext<'_>) -> rusqlite::hooks::Authorization>)
        .unwrap();
    let temp_store: i64 = sandbox
        .conn
        .pragma_query_value(None, "temp_store", |row| row.get(0))
        .unwrap();
    assert_eq!(temp_store, 2, "2 = MEMORY");
}

#[test]
fn sql_errors_carry_sqlites_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let error = run_query(&db, "SELECT nope FROM t", &fast_limits()).unwrap_err();
    assert_eq!(error, ExecError::Sql("no such column: nope".to_string()));
    let long = format!("SELECT {}", "1 + ".repeat(50_000) + "1");
    let error = run_query(&db, &long, &fast_limits()).unwrap_err();
    assert_eq!(error.kind(), "sql_error");
}

#[test]
fn a_missing_database_is_an_open_error() {
    let error = run_query(
        Path::new("/nonexistent/x.sqlite"),
        "SELECT 1",
        &fast_limits(),
    )
    .unwrap_err();
    assert_eq!(error.kind(), "open_error");
}

#[test]
fn cancel_stops_a_running_query() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let limits = limits_with_deadline(Duration::from_secs(600));
    let mut sandbox = Sandbox::open(&db, limits).unwrap();
    let handle = sandbox.cancel_handle();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        handle.cancel();
    });
    let error = sandbox
        .query("SELECT count(*) FROM t a, t b, t c")
        .unwrap_err();
    canceller.join().unwrap();
    assert_eq!(error, ExecError::Cancelled);
    // The sandbox stays usable after a cancel.
    let result = sandbox.query("SELECT count(*) FROM t").unwrap();
    assert_eq!(result.rows, vec![vec![Value::Integer(3000)]]);
}

/// The query of issue #13: LIKE matches inside one SQLite step, which the
/// progress handler never sees; only killing its worker stops it.
const LIKE_BOMB: &str =
    "SELECT printf('%.*c', 5000000, 'a') LIKE '%' || printf('%.*c', 20000, 'a') || 'b'";

#[test]
fn a_query_sqlite_cannot_interrupt_ends_by_its_deadline_and_the_next_one_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let limits = limits_with_deadline(Duration::from_secs(1));
    let glob_bomb =
        "SELECT printf('%.*c', 5000000, 'a') GLOB '*' || printf('%.*c', 20000, 'a') || 'b'";
    for bomb in [LIKE_BOMB, glob_bomb] {
        let started = Instant::now();
        let error = run_query(&db, bomb, &limits).unwrap_err();
        let took = started.elapsed();
        assert_eq!(error, ExecError::Timeout(1.0), "{bomb}");
        assert!(took < limits.timeout + Duration::from_secs(1), "{took:?}");
        let result = run_query(&db, "SELECT count(*) FROM t", &limits).unwrap();
        assert_eq!(result.rows, vec![vec![Value::Integer(3000)]]);
    }
}

#[test]
fn memory_is_bounded_per_query_not_per_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let small = SandboxLimits {
        max_memory_bytes: 5_000_000,
        ..limits_with_deadline(Duration::from_secs(20))
    };
    // A DISTINCT over 20 MB of blobs, kept in memory (temp_store = MEMORY).
    let heavy = "SELECT count(*) FROM (SELECT DISTINCT randomblob(1000) FROM t a, t b LIMIT 20000)";
    let (sender, receiver) = std::sync::mpsc::channel();
    let heavy_run = {
        let db = db.clone();
        std::thread::spawn(move || {
            let outcome = run_query(&db, heavy, &small);
            sender.send(()).unwrap();
            outcome
        })
    };
    // While it runs and fails, other queries on other workers are unharmed.
    let mut answered = 0;
    while receiver.try_recv().is_err() {
        let result = run_query(&db, "SELECT count(*) FROM t", &fast_limits()).unwrap();
        assert_eq!(result.rows, vec![vec![Value::Integer(3000)]]);
        answered += 1;
    }
    assert!(answered > 0);
    let error = heavy_run.join().unwrap().unwrap_err();
    assert_eq!(
        error,
        ExecError::Refused("the query needs more than 5 MB of memory".to_string())
    );
    // The same query with room enough runs.
    let roomy = SandboxLimits {
        max_memory_bytes: 200_000_000,
        ..limits_with_deadline(Duration::from_secs(60))
    };
    let result = run_query(&db, heavy, &roomy).unwrap();
    assert_eq!(result.rows, vec![vec![Value::Integer(20_000)]]);
}

#[test]
fn a_program_that_is_not_a_worker_is_a_clear_error() {
    let workers = QueryWorkers::new(WorkerCommand::program("true", []), 1);
    let error = workers
        .query(Path::new("/nonexistent.sqlite"), "SELECT 1", &fast_limits())
        .unwrap_err();
    assert_eq!(error.kind(), "worker_error");
    assert!(
        error.to_string().contains("serve_worker_if_requested"),
        "{error}"
    );
}

#[test]
fn the_json_kind_of_an_error_is_its_kind() {
    for error in [
        ExecError::Refused("x".into()),
        ExecError::Timeout(1.0),
        ExecError::Cancelled,
        ExecError::Sql("x".into()),
        ExecError::Open("x".into()),
        ExecError::Worker("x".into()),
    ] {
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json["kind"], error.kind(), "{error:?}");
    }
}
