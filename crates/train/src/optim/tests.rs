// The references are written like the papers, with indices and many inputs.
#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

use super::*;

use candle_core::{Device, Tensor, Var};

/// Deterministic pseudo-random numbers in [-scale, scale).
fn noise(seed: u64, n: usize, scale: f64) -> Vec<f32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0) as f32 * scale as f32
        })
        .collect()
}

/// The parameters used by the reference tests: a batched matrix, a matrix
/// and a layer norm (no weight decay, not factored).
const SHAPES: [(&str, &[usize]); 3] = [
    ("block.attn.w", &[2, 3, 4]),
    ("dense.w", &[5, 3]),
    ("final_layer_norm.weight", &[6]),
];

fn make_params() -> Vec<(String, Var)> {
    SHAPES
        .iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let n = shape.iter().product();
            let init = noise(100 + i as u64, n, 1.0);
            let t = Tensor::from_vec(init, *shape, &Device::Cpu).unwrap();
            (name.to_string(), Var::from_tensor(&t).unwrap())
        })
        .collect()
}

/// The gradient of micro-batch `micro` at step `step` for parameter `i`.
fn grad_values(step: u64, micro: usize, i: usize, n: usize) -> Vec<f32> {
    noise(step * 1000 + micro as u64 * 10 + i as u64, n, 2.0)
}

/// Accumulates `micro_batches` backward passes whose gradients are exactly
/// `grad_values`: the loss is sum(w * c), so d loss / d w = c.
fn accumulate(opt: &mut Optimizer, params: &[(String, Var)], step: u64, micro_batches: usize) {
    for micro in 0..micro_batches {
        let mut loss = Tensor::new(0f32, &Device::Cpu).unwrap();
        for (i, (_, var)) in params.iter().enumerate() {
            let c = grad_values(step, micro, i, var.elem_count());
            let c = Tensor::from_vec(c, var.shape(), &Device::Cpu)
                .unwrap()
                .to_dtype(var.dtype())
                .unwrap();
            let term = (var.as_tensor() * c).unwrap().sum_all().unwrap();
            loss = (loss + term.to_dtype(candle_core::DType::F32).unwrap()).unwrap();
        }
        opt.accumulate(&loss.backward().unwrap()).unwrap();
    }
}

fn values(params: &[(String, Var)]) -> Vec<Vec<f64>> {
    params
        .iter()
        .map(|(_, v)| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .into_iter()
                .map(f64::from)
                .collect()
        })
        .collect()
}

/// Mean gradient over micro-batches with PyTorch's global-norm clip.
fn reference_grads(
    step: u64,
    micro_batches: usize,
    clip: Option<f64>,
    sizes: &[usize],
) -> Vec<Vec<f64>> {
    let mut grads: Vec<Vec<f64>> = sizes.iter().map(|n| vec![0.0; *n]).collect();
    for micro in 0..micro_batches {
        for (i, g) in grads.iter_mut().enumerate() {
            for (gi, c) in g.iter_mut().zip(grad_values(step, micro, i, sizes[i])) {
                *gi += f64::from(c) / micro_batches as f64;
            }
        }
    }
    let norm = grads.iter().flatten().map(|g| g * g).sum::<f64>().sqrt();
    if let Some(c) = clip {
        let scale = (c / (norm + 1e-6)).min(1.0);
        grads.iter_mut().flatten().for_each(|g| *g *= scale);
    }
    grads
}

fn reference_adamw(
    s: &AdamWSettings,
    lr: f64,
    t: u64,
    w: &mut [f64],
    m: &mut [f64],
    v: &mut [f64],
    g: &[f64],
    decay: bool,
) {
    for i in 0..w.len() {
        if decay {
            w[i] -= lr * s.weight_decay * w[i];
        }
        m[i] = s.beta1 * m[i] + (1.0 - s.beta1) * g[i];
        v[i] = s.beta2 * v[i] + (1.0 - s.beta2) * g[i] * g[i];
        let m_hat = m[i] / (1.0 - s.beta1.powi(t as i32));
        let v_hat = v[i] / (1.0 - s.beta2.powi(t as i32));
        w[i] -= lr * m_hat / (v_hat.sqrt() + s.eps);
    }
}

/// Adafactor state of one parameter, in the reference's own layout.
struct RefFactor {
    row: Vec<f64>,
    col: Vec<f64>,
    v: Vec<f64>,
    m: Vec<f64>,
}

fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
}

