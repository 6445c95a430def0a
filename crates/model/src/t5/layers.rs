//! The building blocks of T5, written with differentiable candle ops when a
//! gradient is needed and candle's fused kernels otherwise.
//!
//! candle-nn's fused `softmax_last_dim` and `rms_norm` have no backward pass:
//! a model built on them silently leaves q/k weights, relative-attention
//! biases and layer norms without gradient. Every op here checks
//! `Tensor::track_op` and falls back to a formulation from basic ops (which
//! candle can differentiate) whenever a gradient may flow.

use std::sync::Mutex;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::config::{Activation, T5Config};
use super::init;
use crate::error::Result;
use crate::ops;

/// Products with at most this many rows (decoding's, one per hypothesis)
/// are split by output columns over the threads: see
/// [`Linear::forward_composed`].
const FEW_ROWS: usize = 8;
/// Fewest output columns a thread gets in such a split (below it the
/// product is too small to share).
const MIN_COLUMNS_PER_THREAD: usize = 256;

/// A bias-free linear layer with the Hugging Face weight layout `(out, in)`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub(crate) weight: Tensor,
}

impl Linear {
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize, std: f64) -> Result<Self> {
        let weight = vb.get_with_hints(
            (out_dim, in_dim),
            "weight",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        )?;
        Ok(Self { weight })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if (xs.track_op() || self.weight.track_op())
            && ops::is_cpu_f32(xs)
            && ops::is_cpu_f32(&self.weight)
        {
            return Ok(ops::linear(xs, &self.weight)?);
        }
        self.forward_composed(xs)
    }

    /// The projection from candle's differentiable ops: any device and dtype.
    pub(crate) fn forward_composed(&self, xs: &Tensor) -> Result<Tensor> {
        // Fold leading dimensions into one 2-D matmul: one gemm call instead of
        // a batched one, and the transposed weight is read in place.
        let dims = xs.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = xs.elem_count() / in_dim;
        let xs_2d = xs.reshape((rows, in_dim))?;
        let out_dim = self.weight.dim(0)?;
        let threads = rayon::current_num_threads();
        let out = if rows <= FEW_ROWS
            && threads > 1
            && out_dim >= threads * MIN_COLUMNS_PER_THREAD
            && ops::is_cpu_f32(xs)
            && ops::is_cpu_f32(&self.weight)
            && !xs.track_op()
            && !self.weight.track_op()
        {
            // Decoding's products have a row or a few: gemm runs them as
            // matrix-vector products on one thread whatever its
            // parallelism, and at the t5-small shape they were 60% of a
            // greedy step (`perf`). Blocks of output columns (weight rows)
            // go to the threads instead; each column's sum is the same
            // computation as in one call, so results do not change (tested).
            // Blocks of whole 64-column groups, so no thread gets a sliver.
            let block = out_dim.div_ceil(threads).next_multiple_of(64);
            let parts = (0..out_dim.div_ceil(block))
                .into_par_iter()
                .map(|i| {
                    let start = i * block;
                    let len = block.min(out_dim - start);
                    xs_2d.matmul(&self.weight.narrow(0, start, len)?.t()?)
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&parts, 1)?
        } else {
            xs_2d.matmul(&self.weight.t()?)?
        };
        let mut out_dims = dims.to_vec();
        let last = out_dims.len() - 1;
        out_dims[last] = self.weight.dim(0)?;
        Ok(out.reshape(out_dims)?)
    }
}

/// T5's layer norm: RMS only, no mean subtraction and no bias, computed in
/// f32 for half-precision inputs.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    pub(crate) weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        let weight =
            vb.get_with_hints(dim, "weight", candle_nn::Init::Const(init::LAYER_NORM_INIT))?;
        Ok(Self { weight, eps })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if !xs.track_op() && !self.weight.track_op() && xs.is_contiguous() {
            return Ok(candle_nn::ops::rms_norm(xs, &self.weight, self.eps as f32)?);
        }
        if ops::is_cpu_f32(xs) && ops::is_cpu_f32(&self.weight) {
            return Ok(ops::rms_norm(xs, &self.weight, self.eps as f32)?);
        }
        self.forward_composed(xs)
    }

    /// The norm from basic differentiable ops: any device and dtype.
    pub(crate) fn forward_composed(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        let internal = match dtype {
            DType::F16 | DType::BF16 => DType::F32,
            other => other,
        };
        let xs = xs.to_dtype(internal)?;
        let variance = xs.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = xs.broadcast_div(&(variance + self.eps)?.sqrt()?)?;
        Ok(normed.to_dtype(dtype)?.broadcast_mul(&self.weight)?)
    }
}

