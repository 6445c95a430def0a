//! Training on a mix of sources: a tiered sample corpus and a tierless
//! Spider folder in one run, a tokenizer trained on several folders, and
//! Spider's training file prepared as a user would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use text2sql_data::loader::ProcessedDataset;
use text2sql_data::prepare::Split;
use text2sql_model::tokenizer::Tokenizer;

use crate::common::{
    db_ids, fails, json_lines, ok, ok_stderr, read_json, s, sample_corpus, sets, shared, text2sql,
    train_tokenizer,
};

/// `text2sql prepare` of `data` into `out` with `extra` flags; what it
/// printed, stdout then stderr.
fn prepare(data: &Path, tables: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "prepare",
        "--data",
        s(data),
        "--tables",
        s(tables),
        "--out",
        s(out),
    ];
    args.extend(extra);
    let output = ok(text2sql(&args));
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn events(run: &Path) -> Vec<Value> {
    json_lines(&run.join("metrics.jsonl"))
}

/// Every number of every metrics line but the timings, by step and name.
fn losses(run: &Path) -> Vec<(u64, String, f64)> {
    let mut out = Vec::new();
    for e in events(run) {
        let step = e["step"].as_u64().unwrap();
        for key in ["loss", "val_loss", "exec_accuracy"] {
            if let Some(v) = e.get(key).and_then(Value::as_f64) {
                out.push((step, key.to_string(), v));
            }
        }
        for key in ["val_loss_by_source", "examples_by_source"] {
            for (name, v) in e.get(key).and_then(Value::as_object).into_iter().flatten() {
                out.push((step, format!("{key}.{name}"), v.as_f64().unwrap()));
            }
        }
    }
    out
}

