//! End-to-end tests of `text2sql train` on a tiny model and a tiny corpus
//! made by `text2sql sample`, `prepare` and `tokenizer train`.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::common::{
    ask_stores, fails, json_lines, ok, prepare_sample, read_json, s, sample_corpus, sets,
    stdout_json, text2sql, train_tokenizer, RETAIL_DB,
};

/// Writes a sample corpus, a prepared dataset of `subset` records (all of
/// them when `None`) and a tokenizer under `dir`; returns (processed, tokenizer).
fn corpus(dir: &Path, subset: Option<&str>) -> (PathBuf, PathBuf) {
    let sample = sample_corpus(dir, 100);
    let processed = dir.join("processed");
    let mut args = vec!["--split-by", "example"];
    match subset {
        Some(n) => args.extend(["--subset-size", n, "--val-ratio", "0.0"]),
        None => args.extend(["--val-ratio", "0.1"]),
    }
    prepare_sample(&sample, &processed, &args);
    let records: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(sample.join("data.json")).unwrap()).unwrap();
    let mut text = String::new();
    for r in &records {
        for key in ["question", "sql"] {
            text.push_str(&r[key].as_str().unwrap().replace('\n', " "));
            text.push('\n');
        }
    }
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, text).unwrap();
    let tokenizer = dir.join("tok");
    ok(train_tokenizer("--text", &corpus, 400, &tokenizer, &["-q"]));
    (processed, tokenizer)
}

fn write_config(dir: &Path, processed: &Path, tokenizer: &Path, extra: &str) -> PathBuf {
    let config = format!(
        r#"
run: {{dir: {runs}, name: tiny}}
model:
  tokenizer: {tok}
  architecture: {{vocab_size: 400, d_model: 32, d_kv: 8, d_ff: 64, num_layers: 1, num_decoder_layers: 1, num_heads: 4, dropout_rate: 0.1, feed_forward_proj: relu, tie_word_embeddings: true}}
data: {{processed_dir: {data}, max_source_tokens: 96, max_target_tokens: 64}}
curriculum:
  phases:
    - {{name: simple, steps: 3, tiers: {{Simple: 1.0}}}}
    - {{name: all, steps: 100, tiers: {{Simple: 1, Moderate: 1, Complex: 1, Highly Complex: 1}}}}
optimizer: {{kind: adamw, lr: 3.0e-3, weight_decay: 0.01, clip_norm: 1.0}}
schedule: {{kind: linear, warmup_steps: 2}}
batch: {{max_tokens: 1024, grad_accum: 2}}
training: {{max_steps: 6, seed: 3, log_every_steps: 1}}
eval: {{every_steps: 3, val_sample_size: 8}}
checkpoint: {{every_steps: 3, keep_last: 2}}
{extra}
"#,
        runs = dir.join("runs").display(),
        tok = tokenizer.display(),
        data = processed.display(),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Runs `text2sql train --config <config>` with `flags` (global ones such
/// as `-q` too) and one `--set` per override.
fn train(config: &Path, flags: &[&str], overrides: &[&str]) -> Output {
    let mut args = vec!["train", "--config", s(config)];
    args.extend(flags);
    args.extend(sets(overrides));
    text2sql(&args)
}

fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|e| {
            let value = e.get("loss").or_else(|| e.get("val_loss"))?.as_f64()?;
            Some((e["step"].as_u64().unwrap(), value))
        })
        .collect()
}

#[test]
fn resuming_after_a_crash_reproduces_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let (processed, tokenizer) = corpus(dir.path(), None);
    let config = write_config(dir.path(), &processed, &tokenizer, "");
    ok(&train(&config, &["-q"], &[]));
    let run = dir.path().join("runs/tiny");
    let full = losses(&run);
    assert_eq!(full.iter().filter(|(s, _)| *s == 6).count(), 2, "{full:?}");
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "text2sql_input.json",
    ] {
        assert!(run.join("best").join(file).is_file(), "best/{file} missing");
    }

    // A crash after step 3: the later checkpoint and best model never got written.
    std::fs::remove_dir_all(run.join("checkpoint-6")).unwrap();
    std::fs::remove_dir_all(run.join("best")).unwrap();
    ok(&train(&config, &["-q", "--resume"], &[]));
    let resumed = losses(&run);
    assert_eq!(full.len(), resumed.len(), "{full:?} vs {resumed:?}");
    for ((s1, a), (s2, b)) in full.iter().zip(&resumed) {
        assert_eq!(s1, s2);
        assert!((a - b).abs() < 1e-5, "step {s1}: {a} vs {b}");
    }
    assert!(run.join("checkpoint-6").is_dir());

    // Without --resume an existing run is not overwritten.
    let stderr = fails(&train(&config, &["-q"], &[]));
    assert!(stderr.contains("--resume"), "{stderr}");
}

