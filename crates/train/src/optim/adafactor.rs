//! Adafactor (Shazeer & Stern 2018) as in Hugging Face's
//! `transformers.optimization.Adafactor`: factored second moments for
//! matrices, update clipping by RMS, optional momentum, decoupled weight
//! decay. The relative step is off by default because the trainer drives the
//! learning rate with its own schedule.

use candle_core::{DType, Device, Shape, Tensor, D};

use super::{cpu, Buf, Param, StateBuf, StepContext};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct AdafactorSettings {
    /// First-moment decay; `None` keeps no momentum (Adafactor's default).
    pub beta1: Option<f64>,
    /// beta2 at step t is `1 - t^decay_rate`.
    pub decay_rate: f64,
    /// Added to squared gradients.
    pub eps1: f64,
    /// Floor of the parameter RMS when `scale_parameter` is on.
    pub eps2: f64,
    /// The update is divided by `max(1, RMS(update) / clip_threshold)`.
    pub clip_threshold: f64,
    /// Ignore the given lr and use `min(1e-2, 1/sqrt(step))`.
    pub relative_step: bool,
    /// With `relative_step`, warm up as `1e-6 * step` instead of `1e-2`.
    pub warmup_init: bool,
    /// Multiply the step size by `max(eps2, RMS(param))`.
    pub scale_parameter: bool,
    pub weight_decay: f64,
}

impl Default for AdafactorSettings {
    fn default() -> Self {
        AdafactorSettings {
            beta1: None,
            decay_rate: -0.8,
            eps1: 1e-30,
            eps2: 1e-3,
            clip_threshold: 1.0,
            relative_step: false,
            warmup_init: false,
            scale_parameter: false,
            weight_decay: 0.0,
        }
    }
}

const ROW: &str = "exp_avg_sq_row";
const COL: &str = "exp_avg_sq_col";
const SQ: &str = "exp_avg_sq";
const AVG: &str = "exp_avg";

/// (batch, rows, cols) of a parameter of rank >= 2: moments are factored over
/// the last two dimensions, batched over the leading ones.
fn factored_dims(shape: &Shape) -> Option<(usize, usize, usize)> {
    let dims = shape.dims();
    let rank = dims.len();
    (rank >= 2).then(|| {
        (
            dims[..rank - 2].iter().product(),
            dims[rank - 2],
            dims[rank - 1],
        )
    })
}

pub(super) fn init_state(
    s: &AdafactorSettings,
    shape: &Shape,
    device: &Device,
    host: bool,
) -> Result<Vec<StateBuf>> {
    let dims = shape.dims();
    let mut state = Vec::new();
    if factored_dims(shape).is_some() {
        let rank = dims.len();
        let row = Shape::from(dims[..rank - 1].to_vec());
        let mut col_dims = dims[..rank - 2].to_vec();
        col_dims.push(dims[rank - 1]);
        state.push(StateBuf::zeros(ROW, row, device, host)?);
        state.push(StateBuf::zeros(COL, Shape::from(col_dims), device, host)?);
    } else {
        state.push(StateBuf::zeros(SQ, shape.clone(), device, host)?);
    }
    if s.beta1.is_some() {
        state.push(StateBuf::zeros(AVG, shape.clone(), device, host)?);
    }
    Ok(state)
}

fn position(state: &[StateBuf], suffix: &str) -> usize {
    state
        .iter()
        .position(|b| b.suffix == suffix)
        .unwrap_or_else(|| unreachable!("init_state creates `{suffix}`"))
}

/// Step size before the parameter-RMS scaling.
fn relative_lr(s: &AdafactorSettings, ctx: &StepContext) -> f64 {
    if s.relative_step {
        let t = ctx.step as f64;
        let min_step = if s.warmup_init { 1e-6 * t } else { 1e-2 };
        min_step.min(1.0 / t.sqrt())
    } else {
        ctx.lr
    }
}

/// What one step of one parameter uses besides the settings, worked out
/// once for both the host and the tensor path.
#[derive(Clone, Copy)]
struct StepTerms {
    /// The second-moment decay of this step.
    beta2t: f64,
    /// Step size before the parameter-RMS scaling.
    rel_lr: f64,
    /// The parameter's factored dimensions, when its second moment is.
    factored: Option<(usize, usize, usize)>,
    /// Weight decay (0 for a parameter that is not decayed).
    wd: f64,
}

