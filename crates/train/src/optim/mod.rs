//! Optimizers that update `candle_core::Var`s in place: AdamW and Adafactor,
//! with gradient accumulation and global-norm clipping folded into the update.
//!
//! f32 parameters on the CPU are updated directly on their storage with the
//! optimizer state in plain `Vec<f32>`s (no allocation per step); any other
//! device or dtype takes a tensor-op path with f32 state on the device.

mod adafactor;
mod adamw;
mod cpu;

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Shape, Tensor, Var};

use crate::config::{OptimizerConfig, OptimizerKind};
use crate::error::{Result, TrainError};
use crate::guard::{check_finite, Quantity};

pub use adafactor::AdafactorSettings;
pub use adamw::AdamWSettings;

#[derive(Debug, Clone, PartialEq)]
pub enum Algorithm {
    AdamW(AdamWSettings),
    Adafactor(AdafactorSettings),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerSettings {
    pub algorithm: Algorithm,
    /// Clip the global gradient norm to this value (PyTorch's
    /// `clip_grad_norm_` rule); `None` or 0 disables clipping.
    pub clip_norm: Option<f64>,
}

impl OptimizerSettings {
    pub fn from_config(config: &OptimizerConfig) -> OptimizerSettings {
        let algorithm = match config.kind {
            OptimizerKind::Adamw => Algorithm::AdamW(AdamWSettings {
                beta1: config.betas[0],
                beta2: config.betas[1],
                eps: config.eps,
                weight_decay: config.weight_decay,
            }),
            OptimizerKind::Adafactor => Algorithm::Adafactor(AdafactorSettings {
                beta1: config.adafactor_momentum.then_some(config.betas[0]),
                relative_step: config.adafactor_relative_step,
                scale_parameter: config.adafactor_scale_parameter,
                weight_decay: config.weight_decay,
                ..AdafactorSettings::default()
            }),
        };
        OptimizerSettings {
            algorithm,
            clip_norm: config.clip_norm.filter(|c| *c > 0.0),
        }
    }
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Global L2 norm of the (averaged) gradient before clipping.
    pub grad_norm: f64,
    /// Factor the gradient was multiplied by (1 when not clipped).
    pub clip_scale: f64,
    /// The optimizer step just taken, counting from 1.
    pub step: u64,
}

/// Weight decay skips layer norms and biases (T5's relative attention bias
/// included), as Hugging Face's Trainer does.
pub fn decays_weight(name: &str) -> bool {
    !(name.contains("layer_norm") || name.contains("bias"))
}

/// One optimizer-state buffer of one parameter.
pub(crate) enum Buf {
    Host(Vec<f32>),
    Device(Tensor),
}

pub(crate) struct StateBuf {
    pub(crate) suffix: &'static str,
    pub(crate) shape: Shape,
    pub(crate) data: Buf,
}

impl StateBuf {
    fn zeros(suffix: &'static str, shape: Shape, device: &Device, host: bool) -> Result<Self> {
        let data = if host {
            Buf::Host(vec![0.0; shape.elem_count()])
        } else {
            Buf::Device(Tensor::zeros(&shape, DType::F32, device)?)
        };
        Ok(StateBuf {
            suffix,
            shape,
            data,
        })
    }

    fn to_cpu_tensor(&self) -> Result<Tensor> {
        Ok(match &self.data {
            Buf::Host(v) => Tensor::from_slice(v, &self.shape, &Device::Cpu)?,
            Buf::Device(t) => t.to_device(&Device::Cpu)?,
        })
    }

    pub(crate) fn host_mut(&mut self) -> &mut [f32] {
        match &mut self.data {
            Buf::Host(v) => v,
            Buf::Device(_) => unreachable!("host kernels only run on host state"),
        }
    }

