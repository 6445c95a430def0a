//! `text2sql eval` end to end, on Spider dev's real gold file and databases.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{fails, ok, s, shared, text2sql};

fn spider() -> Option<PathBuf> {
    shared("spider")
}

fn gold_lines(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("dev_gold.sql"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn scores_spider_predictions_and_writes_the_report_files() {
    let Some(root) = spider() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db_file = root.join("database/concert_singer/concert_singer.sqlite");
    let db_before = std::fs::read(&db_file).unwrap();
    let mut predictions: Vec<String> = gold_lines(&root)
        .iter()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    predictions[0] = "SELECT count(*) + 1 FROM singer".to_string();
    predictions[2] = "SELECT nope FROM singer".to_string();
    predictions[3] = "DROP TABLE singer".to_string();
    // Spider's test-suite rule removes DISTINCT and tolerates `> =`.
    predictions[5] = predictions[5].replacen("SELECT", "SELECT DISTINCT", 1);
    let preds = dir.path().join("pred.txt");
    std::fs::write(&preds, predictions.join("\n") + "\n").unwrap();
    let report = dir.path().join("report.json");
    let per_example = dir.path().join("examples.jsonl");
    let out = text2sql(&[
        "--json",
        "eval",
        "--predictions",
        s(&preds),
        "--gold",
        s(&root.join("dev_gold.sql")),
        "--db-dir",
        s(&root.join("database")),
        "--report",
        s(&report),
        "--per-example",
        s(&per_example),
    ]);
    ok(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rule"], "spider");
    assert_eq!(summary["total"], 1034);
    assert_eq!(summary["scored"], 972);
    assert_eq!(summary["no_database"], 62);
    assert_eq!(summary["correct"], 969);
    assert_eq!(summary["wrong_result"], 1);
    assert_eq!(summary["sql_errors"], 1);
    assert_eq!(summary["refused"], 1);
    assert_eq!(summary["by_hardness"].as_array().unwrap().len(), 4);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(written, summary);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&per_example)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1034);
    assert_eq!(lines[0]["verdict"], "wrong_result");
    assert_eq!(lines[2]["verdict"], "sql_error");
    assert_eq!(lines[2]["reason"], "SQL error: no such column: nope");
    assert_eq!(lines[3]["verdict"], "refused");
    assert_eq!(lines[5]["verdict"], "correct");
    assert!(lines
        .iter()
        .filter(|l| l["db_id"] == "wta_1")
        .all(|l| l["verdict"] == "no_database"));
    assert_eq!(
        std::fs::read(&db_file).unwrap(),
        db_before,
        "the database file changed"
    );
}

#[test]
fn bird_format_and_rule_on_spider_gold() {
    let Some(root) = spider() else { return };
    let dir = tempfile::tempdir().unwrap();
    let gold: Vec<String> = gold_lines(&root).into_iter().take(20).collect();
    let gold_path = dir.path().join("dev.sql");
    std::fs::write(&gold_path, gold.join("\n")).unwrap();
    let mut object = serde_json::Map::new();
    for (i, line) in gold.iter().enumerate() {
        let (sql, db) = line.rsplit_once('\t').unwrap();
        object.insert(
            i.to_string(),
            format!("{sql}\t----- bird -----\t{db}").into(),
        );
    }
    let preds = dir.path().join("predict_dev.json");
    std::fs::write(&preds, serde_json::to_string(&object).unwrap()).unwrap();
    let args = |rule: &'static str| {
        vec![
            "--json".to_string(),
            "eval".to_string(),
            "--format".to_string(),
            "bird".to_string(),
            "--rule".to_string(),
            rule.to_string(),
            "--predictions".to_string(),
            s(&preds).to_string(),
            "--gold".to_string(),
            s(&gold_path).to_string(),
            "--db-dir".to_string(),
            s(&root.join("database")).to_string(),
        ]
    };
    for rule in ["bird", "spider"] {
        let a = args(rule);
        let out = text2sql(&a.iter().map(String::as_str).collect::<Vec<_>>());
        ok(&out);
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["rule"], rule);
        assert_eq!(summary["accuracy"], 1.0);
        assert_eq!(summary["scored"], 20);
    }
    // A prediction that names another database than its gold line is an error.
    object.insert("3".to_string(), "SELECT 1\t----- bird -----\tcar_1".into());
    std::fs::write(&preds, serde_json::to_string(&object).unwrap()).unwrap();
    let a = args("bird");
    let out = text2sql(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = fails(&out);
    assert!(
        stderr.contains("prediction 3") && stderr.contains("car_1"),
        "{stderr}"
    );
}

