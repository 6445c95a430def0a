//! End-to-end tests of `text2sql prepare` on small corpora written here and
//! on the real Spider dev set.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};
use text2sql_data::loader::ProcessedDataset;
use text2sql_data::prepare::Split;
use text2sql_data::reader::Tier;

use crate::common::{db_ids, fails, ok, s, shared, text2sql};

const TIERS: [&str; 4] = ["Simple", "Moderate", "Complex", "Highly Complex"];

fn table_entry(db: &str) -> Value {
    json!({
        "db_id": db,
        "ddls": [format!("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")],
        "table_names": ["items"],
        "table_names_original": ["items"],
        "column_names": [[-1, "*"], [0, "the id"], [0, "the name"]],
        "column_names_original": [[-1, "*"], [0, "id"], [0, "name"]],
        "column_types": ["text", "INTEGER", "TEXT"],
        "primary_keys": [1],
        "foreign_keys": []
    })
}

fn record(i: usize, databases: usize) -> Value {
    json!({
        "db_id": format!("db{}", i % databases),
        "sql_complexity": TIERS[(i * 7) % 4],
        "question_style": "Formal",
        "question": format!("How many items are named \"n{i}\"?"),
        "external_knowledge": if i.is_multiple_of(3) { "" } else { "names are unique" },
        "cot": format!("step one\nstep two for {i}"),
        "sql": format!("SELECT count(*)\nFROM items -- count\nWHERE name = 'n{i}'"),
    })
}

/// A SynSQL-format corpus: `data.json` (records as given, each on its own
/// line) and `tables.json` for `databases` databases.
fn write_corpus(dir: &Path, records: &[String], databases: usize) -> (PathBuf, PathBuf) {
    let data = dir.join("data.json");
    let tables = dir.join("tables.json");
    std::fs::write(&data, format!("[\n{}\n]\n", records.join(",\n"))).unwrap();
    let entries: Vec<Value> = (0..databases)
        .map(|d| table_entry(&format!("db{d}")))
        .collect();
    std::fs::write(&tables, serde_json::to_string(&entries).unwrap()).unwrap();
    (data, tables)
}

/// A temporary folder with `n` good records over `databases` databases
/// written in it: (folder, data, tables, the output `prepare` is to make).
fn good_corpus(n: usize, databases: usize) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (data, tables) = write_corpus(dir.path(), &good_records(n, databases), databases);
    let out = dir.path().join("out");
    (dir, data, tables, out)
}

fn good_records(n: usize, databases: usize) -> Vec<String> {
    (0..n).map(|i| record(i, databases).to_string()).collect()
}

fn run_prepare(data: &Path, tables: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "--quiet",
        "prepare",
        "--data",
        s(data),
        "--tables",
        s(tables),
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    text2sql(&args)
}

#[test]
fn output_is_identical_for_any_thread_count_and_reads_back() {
    let (dir, data, tables, _) = good_corpus(6000, 40);
    let one = dir.path().join("one");
    let four = dir.path().join("four");
    ok(&run_prepare(&data, &tables, &one, &["--threads", "1"]));
    ok(&run_prepare(&data, &tables, &four, &["--threads", "4"]));
    for file in [
        "train.parquet",
        "val.parquet",
        "schemas.parquet",
        "manifest.json",
    ] {
        let a = std::fs::read(one.join(file)).unwrap();
        let b = std::fs::read(four.join(file)).unwrap();
        assert!(a == b, "{file} differs between 1 and 4 threads");
    }

    let dataset = ProcessedDataset::open(&one).unwrap();
    let manifest = dataset.manifest();
    assert_eq!(manifest.records.kept, 6000);
    let mut ids = BTreeSet::new();
    for split in [Split::Train, Split::Val] {
        for example in dataset.split(split).iter() {
            let example = example.unwrap();
            let source = record(example.id as usize, 40);
            assert_eq!(example.question, source["question"].as_str().unwrap());
            assert_eq!(example.sql, source["sql"].as_str().unwrap());
            assert_eq!(example.db_id, source["db_id"].as_str().unwrap());
            assert_eq!(
                example.tier.map(Tier::as_str),
                source["sql_complexity"].as_str()
            );
            assert_eq!(example.cot, None, "cot is dropped without --keep-cot");
            assert!(ids.insert(example.id), "id {} twice", example.id);
        }
    }
    assert_eq!(ids.len(), 6000, "every record once");
    let schemas = dataset.schemas().unwrap();
    assert_eq!(schemas.len(), 40);
    assert!(schemas["db3"].compact_schema.contains("items : id , name"));
    assert!(schemas["db3"].omnisql_ddl.contains("CREATE TABLE items"));
}