    pub(crate) fn device(&self) -> &Tensor {
        match &self.data {
            Buf::Device(t) => t,
            Buf::Host(_) => unreachable!("tensor kernels only run on device state"),
        }
    }
}

pub(crate) struct Param {
    pub(crate) name: String,
    pub(crate) var: Var,
    /// f32 on the CPU: updated on its storage.
    pub(crate) host: bool,
    pub(crate) decay: bool,
    pub(crate) state: Vec<StateBuf>,
}

/// Hyper-parameters of one update, shared by every parameter.
pub(crate) struct StepContext {
    pub(crate) lr: f64,
    /// 1-based step number.
    pub(crate) step: u64,
    /// Multiplies every gradient: 1/micro-batches × the clip factor.
    pub(crate) grad_scale: f64,
}

pub struct Optimizer {
    settings: OptimizerSettings,
    params: Vec<Param>,
    step: u64,
    /// Summed gradients of the micro-batches since the last step.
    pending: Vec<Option<Tensor>>,
    micro_batches: usize,
}

const STEP_KEY: &str = "__optimizer_step__";

impl Optimizer {
    /// `params` are the trainable variables by name (names key the saved
    /// state); they are kept sorted by name so the order never depends on a
    /// hash map.
    pub fn new(params: Vec<(String, Var)>, settings: OptimizerSettings) -> Result<Optimizer> {
        Self::build(params, settings, false)
    }

    fn build(
        mut params: Vec<(String, Var)>,
        settings: OptimizerSettings,
        force_tensor_ops: bool,
    ) -> Result<Optimizer> {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = params.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(TrainError::Optimizer(format!(
                "parameter `{}` is listed twice",
                w[0].0
            )));
        }
        let mut out = Vec::with_capacity(params.len());
        for (name, var) in params {
            let host = !force_tensor_ops && cpu::is_host_f32(var.as_tensor());
            let shape = var.shape().clone();
            let device = var.device().clone();
            let state = match &settings.algorithm {
                Algorithm::AdamW(_) => vec![
                    StateBuf::zeros("exp_avg", shape.clone(), &device, host)?,
                    StateBuf::zeros("exp_avg_sq", shape, &device, host)?,
                ],
                Algorithm::Adafactor(s) => adafactor::init_state(s, &shape, &device, host)?,
            };
            out.push(Param {
                decay: decays_weight(&name),
                name,
                var,
                host,
                state,
            });
        }
        let pending = vec![None; out.len()];
        Ok(Optimizer {
            settings,
            params: out,
            step: 0,
            pending,
            micro_batches: 0,
        })
    }

    /// Forces the tensor-op path that GPUs take, even for f32 CPU tensors:
    /// for tests and benchmarks against the in-place path.
    pub fn with_tensor_ops(
        params: Vec<(String, Var)>,
        settings: OptimizerSettings,
    ) -> Result<Optimizer> {
        Self::build(params, settings, true)
    }

    pub fn settings(&self) -> &OptimizerSettings {
        &self.settings
    }

    /// Trainable scalars across all parameters.
    pub fn num_parameters(&self) -> usize {
        self.params.iter().map(|p| p.var.elem_count()).sum()
    }

    /// Optimizer steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Micro-batches accumulated since the last step.
    pub fn pending_micro_batches(&self) -> usize {
        self.micro_batches
    }

