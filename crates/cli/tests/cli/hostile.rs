//! The published hostile suite (`crates/sql/data/hostile_sql.json`) through
//! the binary: `sql run`, which is `ask --run`'s execution path, and `eval`.
//! Each entry must end within its deadline + 1 s with an outcome the suite
//! allows, the database must not change, and no file may appear. "Within"
//! counts from when the query could start: the time a trivial query takes
//! through the same command just before (process and worker start-up, which
//! a loaded CI machine stretches) is allowed on top.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use text2sql_sql::hostile::{create_target_database, created_files, hostile_suite};

use crate::common::{fails, ok, s};

const DEADLINE: Duration = Duration::from_secs(1);

fn target_database(root: &Path) -> PathBuf {
    let folder = root.join("target");
    std::fs::create_dir_all(&folder).unwrap();
    let db = folder.join("target.sqlite");
    create_target_database(&db).unwrap();
    db
}

/// How long `sql run` of a trivial query takes right now: starting the
/// program and its worker.
fn start_up(dir: &Path, db: &Path) -> Duration {
    let started = Instant::now();
    let out = run_in(dir, &["sql", "run", "--db", s(db), "--sql", "SELECT 1"]);
    ok(&out);
    started.elapsed()
}

fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_text2sql"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn sql_run_holds_against_every_hostile_query_with_and_without_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = target_database(dir.path());
    let before = std::fs::read(&db).unwrap();
    let mut failures = Vec::new();
    for query in hostile_suite().unwrap() {
        let file = dir.path().join("query.sql");
        std::fs::write(&file, &query.bytes).unwrap();
        let allowance = start_up(dir.path(), &db);
        let started = Instant::now();
        let args = [
            "--json",
            "sql",
            "run",
            "--db",
            s(&db),
            "--timeout-s",
            "1",
            s(&file),
        ];
        let out = run_in(dir.path(), &args);
        let took = started.elapsed();
        let kind = match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            Ok(reply) if reply["error"].is_null() => "ok".to_string(),
            Ok(reply) => reply["error"]["kind"].as_str().unwrap_or("?").to_string(),
            // Refused before it ran (a file that is not UTF-8), with a reason.
            Err(_) if !out.status.success() && !out.stderr.is_empty() => "refused".to_string(),
            Err(e) => format!("no JSON ({e})"),
        };
        if !query.expect.contains(&kind) {
            failures.push(format!(
                "{}: {kind}, expected {:?}",
                query.name, query.expect
            ));
        }
        if took > DEADLINE + Duration::from_secs(1) + allowance {
            failures.push(format!(
                "{}: took {took:?} ({allowance:?} to start)",
                query.name
            ));
        }
        if out.status.success() != (kind == "ok") {
            failures.push(format!("{}: exit {:?} for {kind}", query.name, out.status));
        }
        // The same exit status without --json (the quick entries suffice).
        if !query.expect.iter().any(|e| e == "timeout") {
            let plain = run_in(dir.path(), &args[1..]);
            if plain.status.code() != out.status.code() {
                failures.push(format!("{}: exit differs without --json", query.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the database changed"
    );
    let created = created_files(&[dir.path(), db.parent().unwrap(), &std::env::temp_dir()]);
    assert!(created.is_empty(), "{created:?}");
}

#[test]
fn eval_scores_every_hostile_prediction_wrong_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let db = target_database(dir.path());
    let before = std::fs::read(&db).unwrap();
    // One query per line: the suite's queries that are one line of UTF-8.
    let suite: Vec<_> = hostile_suite()
        .unwrap()
        .into_iter()
        .filter(|q| std::str::from_utf8(&q.bytes).is_ok() && !q.sql.contains('\n'))
        .collect();
    assert!(suite.len() >= 60);
    let predictions = dir.path().join("pred.sql");
    let gold = dir.path().join("gold.sql");
    let lines: Vec<&str> = suite.iter().map(|q| q.sql.as_str()).collect();
    std::fs::write(&predictions, lines.join("\n") + "\n").unwrap();
    std::fs::write(
        &gold,
        "SELECT count(*) FROM t\ttarget\n".repeat(suite.len()),
    )
    .unwrap();
    let args = [
        "--json",
        "eval",
        "--predictions",
        s(&predictions),
        "--gold",
        s(&gold),
        "--db-dir",
        s(dir.path()),
        "--timeout-s",
        "1",
    ];
    let out = run_in(dir.path(), &args);
    ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["total"], suite.len());
    assert_eq!(report["scored"], suite.len());
    assert_eq!(report["correct"], 0);
    assert_eq!(report["gold_errors"], 0);
    let timeouts = suite
        .iter()
        .filter(|q| q.expect.iter().all(|e| e == "timeout"))
        .count();
    assert!(report["timeouts"].as_u64().unwrap() >= timeouts as u64);
    // A prediction after a killed worker waits for a new one to start.
    let allowance = start_up(dir.path(), &db).as_secs_f64() * 1000.0;
    let slowest = report["prediction_latency"]["max_ms"].as_f64().unwrap();
    assert!(
        slowest <= 2000.0 + allowance,
        "slowest prediction took {slowest} ms ({allowance} ms to start)"
    );
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the database changed"
    );
    let created = created_files(&[dir.path(), db.parent().unwrap(), &std::env::temp_dir()]);
    assert!(created.is_empty(), "{created:?}");

    // A predictions file that is not UTF-8 is an error that names the file.
    std::fs::write(&predictions, b"SELECT \xff\n".repeat(suite.len())).unwrap();
    let out = run_in(dir.path(), &args);
    let stderr = fails(&out);
    assert!(stderr.contains("pred.sql"), "{stderr}");
}
