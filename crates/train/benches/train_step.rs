//! One training step of this project's T5 at the t5-small shape with random
//! weights (batch 8, source 256, target 128 tokens, f32, dropout 0.1), doing
//! exactly what `Trainer::train` does per step: `forward_train`, `loss`,
//! `backward`, `Optimizer::accumulate` and an AdamW `step` with clipping
//! (which also drops the accumulated gradients). `bench/t5_train_step.py`
//! measures the same step for PyTorch + transformers;
//! `bench/train_bench.sh` runs both and prints the ratio.
//!
//!     cargo bench -p text2sql-train --bench train_step -- [--steps N] [--warmup N] [--threads N] [--bf16]

use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use text2sql_model::{loss, shift_right, T5Config, T5Model};
use text2sql_train::optim::{AdamWSettings, Algorithm};
use text2sql_train::{pad_batch, Optimizer, OptimizerSettings};

// The text2sql binary's allocator (crates/cli/src/main.rs), so that the
// figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 8;
const SOURCE_LEN: usize = 256;
const TARGET_LEN: usize = 128;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `(user + sys CPU seconds, minor page faults)` of this process so far.
fn cpu_and_faults() -> (f64, u64) {
    stat_cpu_and_faults("/proc/self/stat")
}

/// User + sys CPU seconds of the calling thread so far. Called on the main
/// thread, which waits while rayon's workers run the parallel kernels: at
/// two or more threads its CPU time is the step's serial part (at one
/// thread it also runs the matrix products, which then skip rayon).
fn thread_cpu() -> f64 {
    stat_cpu_and_faults("/proc/thread-self/stat").0
}

fn stat_cpu_and_faults(path: &str) -> (f64, u64) {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // minflt is field 10 of stat, utime 14, stime 15; `fields[0]` is field 3.
    let ticks = (num(11) + num(12)) as f64 / 100.0;
    (ticks, num(7))
}

/// Peak resident set size of this process in MiB (VmHWM).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn median(times: &[f64]) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(threads) = Some(arg("--threads", 0)).filter(|&t| t > 0) {
        // candle's CPU kernels size their pools from this variable.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    text2sql_model::pin_cpu_threads();
    // As `Trainer::train` does.
    text2sql_train::alloc::keep_freed_memory();
    let steps = arg("--steps", 5);
    // `--bf16`: mixed precision (bf16 products, f32 weights and sums).
    let bf16 = std::env::args().any(|a| a == "--bf16");
    let _mixed = if bf16 {
        Some(text2sql_model::ops::bf16_products()?)
    } else {
        None
    };
    let precision = if bf16 { "bf16 mixed" } else { "f32" };
    let warmup = arg("--warmup", 1);
    let device = Device::Cpu;
    let config = T5Config::t5_small();
    let varmap = VarMap::new();
    let model = T5Model::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
        &config,
    )?;
    let params: Vec<(String, Var)> = {
        let data = varmap.data().lock().map_err(|e| e.to_string())?;
        data.iter().map(|(n, v)| (n.clone(), v.clone())).collect()
    };
    let mut optimizer = Optimizer::new(
        params,
        OptimizerSettings {
            algorithm: Algorithm::AdamW(AdamWSettings::default()),
            clip_norm: Some(1.0),
        },
    )?;

    // Fixed pseudo-random tokens, no padding (the Python script's too).
    let vocab = config.shape.vocab_size;
    let token = |i: usize, b: usize, salt: usize| {
        2 + ((i * 7919 + b * 104_729 + salt) % (vocab - 2)) as u32
    };
    let sources: Vec<Vec<u32>> = (0..BATCH)
        .map(|b| (0..SOURCE_LEN).map(|i| token(i, b, 0)).collect())
        .collect();
    let labels: Vec<Vec<i64>> = (0..BATCH)
        .map(|b| {
            (0..TARGET_LEN)
                .map(|i| i64::from(token(i, b, 13)))
                .collect()
        })
        .collect();
    let (input_ids, mask) = pad_batch(&sources, config.pad_token(), &device)?;
    let decoder_inputs = shift_right(&labels, config.decoder_start_token(), config.pad_token());
    let (decoder_ids, _) = pad_batch(&decoder_inputs, config.pad_token(), &device)?;
    let label_tensor = Tensor::from_vec(labels.concat(), (BATCH, TARGET_LEN), &device)?;

    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_default();
    let mut phases = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let mut totals = Vec::new();
    let mut cpu = Vec::new();
    let mut main_cpu = Vec::new();
    let mut faults = Vec::new();
    let mut last_loss = f32::NAN;
    for step in 0..warmup + steps {
        model.set_dropout_seed(step as u64);
        let (cpu_before, faults_before) = cpu_and_faults();
        let main_before = thread_cpu();
        let start = Instant::now();
        let logits = model.forward_train(&input_ids, Some(&mask), &decoder_ids, None, true)?;
        let loss = loss(&logits, &label_tensor)?;
        last_loss = loss.to_scalar::<f32>()?;
        let forward = start.elapsed().as_secs_f64();
        let grads = loss.backward()?;
        let backward = start.elapsed().as_secs_f64();
        optimizer.accumulate(&grads)?;
        drop(grads);
        optimizer.step(1e-4)?;
        let total = start.elapsed().as_secs_f64();
        let (cpu_after, faults_after) = cpu_and_faults();
        let main_after = thread_cpu();
        if step >= warmup {
            phases[0].push(forward);
            phases[1].push(backward - forward);
            phases[2].push(total - backward);
            phases[3].push(total);
            totals.push(total);
            cpu.push(cpu_after - cpu_before);
            main_cpu.push(main_after - main_before);
            faults.push((faults_after - faults_before) as f64);
        }
    }
    let med = median(&totals);
    let tokens = (BATCH * (SOURCE_LEN + TARGET_LEN)) as f64;
    println!(
        "candle train step: median {med:.3} s over {steps} steps (batch {BATCH}, source \
         {SOURCE_LEN}, target {TARGET_LEN}, {precision}, {threads} threads) = {:.0} tokens/s; \
         forward+loss {:.3} s, backward {:.3} s, optimizer {:.3} s; CPU {:.2} s/step, \
         of it {:.2} s on the main thread (all but rayon's work); {:.0} minor faults/step; \
         last loss {last_loss:.4}; all steps {:?}",
        tokens / med,
        median(&phases[0]),
        median(&phases[1]),
        median(&phases[2]),
        median(&cpu),
        median(&main_cpu),
        median(&faults),
        totals.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>()
    );
    println!(
        "RESULT side=candle{} median_s={med:.4} tokens_per_s={:.1} cpu_s={:.3} main_cpu_s={:.3} \
         peak_rss_mib={:.0}",
        if bf16 { "-bf16" } else { "" },
        tokens / med,
        median(&cpu),
        median(&main_cpu),
        peak_rss_mib()
    );
    Ok(())
}
