//! Checkpoints: validation errors name the tensor, save -> load round trips,
//! bf16 conversion, and training from scratch through a `VarMap`.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use common::{expected, fixture_dir, load, logits, max_diff, tensor_i64};
use text2sql_model::{
    convert, expected_tensors, generate, loss, GenerationConfig, ModelError, T5Config, T5Model,
};

/// A copy of a fixture checkpoint with its tensors passed through `edit`.
fn edited_checkpoint(
    variant: &str,
    edit: impl FnOnce(&mut HashMap<String, Tensor>),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture_dir(variant);
    std::fs::copy(source.join("config.json"), dir.path().join("config.json")).unwrap();
    let mut tensors =
        candle_core::safetensors::load(source.join("model.safetensors"), &Device::Cpu).unwrap();
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    dir
}

fn load_error(dir: &Path) -> String {
    T5Model::load(dir, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string()
}

#[test]
fn missing_and_misshaped_tensors_are_named() {
    let dir = edited_checkpoint("t5_gated", |tensors| {
        tensors.remove("decoder.block.1.layer.1.EncDecAttention.k.weight");
        tensors.remove("lm_head.weight");
        tensors.insert(
            "encoder.block.0.layer.1.DenseReluDense.wi_0.weight".into(),
            Tensor::zeros((48, 32), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let message = load_error(dir.path());
    assert!(message.contains("model.safetensors"), "{message}");
    assert!(message.contains("3 tensor problem(s)"), "{message}");
    assert!(
        message.contains("missing tensor `decoder.block.1.layer.1.EncDecAttention.k.weight`"),
        "{message}"
    );
    assert!(
        message.contains("missing tensor `lm_head.weight`"),
        "{message}"
    );
    assert!(
        message.contains("`encoder.block.0.layer.1.DenseReluDense.wi_0.weight` has shape [48, 32], the config needs [64, 32]"),
        "{message}"
    );
}

#[test]
fn a_directory_without_weights_or_config_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let message = load_error(dir.path());
    assert!(message.contains("config.json"), "{message}");
    std::fs::copy(
        fixture_dir("t5_relu").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let message = load_error(dir.path());
    assert!(message.contains("no model.safetensors"), "{message}");
}

#[test]
fn embeddings_stored_under_the_encoder_name_are_found() {
    let dir = edited_checkpoint("t5_relu", |tensors| {
        let shared = tensors.remove("shared.weight").unwrap();
        tensors.insert("encoder.embed_tokens.weight".into(), shared);
    });
    let e = expected("t5_relu");
    let model = T5Model::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    assert!(max_diff(&logits(&model, &e, false), &e.logits) < 1e-4);
}

#[test]
fn expected_tensors_follow_the_config() {
    let config = T5Config::from_file(&fixture_dir("t5_gated").join("config.json")).unwrap();
    let names: Vec<String> = expected_tensors(&config)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    // 3 encoder blocks of 9 + 2 decoder blocks of 14, two position tables,
    // shared, two final norms, lm_head.
    assert_eq!(names.len(), 3 * 9 + 2 * 14 + 2 + 4);
    assert!(names.contains(
        &"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight".to_string()
    ));
    assert!(!names.contains(
        &"encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight".to_string()
    ));
    assert!(names.contains(&"decoder.block.1.layer.2.DenseReluDense.wi_1.weight".to_string()));
}

#[test]
fn save_then_load_gives_identical_outputs() {
    for variant in ["t5_relu", "t5_gated"] {
        let e = expected(variant);
        let model = load(variant);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("checkpoint");
        let tokenizer = fixture_dir("t5_relu").join("tokenizer.json");
        model
            .save_pretrained(&out, std::slice::from_ref(&tokenizer))
            .unwrap();
        for file in [
            "config.json",
            "model.safetensors",
            "generation_config.json",
            "tokenizer.json",
        ] {
            assert!(out.join(file).is_file(), "{variant}: {file} missing");
        }
        let reloaded = T5Model::load(&out, DType::F32, &Device::Cpu).unwrap();
        let before = logits(&model, &e, false)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let after = logits(&reloaded, &e, false)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(before, after, "{variant}");
        // The written config keeps the fields transformers needs.
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["model_type"], "t5");
        assert_eq!(config["dtype"], "float32");
        assert_eq!(config["tie_word_embeddings"], variant == "t5_relu");
        let generation = GenerationConfig::from_file(
            &out.join("generation_config.json"),
            &GenerationConfig::default(),
        )
        .unwrap();
        assert_eq!(generation.eos_token_id, 1);
        // Saving over a checkpoint replaces it; over anything else, refuses.
        model.save_pretrained(&out, &[]).unwrap();
        assert!(!out.join("tokenizer.json").exists());
        let message = model
            .save_pretrained(dir.path(), &[])
            .unwrap_err()
            .to_string();
        assert!(message.contains("not replacing"), "{message}");
    }
}

#[test]
fn bf16_conversion_keeps_the_model_working() {
    let e = expected("t5_gated");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bf16");
    let report = convert(&fixture_dir("t5_gated"), &out, DType::BF16).unwrap();
    assert_eq!(report.dtype, "bfloat16");
    assert_eq!(report.tensors, 3 * 9 + 2 * 14 + 2 + 4);
    let stored =
        candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(stored.values().all(|t| t.dtype() == DType::BF16));
    // bf16 keeps about 3 significant digits: allow 2% of the logit range.
    let largest = e.logits.iter().fold(0f32, |m, v| m.max(v.abs()));
    let model = T5Model::load(&out, DType::BF16, &Device::Cpu).unwrap();
    assert_eq!(model.dtype(), DType::BF16);
    let diff = max_diff(&logits(&model, &e, false), &e.logits);
    assert!(
        diff < 0.02 * largest,
        "bf16 logits differ by {diff} (largest {largest})"
    );
    // bf16 weights widened to f32 lose only the rounding of the weights.
    let widened = T5Model::load(&out, DType::F32, &Device::Cpu).unwrap();
    let diff = max_diff(&logits(&widened, &e, false), &e.logits);
    assert!(
        diff < 0.02 * largest,
        "widened logits differ by {diff} (largest {largest})"
    );
}

#[test]
fn a_model_built_from_scratch_trains() {
    let mut config = T5Config::from_file(&fixture_dir("t5_relu").join("config.json")).unwrap();
    config.shape.dropout_rate = 0.0;
    let varmap = VarMap::new();
    let model = T5Model::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &config,
    )
    .unwrap();
    assert_eq!(varmap.all_vars().len(), model.named_tensors().len());
    let e = expected("t5_relu");
    let labels = tensor_i64(&e.labels);
    let mut optimizer = candle_nn::optim::SGD::new(varmap.all_vars(), 0.5).unwrap();
    use candle_nn::Optimizer;
    let first = loss(&logits(&model, &e, true), &labels).unwrap();
    let mut last = first.to_scalar::<f32>().unwrap();
    let start = last;
    for _ in 0..15 {
        let value = loss(&logits(&model, &e, true), &labels).unwrap();
        last = value.to_scalar::<f32>().unwrap();
        optimizer.backward_step(&value).unwrap();
    }
    assert!(last < start * 0.8, "loss went from {start} to {last}");
    // The trained model decodes through the fast path too.
    let inference = model.detached().unwrap();
    let out = generate(
        &inference,
        &GenerationConfig {
            max_new_tokens: 4,
            ..GenerationConfig::for_model(&config)
        },
        &e.inputs,
    )
    .unwrap();
    assert_eq!(out.len(), e.inputs.len());
}

#[test]
fn bad_generation_requests_are_errors() {
    let model = load("t5_relu");
    let config = GenerationConfig::for_model(model.config());
    let err = generate(&model, &config, &[vec![5, 6], vec![]]).unwrap_err();
    assert!(err.to_string().contains("input #1 has no tokens"), "{err}");
    let err = generate(&model, &config, &[vec![5, 600]]).unwrap_err();
    assert!(err.to_string().contains("token id 600"), "{err}");
    let err = generate(
        &model,
        &GenerationConfig {
            num_beams: 0,
            ..config
        },
        &[vec![5]],
    )
    .unwrap_err();
    assert!(matches!(err, ModelError::Invalid(_)), "{err}");
}

#[test]
fn sharded_safetensors_load_through_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixture_dir("t5_gated");
    std::fs::copy(source.join("config.json"), dir.path().join("config.json")).unwrap();
    let tensors =
        candle_core::safetensors::load(source.join("model.safetensors"), &Device::Cpu).unwrap();
    let (encoder, rest): (HashMap<_, _>, HashMap<_, _>) = tensors
        .into_iter()
        .partition(|(name, _)| name.starts_with("encoder."));
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", &encoder),
        ("model-00002-of-00002.safetensors", &rest),
    ] {
        candle_core::safetensors::save(part, dir.path().join(file)).unwrap();
        for name in part.keys() {
            weight_map.insert(name.clone(), file.into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let e = expected("t5_gated");
    let model = T5Model::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    assert!(max_diff(&logits(&model, &e, false), &e.logits) < 1e-4);
}
