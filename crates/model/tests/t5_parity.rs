//! Parity with transformers on tiny random T5s of each layout: logits, loss,
//! gradients, greedy and beam search. The reference values are fixtures made
//! by `fixtures/make_t5_fixtures.py`; no Python runs here.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{expected, fixture_dir, load, logits, max_diff, tensor_i64, tensor_u32};
use text2sql_model::t5::layers::relative_position_bucket;
use text2sql_model::{generate, loss, GenerationConfig, T5Model};

const VARIANTS: [&str; 2] = ["t5_relu", "t5_gated"];

#[test]
fn logits_match_transformers_for_every_variant() {
    for variant in VARIANTS {
        let e = expected(variant);
        let model = load(variant);
        let logits = logits(&model, &e, false);
        assert_eq!(logits.dims(), e.logits_shape.as_slice());
        let diff = max_diff(&logits, &e.logits);
        assert!(diff < 1e-4, "{variant}: logits differ by {diff}");
    }
}

#[test]
fn pytorch_bin_loads_the_same_weights_as_safetensors() {
    let e = expected("t5_relu");
    let from_bin = logits(&load("t5_relu_pth"), &e, false);
    let diff = max_diff(&from_bin, &e.logits);
    assert!(diff < 1e-4, "pytorch_model.bin logits differ by {diff}");
}

#[test]
fn loss_ignores_padding_labels_like_transformers() {
    for variant in VARIANTS {
        let e = expected(variant);
        assert!(
            e.labels.iter().flatten().any(|&l| l == -100),
            "fixture has padding labels"
        );
        let model = load(variant);
        let value = loss(&logits(&model, &e, false), &tensor_i64(&e.labels))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            (value - e.loss).abs() < 1e-5 * e.loss.abs().max(1.0),
            "{variant}: {value} vs {}",
            e.loss
        );
    }
}

#[test]
fn every_parameter_gets_the_gradient_transformers_computes() {
    for variant in VARIANTS {
        let e = expected(variant);
        let (model, varmap) =
            T5Model::load_trainable(&fixture_dir(variant), DType::F32, &Device::Cpu).unwrap();
        let value = loss(&logits(&model, &e, false), &tensor_i64(&e.labels)).unwrap();
        let grads = value.backward().unwrap();
        let vars = varmap.data().lock().unwrap();
        assert_eq!(vars.len(), model.named_tensors().len());
        assert_eq!(
            vars.len(),
            e.grad_norms.len(),
            "{variant}: one variable per parameter"
        );
        for (name, var) in vars.iter() {
            let grad = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{variant}: no gradient for {name}"));
            let norm = grad
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .sqrt()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0, "{variant}: zero gradient for {name}");
            let reference = e.grad_norms[name];
            assert!(
                (norm - reference).abs() <= 1e-3 * reference + 1e-6,
                "{variant}: gradient norm of {name} is {norm}, transformers {reference}"
            );
        }
    }
}

