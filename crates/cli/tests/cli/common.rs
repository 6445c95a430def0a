//! What every end-to-end test needs: the real binary, success checks, the
//! shared Spider data, and a tiny seeded random model.

use std::borrow::Borrow;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// A seeded random T5 in `model` whose 400-token tokenizer was trained on
/// the sample's tables.json: its SQL is gibberish, but every command that
/// loads a model runs on it.
pub fn random_model(sample: &Path, model: &Path, max_target_tokens: usize, seed: u64) {
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
    text2sql_model::sql_model::write_random_checkpoint(model, &tokenizer, &format, seed).unwrap();
}
