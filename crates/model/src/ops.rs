//! Fused CPU kernels with hand-written backward passes for the training step.
//!
//! Why by hand: candle-nn's fused softmax and rms-norm have no backward, and
//! candle has no fused cross-entropy or dropout. Built from basic ops instead,
//! each of them is a chain of five to ten graph nodes, and candle's backward
//! allocates a zero tensor and adds into it for every node input: for the
//! `(batch, heads, q, k)` attention weights and the `(tokens, vocab)` logits
//! that is most of the training step's time and memory. One op per function
//! with its derivative written out keeps a single node each. The same holds,
//! on a smaller scale, for the reshapes and transposes around the linear
//! layers and the attention heads, which are fused here too.
//!
//! Threads: the kernels run on rayon's global pool, the one candle's matrix
//! products use, so that the two never compete for cores (candle's own
//! element-wise pool is switched off, see [`crate::pin_cpu_threads`]); every
//! kernel gives the same result for any thread count.
//!
//! The kernels run for contiguous f32 tensors on the CPU only; every caller
//! keeps the composed-op version for any other device or dtype (CUDA, Metal,
//! half precision), and the tests check both against each other.

use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Rows handed to one rayon task: enough work per task to amortise the
/// scheduling, few enough to balance two to sixteen threads.
const ROWS_PER_TASK: usize = 16;

/// `exp(d)` for a shift `d <= 0` below a row's maximum (or its log-sum),
/// 0 below -80: such a term vanishes next to the maximum's 1 in f32, and
/// libm's `expf` takes a slow path (`xflowf`, errno) for every result that
/// underflows, which attention masks and a vocabulary's unlikely tokens
/// produce by the thousand (20% of a decoding profile).
#[inline]
pub(crate) fn exp_shifted(d: f32) -> f32 {
    if d < -80.0 {
        0.0
    } else {
        d.exp()
    }
}

/// Whether the fused CPU kernels can take `xs`.
pub fn is_cpu_f32(xs: &Tensor) -> bool {
    xs.device().is_cpu() && xs.dtype() == DType::F32
}

fn f32_slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &'static str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        return Err(candle_core::Error::UnsupportedDTypeForOp(
            storage.dtype(),
            op,
        ));
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => Err(candle_core::Error::RequiresContiguous { op }),
    }
}

/// `len` zeros written by the rayon pool. The kernels' outputs are mostly
/// reused memory, which `vec![0.0; len]` would clear with a memset on the
/// calling thread while the pool waits.
fn zeros(len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    out.par_extend(rayon::iter::repeat_n(0f32, len));
    out
}

fn last_dim(shape: &Shape) -> usize {
    shape.dims().last().copied().unwrap_or(1).max(1)
}

/// Softmax over the last dimension with a backward pass
/// (`dx = y * (dy - sum(dy * y))`).
struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let xs = f32_slice(storage, layout, self.name())?;
        let dim = last_dim(layout.shape());
        let mut out = zeros(xs.len());
        out.par_chunks_mut(dim * ROWS_PER_TASK)
            .zip(xs.par_chunks(dim * ROWS_PER_TASK))
            .for_each(|(out, xs)| {
                for (out, xs) in out.chunks_mut(dim).zip(xs.chunks(dim)) {
                    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0f32;
                    for (o, &x) in out.iter_mut().zip(xs) {
                        *o = exp_shifted(x - max);
                        sum += *o;
                    }
                    let inv = 1.0 / sum;
                    out.iter_mut().for_each(|o| *o *= inv);
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad_res = grad_res.contiguous()?;
        Ok(Some(res.apply_op2_no_bwd(&grad_res, &SoftmaxBackward)?))
    }
}

/// `(y, dy)` to `dx` for [`Softmax`].
struct SoftmaxBackward;

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "fused-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        y_storage: &CpuStorage,
        y_layout: &Layout,
        dy_storage: &CpuStorage,
        dy_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let ys = f32_slice(y_storage, y_layout, self.name())?;
        let dys = f32_slice(dy_storage, dy_layout, self.name())?;
        let dim = last_dim(y_layout.shape());
        let mut out = zeros(ys.len());
        out.par_chunks_mut(dim * ROWS_PER_TASK)
            .zip(ys.par_chunks(dim * ROWS_PER_TASK))
            .zip(dys.par_chunks(dim * ROWS_PER_TASK))
            .for_each(|((out, ys), dys)| {
                for ((out, ys), dys) in out.chunks_mut(dim).zip(ys.chunks(dim)).zip(dys.chunks(dim))
                {
                    let dot: f32 = ys.iter().zip(dys).map(|(y, dy)| y * dy).sum();
                    for ((o, &y), &dy) in out.iter_mut().zip(ys).zip(dys) {
                        *o = y * (dy - dot);
                    }
                }
            });
        Ok((CpuStorage::F32(out), y_layout.shape().clone()))
    }
}

