//! AdamW (Loshchilov & Hutter): Adam with decoupled weight decay and bias
//! correction, written to match `torch.optim.AdamW`.

use candle_core::Tensor;
use rayon::prelude::*;

use super::{cpu, Param, StepContext};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct AdamWSettings {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        AdamWSettings {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

pub(super) fn update(
    s: &AdamWSettings,
    ctx: &StepContext,
    p: &mut Param,
    g: &Tensor,
) -> Result<()> {
    let t = ctx.step as i32;
    let bias1 = 1.0 - s.beta1.powi(t);
    let bias2 = 1.0 - s.beta2.powi(t);
    let step_size = ctx.lr / bias1;
    let decay = if p.decay {
        1.0 - ctx.lr * s.weight_decay
    } else {
        1.0
    };
    let inv_sqrt_bias2 = 1.0 / bias2.sqrt();
    if p.host {
        let (gs, b1, b2) = (ctx.grad_scale as f32, s.beta1 as f32, s.beta2 as f32);
        let (eps, decay, step_size, inv_sqrt_bias2) = (
            s.eps as f32,
            decay as f32,
            step_size as f32,
            inv_sqrt_bias2 as f32,
        );
        let [m, v] = &mut p.state[..] else {
            unreachable!("AdamW keeps two buffers")
        };
        let (m, v) = (m.host_mut(), v.host_mut());
        cpu::update_in_place(p.var.as_tensor(), g, |w, g| {
            // Element-wise, so the chunking does not change any result.
            w.par_chunks_mut(cpu::ELEMENTS_PER_TASK)
                .zip(g.par_chunks(cpu::ELEMENTS_PER_TASK))
                .zip(m.par_chunks_mut(cpu::ELEMENTS_PER_TASK))
                .zip(v.par_chunks_mut(cpu::ELEMENTS_PER_TASK))
                .for_each(|(((w, g), m), v)| {
                    for i in 0..w.len() {
                        let gi = g[i] * gs;
                        let mi = b1 * m[i] + (1.0 - b1) * gi;
                        let vi = b2 * v[i] + (1.0 - b2) * gi * gi;
                        m[i] = mi;
                        v[i] = vi;
                        w[i] = w[i] * decay - step_size * mi / (vi.sqrt() * inv_sqrt_bias2 + eps);
                    }
                });
        })?;
    } else {
        let g = g.affine(ctx.grad_scale, 0.0)?;
        let m = p.state[0]
            .device()
            .affine(s.beta1, 0.0)?
            .add(&g.affine(1.0 - s.beta1, 0.0)?)?;
        let v = p.state[1]
            .device()
            .affine(s.beta2, 0.0)?
            .add(&g.sqr()?.affine(1.0 - s.beta2, 0.0)?)?;
        let denom = v.sqrt()?.affine(inv_sqrt_bias2, s.eps)?;
        let w = p.var.as_tensor().to_dtype(candle_core::DType::F32)?;
        let w = w
            .affine(decay, 0.0)?
            .sub(&m.div(&denom)?.affine(step_size, 0.0)?)?;
        p.var.set(&w.to_dtype(p.var.dtype())?)?;
        p.state[0].data = super::Buf::Device(m);
        p.state[1].data = super::Buf::Device(v);
    }
    Ok(())
}