pub(super) fn update(
    s: &AdafactorSettings,
    ctx: &StepContext,
    p: &mut Param,
    g: &Tensor,
) -> Result<()> {
    let terms = StepTerms {
        beta2t: 1.0 - (ctx.step as f64).powf(s.decay_rate),
        rel_lr: relative_lr(s, ctx),
        factored: factored_dims(p.var.shape()),
        wd: if p.decay { s.weight_decay } else { 0.0 },
    };
    if p.host {
        update_host(s, ctx, p, g, terms)
    } else {
        update_tensor(s, ctx, p, g, terms)
    }
}

fn rms(data: &[f32]) -> f64 {
    (cpu::sum_squares(data) / data.len().max(1) as f64).sqrt()
}

fn update_host(
    s: &AdafactorSettings,
    ctx: &StepContext,
    p: &mut Param,
    grad: &Tensor,
    terms: StepTerms,
) -> Result<()> {
    let StepTerms {
        beta2t,
        rel_lr,
        factored,
        wd,
    } = terms;
    let gs = ctx.grad_scale as f32;
    let eps1 = s.eps1 as f32;
    let (keep, take) = (beta2t as f32, (1.0 - beta2t) as f32);
    // Split the state into the second-moment buffers and the momentum.
    let momentum_at = s.beta1.map(|_| position(&p.state, AVG));
    let mut second: Vec<&mut [f32]> = Vec::new();
    let mut momentum: Option<&mut [f32]> = None;
    for (i, buf) in p.state.iter_mut().enumerate() {
        if Some(i) == momentum_at {
            momentum = Some(buf.host_mut());
        } else {
            second.push(buf.host_mut());
        }
    }
    let beta1 = s.beta1.unwrap_or(0.0) as f32;
    cpu::update_in_place(p.var.as_tensor(), grad, |w, g| {
        let param_scale = if s.scale_parameter {
            s.eps2.max(rms(w))
        } else {
            1.0
        };
        let alpha = param_scale * rel_lr;
        // `precond(i)` is the factor the scaled gradient is multiplied by.
        let mut sum_sq = 0f64;
        match (factored, &mut second[..]) {
            (Some((b, r, c)), [row, col]) => {
                row.iter_mut().for_each(|x| *x *= keep);
                col.iter_mut().for_each(|x| *x *= keep);
                let (row_take, col_take) = (take / c as f32, take / r as f32);
                for bi in 0..b {
                    for ri in 0..r {
                        let base = (bi * r + ri) * c;
                        let mut row_sum = 0f32;
                        for ci in 0..c {
                            let gi = g[base + ci] * gs;
                            let x = gi * gi + eps1;
                            row_sum += x;
                            col[bi * c + ci] += col_take * x;
                        }
                        row[bi * r + ri] += row_take * row_sum;
                    }
                }
                // Reciprocal square roots of the factors, once per row and
                // column rather than once per element.
                let mut row_factor = vec![0f32; b * r];
                for bi in 0..b {
                    let rows = &row[bi * r..(bi + 1) * r];
                    let row_mean = rows.iter().sum::<f32>() / r as f32;
                    for (f, x) in row_factor[bi * r..(bi + 1) * r].iter_mut().zip(rows) {
                        *f = (x / row_mean).sqrt().recip();
                    }
                }
                let col_factor: Vec<f32> = col.iter().map(|x| x.sqrt().recip()).collect();
                for bi in 0..b {
                    let cf = &col_factor[bi * c..(bi + 1) * c];
                    for ri in 0..r {
                        let rf = row_factor[bi * r + ri] * gs;
                        let base = (bi * r + ri) * c;
                        let mut acc = 0f32;
                        for (gi, cfi) in g[base..base + c].iter().zip(cf) {
                            let u = gi * rf * cfi;
                            acc += u * u;
                        }
                        sum_sq += f64::from(acc);
                    }
                }
                let denom = ((sum_sq / w.len() as f64).sqrt() / s.clip_threshold).max(1.0);
                let factor = (alpha / denom) as f32;
                let shrink = (1.0 - wd * alpha) as f32;
                for bi in 0..b {
                    let cf = &col_factor[bi * c..(bi + 1) * c];
                    for ri in 0..r {
                        let rf = row_factor[bi * r + ri] * gs * factor;
                        let base = (bi * r + ri) * c;
                        let (w, g) = (&mut w[base..base + c], &g[base..base + c]);
                        match momentum.as_deref_mut() {
                            Some(m) => {
                                let m = &mut m[base..base + c];
                                for ci in 0..c {
                                    m[ci] = beta1 * m[ci] + (1.0 - beta1) * g[ci] * rf * cf[ci];
                                    w[ci] = w[ci] * shrink - m[ci];
                                }
                            }
                            None => {
                                for ci in 0..c {
                                    w[ci] = w[ci] * shrink - g[ci] * rf * cf[ci];
                                }
                            }
                        }
                    }
                }
            }
            (None, [v]) => {
                for (vi, gi) in v.iter_mut().zip(g) {
                    let gi = gi * gs;
                    *vi = keep * *vi + take * (gi * gi + eps1);
                    let u = gi / vi.sqrt();
                    sum_sq += f64::from(u) * f64::from(u);
                }
                let denom = ((sum_sq / w.len() as f64).sqrt() / s.clip_threshold).max(1.0);
                let factor = (alpha / denom) as f32;
                let shrink = (1.0 - wd * alpha) as f32;
                for i in 0..w.len() {
                    let mut u = g[i] * gs / v[i].sqrt() * factor;
                    if let Some(m) = momentum.as_deref_mut() {
                        m[i] = beta1 * m[i] + (1.0 - beta1) * u;
                        u = m[i];
                    }
                    w[i] = w[i] * shrink - u;
                }
            }
            _ => unreachable!("init_state matches factored_dims"),
        }
    })?;
    Ok(())
}