/// Differentiable softmax over the last dimension of a CPU f32 tensor as one
/// graph node. Callers check [`is_cpu_f32`] first.
pub fn softmax_last_dim(xs: &Tensor) -> candle_core::Result<Tensor> {
    xs.contiguous()?.apply_op1(Softmax)
}

/// T5's RMS norm `x / sqrt(mean(x^2) + eps) * w` over the last dimension,
/// with the gradients of `x` and `w`.
struct RmsNorm {
    eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        x_storage: &CpuStorage,
        x_layout: &Layout,
        w_storage: &CpuStorage,
        w_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let xs = f32_slice(x_storage, x_layout, self.name())?;
        let w = f32_slice(w_storage, w_layout, self.name())?;
        let dim = last_dim(x_layout.shape());
        if w.len() != dim {
            return Err(candle_core::Error::ShapeMismatchBinaryOp {
                lhs: x_layout.shape().clone(),
                rhs: w_layout.shape().clone(),
                op: self.name(),
            });
        }
        let eps = self.eps;
        let mut out = zeros(xs.len());
        out.par_chunks_mut(dim * ROWS_PER_TASK)
            .zip(xs.par_chunks(dim * ROWS_PER_TASK))
            .for_each(|(out, xs)| {
                for (out, xs) in out.chunks_mut(dim).zip(xs.chunks(dim)) {
                    let mean_sq = xs.iter().map(|x| x * x).sum::<f32>() / dim as f32;
                    let scale = 1.0 / (mean_sq + eps).sqrt();
                    for ((o, &x), &w) in out.iter_mut().zip(xs).zip(w) {
                        *o = x * scale * w;
                    }
                }
            });
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_res = grad_res.contiguous()?;
        // One kernel writes both gradients: rows `0..n` hold dx, row `n` dw.
        let both = x.apply_op3_no_bwd(w, &grad_res, &RmsNormBackward { eps: self.eps })?;
        let dim = last_dim(x.shape());
        let rows = x.elem_count() / dim;
        let dx = both.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dw = both.narrow(0, rows, 1)?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw)))
    }
}

/// `(x, w, dy)` to `[dx; dw]` (`(rows + 1, dim)`) for [`RmsNorm`]. With
/// `r = 1 / sqrt(mean(x^2) + eps)` and `g = dy * w`:
/// `dx = r * g - r^3 * x * mean(g * x)` and `dw = sum over rows of dy * x * r`.
struct RmsNormBackward {
    eps: f32,
}

