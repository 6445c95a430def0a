//! `text2sql convert` end to end on the tiny transformers-made fixtures.

use std::path::{Path, PathBuf};
use std::process::Output;

use text2sql_model::{generate, DType, Device, GenerationConfig, T5Model};

use crate::common::{fails, ok, read_json, s, stdout_json, text2sql};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/fixtures/t5")
        .join(name)
}

/// Runs `text2sql convert --from <from> --to <to>` with `flags`.
fn convert(from: &Path, to: &Path, flags: &[&str]) -> Output {
    let mut args = vec!["convert", "--from", s(from), "--to", s(to)];
    args.extend(flags);
    text2sql(&args)
}

/// Greedy tokens transformers produced for the fixture, and ours for `model`.
fn greedy_pair(model: &T5Model) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let expected = read_json(&fixture("t5_relu/expected.json"));
    let inputs: Vec<Vec<u32>> = serde_json::from_value(expected["inputs"].clone()).unwrap();
    let want: Vec<Vec<u32>> =
        serde_json::from_value(expected["greedy"]["sequences"].clone()).unwrap();
    let config = GenerationConfig {
        max_new_tokens: 10,
        ..GenerationConfig::for_model(model.config())
    };
    let got = generate(model, &config, &inputs)
        .unwrap()
        .into_iter()
        .map(|h| h[0].tokens.clone())
        .collect();
    (got, want)
}

#[test]
fn pytorch_bin_converts_to_the_hugging_face_layout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("converted");
    let report = stdout_json(&ok(convert(&fixture("t5_relu_pth"), &out, &["--json"])));
    assert!(report["source_weights"]
        .as_str()
        .unwrap()
        .ends_with("pytorch_model.bin"));
    assert_eq!(report["dtype"], "float32");
    for file in ["config.json", "model.safetensors", "generation_config.json"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let model = T5Model::load(&out, DType::F32, &Device::Cpu).unwrap();
    let (got, want) = greedy_pair(&model);
    assert_eq!(got, want);
    // No leftovers beside the output.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec!["converted".to_string()]);
}

#[test]
fn bf16_conversion_carries_the_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bf16");
    let output = ok(convert(&fixture("t5_relu"), &out, &["--dtype", "bf16"]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("bfloat16") && stdout.contains("tokenizer.json"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(out.join("tokenizer.json")).unwrap(),
        std::fs::read(fixture("t5_relu/tokenizer.json")).unwrap()
    );
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["dtype"], "bfloat16");
    let model = T5Model::load(&out, DType::BF16, &Device::Cpu).unwrap();
    assert_eq!(model.dtype(), DType::BF16);

    // An existing output is not overwritten without --force.
    let again = fails(&convert(&fixture("t5_relu"), &out, &[]));
    assert!(again.contains("--force"), "{again}");
    ok(convert(&fixture("t5_relu"), &out, &["--force"]));
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["dtype"], "float32");
}

#[test]
fn a_config_that_does_not_fit_the_weights_names_the_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::copy(
        fixture("t5_relu/model.safetensors"),
        source.join("model.safetensors"),
    )
    .unwrap();
    let mut config = read_json(&fixture("t5_relu/config.json"));
    config["num_layers"] = 3.into();
    config["d_ff"] = 48.into();
    std::fs::write(source.join("config.json"), config.to_string()).unwrap();
    let out = dir.path().join("out");
    let stderr = fails(&convert(&source, &out, &[]));
    assert!(
        stderr.contains("missing tensor `encoder.block.2.layer.0.SelfAttention.q.weight`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`encoder.block.0.layer.1.DenseReluDense.wi.weight` has shape [64, 32], the config needs [48, 32]"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one-line error: {stderr}");
    assert!(!out.exists(), "nothing written on failure");
}

#[test]
fn a_checkpoint_with_only_spiece_model_gets_a_tokenizer_json_with_the_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("hub-style");
    std::fs::create_dir(&source).unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture("t5_relu").join(name), source.join(name)).unwrap();
    }
    let spiece = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/fixtures/tokenizer/spiece/spiece.model");
    std::fs::copy(&spiece, source.join("spiece.model")).unwrap();

    let out = dir.path().join("converted");
    ok(convert(&source, &out, &[]));
    assert!(out.join("tokenizer.json").is_file());
    assert!(out.join("spiece.model").is_file());

    use text2sql_model::tokenizer::Tokenizer;
    let from_spiece = Tokenizer::from_dir(&source).unwrap();
    let from_json = Tokenizer::from_dir(&out).unwrap();
    for text in [
        "SELECT a FROM t WHERE b <= 3",
        "How many singers are there?",
    ] {
        assert_eq!(
            from_json.encode(text, true).unwrap(),
            from_spiece.encode(text, true).unwrap(),
            "{text}"
        );
    }
}
