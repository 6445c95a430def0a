//! What every end-to-end test needs: the real binary, success checks, the
//! shared Spider data, and a tiny seeded random model.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use text2sql_data::loader::ProcessedDataset;
use text2sql_data::prepare::Split;

use text2sql_model::tokenizer::{train_unigram, TrainOptions};
use text2sql_model::InputFormat;

/// Runs the built `text2sql` binary with `args` and returns what it did.
pub fn text2sql(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_text2sql"))
        .args(args)
        .output()
        .expect("the text2sql binary runs")
}

/// Fails the test with the command's stderr unless it succeeded; takes
/// and gives back an `Output` or a reference to one.
pub fn ok<O: Borrow<Output>>(output: O) -> O {
    let out = output.borrow();
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    output
}

/// Fails the test unless the command succeeded; returns its stderr.
pub fn ok_stderr(output: &Output) -> String {
    String::from_utf8_lossy(&ok(output).stderr).into_owned()
}

/// Fails the test unless the command failed; returns its stderr, which
/// the caller checks for the reason.
pub fn fails(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The JSON a command printed on stdout.
pub fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

/// A JSON file's contents.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("the file is JSON")
}

/// A JSON-lines file's values, one a line.
pub fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `["--set", a, "--set", b, …]`: config overrides as flags.
pub fn sets<'a>(overrides: &[&'a str]) -> Vec<&'a str> {
    overrides.iter().flat_map(|o| ["--set", o]).collect()
}

/// One of the databases every sample corpus holds, under its root.
pub const RETAIL_DB: &str = "databases/retail_store_sales_0001/retail_store_sales_0001.sqlite";

/// `text2sql ask` of `model` on a question about the stores in `db`
/// ([`RETAIL_DB`]); callers add flags.
pub fn ask_stores<'a>(model: &'a Path, db: &'a Path) -> Vec<&'a str> {
    let question = "How many stores are there?";
    let mut args = vec!["ask", "--model", s(model), "--db", s(db)];
    args.extend(["--question", question]);
    args
}

/// Runs `text2sql -q prepare` on a sample corpus (see [`sample_corpus`])
/// into `processed`, followed by `extra` flags.
pub fn prepare_sample(sample: &Path, processed: &Path, extra: &[&str]) {
    let (data, tables) = (sample.join("data.json"), sample.join("tables.json"));
    let databases = sample.join("databases");
    let mut args = vec!["-q", "prepare", "--data", s(&data), "--tables", s(&tables)];
    args.extend(["--databases", s(&databases), "--out", s(processed)]);
    args.extend(extra);
    ok(text2sql(&args));
}

/// The databases a prepared split holds.
pub fn db_ids(dataset: &ProcessedDataset, split: Split) -> BTreeSet<String> {
    dataset
        .split(split)
        .iter()
        .map(|e| e.unwrap().db_id)
        .collect()
}

/// Runs `text2sql tokenizer train <source> <path> --vocab-size <vocab>
/// --out <out>` followed by `extra` (flags such as `-q`, `--json`,
/// `--force`); `source` is `--text` or `--data`.
pub fn train_tokenizer(
    source: &str,
    path: &Path,
    vocab: u32,
    out: &Path,
    extra: &[&str],
) -> Output {
    let vocab = vocab.to_string();
    let mut args = vec![
        "tokenizer",
        "train",
        source,
        s(path),
        "--vocab-size",
        &vocab,
    ];
    args.extend(["--out", s(out)]);
    args.extend(extra);
    text2sql(&args)
}

/// A path as a command-line argument.
pub fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// A file or folder under `shared/data`; `None` (skip) when it is absent,
/// except under CI where the data must be there.
pub use text2sql_data::test_data::shared_data as shared;

/// Writes `text2sql sample --records N --databases 10` into `root/sample`
/// and returns it.
pub fn sample_corpus(root: &Path, records: usize) -> PathBuf {
    let sample = root.join("sample");
    ok(text2sql(&[
        "-q",
        "sample",
        "--out",
        s(&sample),
        "--records",
        &records.to_string(),
        "--databases",
        "10",
    ]));
    sample
}

/// A sample corpus of `records` under `root` (see [`sample_corpus`]) and
/// a seeded random T5 in `root/model` whose 400-token tokenizer was
/// trained on the sample's tables.json: its SQL is gibberish, but every
/// command that loads a model runs on it. Returns (sample, model).
pub fn sample_with_model(
    root: &Path,
    records: usize,
    max_target_tokens: usize,
    seed: u64,
) -> (PathBuf, PathBuf) {
    let sample = sample_corpus(root, records);
    let model = root.join("model");
    let tables = std::fs::read_to_string(sample.join("tables.json")).unwrap();
    let texts = tables.lines().map(str::to_string).collect::<Vec<_>>();
    let options = TrainOptions {
        vocab_size: 400,
        ..TrainOptions::default()
    };
    let tokenizer = train_unigram(texts.into_iter(), &options).unwrap();
    let format = InputFormat {
        max_target_tokens,
        ..InputFormat::default()
    };
    text2sql_model::sql_model::write_random_checkpoint(&model, &tokenizer, &format, seed).unwrap();
    (sample, model)
}