fn update_tensor(
    s: &AdafactorSettings,
    ctx: &StepContext,
    p: &mut Param,
    grad: &Tensor,
    terms: StepTerms,
) -> Result<()> {
    let StepTerms {
        beta2t,
        rel_lr,
        factored,
        wd,
    } = terms;
    let w = p.var.as_tensor().to_dtype(DType::F32)?;
    let param_scale = if s.scale_parameter {
        let rms = w.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()?;
        s.eps2.max(f64::from(rms))
    } else {
        1.0
    };
    let alpha = param_scale * rel_lr;
    let g = grad.affine(ctx.grad_scale, 0.0)?;
    let sq = g.sqr()?.affine(1.0, s.eps1)?;
    let update = if let Some((b, r, c)) = factored {
        let (ri, ci) = (position(&p.state, ROW), position(&p.state, COL));
        let sq3 = sq.reshape((b, r, c))?;
        let row_shape = p.state[ri].shape.clone();
        let col_shape = p.state[ci].shape.clone();
        let row = p.state[ri]
            .device()
            .reshape((b, r))?
            .affine(beta2t, 0.0)?
            .add(&sq3.mean(D::Minus1)?.affine(1.0 - beta2t, 0.0)?)?;
        let col = p.state[ci]
            .device()
            .reshape((b, c))?
            .affine(beta2t, 0.0)?
            .add(&sq3.mean(1)?.affine(1.0 - beta2t, 0.0)?)?;
        let r_factor = row
            .broadcast_div(&row.mean_keepdim(D::Minus1)?)?
            .sqrt()?
            .recip()?
            .unsqueeze(2)?;
        let c_factor = col.sqrt()?.recip()?.unsqueeze(1)?;
        let update = g
            .reshape((b, r, c))?
            .broadcast_mul(&r_factor)?
            .broadcast_mul(&c_factor)?
            .reshape(p.var.shape())?;
        p.state[ri].data = Buf::Device(row.reshape(row_shape)?);
        p.state[ci].data = Buf::Device(col.reshape(col_shape)?);
        update
    } else {
        let vi = position(&p.state, SQ);
        let v = p.state[vi]
            .device()
            .affine(beta2t, 0.0)?
            .add(&sq.affine(1.0 - beta2t, 0.0)?)?;
        let update = g.div(&v.sqrt()?)?;
        p.state[vi].data = Buf::Device(v);
        update
    };
    let rms = f64::from(update.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()?);
    let denom = (rms / s.clip_threshold).max(1.0);
    let mut update = update.affine(alpha / denom, 0.0)?;
    if let Some(beta1) = s.beta1 {
        let mi = position(&p.state, AVG);
        let m = p.state[mi]
            .device()
            .affine(beta1, 0.0)?
            .add(&update.affine(1.0 - beta1, 0.0)?)?;
        p.state[mi].data = Buf::Device(m.clone());
        update = m;
    }
    let w = w.affine(1.0 - wd * alpha, 0.0)?.sub(&update)?;
    p.var.set(&w.to_dtype(p.var.dtype())?)?;
    Ok(())
}
