//! Whole-model gradients: a Llama block (GQA, RoPE, causal attention) and a
//! Whisper encoder block (LayerNorm, biased attention, GELU MLP) against
//! finite differences, fused forward vs composed forward, bf16
//! mixed precision vs f32, and dropout drawn by the graph.

mod common;

use common::blocks::{llama_layer, llama_layer_in, whisper_encoder_layer_in, Dims};
use emily::{DType, Tensor};
use emily_nn::train::{Precision, StepOutput};
use emily_nn::{fast_kernels, Mode, Model, ParamStore};

const D: Dims = Dims {
    hidden: 16,
    heads: 4,
    kv_heads: 2,
    ffn: 24,
};
const OUT: &str = "model.layers.0.mlp_residual";

/// `sum(out[name] · c)`: every output element matters.
#[allow(clippy::too_many_arguments)]
fn weighted_sum_of(
    model: &Model,
    params: &ParamStore,
    x: &Tensor,
    c: &Tensor,
    name: &'static str,
    p: Precision,
) -> StepOutput {
    let c = c.clone();
    let step = model
        .build(params, Mode::Train)
        .unwrap()
        .train_step(
            move |out, _| {
                let y = &out[name];
                y.mul(&c.cast(y.dtype())?)?.sum(&[], false)
            },
            p,
        )
        .unwrap();
    step.run(params, &[("hidden_states", x)], &[], 1.0).unwrap()
}

/// [`weighted_sum_of`] the Llama block's output.
fn weighted_sum(
    model: &Model,
    params: &ParamStore,
    x: &Tensor,
    c: &Tensor,
    p: Precision,
) -> StepOutput {
    weighted_sum_of(model, params, x, c, OUT, p)
}

