use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::*;
use crate::{run_query, SandboxLimits, Value};

fn checksum(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn the_suite_covers_what_the_issue_lists() {
    let suite = hostile_suite().unwrap();
    assert!(suite.len() >= 60, "{}", suite.len());
    let find = |name: &str| suite.iter().find(|q| q.name == name).unwrap();
    assert_eq!(find("in_list_million").sql.matches(",1").count(), 1_000_000);
    assert!(find("megabytes_of_sql").sql.len() > 5_000_000);
    assert_eq!(find("invalid_utf8").bytes.last(), Some(&b'\''));
    assert!(std::str::from_utf8(&find("invalid_utf8").bytes).is_err());
    for attack in [
        "LIKE",
        "GLOB",
        "printf",
        "zeroblob",
        "randomblob",
        "replace",
        "substr",
    ] {
        assert!(suite.iter().any(|q| q.sql.contains(attack)), "{attack}");
    }
    for attack in ["ATTACH", "VACUUM INTO", "pragma_", "sqlite_", "ORDER BY"] {
        assert!(
            suite
                .iter()
                .any(|q| q.sql.to_uppercase().contains(&attack.to_uppercase())),
            "{attack}"
        );
    }
}

#[test]
fn the_sandbox_holds_against_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("target.sqlite");
    create_target_database(&db).unwrap();
    let before = checksum(&db);
    let limits = SandboxLimits {
        timeout: Duration::from_secs(1),
        ..SandboxLimits::default()
    };
    let mut failures = Vec::new();
    for query in hostile_suite().unwrap() {
        let started = Instant::now();
        let outcome = run_query(&db, &query.sql, &limits);
        let took = started.elapsed();
        let kind = outcome.as_ref().map_or_else(|e| e.kind(), |_| "ok");
        if !query.expect.iter().any(|e| e == kind) {
            failures.push(format!(
                "{}: {kind} ({outcome:?}), expected {:?}",
                query.name, query.expect
            ));
        }
        if took > limits.timeout + Duration::from_secs(1) {
            failures.push(format!("{}: took {took:?}", query.name));
        }
        let control = run_query(&db, CONTROL_QUERY, &limits).unwrap();
        assert_eq!(
            control.rows,
            vec![vec![Value::Integer(CONTROL_ANSWER)]],
            "after {}",
            query.name
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checksum(&db), before);
    let cwd = std::env::current_dir().unwrap();
    let created = created_files(&[dir.path(), &cwd, &std::env::temp_dir()]);
    assert!(created.is_empty(), "{created:?}");
}
