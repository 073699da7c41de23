//! Softmax against an independent `f64` reference, last and middle axes.

use crate::common::{inputs, ulp_err};
use emily_kernels::softmax;

/// Independent reference for one lane: all -inf gives zeros, NaN gives NaN.
fn reference(v: &[f64]) -> Vec<f64> {
    if v.iter().any(|x| x.is_nan()) {
        return vec![f64::NAN; v.len()];
    }
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return vec![0.0; v.len()];
    }
    let e: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// Each output within `4 + |x - max|` ulp: rounding `x - max` to f32 costs a
/// relative `|x - max| 2^-24` through the exp (inherent in f32 softmax, and no
/// larger than the effect of rounding the logits themselves). An output below
/// the least normal f32 may be 0 (the kernels' exp flushes subnormals).
fn check_lane(what: &str, vals: &[f64], got: &[f32]) {
    let want = reference(vals);
    let m = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        if g == 0.0 && w < f32::MIN_POSITIVE as f64 {
            continue;
        }
        let e = ulp_err(g, w);
        let d = (vals[i] - m).abs();
        let tol = 4.0 + if d.is_finite() { d } else { 0.0 };
        assert!(e <= tol, "{what}[{i}]: got {g}, want {w} ({e} ulp)");
    }
}

/// Rows of normal values with some -inf (masked) entries; row 1 all -inf,
/// row 2 (when present) has a NaN.
fn masked_rows(seed: u64, rows: usize, cols: usize, scale: f32) -> Vec<f32> {
    let mut x = inputs(seed, rows * cols, scale, false);
    for (i, v) in x.iter_mut().enumerate() {
        if v.abs() > 1e4 || i % 11 == 3 {
            *v = f32::NEG_INFINITY;
        }
    }
    if rows > 1 {
        x[cols..2 * cols].fill(f32::NEG_INFINITY);
    }
    if rows > 2 {
        x[2 * cols + cols / 2] = f32::NAN;
    }
    x
}

fn run_last(x: &[f32], rows: usize, cols: usize) {
    let mut out = vec![0.0f32; rows * cols];
    softmax::softmax_last_axis_f32(x, rows, cols, &mut out);
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut out64 = vec![0.0; rows * cols];
    softmax::softmax_last_axis_f64(&x64, rows, cols, &mut out64);
    for r in 0..rows {
        let s = r * cols..(r + 1) * cols;
        let what = format!("softmax rows={rows} cols={cols} row {r}");
        check_lane(&what, &x64[s.clone()], &out[s.clone()]);
        let want = reference(&x64[s.clone()]);
        let ok = out64[s]
            .iter()
            .zip(&want)
            .all(|(g, w)| (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-15);
        assert!(ok, "{what} (f64)");
    }
}

#[test]
fn last_axis_sizes_masks_and_specials() {
    for (k, &cols) in [1usize, 7, 77, 1000, 4099].iter().enumerate() {
        for scale in [1.0, 30.0] {
            run_last(&masked_rows(k as u64, 5, cols, scale), 5, cols);
        }
    }
    // One long row (over a block boundary many times) and many rows (parallel).
    run_last(&masked_rows(9, 2, (1 << 20) + 3, 3.0), 2, (1 << 20) + 3);
    run_last(&masked_rows(10, 1500, 1500, 3.0), 1500, 1500);
    // +inf entries give NaN rows.
    let mut out = [0.0f32; 3];
    softmax::softmax_last_axis_f32(&[1.0, f32::INFINITY, 0.0], 1, 3, &mut out);
    assert!(out.iter().all(|v| v.is_nan()));
}

#[test]
fn rows_sum_to_one() {
    let (rows, cols) = (64, 3001);
    let x = inputs(3, rows * cols, 5.0, false);
    let mut out = vec![0.0f32; rows * cols];
    softmax::softmax_last_axis_f32(&x, rows, cols, &mut out);
    for r in out.chunks(cols) {
        let s: f64 = r.iter().map(|&v| v as f64).sum();
        assert!((s - 1.0).abs() < 1e-5, "row sum {s}");
    }
}

fn run_middle(x: &[f32], outer: usize, len: usize, inner: usize) {
    let mut out = vec![0.0f32; x.len()];
    softmax::softmax_middle_axis_f32(x, outer, len, inner, &mut out);
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut out64 = vec![0.0; x.len()];
    softmax::softmax_middle_axis_f64(&x64, outer, len, inner, &mut out64);
    for b in 0..outer {
        for j in 0..inner {
            let idx: Vec<usize> = (0..len).map(|l| (b * len + l) * inner + j).collect();
            let vals: Vec<f64> = idx.iter().map(|&i| x64[i]).collect();
            let got: Vec<f32> = idx.iter().map(|&i| out[i]).collect();
            let what = format!("softmax middle ({outer}, {len}, {inner}) at ({b}, {j})");
            check_lane(&what, &vals, &got);
            let want = reference(&vals);
            for (&i, w) in idx.iter().zip(&want) {
                let g = out64[i];
                assert!(
                    (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-15,
                    "{what} (f64)"
                );
            }
        }
    }
}

#[test]
fn middle_axis_shapes() {
    let shapes = [
        (1, 1, 1),
        (3, 77, 5),
        (2, 1000, 300),
        (1, 4099, 7),
        (4, 7, 1000),
        (2, 300, 1),
        (1, 2000, 3000), // few slabs, wide: split over columns
        (64, 50, 300),   // many slabs: split over outer
    ];
    for (k, &(outer, len, inner)) in shapes.iter().enumerate() {
        let mut x = inputs(50 + k as u64, outer * len * inner, 3.0, false);
        for (i, v) in x.iter_mut().enumerate() {
            if v.abs() > 1e4 || i % 13 == 5 {
                *v = f32::NEG_INFINITY;
            }
        }
        if inner > 2 && len > 1 {
            // Column 1 of slab 0 all -inf, column 2 with a NaN.
            (0..len).for_each(|l| x[l * inner + 1] = f32::NEG_INFINITY);
            x[(len / 2) * inner + 2] = f32::NAN;
        }
        run_middle(&x, outer, len, inner);
    }
}