#[test]
fn divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (processed, tokenizer) = corpus(dir.path(), None);
    let config = write_config(dir.path(), &processed, &tokenizer, "");
    let stderr = fails(&train(
        &config,
        &["-q"],
        &[
            "optimizer.lr=1.0e30",
            "optimizer.clip_norm=null",
            "checkpoint.every_steps=1",
            "schedule.warmup_steps=0",
        ],
    ));
    assert!(stderr.contains("training diverged"), "{stderr}");
    assert!(stderr.contains("last good checkpoint"), "{stderr}");
    let run = dir.path().join("runs/tiny");
    let checkpoints: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint-"))
        .collect();
    assert!(!checkpoints.is_empty(), "no checkpoint kept: {stderr}");
    for name in &checkpoints {
        assert!(run.join(name).join("train_state.json").is_file());
    }
}

#[test]
fn a_time_budget_ends_training_as_its_last_step_would() {
    let dir = tempfile::tempdir().unwrap();
    let (processed, tokenizer) = corpus(dir.path(), None);
    let config = write_config(dir.path(), &processed, &tokenizer, "");
    // A budget every step overruns: training ends after its first step.
    let budget = [
        "training.max_steps=1000",
        "checkpoint.every_steps=500",
        "eval.every_steps=500",
        "training.max_minutes=1.0e-9",
    ];
    let output = ok(train(&config, &["--json"], &budget));
    let summary = stdout_json(&output);
    assert_eq!(summary["steps"], 1, "{summary}");
    assert_eq!(summary["out_of_time"], true, "{summary}");
    let run = dir.path().join("runs/tiny");
    // As at max_steps: a checkpoint, an evaluation and the best model.
    assert!(run.join("checkpoint-1/train_state.json").is_file());
    assert!(run.join("best/model.safetensors").is_file());
    let events = json_lines(&run.join("metrics.jsonl"));
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "eval" && e["step"] == 1),
        "{events:?}"
    );
    let text = ok(train(&config, &["--resume"], &budget));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("trained 1 steps") && stdout.contains("time budget"),
        "a resumed run whose budget is spent trains no further: {stdout}"
    );
}

#[test]
fn a_tiny_model_overfits_eight_examples() {
    let dir = tempfile::tempdir().unwrap();
    // Eight, so that the stratified subset holds every tier the curriculum's
    // phases ask for.
    let (processed, tokenizer) = corpus(dir.path(), Some("8"));
    let config = write_config(dir.path(), &processed, &tokenizer, "");
    let output = ok(train(
        &config,
        &["--json"],
        &[
            "training.max_steps=120",
            "optimizer.lr=1.0e-2",
            "model.architecture.dropout_rate=0.0",
            "model.architecture.d_model=64",
            "model.architecture.d_ff=128",
            "batch.grad_accum=1",
            "eval.every_steps=120",
            "checkpoint.every_steps=120",
            "schedule.kind=constant",
        ],
    ));
    let summary = stdout_json(&output);
    assert_eq!(summary["steps"], 120);
    let train: Vec<f64> = losses(&dir.path().join("runs/tiny"))
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    let first = train[0];
    let best_late = train[train.len() - 10..]
        .iter()
        .cloned()
        .fold(f64::INFINITY, f64::min);
    assert!(best_late < 0.1 * first, "loss {first} -> {best_late}");
}

