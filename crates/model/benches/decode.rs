//! Greedy decoding speed of this crate's T5 at the t5-small shape with random
//! weights: a 256-token source and exactly 64 generated tokens (EOS is
//! suppressed until then), the setting `bench/t5_decode.py` measures for
//! transformers. `bench/decode_bench.sh` runs both and prints the ratio.
//!
//!     cargo bench -p text2sql-model --bench decode -- [--runs N] [--batch B] [--new-tokens N]

use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use text2sql_model::{generate, GenerationConfig, T5Config, T5Model};

const SOURCE_LEN: usize = 256;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> text2sql_model::Result<()> {
    // As the text2sql binary does at start-up.
    text2sql_model::pin_cpu_threads();
    let runs = arg("--runs", 5);
    let batch = arg("--batch", 1);
    let new_tokens = arg("--new-tokens", 64);
    let config = T5Config::t5_small();
    let varmap = VarMap::new();
    let trainable = T5Model::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &config,
    )?;
    // Inference uses plain tensors (and so candle's fused kernels).
    let model = trainable.detached()?;
    // A fixed pseudo-random source, the same as the Python script's shape.
    let inputs: Vec<Vec<u32>> = (0..batch)
        .map(|b| {
            (0..SOURCE_LEN)
                .map(|i| 2 + ((i * 7919 + b * 104_729) % (config.vocab_size - 2)) as u32)
                .collect()
        })
        .collect();
    let generation = GenerationConfig {
        max_new_tokens: new_tokens,
        min_new_tokens: new_tokens,
        ..GenerationConfig::for_model(&config)
    };
    // Warm-up (page faults, thread pool).
    generate(&model, &generation, &inputs)?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let out = generate(&model, &generation, &inputs)?;
        times.push(start.elapsed().as_secs_f64());
        assert!(out.iter().all(|h| h[0].tokens.len() == new_tokens));
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "candle greedy: median {median:.3} s over {runs} runs (batch {batch}, source {SOURCE_LEN}, \
         {new_tokens} new tokens) = {:.2} ms per generated token; all runs {:?}",
        median * 1000.0 / new_tokens as f64,
        times.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>()
    );
    println!("RESULT candle_median_s={median:.4}");
    Ok(())
}
