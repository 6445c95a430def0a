//! Optimizer step time at t5-small scale (60.5 M parameters, f32, CPU):
//! the in-place slice path, the tensor-op path (what GPUs run), and
//! candle-nn's AdamW plus a tensor-op gradient clip for reference.
//!
//!   cargo bench -p text2sql-train --bench optimizer [-- STEPS]

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer as _;
use text2sql_train::optim::{AdafactorSettings, AdamWSettings, Algorithm};
use text2sql_train::{Optimizer, OptimizerSettings};

/// The trainable tensors of t5-small (tied embeddings).
fn t5_small_shapes() -> Vec<(String, Vec<usize>)> {
    let (d, ff, vocab) = (512, 2048, 32128);
    let mut shapes = vec![("shared.weight".to_string(), vec![vocab, d])];
    for stack in ["encoder", "decoder"] {
        for block in 0..6 {
            let p = format!("{stack}.block.{block}");
            let attentions: &[&str] = if stack == "encoder" {
                &["layer.0.SelfAttention"]
            } else {
                &["layer.0.SelfAttention", "layer.1.EncDecAttention"]
            };
            for attn in attentions {
                for m in ["q", "k", "v", "o"] {
                    shapes.push((format!("{p}.{attn}.{m}.weight"), vec![d, d]));
                }
            }
            let ff_layer = if stack == "encoder" { 1 } else { 2 };
            shapes.push((
                format!("{p}.layer.{ff_layer}.DenseReluDense.wi.weight"),
                vec![ff, d],
            ));
            shapes.push((
                format!("{p}.layer.{ff_layer}.DenseReluDense.wo.weight"),
                vec![d, ff],
            ));
            for l in 0..=ff_layer {
                shapes.push((format!("{p}.layer.{l}.layer_norm.weight"), vec![d]));
            }
        }
        shapes.push((
            format!("{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"),
            vec![32, 8],
        ));
        shapes.push((format!("{stack}.final_layer_norm.weight"), vec![d]));
    }
    shapes
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let dev = Device::Cpu;
    let params: Vec<(String, Var)> = t5_small_shapes()
        .into_iter()
        .map(|(name, shape)| Ok((name, Var::randn(0f32, 0.05, shape, &dev)?)))
        .collect::<candle_core::Result<_>>()?;
    let count: usize = params.iter().map(|(_, v)| v.elem_count()).sum();
    // d loss / d p = c for loss = sum(p * c).
    let mut loss = Tensor::new(0f32, &dev)?;
    for (_, v) in &params {
        let c = Tensor::randn(0f32, 1.0, v.shape(), &dev)?;
        loss = (loss + (v.as_tensor() * c)?.sum_all()?)?;
    }
    let grads = loss.backward()?;
    println!(
        "{} tensors, {:.1} M parameters, {steps} steps each",
        params.len(),
        count as f64 / 1e6
    );

    let adamw = Algorithm::AdamW(AdamWSettings::default());
    let adafactor = Algorithm::Adafactor(AdafactorSettings::default());
    for (label, algorithm, tensor_ops) in [
        ("AdamW in place", adamw.clone(), false),
        ("AdamW tensor ops", adamw, true),
        ("Adafactor in place", adafactor.clone(), false),
        ("Adafactor tensor ops", adafactor, true),
    ] {
        let settings = OptimizerSettings {
            algorithm,
            clip_norm: Some(1.0),
        };
        let mut opt = if tensor_ops {
            Optimizer::with_tensor_ops(params.clone(), settings)?
        } else {
            Optimizer::new(params.clone(), settings)?
        };
        let mut times = Vec::new();
        for _ in 0..steps {
            let start = Instant::now();
            opt.accumulate(&grads)?;
            opt.step(1e-4)?;
            times.push(start.elapsed().as_secs_f64());
        }
        report(label, &mut times);
    }

    // candle-nn's AdamW with the clip done in tensor ops, as a reference.
    let vars: Vec<Var> = params.iter().map(|(_, v)| v.clone()).collect();
    let mut nn = candle_nn::AdamW::new(vars.clone(), candle_nn::ParamsAdamW::default())?;
    let mut times = Vec::new();
    for _ in 0..steps {
        // GradStore has no public constructor: take a fresh one, untimed.
        let mut clipped = loss.backward()?;
        let start = Instant::now();
        let mut sq = Tensor::new(0f32, &dev)?;
        for v in &vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                sq = (sq + g.sqr()?.sum_all()?)?;
            }
        }
        let norm = sq.sqrt()?.to_scalar::<f32>()?;
        let scale = (1.0 / (norm + 1e-6)).min(1.0) as f64;
        for v in &vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                clipped.insert(v.as_tensor(), g.affine(scale, 0.0)?.to_dtype(DType::F32)?);
            }
        }
        nn.step(&clipped)?;
        times.push(start.elapsed().as_secs_f64());
    }
    report("candle-nn AdamW + clip", &mut times);
    Ok(())
}

fn report(label: &str, times: &mut [f64]) {
    times.sort_by(f64::total_cmp);
    println!(
        "{label:<24} median {:.3} s  min {:.3} s  max {:.3} s",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}
