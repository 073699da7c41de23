//! The compiler's RMSNorm rewrite: a composed RMSNorm and its gradient,
//! traced by `compile`, run as one fused forward and one fused backward row
//! kernel (which also adds x's other cotangent, a residual stream's), with
//! the same loss and gradients as the composed graph evaluated eagerly (to
//! round-off) and as a float64 reference; other graphs stay composed.

use emily::{compile, grad, Result, Tensor};

mod grad_common;

use grad_common::{check_fused_eager_composed, count, max_rel_diff, randn};

const EPS: f64 = 1e-5;

/// How the composed norm is written: the model layer's `w · (x · r)`, the
/// fast op's decomposition `(x · r) · w`, or without a weight.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    LayerStyle,
    Decomposed,
    NoWeight,
}

/// `loss`'s outputs followed by its gradients for `argnums`.
fn with_grads(
    loss: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>,
    argnums: &[usize],
    a: &[Tensor],
) -> Result<Vec<Tensor>> {
    let (values, grads) = grad::value_and_grad(loss, argnums)(a)?;
    Ok(values.into_iter().chain(grads).collect())
}

fn composed_norm(x: &Tensor, w: &Tensor, form: Form) -> Result<Tensor> {
    let r = x.square()?.mean(&[-1], true)?.add_scalar(EPS)?.rsqrt()?;
    match form {
        Form::LayerStyle => w.mul(&x.mul(&r)?),
        Form::Decomposed => x.mul(&r)?.mul(w),
        Form::NoWeight => x.mul(&r),
    }
}

/// `[loss, dx, dw]` of `loss = Σ (x + norm(x)) ∘ c` (x also reaches the loss
/// directly, like a residual stream), args `[x, w, c]`.
fn step(form: Form) -> impl Fn(&[Tensor]) -> Result<Vec<Tensor>> + Copy {
    move |a: &[Tensor]| {
        let loss = |v: &[Tensor]| {
            let y = composed_norm(&v[0], &v[1], form)?;
            Ok(vec![v[0].add(&y)?.mul(&v[2])?.sum(&[], false)?])
        };
        with_grads(loss, &[0, 1], a)
    }
}

/// `(dx, dw)` of `Σ (x + norm(x)) ∘ c` in f64 (rows of `cols`).
fn reference(x: &[f32], w: Option<&[f32]>, c: &[f32], cols: usize) -> (Vec<f64>, Vec<f64>) {
    let mut dx = Vec::new();
    let mut dw = vec![0.0; cols];
    let wi = |i: usize| w.map_or(1.0, |w| w[i] as f64);
    for (xr, cr) in x.chunks(cols).zip(c.chunks(cols)) {
        let ms = xr.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / cols as f64;
        let r = 1.0 / (ms + EPS).sqrt();
        let dot: f64 = (0..cols).map(|i| cr[i] as f64 * wi(i) * xr[i] as f64).sum();
        for j in 0..cols {
            let (xj, cj) = (xr[j] as f64, cr[j] as f64);
            dx.push(cj + r * cj * wi(j) - xj * r.powi(3) * dot / cols as f64);
            dw[j] += cj * xj * r;
        }
    }
    (dx, dw)
}

fn max_err(got: &Tensor, want: &[f64]) -> f64 {
    let got = got.to_vec::<f32>().unwrap();
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs() / scale)
        .fold(0.0, f64::max)
}

#[test]
fn composed_rms_norm_and_its_gradient_run_fused_with_equal_gradients() {
    for form in [Form::LayerStyle, Form::Decomposed, Form::NoWeight] {
        for &rows in &[1usize, 7, 77] {
            for &cols in &[1usize, 16, 33, 64] {
                let seed = (rows * 100 + cols) as u64;
                let shape = [2, rows, cols];
                let a = vec![
                    randn(&shape, seed),
                    randn(&[cols], seed + 1)
                        .add_scalar(1.0)
                        .unwrap()
                        .eval()
                        .unwrap(),
                    randn(&shape, seed + 2),
                ];
                let f = step(form);
                let compiled = compile(f);
                let plan = compiled.plan(&a).unwrap();
                let case = format!("{form:?}, rows {rows}, cols {cols}");
                assert_eq!(
                    count(&plan, "rms_norm"),
                    1,
                    "{case}: {:?}",
                    plan.op_frequencies()
                );
                assert_eq!(count(&plan, "rms_norm_grad"), 1, "{case}");
                assert_eq!(plan.num_fast_ops(), 2, "{case}");
                // x's other cotangent (the `x +` stream's) is added by the
                // gradient kernel: its last input.
                let want = 3 + usize::from(form != Form::NoWeight);
                assert_eq!(grad_inputs(&plan), want, "{case}:\n{}", plan.describe());
                let fused = compiled.call(&a).unwrap();
                check_fused_eager_composed(f, &a, &fused, |_| 1e-5, &case);
                let host = |t: &Tensor| t.to_vec::<f32>().unwrap();
                let w = host(&a[1]);
                let wt = (form != Form::NoWeight).then_some(w.as_slice());
                let (dx, dw) = reference(&host(&a[0]), wt, &host(&a[2]), cols);
                let e = max_err(&fused[1], &dx);
                assert!(e < 1e-5, "{case}: dx vs f64 {e}");
                if form != Form::NoWeight {
                    let e = max_err(&fused[2], &dw);
                    assert!(e < 1e-5, "{case}: dw vs f64 {e}");
                }
            }
        }
    }
}

/// The gradient node's input count in `plan` (the one node of that op).
fn grad_inputs(plan: &emily::compile::Plan) -> usize {
    let description = plan.describe();
    let grad_node = description
        .lines()
        .find(|l| l.contains("= rms_norm_grad"))
        .unwrap();
    grad_node
        .split("<-")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .count()
}