impl CustomOp3 for RmsNormBackward {
    fn name(&self) -> &'static str {
        "fused-rms-norm-backward"
    }

    fn cpu_fwd(
        &self,
        x_storage: &CpuStorage,
        x_layout: &Layout,
        w_storage: &CpuStorage,
        w_layout: &Layout,
        dy_storage: &CpuStorage,
        dy_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let xs = f32_slice(x_storage, x_layout, self.name())?;
        let w = f32_slice(w_storage, w_layout, self.name())?;
        let dys = f32_slice(dy_storage, dy_layout, self.name())?;
        let dim = w.len().max(1);
        let rows = xs.len() / dim;
        let eps = self.eps;
        let mut out = zeros(xs.len() + dim);
        let (dx, dw) = out.split_at_mut(xs.len());
        let mut scales = vec![0f32; rows];
        dx.par_chunks_mut(dim * ROWS_PER_TASK)
            .zip(scales.par_chunks_mut(ROWS_PER_TASK))
            .zip(xs.par_chunks(dim * ROWS_PER_TASK))
            .zip(dys.par_chunks(dim * ROWS_PER_TASK))
            .for_each(|(((dx, scales), xs), dys)| {
                for (((dx, scale), xs), dys) in dx
                    .chunks_mut(dim)
                    .zip(scales.iter_mut())
                    .zip(xs.chunks(dim))
                    .zip(dys.chunks(dim))
                {
                    let mean_sq = xs.iter().map(|x| x * x).sum::<f32>() / dim as f32;
                    let r = 1.0 / (mean_sq + eps).sqrt();
                    let mean_gx = xs
                        .iter()
                        .zip(dys)
                        .zip(w)
                        .map(|((x, dy), w)| dy * w * x)
                        .sum::<f32>()
                        / dim as f32;
                    let r3_mean = r * r * r * mean_gx;
                    for (((d, &x), &dy), &w) in dx.iter_mut().zip(xs).zip(dys).zip(w) {
                        *d = r * dy * w - r3_mean * x;
                    }
                    *scale = r;
                }
            });
        // dw sums over every row: partial sums over fixed groups of rows in
        // parallel, added in group order, so the result does not depend on
        // the thread count.
        const ROWS_PER_PARTIAL_SUM: usize = 256;
        let partials: Vec<Vec<f32>> = xs
            .par_chunks(dim * ROWS_PER_PARTIAL_SUM)
            .zip(dys.par_chunks(dim * ROWS_PER_PARTIAL_SUM))
            .zip(scales.par_chunks(ROWS_PER_PARTIAL_SUM))
            .map(|((xs, dys), scales)| {
                let mut partial = vec![0f32; dim];
                for ((xs, dys), &r) in xs.chunks(dim).zip(dys.chunks(dim)).zip(scales) {
                    for ((d, &x), &dy) in partial.iter_mut().zip(xs).zip(dys) {
                        *d += dy * x * r;
                    }
                }
                partial
            })
            .collect();
        for partial in &partials {
            for (d, p) in dw.iter_mut().zip(partial) {
                *d += p;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((rows + 1, dim))))
    }
}

/// Differentiable RMS norm of a CPU f32 tensor over its last dimension, one
/// graph node. Callers check [`is_cpu_f32`] for both tensors first.
pub fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    xs.contiguous()?
        .apply_op2(&weight.contiguous()?, RmsNorm { eps })
}

/// Inverted dropout with a mask drawn by the caller: kept elements are
/// scaled by `scale`, dropped ones zeroed; the gradient takes the same mask.
struct Dropout {
    keep: Arc<Vec<bool>>,
    scale: f32,
}

impl Dropout {
    fn apply(&self, xs: &[f32]) -> Vec<f32> {
        let scale = self.scale;
        let mut out = zeros(xs.len());
        out.par_chunks_mut(ELEMENTS_PER_TASK)
            .zip(xs.par_chunks(ELEMENTS_PER_TASK))
            .zip(self.keep.par_chunks(ELEMENTS_PER_TASK))
            .for_each(|((out, xs), keep)| {
                for ((o, &x), &k) in out.iter_mut().zip(xs).zip(keep) {
                    *o = if k { x * scale } else { 0.0 };
                }
            });
        out
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "fused-dropout"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let xs = f32_slice(storage, layout, self.name())?;
        if xs.len() != self.keep.len() {
            return Err(candle_core::Error::Msg(format!(
                "dropout mask has {} elements, the tensor {}",
                self.keep.len(),
                xs.len()
            )));
        }
        Ok((CpuStorage::F32(self.apply(xs)), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let same_mask = Dropout {
            keep: self.keep.clone(),
            scale: self.scale,
        };
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&same_mask)?))
    }
}