#[test]
fn database_split_keeps_each_database_on_one_side() {
    let (dir, data, tables, out) = good_corpus(3000, 100);
    ok(&run_prepare(&data, &tables, &out, &["--val-ratio", "0.2"]));
    let dataset = ProcessedDataset::open(&out).unwrap();
    let train = db_ids(&dataset, Split::Train);
    let val = db_ids(&dataset, Split::Val);
    assert!(!val.is_empty() && !train.is_empty());
    assert!(train.is_disjoint(&val), "a database on both sides");
    assert_eq!(train.len() + val.len(), 100);
    assert_eq!(dataset.manifest().splits.val.databases, val.len() as u64);

    // Another seed gives another split; --split-by example mixes databases.
    let other = dir.path().join("other");
    ok(&run_prepare(
        &data,
        &tables,
        &other,
        &["--val-ratio", "0.2", "--seed", "7"],
    ));
    assert_ne!(
        db_ids(&ProcessedDataset::open(&other).unwrap(), Split::Val),
        val
    );
    let by_example = dir.path().join("by_example");
    ok(&run_prepare(
        &data,
        &tables,
        &by_example,
        &["--split-by", "example", "--val-ratio", "0.2"],
    ));
    let dataset = ProcessedDataset::open(&by_example).unwrap();
    assert!(!db_ids(&dataset, Split::Train).is_disjoint(&db_ids(&dataset, Split::Val)));
    let val_rows = dataset.split(Split::Val).len();
    assert!(
        (450..750).contains(&val_rows),
        "{val_rows} val rows of 3000 at 0.2"
    );
}

#[test]
fn train_row_groups_hold_one_tier_each() {
    let (_dir, data, tables, out) = good_corpus(2000, 10);
    ok(&run_prepare(&data, &tables, &out, &["--val-ratio", "0"]));
    let dataset = ProcessedDataset::open(&out).unwrap();
    let train = dataset.split(Split::Train);
    assert_eq!(train.len(), 2000);
    for tier in Tier::ALL {
        let rows: Vec<_> = train.iter_tier(tier).map(|e| e.unwrap()).collect();
        assert_eq!(rows.len() as u64, train.tier_len(Some(tier)));
        assert_eq!(rows.len(), 500);
        assert!(rows.iter().all(|e| e.tier == Some(tier)));
        assert!(
            rows.windows(2).all(|w| w[0].id < w[1].id),
            "source order kept"
        );
    }
    let third = train.iter().nth(777).unwrap().unwrap();
    assert_eq!(train.get(777).unwrap(), third);
    assert!(train.get(2000).is_err());
}

/// Writes a corpus with one bad record at index 2; returns the error line,
/// the data file's path and its text.
fn error_for(bad: &str) -> (String, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut records = good_records(5, 2);
    records[2] = bad.to_string();
    let (data, tables) = write_corpus(dir, &records, 2);
    let out = dir.join("out");
    let output = run_prepare(&data, &tables, &out, &[]);
    assert!(!output.status.success(), "{bad} was accepted");
    assert!(!out.exists(), "no output after an error");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| text2sql_data::atomic::is_temporary(&n.to_string_lossy()))
        .collect();
    assert!(leftovers.is_empty(), "partial folder left: {leftovers:?}");
    (
        String::from_utf8_lossy(&output.stderr).into_owned(),
        data.display().to_string(),
        std::fs::read_to_string(&data).unwrap(),
    )
}