#[test]
fn two_sources_train_by_weight_keep_the_tierless_one_in_tier_phases_and_resume_exactly() {
    let Some(spider) = shared("spider") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let sample = sample_corpus(root, 100);
    let synsql = root.join("synsql");
    prepare(
        &sample.join("data.json"),
        &sample.join("tables.json"),
        &synsql,
        &["-q", "--split-by", "example", "--val-ratio", "0.1"],
    );
    let spider_train = root.join("spider_train");
    let spider_dbs = spider.join("database");
    prepare(
        &spider.join("train_spider.json"),
        &spider.join("tables.json"),
        &spider_train,
        &[
            "-q",
            "--format",
            "spider",
            "--databases",
            s(&spider_dbs),
            "--skip-invalid",
            "--subset-size",
            "120",
            "--split-by",
            "example",
            "--val-ratio",
            "0.2",
        ],
    );
    let tokenizer = root.join("tok");
    let mut extra = vec!["-q", "--data", s(&spider_train)];
    extra.extend(["--max-piece-length", "8"]);
    ok(train_tokenizer("--data", &synsql, 500, &tokenizer, &extra));

    let config = root.join("mix.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
run: {{dir: {runs}, name: mix}}
model:
  tokenizer: {tok}
  architecture: {{vocab_size: 500, d_model: 32, d_kv: 8, d_ff: 64, num_layers: 1, num_decoder_layers: 1, num_heads: 4, dropout_rate: 0.1}}
data:
  sources:
    - {{processed_dir: {synsql}, weight: 3}}
    - {{name: spider, processed_dir: {spider_train}, databases: {spider_dbs}, weight: 1}}
  max_source_tokens: 96
  max_target_tokens: 48
curriculum:
  phases:
    - {{name: simple, steps: 3, tiers: {{Simple: 1.0}}}}
    - {{name: all, steps: 100}}
optimizer: {{kind: adamw, lr: 3.0e-3, clip_norm: 1.0}}
batch: {{max_tokens: 1024, grad_accum: 2}}
training: {{max_steps: 6, seed: 5, log_every_steps: 1}}
eval: {{every_steps: 3, val_sample_size: 6, exec_sample: 3, max_new_tokens: 8, source: spider}}
checkpoint: {{every_steps: 3, keep_last: 2}}
"#,
            runs = root.join("runs").display(),
            tok = tokenizer.display(),
            synsql = synsql.display(),
            spider_train = spider_train.display(),
            spider_dbs = spider_dbs.display(),
        ),
    )
    .unwrap();
    let config = s(&config);
    let stderr = ok_stderr(&text2sql(&["train", "--config", config]));
    assert!(
        stderr.contains("token cache of synsql: built")
            && stderr.contains("token cache of spider: built"),
        "one token cache per source: {stderr}"
    );
    let run = root.join("runs/mix");
    let all = events(&run);

    // Both sources are drawn, by weight, and in the phase that names only
    // the Simple tier the tierless Spider source still is.
    let mut drawn: BTreeMap<String, u64> = BTreeMap::new();
    let mut spider_in_simple_phase = 0;
    for e in all.iter().filter(|e| e["event"] == "train") {
        let counts = e["examples_by_source"]
            .as_object()
            .expect("counts per source");
        for (name, n) in counts {
            *drawn.entry(name.clone()).or_default() += n.as_u64().unwrap();
        }
        if e["phase"] == "simple" {
            spider_in_simple_phase += counts["spider"].as_u64().unwrap();
        }
    }
    assert_eq!(drawn.keys().collect::<Vec<_>>(), ["spider", "synsql"]);
    assert!(
        drawn["spider"] > 0 && spider_in_simple_phase > 0,
        "{drawn:?}"
    );
    assert!(
        drawn["synsql"] > drawn["spider"],
        "weights 3:1 gave {drawn:?}"
    );

    // Validation per source; execution accuracy on Spider's val with
    // Spider's databases (the sample's db_ids are not there).
    let evals: Vec<&Value> = all.iter().filter(|e| e["event"] == "eval").collect();
    assert_eq!(evals.len(), 2, "{all:?}");
    for e in &evals {
        let by_source = e["val_loss_by_source"].as_object().unwrap();
        assert_eq!(by_source.len(), 2, "{e}");
        assert_eq!(
            e["val_loss"], by_source["spider"],
            "eval.source gives val_loss"
        );
        assert!(e["exec_accuracy"].is_number(), "{e}");
    }
    let outcomes = std::fs::read_to_string(run.join("eval/step-3.jsonl")).unwrap();
    let spider_ids: BTreeSet<String> = std::fs::read_dir(&spider_dbs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for line in outcomes.lines() {
        let outcome: Value = serde_json::from_str(line).unwrap();
        let db = outcome["db_id"].as_str().unwrap();
        assert!(spider_ids.contains(db), "{db} is not a Spider database");
    }

    // The checkpoint holds every source's sampler position.
    let state = read_json(&run.join("checkpoint-3/train_state.json"));
    let mix = &state["data_position"]["mix_start"]["sources"];
    assert!(
        mix["synsql"].is_object() && mix["spider"].is_object(),
        "{state}"
    );

    // A crash after step 3, then --resume: the same numbers.
    let full = losses(&run);
    std::fs::remove_dir_all(run.join("checkpoint-6")).unwrap();
    std::fs::remove_dir_all(run.join("best")).unwrap();
    ok(&text2sql(&["-q", "train", "--config", config, "--resume"]));
    let resumed = losses(&run);
    assert_eq!(full.len(), resumed.len(), "{full:?} vs {resumed:?}");
    for ((s1, k1, a), (s2, k2, b)) in full.iter().zip(&resumed) {
        assert_eq!((s1, k1), (s2, k2));
        assert!((a - b).abs() < 1e-5, "step {s1} {k1}: {a} vs {b}");
    }

    // Overrides reach list items; a bad one names its key.
    let mut bad = vec!["-q", "train", "--config", config];
    bad.extend(sets(&["run.name=other", "data.sources.1.weight=-2"]));
    let stderr = fails(&text2sql(&bad));
    assert!(stderr.contains("data.sources[1].weight"), "{stderr}");
}