/// `xs` with the elements where `keep` is false zeroed and the others
/// multiplied by `scale`, as one differentiable node. Callers check
/// [`is_cpu_f32`] first.
pub fn dropout(xs: &Tensor, keep: Vec<bool>, scale: f32) -> candle_core::Result<Tensor> {
    xs.contiguous()?.apply_op1(Dropout {
        keep: Arc::new(keep),
        scale,
    })
}

/// `relu(x)`, then inverted dropout when a mask is given, as one node. The
/// gradient passes where `x >= 0` (candle's own relu convention) and the
/// element was kept.
struct ReluDropout {
    keep: Option<Arc<Vec<bool>>>,
    scale: f32,
}

const ELEMENTS_PER_TASK: usize = 1 << 14;

impl CustomOp1 for ReluDropout {
    fn name(&self) -> &'static str {
        "fused-relu-dropout"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let xs = f32_slice(storage, layout, self.name())?;
        let mut out = zeros(xs.len());
        match &self.keep {
            Some(keep) => {
                if keep.len() != xs.len() {
                    return Err(candle_core::Error::Msg(format!(
                        "dropout mask has {} elements, the tensor {}",
                        keep.len(),
                        xs.len()
                    )));
                }
                let scale = self.scale;
                out.par_chunks_mut(ELEMENTS_PER_TASK)
                    .zip(xs.par_chunks(ELEMENTS_PER_TASK))
                    .zip(keep.par_chunks(ELEMENTS_PER_TASK))
                    .for_each(|((out, xs), keep)| {
                        for ((o, &x), &k) in out.iter_mut().zip(xs).zip(keep) {
                            *o = if k { x.max(0.0) * scale } else { 0.0 };
                        }
                    });
            }
            None => out
                .par_chunks_mut(ELEMENTS_PER_TASK)
                .zip(xs.par_chunks(ELEMENTS_PER_TASK))
                .for_each(|(out, xs)| {
                    for (o, &x) in out.iter_mut().zip(xs) {
                        *o = x.max(0.0);
                    }
                }),
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let backward = ReluDropoutBackward {
            keep: self.keep.clone(),
            scale: self.scale,
        };
        Ok(Some(
            arg.apply_op2_no_bwd(&grad_res.contiguous()?, &backward)?,
        ))
    }
}

/// `(x, dy)` to `dx` for [`ReluDropout`].
struct ReluDropoutBackward {
    keep: Option<Arc<Vec<bool>>>,
    scale: f32,
}

impl CustomOp2 for ReluDropoutBackward {
    fn name(&self) -> &'static str {
        "fused-relu-dropout-backward"
    }

    fn cpu_fwd(
        &self,
        x_storage: &CpuStorage,
        x_layout: &Layout,
        dy_storage: &CpuStorage,
        dy_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let xs = f32_slice(x_storage, x_layout, self.name())?;
        let dys = f32_slice(dy_storage, dy_layout, self.name())?;
        let mut out = zeros(xs.len());
        match &self.keep {
            Some(keep) => {
                let scale = self.scale;
                out.par_chunks_mut(ELEMENTS_PER_TASK)
                    .zip(xs.par_chunks(ELEMENTS_PER_TASK))
                    .zip(dys.par_chunks(ELEMENTS_PER_TASK))
                    .zip(keep.par_chunks(ELEMENTS_PER_TASK))
                    .for_each(|(((out, xs), dys), keep)| {
                        for (((o, &x), &dy), &k) in out.iter_mut().zip(xs).zip(dys).zip(keep) {
                            *o = if k && x >= 0.0 { dy * scale } else { 0.0 };
                        }
                    });
            }
            None => out
                .par_chunks_mut(ELEMENTS_PER_TASK)
                .zip(xs.par_chunks(ELEMENTS_PER_TASK))
                .zip(dys.par_chunks(ELEMENTS_PER_TASK))
                .for_each(|((out, xs), dys)| {
                    for ((o, &x), &dy) in out.iter_mut().zip(xs).zip(dys) {
                        *o = if x >= 0.0 { dy } else { 0.0 };
                    }
                }),
        }
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }
}