/// Softmax over the last dimension, with the maximum subtracted for
/// stability. The maximum is detached: softmax does not depend on the shift,
/// so its gradient is exact without differentiating through `max`.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    // The fused kernel also for inference: candle-nn's calls `expf` on the
    // attention mask's huge negatives (see `ops::exp_shifted`).
    if ops::is_cpu_f32(xs) {
        return Ok(ops::softmax_last_dim(xs)?);
    }
    if !xs.track_op() && xs.is_contiguous() {
        return Ok(candle_nn::ops::softmax_last_dim(xs)?);
    }
    softmax_last_dim_composed(xs)
}

/// [`softmax_last_dim`] from basic differentiable ops: any device and dtype.
pub(crate) fn softmax_last_dim_composed(xs: &Tensor) -> Result<Tensor> {
    let max = xs.max_keepdim(D::Minus1)?.detach();
    let exp = xs.broadcast_sub(&max)?.exp()?;
    let sum = exp.sum_keepdim(D::Minus1)?;
    Ok(exp.broadcast_div(&sum)?)
}

/// `log_softmax` over the last dimension from differentiable ops.
pub fn log_softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    let max = xs.max_keepdim(D::Minus1)?.detach();
    let shifted = xs.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&log_sum)?)
}

/// Dropout driven by a seedable generator, so that a training run can be
/// resumed bit for bit (candle's own dropout draws from an unseedable CPU
/// generator). Masks are drawn on the host and moved to the device.
#[derive(Debug)]
pub struct DropoutRng {
    rate: f64,
    rng: Mutex<ChaCha8Rng>,
}

