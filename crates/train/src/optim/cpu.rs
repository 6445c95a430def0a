//! Direct access to the f32 storage of CPU tensors. candle's tensor ops
//! allocate a fresh tensor per op; an optimizer step over tens of millions of
//! weights is a handful of passes over memory when done on the slices
//! themselves (about 3 s to 0.1 s per t5-small step on this machine).

use std::cell::RefCell;

use candle_core::{CpuStorage, DType, Layout, Storage, Tensor};
use rayon::prelude::*;

/// True when `t` can take the slice fast path: f32 on the CPU.
pub(crate) fn is_host_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

fn contiguous_range(layout: &Layout, what: &str) -> candle_core::Result<(usize, usize)> {
    layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{what} is not contiguous")))
}

/// Calls `f` with the contiguous f32 data of a CPU tensor.
pub(crate) fn with_host_slice<R>(
    t: &Tensor,
    f: impl FnOnce(&[f32]) -> R,
) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(CpuStorage::F32(data)) => {
            let (start, end) = contiguous_range(layout, "tensor")?;
            Ok(f(&data[start..end]))
        }
        _ => Err(candle_core::Error::Msg(
            "expected an f32 CPU tensor".to_string(),
        )),
    }
}

struct SliceUpdate<F>(RefCell<F>);

impl<F: FnMut(&mut [f32], &[f32])> candle_core::InplaceOp2 for SliceUpdate<F> {
    fn name(&self) -> &'static str {
        "optimizer-update"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        src: &CpuStorage,
        src_l: &Layout,
    ) -> candle_core::Result<()> {
        match (dst, src) {
            (CpuStorage::F32(dst), CpuStorage::F32(src)) => {
                let (ds, de) = contiguous_range(dst_l, "parameter")?;
                let (ss, se) = contiguous_range(src_l, "gradient")?;
                if de - ds != se - ss {
                    return Err(candle_core::Error::Msg(format!(
                        "parameter has {} elements but its gradient {}",
                        de - ds,
                        se - ss
                    )));
                }
                (self.0.borrow_mut())(&mut dst[ds..de], &src[ss..se]);
                Ok(())
            }
            _ => Err(candle_core::Error::Msg(
                "the in-place update needs f32 CPU tensors".to_string(),
            )),
        }
    }
}

/// Runs `f(param_data, grad_data)` on the storage of `param` itself, so the
/// `Var` is updated in place without allocating.
pub(crate) fn update_in_place(
    param: &Tensor,
    grad: &Tensor,
    f: impl FnMut(&mut [f32], &[f32]),
) -> candle_core::Result<()> {
    param.inplace_op2(grad, &SliceUpdate(RefCell::new(f)))
}

/// Elements per rayon task in the optimizer's passes over parameters: far
/// more work than a task costs, and a fixed size so that the sums of
/// [`sum_squares`] do not depend on the thread count.
pub(crate) const ELEMENTS_PER_TASK: usize = 1 << 15;

/// Sum of squares in f64 (f32 accumulation loses digits over 10^7 terms),
/// over fixed chunks in parallel, added in chunk order: the same value for
/// any number of threads.
pub(crate) fn sum_squares(data: &[f32]) -> f64 {
    let partial: Vec<f64> = data
        .par_chunks(ELEMENTS_PER_TASK)
        .map(sum_squares_serial)
        .collect();
    partial.iter().sum()
}

fn sum_squares_serial(data: &[f32]) -> f64 {
    // Four independent accumulators let the compiler vectorise the loop.
    let mut acc = [0f64; 4];
    let chunks = data.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..4 {
            acc[i] += f64::from(c[i]) * f64::from(c[i]);
        }
    }
    let tail: f64 = rest.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
    acc.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_of_squares_is_exact_and_the_same_for_any_thread_count() {
        // Several chunks and a ragged tail.
        let data: Vec<f32> = (0..3 * ELEMENTS_PER_TASK + 17)
            .map(|i| ((i % 1000) as f32 - 500.0) * 1e-3)
            .collect();
        let exact: f64 = data.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let sums: Vec<f64> = [1, 2, 3]
            .iter()
            .map(|&threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| sum_squares(&data))
            })
            .collect();
        assert!(
            (sums[0] - exact).abs() < 1e-9 * exact,
            "{} vs {exact}",
            sums[0]
        );
        assert_eq!(sums[0].to_bits(), sums[1].to_bits());
        assert_eq!(sums[0].to_bits(), sums[2].to_bits());
    }
}
