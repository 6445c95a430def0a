//! Greedy decoding speed of this crate's T5 at the t5-small shape with random
//! weights: a 256-token source and exactly 64 generated tokens (EOS is
//! suppressed until then), the setting `bench/t5_decode.py` measures for
//! transformers. `bench/decode_bench.sh` runs both and prints the ratios.
//!
//!     cargo bench -p text2sql-model --bench decode -- [--runs N] [--batch B] [--new-tokens N] [--threads N]
//!
//! `--threads 0` (the default) keeps candle's default, one thread per
//! physical core, as the `text2sql` binary does.

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

/// CPU time of the whole process (all threads), in seconds: on a shared
/// machine it moves far less than wall-clock time.
#[cfg(target_os = "linux")]
fn process_cpu_seconds() -> Option<f64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    (status == 0).then_some(now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9)
}

#[cfg(not(target_os = "linux"))]
fn process_cpu_seconds() -> Option<f64> {
    None
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> text2sql_model::Result<()> {
    let threads = arg("--threads", 0);
    if threads > 0 {
        // Before anything starts a thread pool.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    // As the text2sql binary does at start-up.
    text2sql_model::pin_cpu_threads();
    let threads = candle_core::utils::get_num_threads();
    let runs = arg("--runs", 5).max(1);
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
                .map(|i| 2 + ((i * 7919 + b * 104_729) % (config.shape.vocab_size - 2)) as u32)
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
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    for _ in 0..runs {
        let cpu_start = process_cpu_seconds();
        let start = Instant::now();
        let out = generate(&model, &generation, &inputs)?;
        wall.push(start.elapsed().as_secs_f64());
        if let (Some(before), Some(after)) = (cpu_start, process_cpu_seconds()) {
            cpu.push(after - before);
        }
        assert!(out.iter().all(|h| h[0].tokens.len() == new_tokens));
    }
    let wall_median = median(wall.clone());
    let cpu_median = (!cpu.is_empty()).then(|| median(cpu));
    println!(
        "candle greedy: median {wall_median:.3} s over {runs} runs (batch {batch}, source \
         {SOURCE_LEN}, {new_tokens} new tokens) = {:.2} ms per generated token; CPU time {}; \
         {threads} thread(s); all runs {:?}",
        wall_median * 1000.0 / new_tokens as f64,
        cpu_median.map_or("unknown".to_string(), |c| format!("{c:.3} s")),
        wall.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>()
    );
    println!("RESULT candle_median_s={wall_median:.4}");
    if let Some(cpu_median) = cpu_median {
        println!("RESULT candle_cpu_s={cpu_median:.4}");
    }
    println!("RESULT candle_threads={threads}");
    Ok(())
}
