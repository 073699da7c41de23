//! The compiler's cross-entropy rewrite: a log-sum-exp over the last axis
//! and the softmax its gradient builds from it (`exp(x − lse)`) run as one
//! row kernel. The loss keeps the bits of eager evaluation, the gradients
//! agree with eager, with the composed plan and with a float64 reference
//! to round-off, at odd sizes and with masked (-inf) logits; graphs that
//! only look alike stay composed.

use emily::{compile, compile_with, grad, CompileOptions, DType, Kernels, Result, Tensor};

mod grad_common;

use grad_common::{check_fused_eager_composed, count, randn};

/// `[loss, dz]` of `loss = Σ a ∘ logsumexp(z) − Σ b ∘ z` (the shape of a
/// cross-entropy: per-row weights `a`, a target term `b`), args `[z, a, b]`.
fn ce(a: &[Tensor]) -> Result<Vec<Tensor>> {
    let loss = |v: &[Tensor]| {
        let lse = v[0].logsumexp(&[-1], false)?;
        let picked = v[0].mul(&v[2])?.sum(&[], false)?;
        Ok(vec![lse.mul(&v[1])?.sum(&[], false)?.sub(&picked)?])
    };
    let (values, grads) = grad::value_and_grad(loss, &[0])(a)?;
    Ok(values.into_iter().chain(grads).collect())
}

/// `dz = a[r] softmax(z)[r] − b` in float64.
fn reference(z: &[f32], a: &[f32], b: &[f32], cols: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(z.len());
    for (r, row) in z.chunks(cols).enumerate() {
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        for (j, &v) in row.iter().enumerate() {
            out.push(a[r] as f64 * (v as f64 - m).exp() / s - b[r * cols + j] as f64);
        }
    }
    out
}

fn args(rows: usize, cols: usize, seed: u64, masked: bool) -> [Tensor; 3] {
    let mut z = randn(&[rows, cols], seed).to_vec::<f32>().unwrap();
    if masked {
        // Some masked logits, never a whole row.
        for (k, v) in z.iter_mut().enumerate() {
            if k % cols != 0 && k % 5 == 2 {
                *v = f32::NEG_INFINITY;
            }
        }
    }
    [
        Tensor::from_vec(z, &[rows, cols]).unwrap(),
        randn(&[rows], seed + 1),
        randn(&[rows, cols], seed + 2),
    ]
}

#[test]
fn loss_and_gradient_run_as_one_row_kernel() {
    for (k, &(rows, cols)) in [(1, 1), (1, 7), (7, 77), (77, 7), (3, 1000), (1000, 1)]
        .iter()
        .enumerate()
    {
        for masked in [false, true] {
            let case = format!("{rows}x{cols} masked {masked}");
            let a = args(rows, cols, 10 * k as u64, masked);
            let fused = compile(ce);
            let plan = fused.plan(&a).unwrap();
            assert_eq!(
                count(&plan, "softmax_logsumexp"),
                1,
                "{case}:\n{}",
                plan.describe()
            );
            assert_eq!(
                count(&plan, "reduce"),
                2,
                "{case}: only the loss's sums:\n{}",
                plan.describe()
            );
            let got = fused.call(&a).unwrap();
            let eager = ce(&a).unwrap();
            let (l, e) = (
                got[0].to_vec::<f32>().unwrap(),
                eager[0].to_vec::<f32>().unwrap(),
            );
            assert_eq!(
                l[0].to_bits(),
                e[0].to_bits(),
                "{case}: loss {l:?} vs {e:?}"
            );
            check_fused_eager_composed(ce, &a, &got, |_| 2e-6, &case);
            let vals: Vec<Vec<f32>> = a.iter().map(|t| t.to_vec::<f32>().unwrap()).collect();
            let want = reference(&vals[0], &vals[1], &vals[2], cols);
            let dz = got[1].to_vec::<f32>().unwrap();
            let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
            for (j, (&g, &w)) in dz.iter().zip(&want).enumerate() {
                assert!(
                    (g as f64 - w).abs() / scale < 2e-6,
                    "{case}: dz[{j}] {g} vs {w}"
                );
            }
        }
    }
}

/// `[loss, dz]` of `loss = Σ a ∘ logsumexp(z)`: the gradient is the
/// softmax times each row's `a`, which the kernel applies itself.
fn weighted_lse(a: &[Tensor]) -> Result<Vec<Tensor>> {
    let loss = |v: &[Tensor]| {
        Ok(vec![v[0]
            .logsumexp(&[-1], false)?
            .mul(&v[1])?
            .sum(&[], false)?])
    };
    let (values, grads) = grad::value_and_grad(loss, &[0])(a)?;
    Ok(values.into_iter().chain(grads).collect())
}

