//! Parity with transformers on the fixtures built by
//! `fixtures/tokenizer/make_fixtures.py`, and the saved layout.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::*;

#[derive(Deserialize)]
struct Expected {
    vocab_size: usize,
    pad_id: u32,
    eos_id: u32,
    unk_id: u32,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    tokens: Vec<String>,
    decoded: String,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tokenizer")
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn assert_matches_transformers(tokenizer: &Tokenizer) {
    let expected = expected();
    assert_eq!(tokenizer.vocab_size(), expected.vocab_size);
    assert_eq!(
        (tokenizer.pad_id(), tokenizer.eos_id(), tokenizer.unk_id()),
        (expected.pad_id, expected.eos_id, expected.unk_id)
    );
    for case in &expected.cases {
        let ids = tokenizer.encode(&case.text, true).unwrap();
        assert_eq!(ids, case.ids, "ids of {:?}", case.text);
        let tokens: Vec<String> = ids
            .iter()
            .map(|&id| tokenizer.id_to_token(id).unwrap())
            .collect();
        assert_eq!(tokens, case.tokens, "tokens of {:?}", case.text);
        assert_eq!(tokenizer.decode(&ids, true).unwrap(), case.decoded);
    }
}

#[test]
fn tokenizer_json_matches_transformers() {
    let tokenizer = Tokenizer::from_dir(&fixtures().join("json")).unwrap();
    assert_matches_transformers(&tokenizer);
}

#[test]
fn spiece_model_matches_transformers() {
    let tokenizer = Tokenizer::from_dir(&fixtures().join("spiece")).unwrap();
    assert_matches_transformers(&tokenizer);
}

#[test]
fn spiece_pipeline_serialises_like_the_converted_tokenizer_json() {
    // Same model, normaliser, pre-tokenizer, decoder and post-processor as
    // transformers wrote; only formatting may differ.
    let from_spiece = Tokenizer::from_dir(&fixtures().join("spiece")).unwrap();
    let from_json = Tokenizer::from_dir(&fixtures().join("json")).unwrap();
    let ours: serde_json::Value = serde_json::from_str(&from_spiece.to_json().unwrap()).unwrap();
    let theirs: serde_json::Value = serde_json::from_str(&from_json.to_json().unwrap()).unwrap();
    for part in [
        "model",
        "normalizer",
        "pre_tokenizer",
        "post_processor",
        "decoder",
    ] {
        assert_eq!(ours[part], theirs[part], "{part}");
    }
}

#[test]
fn decoding_round_trips_normalised_text() {
    let tokenizer = Tokenizer::from_dir(&fixtures().join("spiece")).unwrap();
    let text = "SELECT name FROM singer WHERE age < 30";
    let ids = tokenizer.encode(text, true).unwrap();
    assert_eq!(tokenizer.decode(&ids, true).unwrap(), text);
    // Without skipping, the EOS shows.
    assert!(tokenizer.decode(&ids, false).unwrap().ends_with("</s>"));
}

#[test]
fn batch_encoding_truncates_and_keeps_eos_last() {
    let tokenizer = Tokenizer::from_dir(&fixtures().join("json")).unwrap();
    let texts = ["SELECT name FROM singer WHERE age < 30", "How many"];
    let full: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tokenizer.encode(t, true).unwrap())
        .collect();
    assert_eq!(tokenizer.encode_batch(&texts, true, None).unwrap(), full);
    let cut = tokenizer.encode_batch(&texts, true, Some(5)).unwrap();
    assert_eq!(cut[0].len(), 5);
    assert_eq!(&cut[0][..4], &full[0][..4]);
    assert_eq!(cut[0][4], tokenizer.eos_id());
    assert_eq!(full[1].len(), 6, "{:?}", full[1]);
    assert_eq!(cut[1], [&full[1][..4], &[tokenizer.eos_id()]].concat());
    let no_eos = tokenizer.encode_batch(&texts, false, Some(3)).unwrap();
    assert_eq!(no_eos[0], full[0][..3].to_vec());
}

