//! The matrix products of a t5-small training step (batch 8, source 256,
//! target 128 tokens), f32 (candle's `gemm`) against bf16 operands with f32
//! accumulation (`text2sql_model::bf16_matmul`) on each bf16 kernel the CPU
//! has (AVX-512 BF16, AMX), median of `--runs` each, all alternated.
//!
//!     cargo bench -p text2sql-model --bench bf16_matmul -- [--runs N]

use std::time::Instant;

use candle_core::{Device, Tensor};
use text2sql_model::bf16_matmul::{self, Layout, Operand};

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(7usize);
    if !bf16_matmul::available() {
        println!("this CPU has no AVX-512 BF16: nothing to compare");
        return;
    }
    // (what, m, k, n, layouts of A and B): forward (`x W^T`), input
    // gradient (`dy W`) and weight gradient (`dy^T x`) shapes, each with
    // its operands laid out as the linear layer's backward reads them.
    use Layout::{KByOuter as KO, OuterByK as OK};
    let shapes = [
        ("encoder FFN in, forward", 2048, 512, 2048, OK, OK),
        ("encoder FFN in, weight gradient", 2048, 2048, 512, KO, KO),
        ("attention projection, forward", 2048, 512, 512, OK, OK),
        ("LM head, forward", 1024, 512, 32128, OK, OK),
        ("LM head, input gradient", 1024, 32128, 512, OK, KO),
        ("LM head, weight gradient", 32128, 1024, 512, KO, KO),
    ];
    let kernels = bf16_matmul::kernels();
    print!("{:<34} {:>10}", "product (m x k x n)", "f32 ms");
    for kernel in &kernels {
        print!(" {:>12} {:>7}", format!("{kernel:?} ms"), "ratio");
    }
    println!();
    for (what, m, k, n, a_layout, b_layout) in shapes {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let ta = Tensor::from_slice(&a, (m, k), &Device::Cpu).unwrap();
        let tb = Tensor::from_slice(&b, (k, n), &Device::Cpu).unwrap();
        let mut f32_times = Vec::new();
        let mut bf16_times = vec![Vec::new(); kernels.len()];
        for _ in 0..runs {
            let t = Instant::now();
            let c = ta.matmul(&tb).unwrap();
            f32_times.push(t.elapsed().as_secs_f64() * 1e3);
            drop(c);
            for (kernel, times) in kernels.iter().zip(&mut bf16_times) {
                let t = Instant::now();
                let c = bf16_matmul::matmul_on(
                    *kernel,
                    Operand::new(&a, a_layout),
                    Operand::new(&b, b_layout),
                    m,
                    k,
                    n,
                );
                times.push(t.elapsed().as_secs_f64() * 1e3);
                drop(c);
            }
        }
        let f = median(f32_times);
        print!("{what:<34} {f:>10.2}");
        for times in bf16_times {
            let h = median(times);
            print!(" {h:>12.2} {:>6.2}x", f / h);
        }
        println!("   ({m} x {k} x {n})");
    }
}