fn reference_adafactor(
    s: &AdafactorSettings,
    lr: f64,
    t: u64,
    shape: &[usize],
    w: &mut [f64],
    st: &mut RefFactor,
    g: &[f64],
    decay: bool,
) {
    let rel = if s.relative_step {
        (1e-2f64).min(1.0 / (t as f64).sqrt())
    } else {
        lr
    };
    let alpha = if s.scale_parameter {
        s.eps2.max(rms(w)) * rel
    } else {
        rel
    };
    let beta2t = 1.0 - (t as f64).powf(s.decay_rate);
    let sq: Vec<f64> = g.iter().map(|x| x * x + s.eps1).collect();
    let mut update = vec![0.0; w.len()];
    if shape.len() >= 2 {
        let (r, c) = (shape[shape.len() - 2], shape[shape.len() - 1]);
        let b = w.len() / (r * c);
        for bi in 0..b {
            for ri in 0..r {
                let mean: f64 = (0..c).map(|ci| sq[(bi * r + ri) * c + ci]).sum::<f64>() / c as f64;
                st.row[bi * r + ri] = beta2t * st.row[bi * r + ri] + (1.0 - beta2t) * mean;
            }
            for ci in 0..c {
                let mean: f64 = (0..r).map(|ri| sq[(bi * r + ri) * c + ci]).sum::<f64>() / r as f64;
                st.col[bi * c + ci] = beta2t * st.col[bi * c + ci] + (1.0 - beta2t) * mean;
            }
            let row_mean: f64 = st.row[bi * r..(bi + 1) * r].iter().sum::<f64>() / r as f64;
            for ri in 0..r {
                for ci in 0..c {
                    let i = (bi * r + ri) * c + ci;
                    update[i] =
                        g[i] / (st.row[bi * r + ri] / row_mean).sqrt() / st.col[bi * c + ci].sqrt();
                }
            }
        }
    } else {
        for i in 0..w.len() {
            st.v[i] = beta2t * st.v[i] + (1.0 - beta2t) * sq[i];
            update[i] = g[i] / st.v[i].sqrt();
        }
    }
    let denom = (rms(&update) / s.clip_threshold).max(1.0);
    update.iter_mut().for_each(|u| *u = *u / denom * alpha);
    if let Some(b1) = s.beta1 {
        for i in 0..w.len() {
            st.m[i] = b1 * st.m[i] + (1.0 - b1) * update[i];
            update[i] = st.m[i];
        }
    }
    for i in 0..w.len() {
        if decay {
            w[i] -= s.weight_decay * alpha * w[i];
        }
        w[i] -= update[i];
    }
}

fn lr_at(step: u64) -> f64 {
    0.02 / (1.0 + 0.1 * step as f64)
}

fn assert_close(got: &[Vec<f64>], want: &[Vec<f64>], tol: f64, what: &str) {
    for (p, (g, w)) in got.iter().zip(want).enumerate() {
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(
                (a - b).abs() < tol,
                "{what}: param {p}[{i}]: {a} vs reference {b}"
            );
        }
    }
}

/// Fresh parameters, an optimizer over them (on the tensor path with
/// `tensor_ops`) and each parameter's element count.
fn reference_run(
    settings: OptimizerSettings,
    tensor_ops: bool,
) -> (Vec<(String, Var)>, Optimizer, Vec<usize>) {
    let params = make_params();
    let opt = if tensor_ops {
        Optimizer::with_tensor_ops(params.clone(), settings).unwrap()
    } else {
        Optimizer::new(params.clone(), settings).unwrap()
    };
    let sizes = params.iter().map(|(_, v)| v.elem_count()).collect();
    (params, opt, sizes)
}