#[test]
fn a_per_row_factor_on_the_softmax_is_applied_by_the_kernel() {
    for (rows, cols) in [(1, 1), (7, 77), (1000, 7)] {
        let case = format!("{rows}x{cols}");
        let a = args(rows, cols, 5, true);
        let a = [a[0].clone(), a[1].clone()];
        let fused = compile(weighted_lse);
        let plan = fused.plan(&a).unwrap();
        let text = plan.describe();
        assert_eq!(count(&plan, "softmax_logsumexp"), 1, "{case}:\n{text}");
        let wide = format!("[{rows}, {cols}] <-");
        assert!(
            !text
                .lines()
                .any(|l| l.contains(&wide) && !l.contains("reshape")),
            "{case}: an elementwise pass over the logits is left:\n{text}"
        );
        let got = fused.call(&a).unwrap();
        let want = weighted_lse(&a).unwrap();
        assert_eq!(
            got[0].to_vec::<f32>().unwrap(),
            want[0].to_vec::<f32>().unwrap()
        );
        check_fused_eager_composed(weighted_lse, &a, &got, |_| 2e-6, &case);
    }
}

#[test]
fn lookalikes_stay_composed() {
    let a = args(7, 77, 3, false);
    let fused_count = |f: fn(&[Tensor]) -> Result<Vec<Tensor>>, a: &[Tensor]| {
        let plan = compile(f).plan(a).unwrap();
        count(&plan, "softmax_logsumexp")
    };
    // The log-sum-exp over the first axis.
    let first_axis = |v: &[Tensor]| -> Result<Vec<Tensor>> {
        let lse = v[0].logsumexp(&[0], true)?;
        Ok(vec![lse.sum(&[], false)?, v[0].sub(&lse)?.exp()?])
    };
    assert_eq!(fused_count(first_axis, &a), 0);
    // exp of another tensor minus z's log-sum-exp.
    let other = |v: &[Tensor]| -> Result<Vec<Tensor>> {
        let lse = v[0].logsumexp(&[-1], true)?;
        Ok(vec![lse.sum(&[], false)?, v[2].sub(&lse)?.exp()?])
    };
    assert_eq!(fused_count(other, &a), 0);
    // The loss alone (no softmax wanted).
    let loss_only = |v: &[Tensor]| -> Result<Vec<Tensor>> {
        Ok(vec![v[0].logsumexp(&[-1], false)?.sum(&[], false)?])
    };
    assert_eq!(fused_count(loss_only, &a), 0);
    // Composed kernels, and f64 (no fused kernel): the same results as eager.
    let composed = compile_with(
        ce,
        CompileOptions {
            kernels: Kernels::Composed,
            ..Default::default()
        },
    );
    assert_eq!(count(&composed.plan(&a).unwrap(), "softmax_logsumexp"), 0);
    let a64: Vec<Tensor> = a.iter().map(|t| t.cast(DType::F64).unwrap()).collect();
    let plan = compile(ce).plan(&a64).unwrap();
    assert_eq!(count(&plan, "softmax_logsumexp"), 0);
    let (got, want) = (compile(ce).call(&a64).unwrap(), ce(&a64).unwrap());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.to_vec::<f64>().unwrap(), w.to_vec::<f64>().unwrap());
    }
}

#[test]
fn rows_of_minus_infinity_give_what_composed_gives() {
    // A fully masked row: lse = -inf and exp(x − lse) = NaN, as composed.
    let z = Tensor::from_vec(
        vec![f32::NEG_INFINITY, f32::NEG_INFINITY, 0.5, 1.5],
        &[2, 2],
    )
    .unwrap();
    let f = |v: &[Tensor]| -> Result<Vec<Tensor>> {
        let lse = v[0].logsumexp(&[-1], true)?;
        Ok(vec![lse.clone(), v[0].sub(&lse)?.exp()?])
    };
    let a = [z];
    assert_eq!(count(&compile(f).plan(&a).unwrap(), "softmax_logsumexp"), 1);
    let (got, want) = (compile(f).call(&a).unwrap(), f(&a).unwrap());
    let bits = |t: &Tensor| -> Vec<u32> {
        t.to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect()
    };
    // The log-sum-exp exactly; the masked row's NaNs exactly, the other
    // row's probabilities to round-off.
    assert_eq!(bits(&got[0]), bits(&want[0]));
    assert_eq!(bits(&got[1])[..2], bits(&want[1])[..2]);
    let (g, w) = (
        got[1].to_vec::<f32>().unwrap(),
        want[1].to_vec::<f32>().unwrap(),
    );
    assert!(
        g[0].is_nan()
            && g[2..]
                .iter()
                .zip(&w[2..])
                .all(|(a, b)| (a - b).abs() <= 1e-6 * b)
    );
}