#[test]
fn execution_accuracy_is_logged_and_equals_eval_model_on_the_best_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (processed, tokenizer) = corpus(dir.path(), None);
    let databases = dir.path().join("sample/databases");
    // A seeded random model writes long, input-dependent gibberish; a few
    // steps of training from scratch would only write empty strings, and
    // comparing those would prove nothing.
    let init = dir.path().join("init");
    text2sql_model::sql_model::write_random_checkpoint(
        &init,
        &text2sql_model::tokenizer::Tokenizer::from_dir(&tokenizer).unwrap(),
        &text2sql_model::InputFormat::default(),
        5,
    )
    .unwrap();
    let config = write_config(dir.path(), &processed, &tokenizer, "");
    let set_databases = format!("data.databases={}", databases.display());
    let set_init = format!("model.init_from={}", init.display());
    let from_init = ["model.architecture=null", "model.tokenizer=null", &set_init];
    let exec_eval = [
        from_init.as_slice(),
        &[
            &set_databases,
            "eval.exec_sample=6",
            "eval.batch_size=1",
            // Short generations keep the test fast; eval.max_new_tokens
            // defaults to it, as `eval --model` does.
            "data.max_target_tokens=16",
        ],
    ]
    .concat();
    // Not quiet: the eval lines and the summary are part of what is tested.
    let output = ok(train(&config, &[], &exec_eval));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("step 3: val loss") && stderr.contains("exec accuracy"),
        "{stderr}"
    );
    assert!(stdout.contains("last execution accuracy:"), "{stdout}");
    assert!(stdout.contains("on 6 validation examples"), "{stdout}");
    assert!(stdout.contains("best execution accuracy"), "{stdout}");

    let run = dir.path().join("runs/tiny");
    let evals: Vec<Value> = json_lines(&run.join("metrics.jsonl"))
        .into_iter()
        .filter(|e| e["event"] == "eval")
        .collect();
    assert_eq!(
        evals
            .iter()
            .map(|e| e["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![3, 6]
    );
    for e in &evals {
        let acc = e["exec_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{e}");
        assert!(
            !e["exec_accuracy_by_tier"].as_object().unwrap().is_empty(),
            "{e}"
        );
        assert!(e["val_loss"].as_f64().is_some(), "{e}");
    }
    for plot in ["loss.png", "lr.png", "accuracy.png"] {
        assert!(run.join(plot).is_file(), "{plot}");
    }

    // The best folder says which evaluation made it the best.
    let record = read_json(&run.join("best/best_metric.json"));
    assert_eq!(record["metric"], "exec_accuracy");
    let best_step = record["step"].as_u64().unwrap();
    let best_event = evals.iter().find(|e| e["step"] == best_step).unwrap();
    assert_eq!(record["value"], best_event["exec_accuracy"]);
    let max = evals
        .iter()
        .map(|e| e["exec_accuracy"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(record["value"].as_f64().unwrap(), max);

    // `text2sql eval --model best` on the whole val split: on the sampled
    // examples it writes the same SQL and gives the same verdicts, so the
    // accuracy is the one training logged.
    let trained = json_lines(&run.join(format!("eval/step-{best_step}.jsonl")));
    assert_eq!(trained.len(), 6);
    let predictions: std::collections::BTreeSet<&str> = trained
        .iter()
        .map(|t| t["prediction"].as_str().unwrap())
        .filter(|p| !p.is_empty())
        .collect();
    assert!(predictions.len() > 1, "{predictions:?}");
    let per_example = dir.path().join("per_example.jsonl");
    ok(&text2sql(&[
        "--json",
        "eval",
        "--model",
        s(&run.join("best")),
        "--data",
        s(&processed),
        "--split",
        "val",
        "--db-dir",
        s(&databases),
        "--batch-size",
        "1",
        "--per-example",
        s(&per_example),
    ]));
    let evaluated = json_lines(&per_example);
    assert!(evaluated.len() > trained.len(), "the sample is a subset");
    let mut correct = 0;
    for t in &trained {
        let e = evaluated
            .iter()
            .find(|e| e["id"] == t["id"])
            .unwrap_or_else(|| panic!("example {} not in the val split", t["id"]));
        for key in ["prediction", "verdict", "correct", "tier", "gold"] {
            assert_eq!(t[key], e[key], "example {}: {key}", t["id"]);
        }
        correct += usize::from(e["correct"].as_bool().unwrap());
    }
    let accuracy = correct as f64 / trained.len() as f64;
    assert!((accuracy - best_event["exec_accuracy"].as_f64().unwrap()).abs() < 1e-12);
    // The sample covers more than one tier.
    let tiers: std::collections::BTreeSet<&str> = trained
        .iter()
        .map(|t| t["tier"].as_str().unwrap())
        .collect();
    assert!(tiers.len() > 1, "{tiers:?}");

    // An interrupted run wrote a better best model after its last
    // checkpoint (step 3): the resumed run must not replace it with a worse one.
    std::fs::remove_dir_all(run.join("checkpoint-6")).unwrap();
    let better = serde_json::json!({
        "metric": "exec_accuracy", "value": 1.0, "step": 5, "higher_is_better": true,
        "exec_accuracy": 1.0
    });
    std::fs::write(run.join("best/best_metric.json"), better.to_string()).unwrap();
    let weights = std::fs::read(run.join("best/model.safetensors")).unwrap();
    let summary = stdout_json(&ok(train(&config, &["--json", "--resume"], &exec_eval)));
    assert_eq!(summary["best"]["value"], 1.0, "{summary}");
    assert_eq!(summary["best"]["step"], 5, "{summary}");
    assert_eq!(summary["exec_sample"], 6, "{summary}");
    assert!(summary["last_exec_accuracy"].as_f64().unwrap() < 1.0);
    let record = read_json(&run.join("best/best_metric.json"));
    assert_eq!(record, better);
    assert_eq!(
        std::fs::read(run.join("best/model.safetensors")).unwrap(),
        weights
    );
    // Resuming under another best metric would compare apples and oranges.
    std::fs::remove_dir_all(run.join("checkpoint-6")).unwrap();
    let stderr = fails(&train(&config, &["-q", "--resume"], &from_init));
    assert!(
        stderr.contains("eval.best_metric=exec_accuracy"),
        "{stderr}"
    );
}

#[test]
fn a_missing_database_folder_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &dir.path().join("processed"),
        &dir.path().join("tok"),
        "",
    );
    let stderr = fails(&train(
        &config,
        &["-q"],
        &[
            "eval.exec_sample=10",
            "data.databases=/nonexistent/databases",
        ],
    ));
    assert!(
        stderr.contains("data.databases") && stderr.contains("/nonexistent/databases"),
        "{stderr}"
    );
}

/// A run trained with CodeT5's tokenizer folder (`vocab.json` + `merges.txt`,
/// no `tokenizer.json`) writes a `best/` that `ask` loads: the checkpoint
/// carries every tokenizer file the model crate knows.
#[test]
fn a_model_trained_with_a_codet5_tokenizer_folder_can_be_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (processed, _) = corpus(dir.path(), None);
    let codet5 = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/fixtures/tokenizer/codet5/bpe")
        .canonicalize()
        .unwrap();
    let config = write_config(dir.path(), &processed, &codet5, "");
    ok(train(
        &config,
        &["-q"],
        &[
            "model.architecture.vocab_size=448",
            "training.max_steps=4",
            "eval.every_steps=4",
            "checkpoint.every_steps=4",
        ],
    ));
    let best = dir.path().join("runs/tiny/best");
    for file in ["vocab.json", "merges.txt", "added_tokens.json"] {
        assert!(best.join(file).is_file(), "best/{file} missing");
    }
    let asked = text2sql(&[
        "ask",
        "--model",
        s(&best),
        "--raw-input",
        "How many stores are there? | retail | stores : store_id",
        "--no-constrain",
        "--max-new-tokens",
        "8",
        "--json",
    ]);
    assert!(asked.status.success(), "{asked:?}");
    let json = stdout_json(&asked);
    assert!(json["sql"].is_string(), "{json}");
}

