//! The compiler's RoPE rewrite: a composed rotary embedding (cos/sin tables,
//! rotate-half by slices, negation and concatenation) and its gradient,
//! traced by `compile`, run as the fused RoPE kernel forward and by the
//! opposite angle backward, with the same loss and gradients as the composed
//! graph evaluated eagerly (to round-off) and as a float64 reference; tables
//! the kernel cannot reproduce stay composed. The head permutes on either
//! side fold into the kernel's strides.

use emily::{compile, grad, Result, Tensor};

mod grad_common;

use grad_common::{check_fused_eager_composed, count, max_rel_diff, randn};

/// cos/sin tables `(t, d)` of positions `0..t` (split halves), angles
/// `p·scale·base^(−2i/d)` in f64 rounded to f32, as the model layers build them.
fn tables(t: usize, d: usize, base: f64, scale: f64) -> (Tensor, Tensor) {
    let half = d / 2;
    let (mut cos, mut sin) = (Vec::new(), Vec::new());
    for p in 0..t {
        for j in 0..d {
            let inv = (-2.0 * (j % half) as f64 * base.ln() / d as f64).exp();
            let a = p as f64 * scale * inv;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    (
        Tensor::from_vec(cos, &[t, d]).unwrap(),
        Tensor::from_vec(sin, &[t, d]).unwrap(),
    )
}

/// `x·cos + rotate_half(x)·sin`, composed.
fn composed_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.shape()[x.rank() - 1] / 2;
    let x1 = x.narrow(-1, 0, half)?;
    let x2 = x.narrow(-1, half, half)?;
    let rot = Tensor::concat(&[&x2.neg()?, &x1], -1)?;
    x.mul(cos)?.add(&rot.mul(sin)?)
}

/// `[loss, dx]` of `loss = Σ rope(permute(x)) ∘ c` (x laid out `(B, T, H, D)`
/// and permuted to heads first, as the attention layers do), args `[x, c]`.
fn step(cos: Tensor, sin: Tensor) -> impl Fn(&[Tensor]) -> Result<Vec<Tensor>> + Clone {
    move |a: &[Tensor]| {
        let (cos, sin) = (cos.clone(), sin.clone());
        let loss = move |v: &[Tensor]| {
            let x = v[0].permute(&[0, 2, 1, 3])?;
            Ok(vec![composed_rope(&x, &cos, &sin)?
                .mul(&v[1])?
                .sum(&[], false)?])
        };
        let (values, grads) = grad::value_and_grad(loss, &[0])(a)?;
        Ok(values.into_iter().chain(grads).collect())
    }
}

/// x's gradient in f64: `R(−θ)·c` permuted back to `(B, T, H, D)`.
fn reference(c: &[f32], b: usize, h: usize, t: usize, d: usize, base: f64) -> Vec<f64> {
    let half = d / 2;
    let mut dx = vec![0.0; c.len()];
    for bi in 0..b {
        for hi in 0..h {
            for p in 0..t {
                let row = &c[((bi * h + hi) * t + p) * d..][..d];
                for i in 0..half {
                    let a = p as f64 * (-2.0 * i as f64 * base.ln() / d as f64).exp();
                    let (u, v) = (row[i] as f64, row[i + half] as f64);
                    let at = |j: usize| ((bi * t + p) * h + hi) * d + j;
                    dx[at(i)] = u * a.cos() + v * a.sin();
                    dx[at(i + half)] = v * a.cos() - u * a.sin();
                }
            }
        }
    }
    dx
}

#[test]
fn composed_rope_and_its_gradient_run_fused_with_equal_gradients() {
    for &base in &[10_000.0f64, 500_000.0] {
        for &t in &[1usize, 7, 77] {
            for &d in &[2usize, 16, 64] {
                let (b, h) = (2, 3);
                let (cos, sin) = tables(t, d, base, 1.0);
                let a = vec![
                    randn(&[b, t, h, d], (t * 10 + d) as u64),
                    randn(&[b, h, t, d], (t * 10 + d + 1) as u64),
                ];
                let f = step(cos, sin);
                let compiled = compile(f.clone());
                let plan = compiled.plan(&a).unwrap();
                let case = format!("base {base}, t {t}, d {d}");
                // Both rotations run fused, each with its head permute
                // folded in (forward: to heads; backward: back to sequence-major).
                assert_eq!(
                    count(&plan, "rope_heads"),
                    2,
                    "{case}: {:?}",
                    plan.op_frequencies()
                );
                assert_eq!(count(&plan, "permute") + count(&plan, "rope"), 0, "{case}");
                assert_eq!(plan.num_fast_ops(), 2, "{case}");
                assert_eq!(count(&plan, "concat") + count(&plan, "pad"), 0, "{case}");
                let fused = compiled.call(&a).unwrap();
                check_fused_eager_composed(f.clone(), &a, &fused, |_| 1e-5, &case);
                let c = a[1].to_vec::<f32>().unwrap();
                let want = reference(&c, b, h, t, d, base);
                let got = fused[1].to_vec::<f32>().unwrap();
                let e = got
                    .iter()
                    .zip(&want)
                    .map(|(&g, &w)| (g as f64 - w).abs())
                    .fold(0.0, f64::max);
                assert!(e < 1e-5, "{case}: dx vs f64 {e}");
            }
        }
    }
}

#[test]
fn scaled_positions_stay_composed() {
    // Positions scaled by ½: no base reproduces the tables.
    let (cos, sin) = tables(9, 16, 10_000.0, 0.5);
    let a = [randn(&[1, 9, 2, 16], 1), randn(&[1, 2, 9, 16], 2)];
    let f = step(cos, sin);
    let compiled = compile(f.clone());
    let plan = compiled.plan(&a).unwrap();
    assert_eq!(plan.num_fast_ops(), 0, "{:?}", plan.op_frequencies());
    for (x, y) in compiled.call(&a).unwrap().iter().zip(&f(&a).unwrap()) {
        assert!(max_rel_diff(x, y) < 1e-6);
    }
}

#[test]
fn a_forward_without_its_gradient_stays_composed() {
    let (cos, sin) = tables(5, 16, 10_000.0, 1.0);
    let a = [randn(&[1, 2, 5, 16], 3)];
    let f = move |v: &[Tensor]| Ok(vec![composed_rope(&v[0], &cos, &sin)?]);
    let plan = compile(f).plan(&a).unwrap();
    assert_eq!(plan.num_fast_ops(), 0);
}
