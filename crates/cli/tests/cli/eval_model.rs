//! `text2sql eval --model` end to end: sample corpus -> prepare ->
//! `tokenizer train --data` -> a tiny seeded random model -> generated SQL
//! scored in the sandbox. The random model's SQL is gibberish, so the test
//! pins the report's shape and counts, not its accuracy.

use std::path::{Path, PathBuf};

use text2sql_model::tokenizer::Tokenizer;
use text2sql_model::InputFormat;

use crate::common::{
    fails, ok, prepare_sample, s, sample_corpus, stdout_json, text2sql, train_tokenizer,
};

/// (databases dir, processed dir, model dir)
fn fixture(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let sample = sample_corpus(root, 200);
    let processed = root.join("processed");
    let split = ["--split-by", "example", "--val-ratio", "0.2"];
    prepare_sample(&sample, &processed, &split);
    // The tokenizer learns from the prepared corpus's real model texts.
    let tokenizer_dir = root.join("tokenizer");
    ok(train_tokenizer(
        "--data",
        &processed,
        500,
        &tokenizer_dir,
        &["-q"],
    ));
    let tokenizer = Tokenizer::from_dir(&tokenizer_dir).unwrap();
    let format = InputFormat {
        max_target_tokens: 12,
        ..InputFormat::default()
    };
    let model = root.join("model");
    text2sql_model::sql_model::write_random_checkpoint(&model, &tokenizer, &format, 5).unwrap();
    (sample.join("databases"), processed, model)
}

#[test]
fn model_predictions_are_scored_per_tier_with_every_example_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let (databases, processed, model) = fixture(dir.path());
    let per_example = dir.path().join("examples.jsonl");
    let base = [
        "--json",
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&processed),
        "--db-dir",
        s(&databases),
        "--limit",
        "12",
        "--batch-size",
        "5",
    ];
    let mut args = base.to_vec();
    args.extend(["--per-example", s(&per_example)]);
    let out = ok(text2sql(&args));
    let summary = stdout_json(&out);
    assert_eq!(summary["total"], 12);
    assert_eq!(summary["scored"], 12, "every sample database exists");
    let tiers: u64 = summary["by_tier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["examples"].as_u64().unwrap())
        .sum();
    assert_eq!(
        tiers, 12,
        "each example lands in its SynSQL tier: {summary}"
    );
    let lines = std::fs::read_to_string(&per_example).unwrap();
    assert_eq!(lines.lines().count(), 12);

    // Deterministic, and beams with execution-guided selection run too.
    let without_latency = |stdout: &[u8]| {
        let mut v: serde_json::Value = serde_json::from_slice(stdout).unwrap();
        let object = v.as_object_mut().unwrap();
        object.remove("prediction_latency");
        // Generation is timed: the time varies, what was generated does not.
        let generation = object
            .remove("generation")
            .expect("eval --model times generation");
        assert_eq!(generation["questions"], 12, "{generation}");
        assert_eq!(generation["constrained"], true, "{generation}");
        v
    };
    let again = ok(text2sql(&base));
    assert_eq!(without_latency(&again.stdout), without_latency(&out.stdout));
    let mut guided = base.to_vec();
    guided.extend(["--beams", "2", "--execution-guided"]);
    let out = ok(text2sql(&guided));
    let summary = stdout_json(&out);
    assert_eq!(summary["execution_guided"], true);
    assert_eq!(summary["total"], 12);
}

#[test]
fn model_mode_errors_name_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = text2sql(&[
        "eval",
        "--model",
        s(&dir.path().join("no-model")),
        "--data",
        s(dir.path()),
        "--db-dir",
        s(dir.path()),
    ]);
    let stderr = fails(&out);
    assert!(stderr.contains("no-model"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