/// `relu(xs)`, followed by inverted dropout with mask `keep` and factor
/// `scale` when a mask is given, as one differentiable node (the
/// feed-forward block's activation). Callers check [`is_cpu_f32`] first.
pub fn relu_dropout(
    xs: &Tensor,
    keep: Option<Vec<bool>>,
    scale: f32,
) -> candle_core::Result<Tensor> {
    xs.contiguous()?.apply_op1(ReluDropout {
        keep: keep.map(Arc::new),
        scale,
    })
}

/// Mean cross-entropy of `(rows, vocab)` logits against one label per row,
/// rows whose label is `None` ignored: a scalar. The forward pass keeps each
/// row's log-sum-exp for the backward pass,
/// `d logits = (softmax - onehot(label)) / counted`.
struct CrossEntropy {
    labels: Arc<Vec<Option<u32>>>,
    counted: usize,
    log_sum_exp: Mutex<Vec<f32>>,
}

impl CustomOp1 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let logits = f32_slice(storage, layout, self.name())?;
        let vocab = last_dim(layout.shape());
        let rows = logits.len() / vocab;
        if rows != self.labels.len() {
            return Err(candle_core::Error::Msg(format!(
                "{} labels for {rows} rows of logits",
                self.labels.len()
            )));
        }
        let per_row: Vec<(f32, f64)> = logits
            .par_chunks(vocab)
            .zip(self.labels.par_iter())
            .map(|(row, label)| {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = row.iter().map(|&x| exp_shifted(x - max)).sum();
                let lse = max + sum.ln();
                let nll = label.map_or(0.0, |l| f64::from(lse - row[l as usize]));
                (lse, nll)
            })
            .collect();
        let total: f64 = per_row.iter().map(|(_, nll)| nll).sum();
        let mut lse = self
            .log_sum_exp
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *lse = per_row.into_iter().map(|(lse, _)| lse).collect();
        let mean = (total / self.counted.max(1) as f64) as f32;
        Ok((CpuStorage::F32(vec![mean]), Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let upstream = grad_res.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let lse = self
            .log_sum_exp
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let backward = CrossEntropyBackward {
            labels: self.labels.clone(),
            log_sum_exp: lse,
            scale: upstream / self.counted.max(1) as f32,
        };
        Ok(Some(logits.apply_op1_no_bwd(&backward)?))
    }
}

struct CrossEntropyBackward {
    labels: Arc<Vec<Option<u32>>>,
    log_sum_exp: Vec<f32>,
    scale: f32,
}