    /// Adds the gradients of one micro-batch (from `loss.backward()`). Every
    /// parameter must have one: a missing gradient is a silently frozen weight.
    pub fn accumulate(&mut self, grads: &GradStore) -> Result<()> {
        let mut fresh = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let g = grads
                .get(p.var.as_tensor())
                .ok_or_else(|| TrainError::MissingGradient {
                    name: p.name.clone(),
                })?;
            fresh.push(g.to_dtype(DType::F32)?.contiguous()?);
        }
        for (slot, g) in self.pending.iter_mut().zip(fresh) {
            // Gradients of different parameters may share storage in candle's
            // GradStore, so they are never modified in place.
            *slot = Some(match slot.take() {
                None => g,
                Some(sum) => (sum + g)?,
            });
        }
        self.micro_batches += 1;
        Ok(())
    }

    /// Drops accumulated gradients without stepping.
    pub fn zero_grad(&mut self) {
        self.pending.iter_mut().for_each(|g| *g = None);
        self.micro_batches = 0;
    }

    /// Averages the accumulated micro-batches, clips by global norm and
    /// updates every parameter with learning rate `lr`. A non-finite gradient
    /// norm stops before any weight is touched.
    pub fn step(&mut self, lr: f64) -> Result<StepStats> {
        if self.micro_batches == 0 {
            return Err(TrainError::Optimizer(
                "step without accumulated gradients".into(),
            ));
        }
        let mean = 1.0 / self.micro_batches as f64;
        let mut sum_sq = 0f64;
        let mut device_sums: Vec<Tensor> = Vec::new();
        for (p, g) in self.params.iter().zip(&self.pending) {
            let g = g.as_ref().ok_or_else(|| TrainError::MissingGradient {
                name: p.name.clone(),
            })?;
            if p.host {
                sum_sq += cpu::with_host_slice(g, cpu::sum_squares)?;
            } else {
                device_sums.push(g.sqr()?.sum_all()?);
            }
        }
        if !device_sums.is_empty() {
            let total = Tensor::stack(&device_sums, 0)?.sum_all()?;
            sum_sq += f64::from(total.to_dtype(DType::F32)?.to_scalar::<f32>()?);
        }
        let grad_norm = sum_sq.sqrt() * mean;
        check_finite(Quantity::GradNorm, grad_norm, self.step + 1)?;
        let clip_scale = match self.settings.clip_norm {
            Some(max) if max > 0.0 => (max / (grad_norm + 1e-6)).min(1.0),
            _ => 1.0,
        };
        self.step += 1;
        let ctx = StepContext {
            lr,
            step: self.step,
            grad_scale: mean * clip_scale,
        };
        for (p, g) in self.params.iter_mut().zip(self.pending.iter_mut()) {
            let g = g.take().ok_or_else(|| TrainError::MissingGradient {
                name: p.name.clone(),
            })?;
            match &self.settings.algorithm {
                Algorithm::AdamW(s) => adamw::update(s, &ctx, p, &g)?,
                Algorithm::Adafactor(s) => adafactor::update(s, &ctx, p, &g)?,
            }
        }
        self.micro_batches = 0;
        Ok(StepStats {
            grad_norm,
            clip_scale,
            step: self.step,
        })
    }

    /// Writes the step count and every state buffer to a safetensors file,
    /// through a temporary file renamed into place.
    pub fn save_state(&self, path: &Path) -> Result<()> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        tensors.insert(
            STEP_KEY.to_string(),
            Tensor::new(&[self.step as i64], &Device::Cpu)?,
        );
        for p in &self.params {
            for buf in &p.state {
                tensors.insert(format!("{}.{}", p.name, buf.suffix), buf.to_cpu_tensor()?);
            }
        }
        text2sql_data::atomic::write_file_at(path, "", |tmp| {
            candle_core::safetensors::save(&tensors, tmp).map_err(TrainError::from)
        })
    }

    /// Restores state written by [`Optimizer::save_state`] for the same
    /// parameters and algorithm; any mismatch is an error naming the tensor.
    pub fn load_state(&mut self, path: &Path) -> Result<()> {
        let fail = |message: String| TrainError::OptimizerState {
            path: path.to_path_buf(),
            message,
        };
        let mut tensors =
            candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| fail(e.to_string()))?;
        let step = tensors
            .remove(STEP_KEY)
            .ok_or_else(|| fail(format!("no `{STEP_KEY}` entry")))?
            .to_vec1::<i64>()
            .map_err(|e| fail(format!("`{STEP_KEY}`: {e}")))?;
        let step = match step.as_slice() {
            [s] if *s >= 0 => *s as u64,
            other => return Err(fail(format!("`{STEP_KEY}` holds {other:?}"))),
        };
        let mut restored: Vec<Vec<Buf>> = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let mut bufs = Vec::with_capacity(p.state.len());
            for buf in &p.state {
                let key = format!("{}.{}", p.name, buf.suffix);
                let t = tensors.remove(&key).ok_or_else(|| {
                    fail(format!(
                        "missing `{key}` (saved by another optimizer or model?)"
                    ))
                })?;
                if t.shape() != &buf.shape || t.dtype() != DType::F32 {
                    return Err(fail(format!(
                        "`{key}` is {:?} {:?}, expected F32 {:?}",
                        t.dtype(),
                        t.shape(),
                        buf.shape
                    )));
                }
                bufs.push(if p.host {
                    Buf::Host(t.flatten_all()?.to_vec1::<f32>()?)
                } else {
                    Buf::Device(t.to_device(p.var.device())?)
                });
            }
            restored.push(bufs);
        }
        if let Some(extra) = tensors.keys().min() {
            return Err(fail(format!(
                "`{extra}` matches no parameter of this model"
            )));
        }
        for (p, bufs) in self.params.iter_mut().zip(restored) {
            for (buf, data) in p.state.iter_mut().zip(bufs) {
                buf.data = data;
            }
        }
        self.step = step;
        self.zero_grad();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
