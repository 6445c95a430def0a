//! End to end: `text2sql tokenizer train` then `text2sql tokenizer encode`.

use std::path::{Path, PathBuf};

use crate::common::{fails, ok, s, stdout_json, text2sql, train_tokenizer};

/// The temporary folder, its corpus (see [`write_corpus`]) and where its
/// tokenizer goes.
fn corpus_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    write_corpus(&corpus);
    let out = dir.path().join("tok");
    (dir, corpus, out)
}

fn write_corpus(path: &Path) {
    let mut lines = Vec::new();
    for i in 0..300 {
        let op = ["<", "<=", ">", ">=", "!=", "<>"][i % 6];
        // Digits are single tokens: names spelt from them give the trainer
        // enough distinct words to fill the vocabulary.
        let name: String = (i * 7919 + 1013)
            .to_string()
            .bytes()
            .map(|digit| char::from(b"bdfhklmnrs"[usize::from(digit - b'0')]))
            .collect();
        lines.push(format!(
            "How many singers named {name} are older than {i}? | concert_singer | singer : name , age"
        ));
        lines.push(format!(
            "SELECT count(*) FROM singer WHERE age {op} {i} AND name = '{name}'"
        ));
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn trains_a_tokenizer_that_keeps_sql_symbols_and_encodes_with_it() {
    let (dir, corpus, out) = corpus_dir();
    let trained = ok(train_tokenizer("--text", &corpus, 300, &out, &["--json"]));
    let summary = stdout_json(&trained);
    assert_eq!(summary["vocab_size"], 300);
    assert_eq!(summary["texts"], 600);
    assert_eq!(summary["example"]["unk_count"], 0);
    for file in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    // No temporary folder left next to the output.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // `{`, `}` and `~` never occur in the corpus, yet are not <unk>.
    let text = "SELECT {a} FROM t WHERE b <= 1 AND c ~ 'x'";
    let encoded = ok(text2sql(&[
        "--json",
        "tokenizer",
        "encode",
        "--tokenizer",
        s(&out),
        text,
    ]));
    let encoded = stdout_json(&encoded);
    assert_eq!(encoded["unk_count"], 0);
    assert_eq!(encoded["decoded"], text);
    let ids = encoded["ids"].as_array().unwrap();
    assert_eq!(ids.last().unwrap(), 1, "</s> appended");

    // Training again on the same text gives the same bytes; an existing
    // output is refused without --force.
    let refused = fails(&train_tokenizer("--text", &corpus, 300, &out, &[]));
    assert!(refused.contains("--force"), "{refused}");
    let first = std::fs::read(out.join("tokenizer.json")).unwrap();
    let again = train_tokenizer("--text", &corpus, 300, &out, &["--quiet", "--force"]);
    ok(&again);
    assert_eq!(std::fs::read(out.join("tokenizer.json")).unwrap(), first);
}

#[test]
fn max_mb_trains_on_a_sample() {
    let (_dir, corpus, out) = corpus_dir();
    let flags = ["--json", "--max-mb", "0.01"];
    let summary = stdout_json(&ok(train_tokenizer("--text", &corpus, 300, &out, &flags)));
    let texts = summary["texts"].as_u64().unwrap();
    assert!(
        texts > 50 && texts < 300,
        "{texts} texts from a 0.01 MB cap"
    );
}

#[test]
fn invalid_utf8_input_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("bad.txt");
    std::fs::write(&corpus, b"SELECT 1\nSELECT \xff\n").unwrap();
    let out = dir.path().join("tok");
    let failed = train_tokenizer("--text", &corpus, 300, &out, &[]);
    let stderr = fails(&failed);
    assert!(stderr.contains("bad.txt line 2"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn encode_reports_a_missing_tokenizer_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let failed = text2sql(&["tokenizer", "encode", "--tokenizer", s(dir.path()), "x"]);
    let stderr = fails(&failed);
    assert!(
        stderr.contains("neither tokenizer.json nor spiece.model"),
        "{stderr}"
    );
}