/// Checks the analytic gradient of `sum(out[name] · c)` against central
/// finite differences (float64) at three coordinates of every parameter;
/// returns how many coordinates were checked.
fn check_finite_differences(model: &Model, name: &'static str, seed: u64, hidden: usize) -> usize {
    let params = ParamStore::random(model, seed, DType::F64).unwrap();
    let x = Tensor::randn(&[2, 5, hidden], 0.0, 1.0, seed + 1, DType::F64).unwrap();
    let c = Tensor::randn(&[2, 5, hidden], 0.0, 1.0, seed + 2, DType::F64).unwrap();
    let out = weighted_sum_of(model, &params, &x, &c, name, Precision::Full);
    let forward = model.build(&params, Mode::Train).unwrap();
    let objective = |p: &ParamStore| -> f64 {
        let y = forward
            .call_with_params(p, &[("hidden_states", &x)])
            .unwrap();
        y[name]
            .mul(&c)
            .unwrap()
            .sum(&[], false)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let h = 1e-6;
    let mut checked = 0;
    let mut keys: Vec<String> = out.grads.iter().map(|(k, _)| k.to_string()).collect();
    keys.sort();
    for key in &keys {
        let base = params.get(key).unwrap().to_vec::<f64>().unwrap();
        let got = out.grads.get(key).unwrap().to_vec::<f64>().unwrap();
        for i in [0, base.len() / 3, base.len() - 1] {
            let at = |d: f64| {
                let mut v = base.clone();
                v[i] += d;
                let mut p = params.clone();
                p.insert(
                    key,
                    Tensor::from_slice(&v, params.get(key).unwrap().shape()).unwrap(),
                );
                objective(&p)
            };
            let want = (at(h) - at(-h)) / (2.0 * h);
            assert!(
                (got[i] - want).abs() <= 1e-6 + 1e-5 * want.abs(),
                "{key}[{i}]: analytic {} vs numeric {want}",
                got[i]
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn llama_block_gradient_matches_finite_differences() {
    let model = llama_layer_in(D, None, 16, DType::F64).unwrap();
    // Two norms, four attention projections, three MLP projections.
    assert_eq!(check_finite_differences(&model, OUT, 3, D.hidden), 9 * 3);
}

#[test]
fn whisper_encoder_block_gradient_matches_finite_differences() {
    let model = whisper_encoder_layer_in(D, DType::F64).unwrap();
    // Two LayerNorms (weight, bias), q/v/o with biases and k without, fc1/fc2 with biases.
    assert_eq!(
        check_finite_differences(&model, "encoder.layers.0.residual2", 21, D.hidden),
        15 * 3
    );
}

fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

#[test]
fn fused_forward_and_composed_forward_give_the_same_gradients() {
    let model = llama_layer(D, None, 16).unwrap();
    let fused = fast_kernels::apply_for(&model, Mode::Train).unwrap();
    assert!(fused.report.fused.len() >= 4, "{}", fused.report);
    let params = ParamStore::random(&model, 7, DType::F32).unwrap();
    let x = Tensor::randn(&[2, 7, 16], 0.0, 1.0, 8, DType::F32).unwrap();
    let c = Tensor::randn(&[2, 7, 16], 0.0, 1.0, 9, DType::F32).unwrap();
    let a = weighted_sum(&model, &params, &x, &c, Precision::Full);
    let b = weighted_sum(&fused.model, &params, &x, &c, Precision::Full);
    assert!(max_rel(&a.loss, &b.loss) < 1e-5);
    for (k, ga) in a.grads.iter() {
        let d = max_rel(ga, b.grads.get(k).unwrap());
        assert!(d < 1e-4, "{k}: fused vs composed gradient differs by {d}");
    }
}

#[test]
fn bf16_mixed_precision_step_matches_f32_within_bf16_tolerance() {
    let model = llama_layer(D, None, 16).unwrap();
    let params = ParamStore::random(&model, 11, DType::F32).unwrap();
    let x = Tensor::randn(&[2, 6, 16], 0.0, 1.0, 12, DType::F32).unwrap();
    let c = Tensor::randn(&[2, 6, 16], 0.0, 1.0, 13, DType::F32).unwrap();
    let full = weighted_sum(&model, &params, &x, &c, Precision::Full);
    let c2 = c.clone();
    let mixed = model
        .build(&params, Mode::Train)
        .unwrap()
        .train_step(
            move |out, _| {
                let y = &out[OUT];
                y.cast(DType::F32)?.mul(&c2)?.sum(&[], false)
            },
            Precision::MixedBf16,
        )
        .unwrap()
        .run(&params, &[("hidden_states", &x)], &[], 1024.0)
        .unwrap();
    for (k, g) in mixed.grads.iter() {
        assert_eq!(g.dtype(), DType::F32, "{k}: gradients come back in f32");
        let d = max_rel(g, full.grads.get(k).unwrap());
        // bf16 keeps 8 bits of mantissa: a few ulps of accumulated error.
        assert!(
            d < 0.05,
            "{k}: bf16 gradient differs from f32 by {d} of its scale"
        );
    }
    let (lm, lf) = (
        mixed.loss.to_scalar::<f32>().unwrap(),
        full.loss.to_scalar::<f32>().unwrap(),
    );
    assert!((lm - lf).abs() <= 0.02 * lf.abs().max(1.0), "{lm} vs {lf}");
}

#[test]
fn training_plan_draws_dropout_noise_in_the_graph() {
    let model = common::blocks::bert_layer(
        Dims {
            hidden: 16,
            heads: 2,
            kv_heads: 2,
            ffn: 32,
        },
        0.2,
    )
    .unwrap();
    let params = ParamStore::random(&model, 1, DType::F32).unwrap();
    let x = Tensor::randn(&[2, 5, 16], 0.0, 1.0, 2, DType::F32).unwrap();
    let mask = Tensor::ones(&[2, 5], DType::I64).unwrap();
    let ins = [("hidden_states", &x), ("attention_mask", &mask)];
    let out = "encoder.layer.0.output.LayerNorm";
    let step = model
        .build(&params, Mode::Train)
        .unwrap()
        .train_step(move |o, _| o[out].sum(&[], false), Precision::Full)
        .unwrap();
    step.set_seed(3);
    let a = step.run(&params, &ins, &[], 1.0).unwrap();
    let b = step.run(&params, &ins, &[], 1.0).unwrap();
    step.set_seed(3);
    let a2 = step.run(&params, &ins, &[], 1.0).unwrap();
    let key = "encoder.layer.0.intermediate.dense.weight";
    let ga = a.grads.get(key).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(ga, a2.grads.get(key).unwrap().to_vec::<f32>().unwrap());
    assert_ne!(ga, b.grads.get(key).unwrap().to_vec::<f32>().unwrap());
}
