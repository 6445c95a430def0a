//! `text2sql train` and the token cache: built on the first run, reused on
//! the next, rebuilt on request or when damaged, and reported as asked.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{
    ok_stderr, prepare_sample, s, sample_corpus, stdout_json, text2sql, train_tokenizer,
};

/// A prepared sample corpus, a tokenizer trained on it and a tiny config.
fn setup(dir: &Path) -> PathBuf {
    let sample = sample_corpus(dir, 60);
    let processed = dir.join("processed");
    let tok = dir.join("tok");
    let split = ["--split-by", "example", "--val-ratio", "0.1"];
    prepare_sample(&sample, &processed, &split);
    ok_stderr(&train_tokenizer("--data", &processed, 400, &tok, &["-q"]));
    let config = format!(
        r#"
run: {{dir: {runs}, name: first}}
model:
  tokenizer: {tok}
  architecture: {{vocab_size: 400, d_model: 16, d_kv: 4, d_ff: 32, num_layers: 1, num_decoder_layers: 1, num_heads: 4, dropout_rate: 0.0, feed_forward_proj: relu, tie_word_embeddings: true}}
data: {{processed_dir: {processed}, max_source_tokens: 64, max_target_tokens: 48}}
curriculum:
  phases:
    - {{name: all, steps: 100, tiers: {{Simple: 1, Moderate: 1, Complex: 1, Highly Complex: 1}}}}
optimizer: {{kind: adamw, lr: 1.0e-3}}
schedule: {{kind: constant, warmup_steps: 0}}
batch: {{max_tokens: 512, grad_accum: 1}}
training: {{max_steps: 2, seed: 1, log_every_steps: 1}}
eval: {{every_steps: 2, val_sample_size: 4}}
checkpoint: {{every_steps: 2, keep_last: 1}}
"#,
        runs = dir.join("runs").display(),
        tok = tok.display(),
        processed = processed.display(),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

fn train(config: &Path, name: &str, extra: &[&str]) -> Output {
    let run_name = format!("run.name={name}");
    let mut args = vec!["train", "--config", s(config)];
    args.extend(["--set", &run_name]);
    args.extend(extra);
    text2sql(&args)
}

/// The folder named on a "token cache: ..." line.
fn cache_dirs(processed: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(processed.join("token_cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn train_builds_the_cache_once_then_reuses_it_and_rebuilds_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let processed = dir.path().join("processed");

    let first = ok_stderr(&train(&config, "a", &[]));
    assert!(
        first.contains("token cache: built 60 examples in"),
        "{first}"
    );
    let caches = cache_dirs(&processed);
    assert_eq!(caches.len(), 1, "{caches:?}");
    for file in ["meta.json", "train.tokens", "val.tokens"] {
        assert!(caches[0].join(file).is_file(), "{file} missing");
    }

    let second = ok_stderr(&train(&config, "b", &[]));
    let reused = format!("token cache: reused {}", caches[0].display());
    assert!(second.contains(&reused), "{second}");

    let rebuilt = ok_stderr(&train(&config, "c", &["--rebuild-token-cache"]));
    assert!(
        rebuilt.contains("token cache: built 60 examples"),
        "{rebuilt}"
    );
    assert_eq!(cache_dirs(&processed), caches, "the rebuild replaced it");

    // --quiet and --json say nothing about the cache; --json's stdout stays JSON.
    let quiet = ok_stderr(&train(&config, "d", &["-q"]));
    assert!(!quiet.contains("token cache"), "{quiet}");
    let output = train(&config, "e", &["--json"]);
    let stderr = ok_stderr(&output);
    assert!(!stderr.contains("token cache"), "{stderr}");
    let summary = stdout_json(&output);
    assert_eq!(summary["steps"], 2);

    // A damaged cache is reported and rebuilt; training goes on.
    let train_file = caches[0].join("train.tokens");
    let bytes = std::fs::read(&train_file).unwrap();
    std::fs::write(&train_file, &bytes[..bytes.len() / 2]).unwrap();
    let repaired = ok_stderr(&train(&config, "f", &[]));
    assert!(
        repaired.contains("warning: token cache") && repaired.contains("rebuilding it"),
        "{repaired}"
    );
    assert!(
        repaired.contains("token cache: built 60 examples"),
        "{repaired}"
    );
    assert_eq!(std::fs::read(&train_file).unwrap(), bytes);
}
