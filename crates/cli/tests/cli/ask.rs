//! `text2sql ask` end to end with a tiny seeded random model on a sample
//! corpus: its SQL is gibberish, but the command must run, be deterministic,
//! and report a failing query in one line.

use std::path::{Path, PathBuf};

use crate::common::{random_model, sample_corpus, text2sql};

/// A sample corpus and a random model whose tokenizer was trained on it.
fn fixture(root: &Path) -> (PathBuf, PathBuf) {
    let sample = sample_corpus(root, 50);
    let model = root.join("model");
    random_model(&sample, &model, 16, 11);
    (sample, model)
}

#[test]
fn ask_prints_sql_deterministically_and_json_has_every_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let (sample, model) = fixture(dir.path());
    let db = sample.join("databases/retail_store_sales_0001/retail_store_sales_0001.sqlite");
    let tables = sample.join("tables.json");
    let base = [
        "ask",
        "--model",
        model.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--question",
        "How many stores are there?",
    ];
    let first = text2sql(&base);
    assert!(first.status.success(), "{first:?}");
    assert_eq!(text2sql(&base).stdout, first.stdout);

    let mut json_args = base.to_vec();
    json_args.extend([
        "--tables",
        tables.to_str().unwrap(),
        "--beams",
        "3",
        "--json",
    ]);
    let out = text2sql(&json_args);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let candidates = json["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 3);
    assert_eq!(json["sql"], candidates[0]["sql"]);
    let input = json["input"].as_str().unwrap();
    assert!(input.starts_with("How many stores are there?"), "{input}");
    assert!(input.contains("retail_store_sales"), "{input}");

    // The exact input given raw gives the same greedy SQL.
    let raw = text2sql(&[
        "ask",
        "--model",
        model.to_str().unwrap(),
        "--raw-input",
        input,
        "--json",
    ]);
    assert!(raw.status.success(), "{raw:?}");
    let raw: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(raw["input"], json["input"]);
}

#[test]
fn run_reports_the_failing_sql_in_one_line_and_bad_paths_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (sample, model) = fixture(dir.path());
    let db = sample.join("databases/retail_store_sales_0001/retail_store_sales_0001.sqlite");
    let args = [
        "ask",
        "--model",
        model.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--question",
        "How many stores are there?",
        "--run",
    ];
    let json_args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let out = text2sql(&json_args);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // A random model's SQL either runs (rows) or fails (an error), never both,
    // and the exit status says which, with or without --json.
    assert_ne!(json["result"].is_null(), json["error"].is_null(), "{json}");
    assert_eq!(out.status.success(), !json["result"].is_null(), "{out:?}");
    assert_eq!(text2sql(&args).status.code(), out.status.code());

    // A deadline too large for a Duration is refused with its flag, not a panic.
    let huge: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--timeout-s", "1e20"])
        .collect();
    let out = text2sql(&huge);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--timeout-s"));

    let missing = text2sql(&[
        "ask",
        "--model",
        model.to_str().unwrap(),
        "--db",
        "nowhere.sqlite",
        "--question",
        "x",
    ]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("nowhere.sqlite"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let no_model = text2sql(&["ask", "--model", "no-model", "--raw-input", "x"]);
    let stderr = String::from_utf8_lossy(&no_model.stderr);
    assert!(!no_model.status.success());
    assert!(stderr.contains("no-model"), "{stderr}");
}