#[test]
fn each_bad_record_stops_with_file_record_offset_and_field() {
    let good = record(2, 2);
    let with = |key: &str, value: Value| {
        let mut r = good.clone();
        r[key] = value;
        r.to_string()
    };
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("question");
    let cases = [
        (missing.to_string(), "question", "missing field"),
        (with("sql", json!(42)), "sql", "expected a string"),
        (
            with("db_id", json!("nowhere")),
            "db_id",
            "not in the tables file",
        ),
        (
            with("sql_complexity", json!("Medium")),
            "sql_complexity",
            "unknown complexity",
        ),
    ];
    for (bad, field, message) in cases {
        let (err, data, text) = error_for(&bad);
        let offset = text.find(&bad).unwrap();
        assert!(err.contains(&data), "{err}");
        assert!(err.contains("record #2"), "{err}");
        assert!(err.contains(&format!("byte offset {offset}")), "{err}");
        assert!(err.contains(&format!("field `{field}`")), "{err}");
        assert!(err.contains(message), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn truncated_files_and_trailing_garbage_stop_unless_skipped() {
    let (_dir, data, tables, out) = good_corpus(5, 2);
    let full = std::fs::read_to_string(&data).unwrap();

    let cut = full.rfind("SELECT").unwrap();
    std::fs::write(&data, &full[..cut]).unwrap();
    let err = fails(&run_prepare(&data, &tables, &out, &[]));
    assert!(
        err.contains("record #4") && err.contains("truncated"),
        "{err}"
    );
    let output = run_prepare(&data, &tables, &out, &["--skip-invalid", "--json"]);
    ok(&output);
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(manifest["invalid"]["truncated"], 1);
    assert_eq!(manifest["records"]["kept"], 4);

    std::fs::write(&data, format!("{full}\n{{\"extra\": 1}}")).unwrap();
    let err = fails(&run_prepare(&data, &tables, &out, &["--overwrite"]));
    assert!(err.contains("after the closing `]`"), "{err}");
    assert!(
        err.contains(&format!("byte offset {}", full.len() + 1)),
        "{err}"
    );
}

#[test]
fn skip_invalid_counts_every_cause() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = good_records(20, 2);
    let good = record(0, 2);
    let mut missing = good.clone();
    missing
        .as_object_mut()
        .unwrap()
        .remove("external_knowledge");
    let mut set = |i: usize, key: &str, value: Value| {
        let mut r = good.clone();
        r[key] = value;
        records[i] = r.to_string();
    };
    set(1, "db_id", json!("ghost"));
    set(2, "db_id", json!("ghost2"));
    set(3, "question", json!(["not", "a string"]));
    set(4, "sql_complexity", json!("Medium"));
    set(5, "sql", json!(""));
    records[6] = missing.to_string();
    records[7] = "{\"db_id\": \"db0\", oops}".to_string();
    let (data, tables) = write_corpus(dir.path(), &records, 2);
    let out = dir.path().join("out");
    let output = run_prepare(&data, &tables, &out, &["--skip-invalid", "--json"]);
    ok(&output);
    let manifest: Value = serde_json::from_slice(&output.stdout).unwrap();
    let invalid: BTreeMap<String, u64> =
        serde_json::from_value(manifest["invalid"].clone()).unwrap();
    let expected: BTreeMap<String, u64> = [
        ("unknown_db_id", 2),
        ("wrong_type", 1),
        ("unknown_complexity", 1),
        ("empty_field", 1),
        ("missing_field", 1),
        ("malformed_json", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(invalid, expected);
    assert_eq!(manifest["records"]["read"], 20);
    assert_eq!(manifest["records"]["invalid"], 7);
    assert_eq!(manifest["records"]["kept"], 13);
}

#[test]
fn subset_is_seeded_exact_and_stratified() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<String> = (0..1000)
        .map(|i| {
            let mut r = record(i, 10);
            // 60% Simple, 30% Moderate, 10% Complex.
            r["sql_complexity"] = json!(match i % 10 {
                0..=5 => "Simple",
                6..=8 => "moderate",
                _ => "COMPLEX",
            });
            r.to_string()
        })
        .collect();
    let (data, tables) = write_corpus(dir.path(), &records, 10);
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    ok(&run_prepare(
        &data,
        &tables,
        &a,
        &["--subset-size", "100", "--keep-cot"],
    ));
    ok(&run_prepare(
        &data,
        &tables,
        &b,
        &["--subset-size", "100", "--keep-cot"],
    ));
    let dataset = ProcessedDataset::open(&a).unwrap();
    let m = dataset.manifest();
    assert_eq!(m.records.kept, 100);
    assert_eq!(m.records.read, 1000);
    let mut tiers: BTreeMap<String, u64> = BTreeMap::new();
    for split in [&m.splits.train, &m.splits.val] {
        for (tier, n) in &split.tiers {
            *tiers.entry(tier.clone()).or_default() += n;
        }
    }
    assert_eq!(tiers["Simple"], 60);
    assert_eq!(tiers["Moderate"], 30);
    assert_eq!(tiers["Complex"], 10);
    assert_eq!(
        std::fs::read(a.join("train.parquet")).unwrap(),
        std::fs::read(b.join("train.parquet")).unwrap()
    );
    let example = dataset.split(Split::Train).get(0).unwrap();
    assert!(
        example.cot.unwrap().starts_with("step one"),
        "--keep-cot keeps cot"
    );
}

#[test]
fn existing_output_is_kept_without_overwrite() {
    let (_dir, data, tables, out) = good_corpus(10, 2);
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let err = fails(&run_prepare(&data, &tables, &out, &[]));
    assert!(err.contains("--overwrite"), "{err}");
    assert!(out.join("keep.txt").exists());
}

#[test]
fn help_explains_the_database_split_and_evaluation_formats() {
    let output = text2sql(&["prepare", "--help"]);
    ok(&output);
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("unseen") || help.contains("never seen"),
        "{help}"
    );
    assert!(help.contains("all records go to val.parquet"), "{help}");
}

#[test]
fn spider_dev_prepares_and_counts_the_database_it_lacks() {
    let Some(spider) = shared("spider") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("spider");
    let dev = spider.join("dev.json");
    let tables = spider.join("tables.json");
    let databases = spider.join("database");
    let db_arg = [
        "--format",
        "spider",
        "--databases",
        databases.to_str().unwrap(),
    ];

    let err = fails(&run_prepare(&dev, &tables, &out, &db_arg));
    assert!(
        err.contains("wta_1") && err.contains("record #429"),
        "{err}"
    );

    let mut args = db_arg.to_vec();
    args.push("--skip-invalid");
    ok(&run_prepare(&dev, &tables, &out, &args));
    let dataset = ProcessedDataset::open(&out).unwrap();
    let m = dataset.manifest();
    assert_eq!(m.records.read, 1034);
    assert_eq!(m.invalid.values().sum::<u64>(), 62);
    assert_eq!(m.splits.train.rows, 0, "an evaluation set goes to val");
    assert_eq!(m.splits.val.rows, 972);
    assert_eq!(m.splits.val.databases, 19);
    let first = dataset.split(Split::Val).get(0).unwrap();
    assert_eq!(first.db_id, "concert_singer");
    assert_eq!(first.sql, "SELECT count(*) FROM singer");
    assert_eq!(first.tier, None);
    let schemas = dataset.schemas().unwrap();
    let singer = &schemas["concert_singer"].schema;
    assert!(
        singer
            .tables
            .iter()
            .any(|t| t.columns.iter().any(|c| !c.sample_values.is_empty())),
        "--databases fills example values"
    );

    // Without --databases every record has a schema; with a ratio, a train side.
    let plain = dir.path().join("plain");
    ok(&run_prepare(
        &dev,
        &tables,
        &plain,
        &["--format", "spider", "--val-ratio", "0.3"],
    ));
    let dataset = ProcessedDataset::open(&plain).unwrap();
    assert_eq!(dataset.manifest().records.kept, 1034);
    assert!(!dataset.split(Split::Train).is_empty());
    assert!(db_ids(&dataset, Split::Train).is_disjoint(&db_ids(&dataset, Split::Val)));
}

#[test]
fn bird_records_keep_their_difficulty_and_evidence() {
    let Some(bird_tables) = shared("bird/dev_tables.json") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dev.json");
    let records = json!([
        {"question_id": 0, "db_id": "debit_card_specializing", "question": "How many gas stations?",
         "evidence": "gas stations are rows of gasstations", "SQL": "SELECT count(*) FROM gasstations",
         "difficulty": "simple"},
        {"question_id": 1, "db_id": "debit_card_specializing", "question": "Which customer paid most?",
         "evidence": "", "SQL": "SELECT CustomerID FROM transactions_1k ORDER BY Price DESC LIMIT 1",
         "difficulty": "challenging"}
    ]);
    std::fs::write(&data, records.to_string()).unwrap();
    let out = dir.path().join("out");
    ok(&run_prepare(
        &data,
        &bird_tables,
        &out,
        &["--format", "bird"],
    ));
    let dataset = ProcessedDataset::open(&out).unwrap();
    let rows: Vec<_> = dataset
        .split(Split::Val)
        .iter()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].difficulty.as_deref(), Some("simple"));
    assert_eq!(
        rows[0].external_knowledge,
        "gas stations are rows of gasstations"
    );
    assert_eq!(rows[1].difficulty.as_deref(), Some("challenging"));
    assert_eq!(dataset.manifest().splits.val.difficulties["challenging"], 1);
    let schema = &dataset.schemas().unwrap()["debit_card_specializing"].schema;
    assert!(
        schema.tables.iter().any(|t| t.primary_key.len() == 2),
        "composite key"
    );
}

#[test]
fn an_empty_split_is_reported_with_the_way_out() {
    // One database split by database cannot fill both sides.
    let (dir, data, tables, out) = good_corpus(50, 1);
    let output = run_prepare(&data, &tables, &out, &[]);
    ok(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("split is empty") && stderr.contains("--split-by example"),
        "{stderr}"
    );

    let output = run_prepare(
        &data,
        &tables,
        &dir.path().join("by-example"),
        &["--split-by", "example", "--val-ratio", "0.2"],
    );
    ok(&output);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("split is empty"));
}