impl CustomOp1 for CrossEntropyBackward {
    fn name(&self) -> &'static str {
        "fused-cross-entropy-backward"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let logits = f32_slice(storage, layout, self.name())?;
        let vocab = last_dim(layout.shape());
        let mut out = zeros(logits.len());
        let scale = self.scale;
        out.par_chunks_mut(vocab)
            .zip(logits.par_chunks(vocab))
            .zip(self.labels.par_iter().zip(self.log_sum_exp.par_iter()))
            .for_each(|((out, row), (label, &lse))| {
                if let Some(label) = label {
                    for (o, &x) in out.iter_mut().zip(row) {
                        *o = exp_shifted(x - lse) * scale;
                    }
                    out[*label as usize] -= scale;
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Mean cross-entropy of CPU f32 `logits` (`(..., vocab)`, one row per
/// label) against `labels` (`None` = ignored), as one differentiable node.
/// `counted` is the number of `Some` labels (at least one). Callers check
/// [`is_cpu_f32`] and the label range first.
pub fn cross_entropy(
    logits: &Tensor,
    labels: Vec<Option<u32>>,
    counted: usize,
) -> candle_core::Result<Tensor> {
    logits.contiguous()?.apply_op1(CrossEntropy {
        labels: Arc::new(labels),
        counted,
        log_sum_exp: Mutex::new(Vec::new()),
    })
}

/// A bias-free linear layer `x W^T` (`x`: `(..., in)`, `W`: `(out, in)`) as
/// one graph node. Composed from `reshape`, `t` and `matmul`, its backward
/// runs through four extra nodes, and candle's backward allocates a zero
/// tensor and adds each node's gradient into it: two activation-sized copies
/// and one weight-sized strided copy per layer, on one thread. Here
/// `dx = dy W` and `dW = dy^T x` are written directly by the matrix
/// products. With `bf16` (mixed precision) the three products take bf16
/// operands and accumulate in f32 ([`crate::bf16_matmul`]).
struct Linear {
    bf16: bool,
}

thread_local! {
    /// Whether linear layers built on this thread multiply in bf16.
    static BF16_PRODUCTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Mixed precision for the linear layers of graphs built on this thread
/// while the guard lives: bf16 operands, f32 accumulation, f32 weights and
/// activations (PyTorch's bf16 autocast on CPU for `nn.Linear`). The
/// backward pass multiplies as its forward did. Err when the CPU lacks
/// AVX-512 BF16.
pub fn bf16_products() -> std::result::Result<Bf16Products, String> {
    crate::bf16_matmul::require()?;
    let before = BF16_PRODUCTS.with(|flag| flag.replace(true));
    Ok(Bf16Products { before })
}

/// See [`bf16_products`]; dropping it restores the previous setting.
#[derive(Debug)]
pub struct Bf16Products {
    before: bool,
}

impl Drop for Bf16Products {
    fn drop(&mut self) {
        BF16_PRODUCTS.with(|flag| flag.set(self.before));
    }
}

/// The f32 values of a contiguous CPU tensor's storage.
fn cpu_f32<'a>(
    storage: &'a candle_core::Storage,
    layout: &Layout,
    op: &'static str,
) -> candle_core::Result<&'a [f32]> {
    let candle_core::Storage::Cpu(cpu) = storage else {
        return Err(candle_core::Error::Msg(format!("{op} runs on the CPU")));
    };
    f32_slice(cpu, layout, op)
}

impl Linear {
    /// `(rows, in, out)` of `x` and `w`, checked.
    fn dims(x: &Shape, w: &Shape) -> candle_core::Result<(usize, usize, usize)> {
        let (out, in_dim) = w.dims2()?;
        let x_in = last_dim(x);
        if x_in != in_dim || x.rank() == 0 {
            return Err(candle_core::Error::ShapeMismatchBinaryOp {
                lhs: x.clone(),
                rhs: w.clone(),
                op: "fused-linear",
            });
        }
        Ok((x.elem_count() / in_dim, in_dim, out))
    }

    fn out_shape(x: &Shape, out: usize) -> Shape {
        let mut dims = x.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = out;
        }
        Shape::from(dims)
    }
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        x_storage: &CpuStorage,
        x_layout: &Layout,
        w_storage: &CpuStorage,
        w_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, in_dim, out) = Self::dims(x_layout.shape(), w_layout.shape())?;
        if !x_layout.is_contiguous() {
            return Err(candle_core::Error::RequiresContiguous { op: self.name() });
        }
        if self.bf16 {
            use crate::bf16_matmul::{matmul, Layout as L, Operand};
            let x = f32_slice(x_storage, x_layout, self.name())?;
            let w = f32_slice(w_storage, w_layout, self.name())?;
            // y = x W^T: B = W^T, stored (out, in) = (n, k).
            let y = matmul(
                Operand::new(x, L::OuterByK),
                Operand::new(w, L::OuterByK),
                rows,
                in_dim,
                out,
            );
            return Ok((CpuStorage::F32(y), Self::out_shape(x_layout.shape(), out)));
        }
        let x_2d = Layout::contiguous_with_offset((rows, in_dim), x_layout.start_offset());
        // `W^T` read in place through its strides, as `Tensor::t` would.
        let w_t = w_layout.transpose(0, 1)?;
        let product = x_storage.matmul(w_storage, (1, rows, out, in_dim), &x_2d, &w_t)?;
        Ok((product, Self::out_shape(x_layout.shape(), out)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (rows, in_dim, out) = Self::dims(x.shape(), w.shape())?;
        if self.bf16 {
            use crate::bf16_matmul::{matmul, Layout as L, Operand};
            let (dy_t, w_t, x_t) = (grad_res.contiguous()?, w.contiguous()?, x.contiguous()?);
            let (dy_storage, dy_layout) = dy_t.storage_and_layout();
            let (w_storage, w_layout) = w_t.storage_and_layout();
            let (x_storage, x_layout) = x_t.storage_and_layout();
            let dy = cpu_f32(&dy_storage, dy_layout, self.name())?;
            let w = cpu_f32(&w_storage, w_layout, self.name())?;
            let x_values = cpu_f32(&x_storage, x_layout, self.name())?;
            // dx = dy W: A = dy (rows, out); B = W, stored (out, in) = (k, n).
            let dx = matmul(
                Operand::new(dy, L::OuterByK),
                Operand::new(w, L::KByOuter),
                rows,
                out,
                in_dim,
            );
            // dW = dy^T x: A = dy^T, stored (rows, out) = (k, m); B = x,
            // stored (rows, in) = (k, n).
            let dw = matmul(
                Operand::new(dy, L::KByOuter),
                Operand::new(x_values, L::KByOuter),
                out,
                rows,
                in_dim,
            );
            let dx = Tensor::from_vec(dx, x.shape(), x.device())?;
            let dw = Tensor::from_vec(dw, (out, in_dim), x.device())?;
            return Ok((Some(dx), Some(dw)));
        }
        let dy = grad_res.reshape((rows, out))?;
        // Detached: the products must not keep their inputs alive through
        // a graph nobody differentiates.
        let dx = dy.matmul(&w.detach())?.reshape(x.shape())?.detach();
        let dw = dy
            .t()?
            .matmul(&x.detach().reshape((rows, in_dim))?)?
            .detach();
        Ok((Some(dx), Some(dw)))
    }
}

/// `x W^T` for CPU f32 `x` `(..., in)` and `W` `(out, in)` as one
/// differentiable node. Callers check [`is_cpu_f32`] for both first.
pub fn linear(x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    let bf16 = BF16_PRODUCTS.with(|flag| flag.get());
    x.contiguous()?
        .apply_op2(&weight.contiguous()?, Linear { bf16 })
}

/// `(batch, A, B, d)` to `(batch, B, A, d)` in parallel (rows of `d`).
fn swap_middle_axes(src: &[f32], batch: usize, a: usize, b: usize, d: usize) -> Vec<f32> {
    let mut out = zeros(batch * a * b * d);
    if out.is_empty() {
        return out;
    }
    // One task per output block `(batch index, j)`: `a` rows of `d`.
    out.par_chunks_mut(a * d)
        .enumerate()
        .for_each(|(block, out)| {
            let (bi, j) = (block / b, block % b);
            for (i, row) in out.chunks_mut(d).enumerate() {
                let from = ((bi * a + i) * b + j) * d;
                row.copy_from_slice(&src[from..from + d]);
            }
        });
    out
}

/// Splitting `(batch, len, heads * d)` into heads `(batch, heads, len, d)`
/// (`split`), or merging them back (`!split`), as one graph node whose
/// gradient is the opposite move. Composed, each way is `reshape`,
/// `transpose` and a copy: three nodes whose gradients candle zero-fills and
/// adds on one thread, and a single-threaded strided copy.
struct MoveHeads {
    heads: usize,
    split: bool,
}

impl MoveHeads {
    /// `(batch, A, B, d)` of the input, where the op swaps A and B, and the
    /// output shape.
    fn plan(&self, shape: &Shape) -> candle_core::Result<((usize, usize, usize, usize), Shape)> {
        if self.split {
            let (batch, len, width) = shape.dims3()?;
            let d = width / self.heads.max(1);
            if d * self.heads != width {
                return Err(candle_core::Error::Msg(format!(
                    "cannot split width {width} into {} heads",
                    self.heads
                )));
            }
            Ok((
                (batch, len, self.heads, d),
                Shape::from((batch, self.heads, len, d)),
            ))
        } else {
            let (batch, heads, len, d) = shape.dims4()?;
            Ok(((batch, heads, len, d), Shape::from((batch, len, heads * d))))
        }
    }
}

impl CustomOp1 for MoveHeads {
    fn name(&self) -> &'static str {
        "fused-move-heads"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let xs = f32_slice(storage, layout, self.name())?;
        let ((batch, a, b, d), out_shape) = self.plan(layout.shape())?;
        Ok((
            CpuStorage::F32(swap_middle_axes(xs, batch, a, b, d)),
            out_shape,
        ))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let back = MoveHeads {
            heads: self.heads,
            split: !self.split,
        };
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&back)?))
    }
}

