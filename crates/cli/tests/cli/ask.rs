//! `text2sql ask` end to end with a tiny seeded random model on a sample
//! corpus: its SQL is gibberish, but the command must run, be deterministic,
//! and report a failing query in one line.

use std::path::Path;

use crate::common::{ask_stores, fails, s, sample_with_model, stdout_json, text2sql, RETAIL_DB};

#[test]
fn ask_prints_sql_deterministically_and_json_has_every_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let (sample, model) = sample_with_model(dir.path(), 50, 16, 11);
    let db = sample.join(RETAIL_DB);
    let tables = sample.join("tables.json");
    let base = ask_stores(&model, &db);
    let first = text2sql(&base);
    assert!(first.status.success(), "{first:?}");
    assert_eq!(text2sql(&base).stdout, first.stdout);

    let mut json_args = base.clone();
    json_args.extend(["--tables", s(&tables), "--beams", "3", "--json"]);
    let out = text2sql(&json_args);
    assert!(out.status.success(), "{out:?}");
    let json = stdout_json(&out);
    let candidates = json["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 3);
    assert_eq!(json["sql"], candidates[0]["sql"]);
    let input = json["input"].as_str().unwrap();
    assert!(input.starts_with("How many stores are there?"), "{input}");
    assert!(input.contains("retail_store_sales"), "{input}");

    // The exact input given raw gives the same greedy SQL.
    let raw = text2sql(&["ask", "--model", s(&model), "--raw-input", input, "--json"]);
    assert!(raw.status.success(), "{raw:?}");
    let raw = stdout_json(&raw);
    assert_eq!(raw["input"], json["input"]);
}

#[test]
fn run_reports_the_failing_sql_in_one_line_and_bad_paths_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (sample, model) = sample_with_model(dir.path(), 50, 16, 11);
    let db = sample.join(RETAIL_DB);
    let mut args = ask_stores(&model, &db);
    args.push("--run");
    let json_args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let out = text2sql(&json_args);
    let json = stdout_json(&out);
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

    let stderr = fails(&text2sql(&ask_stores(&model, Path::new("nowhere.sqlite"))));
    assert!(stderr.contains("nowhere.sqlite"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let stderr = fails(&text2sql(&[
        "ask",
        "--model",
        "no-model",
        "--raw-input",
        "x",
    ]));
    assert!(stderr.contains("no-model"), "{stderr}");
}