/// Table and column names of Spider's dev databases, with no `<unk>`
/// under a tokenizer trained on Spider's training file only (whose
/// databases are all others); and that file prepared as a user would.
#[test]
fn spider_train_prepares_by_database_and_its_tokenizer_covers_dev_schema_names() {
    let Some(spider) = shared("spider") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("spider_train");
    let tables = spider.join("tables.json");
    let databases = spider.join("database");
    let printed = prepare(
        &spider.join("train_spider.json"),
        &tables,
        &out,
        &[
            "--format",
            "spider",
            "--databases",
            s(&databases),
            "--skip-invalid",
        ],
    );
    assert!(
        printed.contains("96"),
        "the questions without a database are reported: {printed}"
    );
    let dataset = ProcessedDataset::open(&out).unwrap();
    let m = dataset.manifest();
    assert_eq!(m.records.read, 7000);
    assert_eq!(m.invalid.values().sum::<u64>(), 96);
    assert_eq!(m.splits.train.rows + m.splits.val.rows, 6904);
    assert!(m.splits.val.rows > 0 && m.splits.train.rows > m.splits.val.rows * 5);
    let (train_dbs, val_dbs) = (db_ids(&dataset, Split::Train), db_ids(&dataset, Split::Val));
    assert!(!val_dbs.is_empty());
    assert!(
        train_dbs.is_disjoint(&val_dbs),
        "split by database: {val_dbs:?}"
    );

    let tokenizer_dir = dir.path().join("tok");
    ok(train_tokenizer(
        "--data",
        &out,
        2000,
        &tokenizer_dir,
        &["-q"],
    ));
    let tokenizer = Tokenizer::from_dir(&tokenizer_dir).unwrap();
    let dev: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(spider.join("dev.json")).unwrap()).unwrap();
    let dev_dbs: BTreeSet<&str> = dev.iter().map(|r| r["db_id"].as_str().unwrap()).collect();
    assert_eq!(dev_dbs.len(), 20);
    assert!(dev_dbs.iter().all(|db| !train_dbs.contains(*db)));
    let all_tables: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&tables).unwrap()).unwrap();
    let mut names = 0;
    for db in all_tables
        .iter()
        .filter(|t| dev_dbs.contains(t["db_id"].as_str().unwrap()))
    {
        let columns = db["column_names_original"].as_array().unwrap();
        let tables = db["table_names_original"].as_array().unwrap();
        for name in tables.iter().chain(columns.iter().map(|c| &c[1])) {
            let name = name.as_str().unwrap();
            let ids = tokenizer.encode(name, false).unwrap();
            assert!(
                !ids.contains(&tokenizer.unk_id()),
                "`{name}` has an <unk>: {ids:?}"
            );
            names += 1;
        }
    }
    assert!(names > 400, "{names} names checked");
}

/// Column names of databases that only the val split uses, and characters
/// of texts that `--max-mb` sampled away, still get pieces: no `<unk>`.
#[test]
fn a_tokenizer_on_several_folders_covers_val_only_schema_names_and_every_character() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let columns = ["größe", "café", "søn", "ñandú"];
    let mut tables = Vec::new();
    let mut records = Vec::new();
    for (i, column) in columns.iter().enumerate() {
        let db = format!("db{i}");
        tables.push(serde_json::json!({
            "db_id": db, "table_names_original": ["t"], "table_names": ["t"],
            "column_names_original": [[-1, "*"], [0, column]],
            "column_names": [[-1, "*"], [0, "c"]],
            "column_types": ["text", "number"], "primary_keys": [], "foreign_keys": []
        }));
        for q in 0..200 {
            let question = if (i, q) == (0, 7) {
                "Which rows mention Ålesund?".to_string()
            } else {
                format!("How many rows have value {q}?")
            };
            records.push(serde_json::json!({
                "db_id": db, "question": question, "query": format!("SELECT count(*) FROM t WHERE x = {q}")
            }));
        }
    }
    let tables_path = root.join("tables.json");
    std::fs::write(&tables_path, serde_json::to_string(&tables).unwrap()).unwrap();
    let mut folders = Vec::new();
    for half in 0..2 {
        let data = root.join(format!("data{half}.json"));
        let part: Vec<&Value> = records.iter().skip(half).step_by(2).collect();
        std::fs::write(&data, serde_json::to_string(&part).unwrap()).unwrap();
        let out = root.join(format!("part{half}"));
        let split = ["--split-by", "database", "--val-ratio", "0.5"];
        let mut extra = vec!["-q", "--format", "spider"];
        extra.extend(split);
        prepare(&data, &tables_path, &out, &extra);
        folders.push(out);
    }
    let val_only: BTreeSet<String> = folders
        .iter()
        .flat_map(|f| {
            let dataset = ProcessedDataset::open(f).unwrap();
            let train: BTreeSet<String> = dataset
                .split(Split::Train)
                .iter()
                .map(|e| e.unwrap().db_id)
                .collect();
            let val: BTreeSet<String> = dataset
                .split(Split::Val)
                .iter()
                .map(|e| e.unwrap().db_id)
                .collect();
            val.difference(&train).cloned().collect::<Vec<_>>()
        })
        .collect();
    assert!(!val_only.is_empty(), "some database is only in a val split");

    let tok = root.join("tok");
    let extra = ["-q", "--data", s(&folders[1]), "--max-mb", "0.0005"];
    ok(train_tokenizer("--data", &folders[0], 400, &tok, &extra));
    let tokenizer = Tokenizer::from_dir(&tok).unwrap();
    for text in columns.iter().copied().chain(["Ålesund"]) {
        let ids = tokenizer.encode(text, false).unwrap();
        assert!(
            !ids.contains(&tokenizer.unk_id()),
            "`{text}` has an <unk>: {ids:?} (val-only: {val_only:?})"
        );
    }
}