/// `(batch, len, heads * d)` to `(batch, heads, len, d)` for a CPU f32
/// tensor, one differentiable node. Callers check [`is_cpu_f32`] first.
pub fn split_heads(xs: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    xs.contiguous()?.apply_op1(MoveHeads { heads, split: true })
}

/// `(batch, heads, len, d)` to `(batch, len, heads * d)` for a CPU f32
/// tensor, one differentiable node. Callers check [`is_cpu_f32`] first.
pub fn merge_heads(xs: &Tensor) -> candle_core::Result<Tensor> {
    let heads = xs.dims().get(1).copied().unwrap_or(1);
    xs.contiguous()?.apply_op1(MoveHeads {
        heads,
        split: false,
    })
}

/// `a b^T` over the last two dimensions (`a`: `(..., m, d)`, `b`:
/// `(..., n, d)`, the same leading dimensions): attention scores from
/// queries and keys as one node. Composed as `a.matmul(&b.t())`, the
/// gradient of `b` comes back as a transposed view that candle adds into a
/// zero-filled tensor element by element on one thread; here
/// `db = g^T a` is written contiguously by the matrix product.
struct MatmulTransposed;

impl MatmulTransposed {
    /// `(batch, m, n, d)` and the output shape, checked.
    fn plan(a: &Shape, b: &Shape) -> candle_core::Result<((usize, usize, usize, usize), Shape)> {
        let rank = a.rank();
        let mismatch = || candle_core::Error::ShapeMismatchBinaryOp {
            lhs: a.clone(),
            rhs: b.clone(),
            op: "fused-matmul-transposed",
        };
        if rank < 2 || b.rank() != rank || a.dims()[..rank - 2] != b.dims()[..rank - 2] {
            return Err(mismatch());
        }
        let (m, d) = (a.dims()[rank - 2], a.dims()[rank - 1]);
        let (n, b_d) = (b.dims()[rank - 2], b.dims()[rank - 1]);
        if d != b_d {
            return Err(mismatch());
        }
        let batch = a.dims()[..rank - 2].iter().product();
        let mut out = a.dims().to_vec();
        out[rank - 1] = n;
        Ok(((batch, m, n, d), Shape::from(out)))
    }
}