#[test]
fn a_norm_read_by_several_products_sums_their_cotangents_in_the_kernel() {
    // y = norm(x) read by three products (like q, k and v): y's cotangent
    // is a sum of three, and the residual stream adds x's other cotangent.
    for &(rows, cols) in &[(1usize, 7usize), (7, 16), (77, 64), (5, 1000)] {
        let seed = (rows * 10 + cols) as u64;
        let a = vec![
            randn(&[rows, cols], seed),
            randn(&[cols], seed + 1)
                .add_scalar(1.0)
                .unwrap()
                .eval()
                .unwrap(),
            randn(&[cols, 3], seed + 2),
            randn(&[cols, 3], seed + 3),
            randn(&[cols, 3], seed + 4),
            randn(&[rows, cols], seed + 5),
        ];
        let f = |a: &[Tensor]| {
            let loss = |v: &[Tensor]| {
                let y = composed_norm(&v[0], &v[1], Form::LayerStyle)?;
                let heads = y
                    .matmul(&v[2])?
                    .tanh()?
                    .add(&y.matmul(&v[3])?.sin()?)?
                    .mul(&y.matmul(&v[4])?)?;
                let stream = v[0].mul(&v[5])?.sum(&[], false)?;
                Ok(vec![heads.sum(&[], false)?.add(&stream)?])
            };
            with_grads(loss, &[0, 1, 2], a)
        };
        let compiled = compile(f);
        let plan = compiled.plan(&a).unwrap();
        let case = format!("rows {rows}, cols {cols}");
        // x, w, three cotangent parts, the residual.
        assert_eq!(grad_inputs(&plan), 6, "{case}:\n{}", plan.describe());
        let fused = compiled.call(&a).unwrap();
        // The loss sums up to 5,000 products (the matmuls' own order).
        check_fused_eager_composed(f, &a, &fused, |n| if n == 0 { 1e-4 } else { 2e-5 }, &case);
    }
}

#[test]
fn a_frozen_weight_still_fuses() {
    // Only x's gradient: the weight is a captured constant.
    let a = [randn(&[5, 16], 1), randn(&[5, 16], 2)];
    let w = randn(&[16], 3);
    let f = move |a: &[Tensor]| {
        let w = w.clone();
        let loss = move |v: &[Tensor]| {
            let y = composed_norm(&v[0], &w, Form::LayerStyle)?;
            Ok(vec![y.mul(&v[1])?.sum(&[], false)?])
        };
        with_grads(loss, &[0], a)
    };
    let compiled = compile(f.clone());
    let plan = compiled.plan(&a).unwrap();
    assert_eq!(
        count(&plan, "rms_norm_grad"),
        1,
        "{:?}",
        plan.op_frequencies()
    );
    for (x, y) in compiled.call(&a).unwrap().iter().zip(&f(&a).unwrap()) {
        assert!(max_rel_diff(x, y) < 1e-5);
    }
}

#[test]
fn a_forward_without_its_gradient_stays_composed() {
    let a = [randn(&[3, 16], 4), randn(&[16], 5)];
    let f = |v: &[Tensor]| Ok(vec![composed_norm(&v[0], &v[1], Form::Decomposed)?]);
    let plan = compile(f).plan(&a).unwrap();
    assert_eq!(plan.num_fast_ops(), 0, "{:?}", plan.op_frequencies());
}

#[test]
fn an_eps_that_is_not_a_constant_stays_composed() {
    // eps as an input: the pattern needs a constant, so nothing is rewritten.
    let a = [
        randn(&[3, 16], 6),
        randn(&[16], 7),
        randn(&[3, 16], 8),
        randn(&[1], 9),
    ];
    let f = |a: &[Tensor]| {
        let loss = |v: &[Tensor]| {
            let eps = v[3].square()?;
            let r = v[0].square()?.mean(&[-1], true)?.add(&eps)?.rsqrt()?;
            let y = v[0].mul(&r)?.mul(&v[1])?;
            Ok(vec![y.mul(&v[2])?.sum(&[], false)?])
        };
        with_grads(loss, &[0, 1], a)
    };
    let compiled = compile(f);
    let plan = compiled.plan(&a).unwrap();
    assert_eq!(plan.num_fast_ops(), 0, "{:?}", plan.op_frequencies());
    for (x, y) in compiled.call(&a).unwrap().iter().zip(&f(&a).unwrap()) {
        assert!(max_rel_diff(x, y) < 1e-6);
    }
}

#[test]
fn a_fused_norm_and_its_gradient_run_under_the_fused_grad_kernel_too() {
    // A fast rms_norm node differentiates through its decomposition; the
    // rewrite then fuses that composed backward (the fused forward stays).
    let a = [
        randn(&[4, 7, 64], 10),
        randn(&[64], 11),
        randn(&[4, 7, 64], 12),
    ];
    let f = |a: &[Tensor]| {
        let loss = |v: &[Tensor]| {
            let y = emily::fast::rms_norm(&v[0], Some(&v[1]), EPS as f32)?;
            Ok(vec![y.mul(&v[2])?.sum(&[], false)?])
        };
        with_grads(loss, &[0, 1], a)
    };
    let compiled = compile(f);
    let plan = compiled.plan(&a).unwrap();
    assert_eq!(
        count(&plan, "rms_norm_grad"),
        1,
        "{:?}",
        plan.op_frequencies()
    );
    for (x, y) in compiled.call(&a).unwrap().iter().zip(&f(&a).unwrap()) {
        assert!(max_rel_diff(x, y) < 1e-5);
    }
}
