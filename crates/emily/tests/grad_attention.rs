//! The compiler's causal-attention rewrite: a composed causal attention and
//! its gradient, traced by `compile`, run as one fused forward and one fused
//! backward kernel, with the same loss and gradients as the composed graph
//! evaluated eagerly (to round-off); masks that are not causal stay composed.

use emily::{compile, grad, DType, Result, Tensor};

mod grad_common;

use grad_common::{check_fused_eager_composed, count, max_rel_diff, randn};

/// Attention composed the way the model layers build it: the query heads of
/// each kv head stacked as rows, scores scaled after the product, a Bool
/// keep-mask (`window` keys per query when given, else causal), f32 softmax.
fn composed_attention(q: &Tensor, k: &Tensor, v: &Tensor, window: Option<usize>) -> Result<Tensor> {
    let (b, hq, tq, d) = (q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3]);
    let (hkv, tk, dv) = (k.shape()[1], k.shape()[2], v.shape()[3]);
    let groups = hq / hkv;
    let kj = Tensor::iota(&[tq, tk], 1, DType::I64)?;
    let last = Tensor::iota(&[tq, tk], 0, DType::I64)?.add_scalar((tk - tq) as f64)?;
    let mut keep = kj.le(&last)?;
    if let Some(w) = window {
        keep = keep.logical_and(&kj.gt(&last.add_scalar(-(w as f64))?)?)?;
    }
    let scores = q
        .reshape_to(&[b, hkv, groups * tq, d])?
        .matmul(&k.t()?)?
        .reshape_to(&[b, hq, tq, tk])?
        .mul_scalar(1.0 / (d as f64).sqrt())?;
    let masked = Tensor::where_cond(&keep, &scores, &q.scalar_like(f64::NEG_INFINITY))?;
    masked
        .softmax(-1)?
        .reshape_to(&[b, hkv, groups * tq, tk])?
        .matmul(v)?
        .reshape_to(&[b, hq, tq, dv])
}

/// `[loss, dq, dk, dv]` of `loss = sum(attention(q, k, v) ∘ c)`, args `[q, k, v, c]`.
fn step(window: Option<usize>) -> impl Fn(&[Tensor]) -> Result<Vec<Tensor>> + Copy {
    move |a: &[Tensor]| {
        let loss = |x: &[Tensor]| {
            let o = composed_attention(&x[0], &x[1], &x[2], window)?;
            Ok(vec![o.mul(&x[3])?.sum(&[], false)?])
        };
        let (values, grads) = grad::value_and_grad(loss, &[0, 1, 2])(a)?;
        Ok(values.into_iter().chain(grads).collect())
    }
}

fn args(b: usize, hq: usize, hkv: usize, t: usize, d: usize, seed: u64) -> Vec<Tensor> {
    vec![
        randn(&[b, hq, t, d], seed),
        randn(&[b, hkv, t, d], seed + 1),
        randn(&[b, hkv, t, d], seed + 2),
        randn(&[b, hq, t, d], seed + 3),
    ]
}

#[test]
fn causal_attention_and_its_gradient_run_fused_with_equal_gradients() {
    for &t in &[1usize, 7, 77] {
        for &(hq, hkv) in &[(2usize, 2usize), (4, 2)] {
            for &d in &[16usize, 64] {
                let a = args(2, hq, hkv, t, d, (t * 10 + hq + d) as u64);
                let f = step(None);
                let compiled = compile(f);
                let plan = compiled.plan(&a).unwrap();
                let case = format!("t {t}, heads {hq}/{hkv}, d {d}");
                assert_eq!(
                    count(&plan, "scaled_dot_product_attention"),
                    1,
                    "{case}: {:?}",
                    plan.op_frequencies()
                );
                assert_eq!(
                    count(&plan, "scaled_dot_product_attention_causal_grad"),
                    1,
                    "{case}"
                );
                assert_eq!(
                    count(&plan, "softmax"),
                    0,
                    "{case}: the composed softmax is gone"
                );
                let fused = compiled.call(&a).unwrap();
                // The loss sums b·hq·t·d products of mixed sign: a looser bound.
                let tol = |n| if n == 0 { 1e-4 } else { 2e-5 };
                check_fused_eager_composed(f, &a, &fused, tol, &case);
            }
        }
    }
}

#[test]
fn other_masks_stay_composed() {
    // A sliding window is not the causal mask: no rewrite, same results.
    let a = args(1, 2, 1, 9, 16, 5);
    let f = step(Some(3));
    let compiled = compile(f);
    let plan = compiled.plan(&a).unwrap();
    assert_eq!(plan.num_fast_ops(), 0, "{:?}", plan.op_frequencies());
    assert_eq!(count(&plan, "softmax"), 1);
    for (x, y) in compiled.call(&a).unwrap().iter().zip(&f(&a).unwrap()) {
        assert!(max_rel_diff(x, y) < 1e-6);
    }
}

#[test]
fn a_forward_without_its_gradient_stays_composed() {
    // Inference-style graphs (no backward) keep the composed forward.
    let a = args(1, 2, 2, 5, 16, 9);
    let f = |x: &[Tensor]| Ok(vec![composed_attention(&x[0], &x[1], &x[2], None)?]);
    let plan = compile(f).plan(&a).unwrap();
    assert_eq!(plan.num_fast_ops(), 0);
}