impl CustomOp2 for MatmulTransposed {
    fn name(&self) -> &'static str {
        "fused-matmul-transposed"
    }

    fn cpu_fwd(
        &self,
        a_storage: &CpuStorage,
        a_layout: &Layout,
        b_storage: &CpuStorage,
        b_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (bmnk, out_shape) = Self::plan(a_layout.shape(), b_layout.shape())?;
        if !a_layout.is_contiguous() || !b_layout.is_contiguous() {
            return Err(candle_core::Error::RequiresContiguous { op: self.name() });
        }
        let rank = b_layout.shape().rank();
        // `b^T` read in place through its strides, as `Tensor::t` would.
        let b_t = b_layout.transpose(rank - 2, rank - 1)?;
        let product = a_storage.matmul(b_storage, bmnk, a_layout, &b_t)?;
        Ok((product, out_shape))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad_res.contiguous()?;
        // Detached, as in [`Linear`].
        let da = g.matmul(&b.detach())?.detach();
        let db = g.t()?.matmul(&a.detach())?.detach();
        Ok((Some(da), Some(db)))
    }
}

/// `a b^T` over the last two dimensions of CPU f32 tensors as one
/// differentiable node. Callers check [`is_cpu_f32`] for both first.
pub fn matmul_transposed(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    a.contiguous()?
        .apply_op2(&b.contiguous()?, MatmulTransposed)
}