fn check_adamw_against_reference(tensor_ops: bool) {
    let s = AdamWSettings {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let settings = OptimizerSettings {
        algorithm: Algorithm::AdamW(s.clone()),
        clip_norm: Some(3.0),
    };
    let (params, mut opt, sizes) = reference_run(settings, tensor_ops);
    let mut w = values(&params);
    let mut m: Vec<Vec<f64>> = sizes.iter().map(|n| vec![0.0; *n]).collect();
    let mut v = m.clone();
    for step in 1..=12 {
        accumulate(&mut opt, &params, step, 2);
        let stats = opt.step(lr_at(step)).unwrap();
        assert_eq!(stats.step, step);
        let g = reference_grads(step, 2, Some(3.0), &sizes);
        for i in 0..params.len() {
            let decay = decays_weight(&params[i].0);
            reference_adamw(
                &s,
                lr_at(step),
                step,
                &mut w[i],
                &mut m[i],
                &mut v[i],
                &g[i],
                decay,
            );
        }
        assert_close(&values(&params), &w, 1e-6, &format!("AdamW step {step}"));
    }
}

#[test]
fn adamw_in_place_matches_reference_step_by_step() {
    check_adamw_against_reference(false);
}

#[test]
fn adamw_tensor_path_matches_reference_step_by_step() {
    check_adamw_against_reference(true);
}

fn check_adafactor_against_reference(s: AdafactorSettings, tensor_ops: bool) {
    let settings = OptimizerSettings {
        algorithm: Algorithm::Adafactor(s.clone()),
        clip_norm: Some(4.0),
    };
    let (params, mut opt, sizes) = reference_run(settings, tensor_ops);
    let mut w = values(&params);
    let mut states: Vec<RefFactor> = SHAPES
        .iter()
        .map(|(_, shape)| {
            let n: usize = shape.iter().product();
            let (rows, cols) = if shape.len() >= 2 {
                let c = shape[shape.len() - 1];
                (n / c, n / shape[shape.len() - 2])
            } else {
                (0, 0)
            };
            RefFactor {
                row: vec![0.0; rows],
                col: vec![0.0; cols],
                v: vec![0.0; n],
                m: vec![0.0; n],
            }
        })
        .collect();
    for step in 1..=12 {
        accumulate(&mut opt, &params, step, 1);
        opt.step(lr_at(step)).unwrap();
        let g = reference_grads(step, 1, Some(4.0), &sizes);
        for i in 0..params.len() {
            let decay = decays_weight(&params[i].0);
            reference_adafactor(
                &s,
                lr_at(step),
                step,
                SHAPES[i].1,
                &mut w[i],
                &mut states[i],
                &g[i],
                decay,
            );
        }
        assert_close(
            &values(&params),
            &w,
            1e-6,
            &format!("Adafactor step {step}"),
        );
    }
}

#[test]
fn adafactor_matches_reference_step_by_step() {
    let plain = AdafactorSettings::default();
    let full = AdafactorSettings {
        beta1: Some(0.9),
        scale_parameter: true,
        weight_decay: 0.05,
        clip_threshold: 0.5,
        ..AdafactorSettings::default()
    };
    let relative = AdafactorSettings {
        relative_step: true,
        scale_parameter: true,
        ..AdafactorSettings::default()
    };
    for (name, s) in [
        ("plain", plain),
        ("momentum+wd+scale", full),
        ("relative", relative),
    ] {
        for tensor_ops in [false, true] {
            eprintln!("adafactor {name}, tensor ops {tensor_ops}");
            check_adafactor_against_reference(s.clone(), tensor_ops);
        }
    }
}

/// min ||X w - y||^2 with real gradients from candle's backward.
fn least_squares_loss(w: &Var) -> Tensor {
    let x = Tensor::from_vec(noise(7, 64 * 8, 1.0), (64, 8), &Device::Cpu).unwrap();
    let truth = Tensor::from_vec(noise(8, 8, 1.0), (8, 1), &Device::Cpu).unwrap();
    let y = x.matmul(&truth).unwrap();
    (x.matmul(w.as_tensor()).unwrap() - y)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
}

#[test]
fn both_optimizers_solve_least_squares() {
    for algorithm in [
        Algorithm::AdamW(AdamWSettings {
            weight_decay: 0.0,
            ..AdamWSettings::default()
        }),
        Algorithm::Adafactor(AdafactorSettings {
            beta1: Some(0.9),
            ..AdafactorSettings::default()
        }),
    ] {
        let w = Var::zeros((8, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
        let settings = OptimizerSettings {
            algorithm: algorithm.clone(),
            clip_norm: Some(1.0),
        };
        let mut opt = Optimizer::new(vec![("w".into(), w.clone())], settings).unwrap();
        let start = least_squares_loss(&w).to_scalar::<f32>().unwrap();
        for _ in 0..600 {
            let loss = least_squares_loss(&w);
            opt.accumulate(&loss.backward().unwrap()).unwrap();
            opt.step(0.02).unwrap();
        }
        let end = least_squares_loss(&w).to_scalar::<f32>().unwrap();
        assert!(end < start * 1e-3, "{algorithm:?}: loss {start} -> {end}");
    }
}

#[test]
fn clipping_equals_feeding_the_scaled_gradient() {
    // Step A: clip_norm 1 on gradient g. Step B: no clip on g * (1/|g|).
    let settings = |clip| OptimizerSettings {
        algorithm: Algorithm::AdamW(AdamWSettings {
            eps: 0.5, // large eps makes AdamW sensitive to the gradient's scale
            ..AdamWSettings::default()
        }),
        clip_norm: clip,
    };
    let g = [3.0f32, -4.0]; // norm 5
    let run = |clip: Option<f64>, scale: f32| {
        let w = Var::new(&[1.0f32, 1.0], &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(vec![("w".into(), w.clone())], settings(clip)).unwrap();
        let c = Tensor::new(&[g[0] * scale, g[1] * scale], &Device::Cpu).unwrap();
        let loss = (w.as_tensor() * c).unwrap().sum_all().unwrap();
        opt.accumulate(&loss.backward().unwrap()).unwrap();
        let stats = opt.step(0.1).unwrap();
        (w.as_tensor().to_vec1::<f32>().unwrap(), stats)
    };
    let (clipped, stats) = run(Some(1.0), 1.0);
    assert!((stats.grad_norm - 5.0).abs() < 1e-6);
    assert!((stats.clip_scale - 1.0 / (5.0 + 1e-6)).abs() < 1e-9);
    let (manual, _) = run(None, 1.0 / (5.0 + 1e-6) as f32);
    let (unclipped, stats) = run(None, 1.0);
    assert_eq!(stats.clip_scale, 1.0);
    for i in 0..2 {
        assert!((clipped[i] - manual[i]).abs() < 1e-7);
        assert!(
            (clipped[i] - unclipped[i]).abs() > 1e-3,
            "clipping changed nothing"
        );
    }
    // A generous limit leaves the gradient alone.
    let (loose, stats) = run(Some(100.0), 1.0);
    assert_eq!(stats.clip_scale, 1.0);
    assert_eq!(loose, unclipped);
}

fn check_resume(algorithm: Algorithm, tensor_ops: bool) {
    let settings = OptimizerSettings {
        algorithm,
        clip_norm: Some(2.0),
    };
    let build = |params: Vec<(String, Var)>| {
        if tensor_ops {
            Optimizer::with_tensor_ops(params, settings.clone()).unwrap()
        } else {
            Optimizer::new(params, settings.clone()).unwrap()
        }
    };
    // Uninterrupted: 8 steps.
    let straight = make_params();
    let mut opt = build(straight.clone());
    for step in 1..=8 {
        accumulate(&mut opt, &straight, step, 1);
        opt.step(lr_at(step)).unwrap();
    }
    // Interrupted after 5: save weights and state, rebuild everything, load.
    let dir = tempfile::tempdir().unwrap();
    let first = make_params();
    let mut opt = build(first.clone());
    for step in 1..=5 {
        accumulate(&mut opt, &first, step, 1);
        opt.step(lr_at(step)).unwrap();
    }
    let path = dir.path().join("optimizer.safetensors");
    opt.save_state(&path).unwrap();
    let saved = values(&first);
    let resumed: Vec<(String, Var)> = first
        .iter()
        .map(|(n, v)| {
            (
                n.clone(),
                Var::from_tensor(&v.as_tensor().copy().unwrap()).unwrap(),
            )
        })
        .collect();
    drop(opt);
    let mut opt = build(resumed.clone());
    opt.load_state(&path).unwrap();
    assert_eq!(opt.step_count(), 5);
    assert_eq!(values(&resumed), saved);
    for step in 6..=8 {
        accumulate(&mut opt, &resumed, step, 1);
        opt.step(lr_at(step)).unwrap();
    }
    assert_eq!(values(&resumed), values(&straight));
}

#[test]
fn save_load_continue_equals_an_uninterrupted_run() {
    let adafactor = Algorithm::Adafactor(AdafactorSettings {
        beta1: Some(0.9),
        ..AdafactorSettings::default()
    });
    for tensor_ops in [false, true] {
        check_resume(Algorithm::AdamW(AdamWSettings::default()), tensor_ops);
        check_resume(adafactor.clone(), tensor_ops);
    }
}

#[test]
fn loading_state_of_another_model_or_optimizer_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opt.safetensors");
    let adamw = OptimizerSettings {
        algorithm: Algorithm::AdamW(AdamWSettings::default()),
        clip_norm: None,
    };
    let opt = Optimizer::new(make_params(), adamw.clone()).unwrap();
    opt.save_state(&path).unwrap();

    let adafactor = OptimizerSettings {
        algorithm: Algorithm::Adafactor(AdafactorSettings::default()),
        clip_norm: None,
    };
    let mut other = Optimizer::new(make_params(), adafactor).unwrap();
    let err = other.load_state(&path).unwrap_err().to_string();
    assert!(
        err.contains("missing `block.attn.w.exp_avg_sq_row`"),
        "{err}"
    );

    let fewer = make_params().into_iter().take(2).collect();
    let mut other = Optimizer::new(fewer, adamw.clone()).unwrap();
    let err = other.load_state(&path).unwrap_err().to_string();
    assert!(
        err.contains("final_layer_norm.weight") && err.contains("matches no parameter"),
        "{err}"
    );

    let w = Var::zeros((4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let mut other = Optimizer::new(vec![("dense.w".into(), w)], adamw).unwrap();
    let err = other.load_state(&path).unwrap_err().to_string();
    assert!(
        err.contains("`dense.w.exp_avg`") && err.contains("expected"),
        "{err}"
    );
}

#[test]
fn a_parameter_without_gradient_is_an_error() {
    let params = make_params();
    let settings = OptimizerSettings {
        algorithm: Algorithm::AdamW(AdamWSettings::default()),
        clip_norm: None,
    };
    let mut opt = Optimizer::new(params.clone(), settings).unwrap();
    let loss = params[0].1.as_tensor().sum_all().unwrap();
    let err = opt.accumulate(&loss.backward().unwrap()).unwrap_err();
    assert!(
        matches!(err, TrainError::MissingGradient { ref name } if name == "dense.w"),
        "{err}"
    );
    assert!(opt.step(0.1).is_err(), "a step without gradients must fail");
}

#[test]
fn a_non_finite_gradient_stops_before_touching_weights() {
    let w = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
    let settings = OptimizerSettings {
        algorithm: Algorithm::AdamW(AdamWSettings::default()),
        clip_norm: Some(1.0),
    };
    let mut opt = Optimizer::new(vec![("w".into(), w.clone())], settings).unwrap();
    let c = Tensor::new(&[f32::NAN, 1.0], &Device::Cpu).unwrap();
    let loss = (w.as_tensor() * c).unwrap().sum_all().unwrap();
    opt.accumulate(&loss.backward().unwrap()).unwrap();
    let err = opt.step(0.1).unwrap_err();
    assert!(matches!(err, TrainError::NonFinite(_)), "{err}");
    assert!(
        err.to_string().contains("gradient norm is NaN at step 1"),
        "{err}"
    );
    assert_eq!(w.as_tensor().to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
}

#[test]
fn config_maps_onto_settings() {
    let yaml =
        "kind: adafactor\nlr: 0.001\nclip_norm: 0\nadafactor_momentum: true\nbetas: [0.8, 0.9]";
    let config: crate::config::OptimizerConfig = serde_norway::from_str(yaml).unwrap();
    let s = OptimizerSettings::from_config(&config);
    assert_eq!(s.clip_norm, None);
    match s.algorithm {
        Algorithm::Adafactor(a) => {
            assert_eq!(a.beta1, Some(0.8));
            assert!(!a.relative_step);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bf16_parameters_take_the_tensor_path_with_f32_state() {
    // What a GPU run does: bf16 weights, f32 moments; here on the CPU.
    let settings = OptimizerSettings {
        algorithm: Algorithm::AdamW(AdamWSettings::default()),
        clip_norm: Some(1.0),
    };
    let f32_params = make_params();
    let bf16_params: Vec<(String, Var)> = f32_params
        .iter()
        .map(|(n, v)| {
            let t = v.as_tensor().to_dtype(candle_core::DType::BF16).unwrap();
            (n.clone(), Var::from_tensor(&t).unwrap())
        })
        .collect();
    let mut reference = Optimizer::new(f32_params.clone(), settings.clone()).unwrap();
    let mut half = Optimizer::new(bf16_params.clone(), settings).unwrap();
    for step in 1..=3 {
        accumulate(&mut reference, &f32_params, step, 1);
        reference.step(0.05).unwrap();
        accumulate(&mut half, &bf16_params, step, 1);
        half.step(0.05).unwrap();
    }
    for ((_, a), (_, b)) in f32_params.iter().zip(&bf16_params) {
        assert_eq!(b.dtype(), candle_core::DType::BF16);
        let b = b.as_tensor().to_dtype(candle_core::DType::F32).unwrap();
        let diff = (a.as_tensor() - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 2e-2);
    }
    assert_eq!(half.num_parameters(), 24 + 15 + 6);
}