#[test]
fn saved_folder_reloads_identically_with_t5_configs() {
    let tokenizer = Tokenizer::from_dir(&fixtures().join("spiece")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tokenizer.save(dir.path()).unwrap();
    let reloaded = Tokenizer::from_dir(dir.path()).unwrap();
    assert_matches_transformers(&reloaded);
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(TOKENIZER_CONFIG_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(config["tokenizer_class"], "T5Tokenizer");
    assert_eq!(config["extra_ids"], 100);
    assert_eq!(config["additional_special_tokens"][0], "<extra_id_0>");
    assert!(dir.path().join(SPECIAL_TOKENS_MAP_FILE).is_file());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| text2sql_data::atomic::is_temporary(&e.file_name().to_string_lossy()))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn missing_files_and_garbage_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("neither tokenizer.json nor spiece.model found, nor vocab.json + merges.txt"),
        "{err}"
    );
    std::fs::write(dir.path().join(TOKENIZER_FILE), "{not json").unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains("cannot load"),
        "{err}"
    );
}

#[derive(Deserialize)]
struct Truncated {
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct ExpectedCodeT5 {
    #[serde(flatten)]
    common: Expected,
    bos_id: u32,
    truncated_to_6: Truncated,
}

fn expected_codet5() -> ExpectedCodeT5 {
    let text = std::fs::read_to_string(fixtures().join("codet5/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// CodeT5 (RoBERTa byte-level BPE): every input wrapped as `<s> ... </s>`,
/// special tokens in the text matched (`<mask>` eating the space before it),
/// sentinels from added_tokens.json, ids as transformers gives them.
fn assert_matches_codet5(tokenizer: &Tokenizer) {
    let expected = expected_codet5();
    let common = &expected.common;
    assert_eq!(tokenizer.vocab_size(), common.vocab_size);
    assert_eq!(
        (tokenizer.pad_id(), tokenizer.eos_id(), tokenizer.unk_id()),
        (common.pad_id, common.eos_id, common.unk_id)
    );
    assert_eq!(tokenizer.token_to_id("<s>"), Some(expected.bos_id));
    for case in &common.cases {
        let ids = tokenizer.encode(&case.text, true).unwrap();
        assert_eq!(ids, case.ids, "ids of {:?}", case.text);
        assert_eq!(ids.first(), Some(&expected.bos_id), "{:?}", case.text);
        let tokens: Vec<String> = ids
            .iter()
            .map(|&id| tokenizer.id_to_token(id).unwrap())
            .collect();
        assert_eq!(tokens, case.tokens, "tokens of {:?}", case.text);
        assert_eq!(tokenizer.decode(&ids, true).unwrap(), case.decoded);
        // Without special tokens: the same ids minus `<s>` and `</s>`.
        let bare = tokenizer.encode(&case.text, false).unwrap();
        assert_eq!(bare, case.ids[1..case.ids.len() - 1], "{:?}", case.text);
    }
    let truncated = &expected.truncated_to_6;
    let cut = tokenizer
        .encode_batch(&[truncated.text.as_str()], true, Some(6))
        .unwrap();
    assert_eq!(cut[0], truncated.ids);
}

#[test]
fn codet5_vocab_and_merges_match_transformers_roberta_tokenizer() {
    let tokenizer = Tokenizer::from_dir(&fixtures().join("codet5/bpe")).unwrap();
    assert_matches_codet5(&tokenizer);
    // Saved in our layout (tokenizer.json), it still gives the same ids.
    let dir = tempfile::tempdir().unwrap();
    tokenizer.save(dir.path()).unwrap();
    assert_matches_codet5(&Tokenizer::from_dir(dir.path()).unwrap());
}

#[test]
fn codet5_tokenizer_json_matches_transformers() {
    let tokenizer = Tokenizer::from_dir(&fixtures().join("codet5/json")).unwrap();
    assert_matches_codet5(&tokenizer);
}

#[test]
fn codet5_files_with_problems_are_errors_naming_the_file() {
    let source = fixtures().join("codet5/bpe");
    let copy = |dir: &Path| {
        for entry in std::fs::read_dir(&source).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    };
    let dir = tempfile::tempdir().unwrap();
    copy(dir.path());
    std::fs::write(
        dir.path().join(MERGES_FILE),
        "#version: 0.2\nO U\nthree pieces here\n",
    )
    .unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("merges.txt") && err.contains("line 3"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    copy(dir.path());
    std::fs::write(
        dir.path().join(ADDED_TOKENS_FILE),
        r#"{"<extra_id_0>": 999}"#,
    )
    .unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("added_tokens.json") && err.contains("999"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    copy(dir.path());
    std::fs::write(dir.path().join(VOCAB_FILE), "[1, 2]").unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("vocab.json"), "{err}");
}