#[test]
fn gold_json_with_difficulty_reports_per_tier() {
    let Some(root) = spider() else { return };
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<serde_json::Value> = gold_lines(&root)
        .iter()
        .take(6)
        .enumerate()
        .map(|(i, line)| {
            let (sql, db) = line.rsplit_once('\t').unwrap();
            let difficulty = if i < 4 { "simple" } else { "challenging" };
            serde_json::json!({"SQL": sql, "db_id": db, "difficulty": difficulty})
        })
        .collect();
    let gold = dir.path().join("dev.json");
    std::fs::write(&gold, serde_json::to_string(&records).unwrap()).unwrap();
    let preds = dir.path().join("pred.txt");
    let mut lines: Vec<String> = records
        .iter()
        .map(|r| r["SQL"].as_str().unwrap().to_string())
        .collect();
    lines[5] = "SELECT 0".to_string();
    std::fs::write(&preds, lines.join("\n")).unwrap();
    let out = text2sql(&[
        "--json",
        "eval",
        "--rule",
        "bird",
        "--predictions",
        s(&preds),
        "--gold",
        s(&gold),
        "--db-dir",
        s(&root.join("database")),
    ]);
    ok(&out);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tiers = summary["by_tier"].as_array().unwrap();
    assert_eq!(tiers[0]["name"], "simple");
    assert_eq!(
        (tiers[0]["examples"].as_u64(), tiers[0]["correct"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(tiers[1]["name"], "challenging");
    assert_eq!(
        (tiers[1]["examples"].as_u64(), tiers[1]["correct"].as_u64()),
        (Some(2), Some(1))
    );
}

/// `text2sql eval` of `preds` against `gold` (one line each, `gold` with
/// its tab and db_id), written under `dir`, whose databases are `dir`'s.
fn eval_lines(dir: &Path, gold: &str, preds: &str, extra: &[&str]) -> Output {
    let (gold_path, preds_path) = (dir.join("gold.sql"), dir.join("pred.txt"));
    std::fs::write(&gold_path, gold).unwrap();
    std::fs::write(&preds_path, preds).unwrap();
    let mut args = vec!["eval", "--predictions", s(&preds_path), "--gold"];
    args.extend([s(&gold_path), "--db-dir", s(dir)]);
    args.extend(extra);
    text2sql(&args)
}

#[test]
fn misaligned_or_malformed_inputs_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let misaligned = "SELECT 1\tdb\nSELECT 2\tdb\n";
    let stderr = fails(&eval_lines(dir.path(), misaligned, "SELECT 1\n", &[]));
    assert!(
        stderr.contains("1 predictions") && stderr.contains("2 gold queries"),
        "{stderr}"
    );

    let no_tab = "SELECT 1 no tab here\n";
    let stderr = fails(&eval_lines(dir.path(), no_tab, "SELECT 1\n", &[]));
    assert!(stderr.contains("gold.sql: line 1"), "{stderr}");

    for timeout in ["0", "1e20", "NaN"] {
        let timeout_flag = ["--timeout-s", timeout];
        let out = eval_lines(dir.path(), no_tab, "SELECT 1\n", &timeout_flag);
        // Exit status 1 with the flag named: no panic (101).
        assert_eq!(out.status.code(), Some(1), "{timeout}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--timeout-s"));
    }
}

#[test]
fn predictions_without_a_database_are_counted_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(eval_lines(
        dir.path(),
        "SELECT 1\tmissing_db\n",
        "SELECT 1\n",
        &[],
    ));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("no database: 1 of 1 examples"), "{table}");
}
