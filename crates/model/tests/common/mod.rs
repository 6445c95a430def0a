//! Fixture access shared by the T5 integration tests. The fixtures are made
//! by `fixtures/make_t5_fixtures.py` with transformers (the reference).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Greedy {
    pub max_new_tokens: usize,
    #[serde(default)]
    pub min_new_tokens: usize,
    pub sequences: Vec<Vec<u32>>,
}

#[derive(Debug, Deserialize)]
pub struct Beams {
    pub num_beams: usize,
    pub length_penalty: f32,
    pub max_new_tokens: usize,
    pub sequences: Vec<Vec<u32>>,
    pub scores: Vec<f32>,
}

/// What transformers computed for a fixture model.
#[derive(Debug, Deserialize)]
pub struct Expected {
    pub inputs: Vec<Vec<u32>>,
    pub input_ids: Vec<Vec<u32>>,
    pub attention_mask: Vec<Vec<u32>>,
    pub decoder_input_ids: Vec<Vec<u32>>,
    pub decoder_attention_mask: Vec<Vec<u32>>,
    pub labels: Vec<Vec<i64>>,
    pub logits_shape: Vec<usize>,
    pub logits: Vec<f32>,
    pub loss: f32,
    pub grad_norms: HashMap<String, f32>,
    pub greedy: Greedy,
    pub greedy_min_new_tokens: Greedy,
    pub beams: Vec<Beams>,
}

pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/t5")
        .join(name)
}

pub fn expected(name: &str) -> Expected {
    let text = std::fs::read_to_string(fixture_dir(name).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn tensor_u32(rows: &[Vec<u32>]) -> Tensor {
    let cols = rows[0].len();
    Tensor::from_vec(rows.concat(), (rows.len(), cols), &Device::Cpu).unwrap()
}

pub fn tensor_i64(rows: &[Vec<i64>]) -> Tensor {
    let cols = rows[0].len();
    Tensor::from_vec(rows.concat(), (rows.len(), cols), &Device::Cpu).unwrap()
}

/// The teacher-forced logits of `model` on the fixture's batch.
pub fn logits(model: &text2sql_model::T5Model, e: &Expected, train: bool) -> Tensor {
    model
        .forward_train(
            &tensor_u32(&e.input_ids),
            Some(&tensor_u32(&e.attention_mask)),
            &tensor_u32(&e.decoder_input_ids),
            Some(&tensor_u32(&e.decoder_attention_mask)),
            train,
        )
        .unwrap()
}

/// Largest absolute difference between `tensor` and `values`, over the
/// positions that are not padding in the decoder.
pub fn max_diff(tensor: &Tensor, values: &[f32]) -> f32 {
    let got = tensor
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(got.len(), values.len());
    got.iter()
        .zip(values)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

pub fn load(name: &str) -> text2sql_model::T5Model {
    text2sql_model::T5Model::load(&fixture_dir(name), DType::F32, &Device::Cpu).unwrap()
}
