//! `text2sql ask` end to end with a tiny seeded random model on a sample
//! corpus: its SQL is gibberish, but the command must run, be deterministic,
//! and report a failing query in one line.

use std::path::Path;
use std::sync::Arc;

use text2sql_data::loader::ProcessedDataset;
use text2sql_data::prepare::Split;
use text2sql_data::schema::read_schema_from_sqlite;
use text2sql_sql::{SchemaIndex, Skeleton, SkeletonBank, SqlChecker};

use crate::common::{
    ask_stores, fails, prepare_sample, s, sample_with_model, stdout_json, text2sql, RETAIL_DB,
};

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

#[test]
fn skeletons_from_a_prepared_folder_hold_the_sql_to_a_retrieved_shape() {
    let dir = tempfile::tempdir().unwrap();
    let (sample, model) = sample_with_model(dir.path(), 200, 64, 11);
    let processed = dir.path().join("processed");
    prepare_sample(&sample, &processed, &["--split-by", "example"]);
    // A training question with a short query: the classifier learnt its
    // shape from it, so its shape is the one suggested.
    let data = ProcessedDataset::open(&processed).unwrap();
    let shape_of = |sql: &str| Skeleton::of_sql(sql).unwrap();
    let example = data
        .split(Split::Train)
        .iter()
        .map(Result::unwrap)
        .min_by_key(|e| (shape_of(&e.sql).items().len(), e.id))
        .unwrap();
    let db = sample
        .join("databases")
        .join(&example.db_id)
        .join(format!("{}.sqlite", example.db_id));
    let (schema, _) = read_schema_from_sqlite(&example.db_id, &db).unwrap();
    let (bank, _) = SkeletonBank::from_processed(&processed).unwrap();
    let suggested = bank.suggest(&example.question, &schema, 1);
    // Its class of shapes that run alike, as the bank spells it.
    assert_eq!(suggested.len(), 1);
    assert_eq!(suggested[0].canonical(), shape_of(&example.sql).canonical());

    let ask = |extra: &[&str]| {
        let mut args = vec!["ask", "--model", s(&model), "--db", s(&db)];
        args.extend(["--question", &example.question, "--json"]);
        args.extend(extra);
        let out = text2sql(&args);
        assert!(out.status.success(), "{out:?}");
        stdout_json(&out)["sql"].as_str().unwrap().to_string()
    };
    // The random model finishes no query, but what it writes held to the
    // shapes stays a beginning of the suggested one; free, it does not.
    let fits = |sql: &str| {
        SqlChecker::new(Arc::new(SchemaIndex::new(&schema)))
            .with_skeletons(suggested.clone())
            .push(sql)
            .is_ok()
    };
    let held = ask(&["--skeletons-from", s(&processed), "--skeletons", "1"]);
    assert!(fits(&held), "{held}");
    // Without the question's columns and literals preferred, still held.
    let unfilled = ask(&["--skeletons-from", s(&processed), "--no-fill-links"]);
    assert!(fits(&unfilled), "{unfilled}");
    // --json says which shapes decoding was held to.
    let mut args = vec!["ask", "--model", s(&model), "--db", s(&db), "--json"];
    args.extend([
        "--question",
        &example.question,
        "--skeletons-from",
        s(&processed),
    ]);
    let json = stdout_json(&text2sql(&args));
    assert_eq!(
        json["shapes"],
        serde_json::json!([suggested[0].to_string()])
    );
    let free = ask(&[]);
    assert!(!fits(&free), "{free}");

    let missing = dir.path().join("missing");
    let mut args = ask_stores(&model, &db);
    args.extend(["--skeletons-from", s(&missing)]);
    let out = text2sql(&args);
    let message = fails(&out);
    assert!(
        message.contains("--skeletons-from") && message.contains("missing"),
        "{message}"
    );
}
