//! The compiler's scatter fold: `x + scatter_add(0, idx, u)` (a gather's
//! gradient added to another cotangent, as in a cross-entropy backward) runs
//! as `scatter_add(x, idx, u)` — no zero fill, no read of the scattered
//! tensor — with the same results as eager evaluation (to round-off) and a
//! float64 reference, repeated indices included; adds that broadcast the
//! other operand, or scatters read elsewhere too, stay as they are.

use emily::{compile, grad, DType, Result, Tensor};

mod grad_common;

use grad_common::{check_fused_eager_composed, count, max_rel_diff, randn};

/// Flat indices into `rows × cols`: row `r`'s element `(3r + 1) mod cols`,
/// with every fifth row pointing at the previous row's element instead (a
/// repeated index, which must accumulate).
fn flat_indices(rows: usize, cols: usize) -> Vec<i64> {
    (0..rows)
        .map(|r| {
            let row = if r % 5 == 4 { r - 1 } else { r };
            (row * cols + (3 * row + 1) % cols) as i64
        })
        .collect()
}

/// `[loss, dz]` of `loss = Σ exp(z) + Σ_r w_r · z.flat[idx_r]`, args
/// `[z (rows × cols), idx (rows, i64), w (rows)]`.
fn step(a: &[Tensor]) -> Result<Vec<Tensor>> {
    let loss = |v: &[Tensor]| {
        let (rows, cols) = (v[0].shape()[0], v[0].shape()[1]);
        let picked = v[0].reshape_to(&[rows * cols])?.gather(&v[1], 0)?;
        let total = v[0].exp()?.sum(&[], false)?;
        Ok(vec![total.add(&picked.mul(&v[2])?.sum(&[], false)?)?])
    };
    let (values, grads) = grad::value_and_grad(loss, &[0])(a)?;
    Ok(values.into_iter().chain(grads).collect())
}

#[test]
fn gather_gradient_scatters_into_the_other_cotangent() {
    for (rows, cols) in [(1, 7), (7, 13), (77, 1), (1000, 7), (64, 256)] {
        let case = format!("{rows}x{cols}");
        let idx = flat_indices(rows, cols);
        let a = [
            randn(&[rows, cols], 1),
            Tensor::from_slice(&idx, &[rows]).unwrap(),
            randn(&[rows], 2),
        ];
        let fused = compile(step);
        let plan = fused.plan(&a).unwrap();
        assert_eq!(count(&plan, "full"), 0, "{case}: the zeros are gone");
        assert_eq!(count(&plan, "scatter_add"), 1, "{case}");
        let out = fused.call(&a).unwrap();
        check_fused_eager_composed(step, &a, &out, |_| 1e-6, &case);

        // dz = exp(z) + Σ_r w_r [idx_r] in float64.
        let z = a[0].to_vec::<f32>().unwrap();
        let w = a[2].to_vec::<f32>().unwrap();
        let mut want: Vec<f64> = z.iter().map(|&v| (v as f64).exp()).collect();
        for (&i, &wr) in idx.iter().zip(&w) {
            want[i as usize] += wr as f64;
        }
        let got = out[1].to_vec::<f32>().unwrap();
        let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        for (k, (&g, &e)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g as f64 - e).abs() / scale < 2e-6,
                "{case}: dz[{k}] {g} vs {e}"
            );
        }
    }
}

/// Rows of [`forward`]'s scatter target: 77 × 20 f32 zeros are larger than
/// a folded constant (a fill node).
const ROWS: usize = 77;

/// `x + scatter_add(0, idx, u)` along axis 0 of `[ROWS, cols]` (args `[x,
/// idx, u]`; `x` broadcast when it has one row), and the scatter itself
/// when `both`.
fn forward(both: bool) -> impl Fn(&[Tensor]) -> Result<Vec<Tensor>> + Copy {
    move |a: &[Tensor]| {
        let (rows, cols) = (ROWS, a[0].shape()[1]);
        let s = Tensor::zeros(&[rows, cols], DType::F32)?.scatter_add(&a[1], &a[2], 0)?;
        let mut out = vec![a[0].add(&s)?];
        if both {
            out.push(s);
        }
        Ok(out)
    }
}

/// `x + scatter` in float64 for [`forward`]'s arguments over `rows` rows.
fn forward_reference(a: &[Tensor], rows: usize) -> Vec<f64> {
    let cols = a[0].shape()[1];
    let x = a[0].to_vec::<f32>().unwrap();
    let idx = a[1].to_vec::<i64>().unwrap();
    let u = a[2].to_vec::<f32>().unwrap();
    let mut out: Vec<f64> = (0..rows * cols).map(|k| x[k % x.len()] as f64).collect();
    for (j, &r) in idx.iter().enumerate() {
        for c in 0..cols {
            out[r as usize * cols + c] += u[j * cols + c] as f64;
        }
    }
    out
}

fn assert_close(got: &Tensor, want: &[f64], case: &str) {
    let got = got.to_vec::<f32>().unwrap();
    assert_eq!(got.len(), want.len(), "{case}");
    let scale = want.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    for (k, (&g, &e)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - e).abs() / scale < 2e-6,
            "{case}: [{k}] {g} vs {e}"
        );
    }
}

#[test]
fn row_scatters_fold_and_broadcast_or_shared_ones_stay() {
    let (rows, cols) = (ROWS, 20);
    let idx: Vec<i64> = (0..30)
        .map(|j| (j * 13 % rows) as i64)
        .chain([5, 5])
        .collect();
    let args = |x: Tensor| {
        [
            x,
            Tensor::from_slice(&idx, &[idx.len()]).unwrap(),
            randn(&[idx.len(), cols], 4),
        ]
    };
    // (x rows, scatter also an output, folded)
    for (x_rows, both, folded) in [(rows, false, true), (1, false, false), (rows, true, false)] {
        let case = format!("x rows {x_rows}, scatter returned {both}");
        let a = args(randn(&[x_rows, cols], 3 + x_rows as u64));
        let f = forward(both);
        let fused = compile(f);
        let plan = fused.plan(&a).unwrap();
        assert_eq!(
            count(&plan, "full"),
            usize::from(!folded),
            "{case}:\n{}",
            plan.describe()
        );
        let out = fused.call(&a).unwrap();
        let eager = f(&a).unwrap();
        assert_eq!(out.len(), eager.len());
        for (o, e) in out.iter().zip(&eager) {
            assert!(max_rel_diff(o, e) < 1e-6, "{case}");
        }
        assert_close(&out[0], &forward_reference(&a, rows), &case);
    }
}

#[test]
fn folded_scatter_still_rejects_out_of_range_indices() {
    let (rows, cols) = (ROWS, 3);
    let f = forward(false);
    let a = [
        randn(&[rows, cols], 7),
        Tensor::from_slice(&[0i64, rows as i64], &[2]).unwrap(),
        randn(&[2, cols], 8),
    ];
    let fused = compile(f);
    assert_eq!(count(&fused.plan(&a).unwrap(), "full"), 0);
    assert!(fused.call(&a).is_err(), "index {rows} of {rows} rows");
    assert!(f(&a).unwrap().swap_remove(0).eval().is_err());
}
