//! A model trained from scratch (`model.architecture`): built for the run's
//! tokenizer and started from the run's seed, with the spreads the model
//! crate's [`init_std`] gives each weight.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use text2sql_model::t5::init::init_std;
use text2sql_model::t5::SymbolIds;
use text2sql_model::tokenizer::Tokenizer;
use text2sql_model::{T5Architecture, T5Config, T5Model};

use crate::error::{Result, TrainError};

/// A fresh model of shape `arch` whose special tokens are `tokenizer`'s,
/// its random weights drawn from `seed`. `tokenizer_dir` names the
/// tokenizer in errors.
pub(super) fn fresh_model(
    arch: &T5Architecture,
    tokenizer: &Tokenizer,
    tokenizer_dir: &Path,
    dtype: DType,
    device: &Device,
    seed: u64,
) -> Result<(T5Model, VarMap)> {
    let mut t5: T5Config = arch.to_config();
    t5.pad_token_id = Some(tokenizer.pad_id());
    t5.eos_token_id = Some(tokenizer.eos_id());
    t5.decoder_start_token_id = Some(tokenizer.pad_id());
    if arch.schema_pointer {
        let count = tokenizer.schema_symbols();
        let first = tokenizer.symbol_id(0).ok_or_else(|| TrainError::Config {
            path: tokenizer_dir.to_path_buf(),
            message: "model.architecture.schema_pointer needs a tokenizer trained with \
                      --schema-symbols"
                .into(),
        })?;
        t5.schema_symbol_ids = Some(SymbolIds { first, count });
    }
    if tokenizer.vocab_size() > t5.shape.vocab_size {
        return Err(TrainError::Config {
            path: tokenizer_dir.to_path_buf(),
            message: format!(
                "the tokenizer has {} tokens, more than model.architecture.vocab_size = {}",
                tokenizer.vocab_size(),
                t5.shape.vocab_size
            ),
        });
    }
    let varmap = VarMap::new();
    let model = T5Model::new(VarBuilder::from_varmap(&varmap, dtype, device), &t5)?;
    reseed_init(&named_vars(&varmap), &t5, seed)?;
    Ok((model, varmap))
}

/// The model's trainable variables by name.
pub(super) fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
    let mut vars: Vec<(String, Var)> = data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Redraws every randomly initialised variable from a generator seeded by
/// `seed`, with the spread its layer asked candle for: candle's CPU random
/// source cannot be seeded, and identical runs need identical starts. The
/// spread comes from the config, not from candle's draw, so nothing of the
/// unseeded draw leaks into the run. Constant tensors are left as they are.
fn reseed_init(vars: &[(String, Var)], config: &T5Config, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (name, var) in vars {
        let Some(std) = init_std(config, name) else {
            continue;
        };
        // Box-Muller: rand 0.9 without rand_distr has no normal sampler.
        let fresh: Vec<f32> = (0..var.elem_count())
            .map(|_| {
                let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                let u2: f64 = rng.random::<f64>();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (std * z) as f32
            })
            .collect();
        let fresh = Tensor::from_vec(fresh, var.shape(), var.device())?.to_dtype(var.dtype())?;
        var.set(&fresh)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_vars(config: &T5Config) -> Vec<(String, Var)> {
        let varmap = VarMap::new();
        T5Model::new(
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
            config,
        )
        .unwrap();
        named_vars(&varmap)
    }

    fn values(var: &Var) -> Vec<f32> {
        var.as_tensor().flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn a_seeded_start_is_identical_and_keeps_each_layers_spread() {
        for gated in [false, true] {
            let config: T5Config = serde_json::from_str(&format!(
                r#"{{"vocab_size": 300, "d_model": 64, "d_kv": 16, "d_ff": 128,
                    "num_layers": 2, "num_heads": 4, "tie_word_embeddings": {},
                    "feed_forward_proj": "{}"}}"#,
                !gated,
                if gated { "gated-gelu" } else { "relu" }
            ))
            .unwrap();
            let first = model_vars(&config);
            let second = model_vars(&config);
            // What candle drew (unseeded) has the spread init_std names;
            // layer norms are the constant 1 and have no spread.
            for (name, var) in &first {
                let v = values(var);
                let n = v.len() as f64;
                let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
                let std = (v
                    .iter()
                    .map(|&x| (f64::from(x) - mean).powi(2))
                    .sum::<f64>()
                    / n)
                    .sqrt();
                match init_std(&config, name) {
                    Some(want) => assert!(
                        (std / want - 1.0).abs() < 0.25,
                        "{name}: candle drew std {std}, init_std says {want}"
                    ),
                    None => assert!(std == 0.0, "{name} is random but has no init_std"),
                }
            }
            reseed_init(&first, &config, 7).unwrap();
            reseed_init(&second, &config, 7).unwrap();
            for ((name, a), (_, b)) in first.iter().zip(&second) {
                assert_eq!(values(a), values(b), "{name} differs between seeded starts");
            }
            reseed_init(&second, &config, 8).unwrap();
            let shared = |vars: &[(String, Var)]| {
                values(&vars.iter().find(|(n, _)| n == "shared.weight").unwrap().1)
            };
            assert_ne!(
                shared(&first),
                shared(&second),
                "another seed, another start"
            );
        }
    }
}