impl DropoutRng {
    pub fn new(rate: f64, seed: u64) -> Self {
        Self {
            rate,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn reseed(&self, seed: u64) {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *rng = ChaCha8Rng::seed_from_u64(seed);
    }

    fn keep_scale(&self) -> f32 {
        (1.0 / (1.0 - self.rate)) as f32
    }

    /// Which of `count` elements survive: the generator's next `count` draws.
    ///
    /// Drawn in parallel yet bit for bit the sequential stream (so a mask
    /// does not depend on the thread count): a uniform f32 consumes exactly
    /// one 32-bit word of ChaCha's output, whose position can be set, so
    /// each chunk starts its own copy of the generator at its first element.
    fn keep_mask(&self, count: usize) -> Vec<bool> {
        /// Draws per rayon task: far more than the cost of a task.
        const DRAWS_PER_TASK: usize = 1 << 16;
        let rate = self.rate as f32;
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let start = rng.get_word_pos();
        let mut keep = vec![false; count];
        keep.par_chunks_mut(DRAWS_PER_TASK)
            .enumerate()
            .for_each(|(task, keep)| {
                let mut rng = rng.clone();
                rng.set_word_pos(start + (task * DRAWS_PER_TASK) as u128);
                for k in keep {
                    *k = rng.random::<f32>() >= rate;
                }
            });
        rng.set_word_pos(start + count as u128);
        keep
    }

    /// `relu(xs)` followed by [`DropoutRng::apply`], drawing the same mask,
    /// as one fused node when a gradient may flow on the CPU in f32.
    pub fn relu_then_apply(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if !ops::is_cpu_f32(xs) || !xs.track_op() {
            return self.apply(&xs.relu()?, train);
        }
        let keep = (train && self.rate != 0.0).then(|| self.keep_mask(xs.elem_count()));
        Ok(ops::relu_dropout(xs, keep, self.keep_scale())?)
    }

    /// `xs` with each element zeroed with probability `rate` and the rest
    /// scaled by `1 / (1 - rate)`; `xs` unchanged when not training.
    pub fn apply(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.rate == 0.0 {
            return Ok(xs.clone());
        }
        let keep_scale = self.keep_scale();
        let keep = self.keep_mask(xs.elem_count());
        if ops::is_cpu_f32(xs) {
            return Ok(ops::dropout(xs, keep, keep_scale)?);
        }
        let mask: Vec<f32> = keep
            .iter()
            .map(|&k| if k { keep_scale } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(mask, xs.shape(), &Device::Cpu)?
            .to_device(xs.device())?
            .to_dtype(xs.dtype())?;
        Ok(xs.mul(&mask)?)
    }
}

/// The feed-forward block: `wo(act(wi x))`, or `wo(act(wi_0 x) * wi_1 x)`
/// when gated.
#[derive(Debug, Clone)]
pub struct FeedForward {
    wi: Option<Linear>,
    wi_0: Option<Linear>,
    wi_1: Option<Linear>,
    wo: Linear,
    activation: Activation,
}

impl FeedForward {
    pub fn new(vb: VarBuilder, config: &T5Config) -> Result<Self> {
        let activation = config
            .activation()
            .map_err(crate::error::ModelError::Invalid)?;
        let (d_model, d_ff) = (config.shape.d_model, config.shape.d_ff);
        let std_in = init::d_model_std(config);
        let std_out = init::feed_forward_output_std(config);
        let (wi, wi_0, wi_1) = if config.is_gated() {
            (
                None,
                Some(Linear::new(vb.pp("wi_0"), d_model, d_ff, std_in)?),
                Some(Linear::new(vb.pp("wi_1"), d_model, d_ff, std_in)?),
            )
        } else {
            (
                Some(Linear::new(vb.pp("wi"), d_model, d_ff, std_in)?),
                None,
                None,
            )
        };
        let wo = Linear::new(vb.pp("wo"), d_ff, d_model, std_out)?;
        Ok(Self {
            wi,
            wi_0,
            wi_1,
            wo,
            activation,
        })
    }

    fn activate(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(match self.activation {
            Activation::Relu => xs.relu()?,
            Activation::Gelu => xs.gelu_erf()?,
            Activation::GeluTanh => xs.gelu()?,
            Activation::Silu => xs.silu()?,
        })
    }

    pub fn forward(&self, xs: &Tensor, dropout: &DropoutRng, train: bool) -> Result<Tensor> {
        let hidden = match (&self.wi, &self.wi_0, &self.wi_1) {
            (Some(wi), _, _) if self.activation == Activation::Relu => {
                return self
                    .wo
                    .forward(&dropout.relu_then_apply(&wi.forward(xs)?, train)?);
            }
            (Some(wi), _, _) => self.activate(&wi.forward(xs)?)?,
            (None, Some(wi_0), Some(wi_1)) => {
                self.activate(&wi_0.forward(xs)?)?.mul(&wi_1.forward(xs)?)?
            }
            _ => unreachable!("FeedForward::new sets either wi or wi_0 and wi_1"),
        };
        let hidden = dropout.apply(&hidden, train)?;
        self.wo.forward(&hidden)
    }

    pub(crate) fn named_tensors(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        for (name, linear) in [("wi", &self.wi), ("wi_0", &self.wi_0), ("wi_1", &self.wi_1)] {
            if let Some(linear) = linear {
                out.push((format!("{prefix}.{name}.weight"), linear.weight.clone()));
            }
        }
        out.push((format!("{prefix}.wo.weight"), self.wo.weight.clone()));
    }
}

/// Multi-head attention without score scaling (T5 folds it into the
/// initialisation). Self- or cross-attention; the relative-position bias and
/// masks come in precomputed as one additive tensor.
#[derive(Debug, Clone)]
pub struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// `(num_buckets, num_heads)`, only in the first layer of each stack.
    pub(crate) relative_attention_bias: Option<Tensor>,
    num_heads: usize,
    d_kv: usize,
}

impl Attention {
    pub fn new(vb: VarBuilder, config: &T5Config, has_relative_bias: bool) -> Result<Self> {
        let (d_model, d_kv, heads) = (
            config.shape.d_model,
            config.shape.d_kv,
            config.shape.num_heads,
        );
        let inner = heads * d_kv;
        // Hugging Face's initialisation (see `init`).
        let q = Linear::new(vb.pp("q"), d_model, inner, init::query_std(config))?;
        let k = Linear::new(vb.pp("k"), d_model, inner, init::d_model_std(config))?;
        let v = Linear::new(vb.pp("v"), d_model, inner, init::d_model_std(config))?;
        let o = Linear::new(
            vb.pp("o"),
            inner,
            d_model,
            init::attention_output_std(config),
        )?;
        let relative_attention_bias = if has_relative_bias {
            Some(vb.pp("relative_attention_bias").get_with_hints(
                (config.shape.relative_attention_num_buckets, heads),
                "weight",
                candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: init::d_model_std(config),
                },
            )?)
        } else {
            None
        };
        Ok(Self {
            q,
            k,
            v,
            o,
            relative_attention_bias,
            num_heads: heads,
            d_kv,
        })
    }

    /// `(batch, len, heads * d_kv)` to `(batch, heads, len, d_kv)`.
    fn split_heads(&self, xs: &Tensor) -> Result<Tensor> {
        if xs.track_op() && ops::is_cpu_f32(xs) {
            return Ok(ops::split_heads(xs, self.num_heads)?);
        }
        let (batch, len, _) = xs.dims3()?;
        Ok(xs
            .reshape((batch, len, self.num_heads, self.d_kv))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// Keys and values of `source`, split into heads: computed once per
    /// generation for cross-attention.
    pub fn key_values(&self, source: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            self.split_heads(&self.k.forward(source)?)?,
            self.split_heads(&self.v.forward(source)?)?,
        ))
    }

    pub fn query(&self, xs: &Tensor) -> Result<Tensor> {
        self.split_heads(&self.q.forward(xs)?)
    }

    /// Attention of `query` (split into heads) over `keys`/`values`, plus the
    /// additive `bias` (broadcast to `(batch, heads, q_len, k_len)`), then
    /// the output projection.
    pub fn attend(
        &self,
        query: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        bias: Option<&Tensor>,
        dropout: &DropoutRng,
        train: bool,
    ) -> Result<Tensor> {
        let (batch, _, q_len, _) = query.dims4()?;
        let mut scores = if (query.track_op() || keys.track_op())
            && ops::is_cpu_f32(query)
            && ops::is_cpu_f32(keys)
        {
            ops::matmul_transposed(query, keys)?
        } else {
            query.matmul(&keys.t()?)?
        };
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let dtype = scores.dtype();
        let weights = match dtype {
            DType::F16 | DType::BF16 => {
                softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?
            }
            _ => softmax_last_dim(&scores)?,
        };
        let weights = dropout.apply(&weights, train)?;
        let context = weights.matmul(values)?;
        let context = if context.track_op() && ops::is_cpu_f32(&context) {
            ops::merge_heads(&context)?
        } else {
            context
                .transpose(1, 2)?
                .reshape((batch, q_len, self.num_heads * self.d_kv))?
        };
        self.o.forward(&context)
    }

    pub(crate) fn named_tensors(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        for (name, linear) in [
            ("q", &self.q),
            ("k", &self.k),
            ("v", &self.v),
            ("o", &self.o),
        ] {
            out.push((format!("{prefix}.{name}.weight"), linear.weight.clone()));
        }
        if let Some(bias) = &self.relative_attention_bias {
            out.push((
                format!("{prefix}.relative_attention_bias.weight"),
                bias.clone(),
            ));
        }
    }
}

/// The bucket of each relative position `key - query`, exactly as
/// transformers' `T5Attention._relative_position_bucket` computes it
/// (including its float32 logarithm).
pub fn relative_position_bucket(
    relative_position: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> u32 {
    let mut num_buckets = num_buckets as i64;
    let mut bucket = 0i64;
    let distance = if bidirectional {
        num_buckets /= 2;
        if relative_position > 0 {
            bucket += num_buckets;
        }
        relative_position.abs()
    } else {
        -relative_position.min(0)
    };
    let max_exact = num_buckets / 2;
    if distance < max_exact {
        bucket += distance;
    } else {
        let log_ratio = (distance as f32 / max_exact as f32).ln();
        let log_range = (max_distance as f64 / max_exact as f64).ln() as f32;
        let large = max_exact + (log_ratio / log_range * (num_buckets - max_exact) as f32) as i64;
        bucket += large.min(num_buckets - 1);
    }
    bucket as u32
}

/// Bucket ids for queries at `query_start..query_start + q_len` against keys
/// `0..k_len`, as a `(q_len, k_len)` u32 tensor.
pub fn bucket_ids(
    query_start: usize,
    q_len: usize,
    k_len: usize,
    bidirectional: bool,
    config: &T5Config,
    device: &Device,
) -> Result<Tensor> {
    let mut ids = Vec::with_capacity(q_len * k_len);
    for q in query_start..query_start + q_len {
        for k in 0..k_len {
            ids.push(relative_position_bucket(
                k as i64 - q as i64,
                bidirectional,
                config.shape.relative_attention_num_buckets,
                config.shape.relative_attention_max_distance,
            ));
        }
    }
    Ok(Tensor::from_vec(ids, (q_len, k_len), device)?)
}

/// The position bias `(1, heads, q_len, k_len)` from a relative-attention
/// table `(num_buckets, heads)` and bucket ids `(q_len, k_len)`.
pub fn position_bias(table: &Tensor, buckets: &Tensor) -> Result<Tensor> {
    let (q_len, k_len) = buckets.dims2()?;
    let heads = table.dim(1)?;
    let bias = candle_nn::Embedding::new(table.clone(), heads).forward(&buckets.flatten_all()?)?;
    Ok(bias
        .reshape((q_len, k_len, heads))?
        .permute((2, 0, 1))?
        .unsqueeze(0)?
        .contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::max_abs_diff;

    #[test]
    fn decoding_products_split_over_threads_give_the_same_values() {
        let (in_dim, out_dim) = (512, 2_000);
        let weight = Tensor::randn(0f32, 1.0, (out_dim, in_dim), &Device::Cpu).unwrap();
        let linear = Linear { weight };
        for rows in [1, 3, FEW_ROWS] {
            let xs = Tensor::randn(0f32, 1.0, (rows, 1, in_dim), &Device::Cpu).unwrap();
            let on = |threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| linear.forward(&xs).unwrap())
            };
            let (one, split) = (on(1), on(3));
            assert_eq!(split.dims(), &[rows, 1, out_dim]);
            let (one, split) = (
                one.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                split.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert!(one == split, "{rows} rows: the split changed values");
        }
    }

    #[test]
    fn buckets_match_known_transformers_values() {
        // Values from transformers' _relative_position_bucket with 32
        // buckets and max distance 128.
        let encoder = |r| relative_position_bucket(r, true, 32, 128);
        assert_eq!(encoder(0), 0);
        assert_eq!(encoder(3), 19);
        assert_eq!(encoder(-3), 3);
        assert_eq!(encoder(-200), 15);
        assert_eq!(encoder(200), 31);
        let decoder = |r| relative_position_bucket(r, false, 32, 128);
        assert_eq!(decoder(5), 0, "the decoder never sees the future");
        assert_eq!(decoder(-5), 5);
        assert_eq!(decoder(-20), 17);
        assert_eq!(decoder(-1000), 31);
    }

    #[test]
    fn differentiable_and_fused_kernels_agree() {
        let device = Device::Cpu;
        let xs = Tensor::randn(0f32, 3.0, (2, 5, 8), &device).unwrap();
        let var = candle_core::Var::from_tensor(&xs).unwrap();
        let fused = softmax_last_dim(&xs).unwrap();
        let slow = softmax_last_dim(var.as_tensor()).unwrap();
        assert!(max_abs_diff(&fused, &slow) < 1e-6);

        let norm = RmsNorm {
            weight: Tensor::randn(1f32, 0.1, 8, &device).unwrap(),
            eps: 1e-6,
        };
        let fused = norm.forward(&xs).unwrap();
        let slow = norm.forward(var.as_tensor()).unwrap();
        assert!(max_abs_diff(&fused, &slow) < 1e-5);
    }

    /// `sum(out * sin(0, 1, 2, ...))` and its gradients with respect to
    /// `inputs`.
    fn weighted_sum_grads(out: &Tensor, inputs: &[&candle_core::Var]) -> (f32, Vec<Tensor>) {
        // The same weights on both sides: derived from the output's shape only.
        let weights = Tensor::arange(0f32, out.elem_count() as f32, out.device())
            .unwrap()
            .reshape(out.shape())
            .unwrap()
            .sin()
            .unwrap();
        let total = (out * weights).unwrap().sum_all().unwrap();
        let grads = total.backward().unwrap();
        (
            total.to_scalar::<f32>().unwrap(),
            inputs
                .iter()
                .map(|v| grads.get(v.as_tensor()).unwrap().clone())
                .collect(),
        )
    }

    /// The gradients a fused op and its composed equivalent give each input
    /// agree (the same weighted sum of each output is differentiated).
    fn assert_same_gradients(
        what: &str,
        fused: &Tensor,
        composed: &Tensor,
        inputs: &[(&str, &candle_core::Var)],
    ) {
        let vars: Vec<&candle_core::Var> = inputs.iter().map(|(_, var)| *var).collect();
        let (_, fused_grads) = weighted_sum_grads(fused, &vars);
        let (_, composed_grads) = weighted_sum_grads(composed, &vars);
        for ((name, _), (f, c)) in inputs.iter().zip(fused_grads.iter().zip(&composed_grads)) {
            assert_eq!(f.dims(), c.dims(), "{name}");
            let diff = max_abs_diff(f, c);
            assert!(diff < 1e-4, "{what} gradient of {name} differs by {diff}");
        }
    }

    #[test]
    fn fused_softmax_gradient_equals_the_composed_ops_gradient() {
        let x = candle_core::Var::randn(0f32, 3.0, (2, 3, 5, 40), &Device::Cpu).unwrap();
        let fused = softmax_last_dim(x.as_tensor()).unwrap();
        let composed = softmax_last_dim_composed(x.as_tensor()).unwrap();
        assert!(max_abs_diff(&fused, &composed) < 1e-6);
        let (_, fused_grads) = weighted_sum_grads(&fused, &[&x]);
        let (_, composed_grads) = weighted_sum_grads(&composed, &[&x]);
        let diff = max_abs_diff(&fused_grads[0], &composed_grads[0]);
        assert!(diff < 1e-5, "softmax gradients differ by {diff}");
    }

    #[test]
    fn fused_rms_norm_gradients_equal_the_composed_ops_gradients() {
        // Few rows, and more rows than one partial sum of the weight's
        // gradient takes.
        for shape in [(3, 7, 64), (2, 300, 16)] {
            rms_norm_gradients_match(shape);
        }
    }

    fn rms_norm_gradients_match(shape: (usize, usize, usize)) {
        let x = candle_core::Var::randn(0f32, 2.0, shape, &Device::Cpu).unwrap();
        let w = candle_core::Var::randn(1f32, 0.3, shape.2, &Device::Cpu).unwrap();
        let norm = RmsNorm {
            weight: w.as_tensor().clone(),
            eps: 1e-6,
        };
        let fused = norm.forward(x.as_tensor()).unwrap();
        let composed = norm.forward_composed(x.as_tensor()).unwrap();
        assert!(max_abs_diff(&fused, &composed) < 1e-5);
        let (_, fused_grads) = weighted_sum_grads(&fused, &[&x, &w]);
        let (_, composed_grads) = weighted_sum_grads(&composed, &[&x, &w]);
        for (name, (f, c)) in ["x", "weight"]
            .iter()
            .zip(fused_grads.iter().zip(&composed_grads))
        {
            assert_eq!(f.dims(), c.dims(), "{name}");
            let diff = max_abs_diff(f, c);
            assert!(diff < 1e-4, "rms-norm gradient of {name} differs by {diff}");
        }
    }

    #[test]
    fn fused_dropout_gradient_is_the_mask() {
        let x = candle_core::Var::randn(0f32, 1.0, (4, 300), &Device::Cpu).unwrap();
        let dropout = DropoutRng::new(0.3, 11);
        let out = dropout.apply(x.as_tensor(), true).unwrap();
        // The composed version: multiply by the mask the output reveals.
        let kept = out.ne(0f32).unwrap().to_dtype(DType::F32).unwrap();
        let mask = (kept * (1.0 / 0.7)).unwrap();
        let composed = x.as_tensor().mul(&mask).unwrap();
        assert!(max_abs_diff(&out, &composed) < 1e-6);
        let (_, fused_grads) = weighted_sum_grads(&out, &[&x]);
        let (_, composed_grads) = weighted_sum_grads(&composed, &[&x]);
        assert!(max_abs_diff(&fused_grads[0], &composed_grads[0]) < 1e-6);
    }

    #[test]
    fn fused_linear_gradients_equal_the_composed_ops_gradients() {
        let device = Device::Cpu;
        // Three leading dimensions folded into rows, as the attention and
        // feed-forward inputs are.
        let x = candle_core::Var::randn(0f32, 1.0, (2, 3, 5, 24), &device).unwrap();
        let w = candle_core::Var::randn(0f32, 0.2, (17, 24), &device).unwrap();
        let linear = Linear {
            weight: w.as_tensor().clone(),
        };
        let fused = linear.forward(x.as_tensor()).unwrap();
        let composed = linear.forward_composed(x.as_tensor()).unwrap();
        assert_eq!(fused.dims(), &[2, 3, 5, 17]);
        assert!(max_abs_diff(&fused, &composed) < 1e-5);
        assert_same_gradients("linear", &fused, &composed, &[("x", &x), ("weight", &w)]);
        // A non-contiguous input (the attention context is a transposed view).
        let t = x.as_tensor().transpose(1, 2).unwrap();
        let fused = linear.forward(&t).unwrap();
        let composed = linear.forward_composed(&t).unwrap();
        assert!(max_abs_diff(&fused, &composed) < 1e-5);
    }

    #[test]
    fn bf16_products_stay_within_bf16_rounding_of_f32_and_only_while_asked() {
        if !crate::bf16_matmul::available() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        let device = Device::Cpu;
        let x = candle_core::Var::randn(0f32, 1.0, (2, 7, 64), &device).unwrap();
        let w = candle_core::Var::randn(0f32, 0.2, (40, 64), &device).unwrap();
        let linear = Linear {
            weight: w.as_tensor().clone(),
        };
        let exact = linear.forward(x.as_tensor()).unwrap();
        let mixed = {
            let _mixed = crate::ops::bf16_products().unwrap();
            linear.forward(x.as_tensor()).unwrap()
        };
        // Off again once the guard is gone.
        let after = linear.forward(x.as_tensor()).unwrap();
        assert_eq!(max_abs_diff(&after, &exact), 0.0);
        // bf16 keeps 8 bits of mantissa: each product is off by up to about
        // 2^-8 of its size, the sums of 64 by a few hundredths here.
        let diff = max_abs_diff(&mixed, &exact);
        assert!(diff > 0.0 && diff < 0.1, "forward: {diff}");
        let (_, exact_grads) = weighted_sum_grads(&exact, &[&x, &w]);
        let (_, mixed_grads) = weighted_sum_grads(&mixed, &[&x, &w]);
        for (name, (e, m)) in ["x", "weight"]
            .iter()
            .zip(exact_grads.iter().zip(&mixed_grads))
        {
            let scale = e
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let diff = max_abs_diff(e, m);
            assert!(diff < 0.02 * scale, "{name} gradient: {diff} of {scale}");
        }
    }

    #[test]
    fn fused_head_moves_and_their_gradients_equal_the_composed_ops() {
        let (batch, len, heads, d) = (2, 5, 3, 4);
        let x = candle_core::Var::randn(0f32, 1.0, (batch, len, heads * d), &Device::Cpu).unwrap();
        let split = crate::ops::split_heads(x.as_tensor(), heads).unwrap();
        let composed = x
            .as_tensor()
            .reshape((batch, len, heads, d))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap();
        assert_eq!(split.dims(), &[batch, heads, len, d]);
        assert_eq!(max_abs_diff(&split, &composed), 0.0);
        let (_, fused_grads) = weighted_sum_grads(&split, &[&x]);
        let (_, composed_grads) = weighted_sum_grads(&composed, &[&x]);
        assert_eq!(max_abs_diff(&fused_grads[0], &composed_grads[0]), 0.0);

        let h = candle_core::Var::randn(0f32, 1.0, (batch, heads, len, d), &Device::Cpu).unwrap();
        let merged = crate::ops::merge_heads(h.as_tensor()).unwrap();
        let composed = h
            .as_tensor()
            .transpose(1, 2)
            .unwrap()
            .reshape((batch, len, heads * d))
            .unwrap();
        assert_eq!(merged.dims(), &[batch, len, heads * d]);
        assert_eq!(max_abs_diff(&merged, &composed), 0.0);
        let (_, fused_grads) = weighted_sum_grads(&merged, &[&h]);
        let (_, composed_grads) = weighted_sum_grads(&composed, &[&h]);
        assert_eq!(max_abs_diff(&fused_grads[0], &composed_grads[0]), 0.0);
        // A width that does not divide into the heads is an error.
        assert!(crate::ops::split_heads(x.as_tensor(), 5).is_err());
    }

    #[test]
    fn fused_scores_gradients_equal_the_composed_ops_gradients() {
        let q = candle_core::Var::randn(0f32, 1.0, (2, 3, 6, 8), &Device::Cpu).unwrap();
        let k = candle_core::Var::randn(0f32, 1.0, (2, 3, 9, 8), &Device::Cpu).unwrap();
        let fused = crate::ops::matmul_transposed(q.as_tensor(), k.as_tensor()).unwrap();
        let composed = q.as_tensor().matmul(&k.as_tensor().t().unwrap()).unwrap();
        assert_eq!(fused.dims(), &[2, 3, 6, 9]);
        assert!(max_abs_diff(&fused, &composed) < 1e-5);
        assert_same_gradients("score", &fused, &composed, &[("queries", &q), ("keys", &k)]);
        // Mismatched head sizes are an error, not a wrong product.
        let short = Tensor::zeros((2, 3, 9, 7), DType::F32, &Device::Cpu).unwrap();
        assert!(crate::ops::matmul_transposed(q.as_tensor(), &short).is_err());
    }

    #[test]
    fn fused_relu_dropout_equals_relu_then_dropout_with_its_gradient() {
        let x = candle_core::Var::randn(0f32, 1.0, (3, 500), &Device::Cpu).unwrap();
        for rate in [0.0, 0.25] {
            let fused_rng = DropoutRng::new(rate, 5);
            let composed_rng = DropoutRng::new(rate, 5);
            let fused = fused_rng.relu_then_apply(x.as_tensor(), true).unwrap();
            // The composed version: candle's relu, then the dropout mask
            // drawn from an identical generator, as a multiplication.
            let relu = x.as_tensor().relu().unwrap();
            let keep = composed_rng.keep_mask(relu.elem_count());
            let mask: Vec<f32> = keep
                .iter()
                .map(|&k| if k { composed_rng.keep_scale() } else { 0.0 })
                .collect();
            let mask = Tensor::from_vec(mask, relu.shape(), &Device::Cpu).unwrap();
            let composed = relu.mul(&mask).unwrap();
            assert!(max_abs_diff(&fused, &composed) < 1e-6, "rate {rate}");
            let (_, fused_grads) = weighted_sum_grads(&fused, &[&x]);
            let (_, composed_grads) = weighted_sum_grads(&composed, &[&x]);
            let diff = max_abs_diff(&fused_grads[0], &composed_grads[0]);
            assert!(diff < 1e-6, "rate {rate}: gradients differ by {diff}");
        }
    }

    #[test]
    fn parallel_dropout_masks_are_the_sequential_draws() {
        // Sizes off the task boundary, twice in a row: the second mask must
        // continue the stream where the first stopped.
        let dropout = DropoutRng::new(0.1, 42);
        let first = dropout.keep_mask(200_003);
        let second = dropout.keep_mask(70_001);
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let sequential: Vec<bool> = (0..270_004).map(|_| rng.random::<f32>() >= 0.1).collect();
        assert_eq!(first, sequential[..200_003]);
        assert_eq!(second, sequential[200_003..]);
    }

    #[test]
    fn dropout_is_reproducible_from_its_seed_and_off_at_inference() {
        let xs = Tensor::ones((4, 64), DType::F32, &Device::Cpu).unwrap();
        let dropout = DropoutRng::new(0.5, 7);
        let first = dropout.apply(&xs, true).unwrap().to_vec2::<f32>().unwrap();
        dropout.reseed(7);
        let again = dropout.apply(&xs, true).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(first, again);
        let values: Vec<f32> = first.concat();
        assert!(values.iter().all(|&v| v == 0.0 || v == 2.0));
        let zeros = values.iter().filter(|&&v| v == 0.0).count();
        assert!((64..=192).contains(&zeros), "{zeros} of 256 dropped");
        let off = dropout.apply(&xs, false).unwrap().to_vec2::<f32>().unwrap();
        assert!(off.concat().iter().all(|&v| v == 1.0));
    }
}