#[test]
fn dropout_is_active_only_in_training_and_follows_its_seed() {
    let e = expected("t5_gated");
    let model = load("t5_gated");
    let eval = logits(&model, &e, false);
    model.set_dropout_seed(11);
    let first = logits(&model, &e, true);
    model.set_dropout_seed(11);
    let again = logits(&model, &e, true);
    model.set_dropout_seed(12);
    let other = logits(&model, &e, true);
    let as_vec = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(as_vec(&first), as_vec(&again));
    assert_ne!(as_vec(&first), as_vec(&other));
    assert!(
        max_diff(&first, &as_vec(&eval)) > 1e-3,
        "dropout changed nothing"
    );
    assert!(max_diff(&eval, &e.logits) < 1e-4);
    // A call with its own seed draws what a reseeded model draws, whatever
    // runs beside it: two at once on two threads give the same logits.
    let seeded = |seed: u64| {
        model
            .forward_train_seeded(
                &tensor_u32(&e.input_ids),
                Some(&tensor_u32(&e.attention_mask)),
                &tensor_u32(&e.decoder_input_ids),
                Some(&tensor_u32(&e.decoder_attention_mask)),
                seed,
            )
            .unwrap()
    };
    let (eleven, twelve) = std::thread::scope(|scope| {
        let a = scope.spawn(|| seeded(11));
        let b = scope.spawn(|| seeded(12));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(as_vec(&eleven), as_vec(&first));
    assert_eq!(as_vec(&twelve), as_vec(&other));
}

fn config_for(model: &T5Model) -> GenerationConfig {
    GenerationConfig::for_model(model.config())
}

#[test]
fn greedy_decoding_gives_transformers_tokens() {
    for variant in VARIANTS {
        let e = expected(variant);
        let model = load(variant);
        for case in [&e.greedy, &e.greedy_min_new_tokens] {
            let config = GenerationConfig {
                max_new_tokens: case.max_new_tokens,
                min_new_tokens: case.min_new_tokens,
                ..config_for(&model)
            };
            let out = generate(&model, &config, &e.inputs).unwrap();
            let tokens: Vec<Vec<u32>> = out.iter().map(|h| h[0].tokens.clone()).collect();
            assert_eq!(
                tokens, case.sequences,
                "{variant}, min_new_tokens {}",
                case.min_new_tokens
            );
        }
    }
}

#[test]
fn beam_search_gives_transformers_beams_and_scores() {
    for variant in VARIANTS {
        let e = expected(variant);
        let model = load(variant);
        for case in &e.beams {
            let config = GenerationConfig {
                max_new_tokens: case.max_new_tokens,
                num_beams: case.num_beams,
                length_penalty: case.length_penalty,
                ..config_for(&model)
            };
            let out = generate(&model, &config, &e.inputs).unwrap();
            let sequences: Vec<Vec<u32>> = out.iter().flatten().map(|h| h.tokens.clone()).collect();
            let scores: Vec<f32> = out.iter().flatten().map(|h| h.score).collect();
            let label = format!(
                "{variant}, {} beams, length penalty {}",
                case.num_beams, case.length_penalty
            );
            assert_eq!(sequences, case.sequences, "{label}");
            for (got, want) in scores.iter().zip(&case.scores) {
                assert!((got - want).abs() < 1e-4, "{label}: score {got} vs {want}");
            }
        }
    }
}

#[test]
fn batched_generation_equals_one_input_at_a_time() {
    let e = expected("t5_gated");
    let model = load("t5_gated");
    for num_beams in [1, 3] {
        let config = GenerationConfig {
            max_new_tokens: 9,
            num_beams,
            ..config_for(&model)
        };
        let batched = generate(&model, &config, &e.inputs).unwrap();
        for (input, together) in e.inputs.iter().zip(&batched) {
            let alone = generate(&model, &config, std::slice::from_ref(input)).unwrap();
            let tokens = |hs: &[text2sql_model::Hypothesis]| {
                hs.iter().map(|h| h.tokens.clone()).collect::<Vec<_>>()
            };
            assert_eq!(tokens(&alone[0]), tokens(together), "{num_beams} beams");
        }
    }
}

#[test]
fn incremental_decoder_matches_the_teacher_forced_one() {
    let e = expected("t5_relu");
    let model = load("t5_relu");
    let ids = tensor_u32(&e.input_ids);
    let mask = tensor_u32(&e.attention_mask);
    let targets = tensor_u32(&e.decoder_input_ids);
    let full = model
        .forward_train(&ids, Some(&mask), &targets, None, false)
        .unwrap();
    let encoded = model.encode(&ids, Some(&mask), false).unwrap();
    let mut cache = model.start_decoding(&ids, &encoded, Some(&mask)).unwrap();
    for step in 0..targets.dim(1).unwrap() {
        let tokens = targets.narrow(1, step, 1).unwrap().squeeze(1).unwrap();
        let stepped = model.decode_step(&mut cache, &tokens).unwrap();
        let reference = full.narrow(1, step, 1).unwrap().squeeze(1).unwrap();
        let diff = max_diff(
            &stepped,
            &reference.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(diff < 1e-4, "step {step}: {diff}");
    }
    assert_eq!(cache.steps(), targets.dim(1).unwrap());
}

#[test]
fn position_buckets_match_transformers() {
    #[derive(serde::Deserialize)]
    struct Case {
        bidirectional: bool,
        num_buckets: usize,
        max_distance: usize,
        first_position: i64,
        buckets: Vec<u32>,
    }
    let text = std::fs::read_to_string(fixture_dir("buckets.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        for (i, &want) in case.buckets.iter().enumerate() {
            let position = case.first_position + i as i64;
            let got = relative_position_bucket(
                position,
                case.bidirectional,
                case.num_buckets,
                case.max_distance,
            );
            assert_eq!(
                got, want,
                "position {position}, bidirectional {}, {} buckets, max distance {}",
                case.bidirectional, case.num_buckets, case.max_distance
            );
        }
    }
}