/// A model trained with schema symbols: the tokenizer reserves them, the
/// checkpoint's input labels every name with one, and `ask` on one of the
/// sample's databases reads the model's symbols back as that database's
/// names. A tokenizer without symbols is refused before training starts.
#[test]
fn schema_symbols_train_end_to_end_and_need_a_tokenizer_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let (processed, plain_tokenizer) = corpus(dir.path(), None);
    let symbol_tokenizer = dir.path().join("tok-symbols");
    ok(train_tokenizer(
        "--data",
        &processed,
        400,
        &symbol_tokenizer,
        &["-q", "--schema-symbols", "64"],
    ));
    let config = write_config(dir.path(), &processed, &plain_tokenizer, "");
    let symbols = "data.schema.symbols=true";
    let stderr = fails(&train(&config, &["-q"], &[symbols]));
    assert!(stderr.contains("--schema-symbols"), "{stderr}");

    let tokenizer_set = format!("model.tokenizer={}", symbol_tokenizer.display());
    ok(train(&config, &["-q"], &[symbols, &tokenizer_set]));
    let best = dir.path().join("runs/tiny/best");
    let format = read_json(&best.join("text2sql_input.json"));
    assert_eq!(format["schema_symbols"], true);

    let db = dir.path().join("sample").join(RETAIL_DB);
    let mut ask = ask_stores(&best, &db);
    ask.push("--json");
    let answer = stdout_json(&ok(text2sql(&ask)));
    let input = answer["input"].as_str().unwrap();
    assert!(input.contains("<sym0> "), "{input}");
    // Constrained decoding lets only the symbols of this database through,
    // and each comes back as its name.
    let sql = answer["sql"].as_str().unwrap();
    assert!(!sql.contains("<sym"), "{sql}");

    // Symbols chosen by pointing: refused without symbols in the input;
    // with them, the checkpoint records the symbols' ids and `ask` answers
    // with this database's names.
    let pointer = "model.architecture.schema_pointer=true";
    let pointing = "run.name=pointing";
    let stderr = fails(&train(&config, &["-q"], &[pointer, &tokenizer_set]));
    assert!(stderr.contains("data.schema.symbols"), "{stderr}");
    ok(train(
        &config,
        &["-q"],
        &[symbols, &tokenizer_set, pointer, pointing],
    ));
    let best = dir.path().join("runs/pointing/best");
    let model_config = read_json(&best.join("config.json"));
    assert_eq!(model_config["schema_pointer"], true);
    assert_eq!(model_config["schema_symbol_ids"]["count"], 64);
    let mut ask = ask_stores(&best, &db);
    ask.push("--json");
    let answer = stdout_json(&ok(text2sql(&ask)));
    let sql = answer["sql"].as_str().unwrap();
    assert!(!sql.contains("<sym"), "{sql}");
}
