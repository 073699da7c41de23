//! Reductions against independent `f64` references, last and middle axes.

use crate::common::{inputs, rng};
use emily_kernels::reduce::{self, ReduceOp};
use rand::Rng;

/// Independent reference for one lane of values.
fn reference(op: ReduceOp, v: &[f64]) -> f64 {
    let first_nan = v.iter().position(|x| x.is_nan());
    let pick = |max: bool| {
        let mut b = 0;
        for i in 1..v.len() {
            if (max && v[i] > v[b]) || (!max && v[i] < v[b]) {
                b = i;
            }
        }
        b
    };
    match op {
        _ if v.is_empty() => match op {
            ReduceOp::Prod => 1.0,
            ReduceOp::Max | ReduceOp::LogSumExp => f64::NEG_INFINITY,
            ReduceOp::Min => f64::INFINITY,
            _ => 0.0,
        },
        ReduceOp::Sum => v.iter().sum(),
        ReduceOp::Prod => v.iter().product(),
        ReduceOp::ArgMax => first_nan.unwrap_or_else(|| pick(true)) as f64,
        ReduceOp::ArgMin => first_nan.unwrap_or_else(|| pick(false)) as f64,
        _ if first_nan.is_some() => f64::NAN,
        ReduceOp::Max => v[pick(true)],
        ReduceOp::Min => v[pick(false)],
        ReduceOp::LogSumExp => {
            let m = v[pick(true)];
            if m.is_infinite() {
                m
            } else {
                m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
            }
        }
    }
}

/// Checks `got` against the reference of `vals`; sums are held to 2e-7 of
/// the sum of magnitudes (plus the final f32 rounding), LogSumExp to 1e-6.
fn check(what: &str, op: ReduceOp, vals: &[f64], got: f64) {
    let want = reference(op, vals);
    let ok = match op {
        _ if want.is_nan() => got.is_nan(),
        _ if want.is_infinite() => got == want,
        ReduceOp::Sum => {
            let mag: f64 = vals.iter().map(|x| x.abs()).sum();
            (got - want).abs() <= 2e-7 * mag + 6e-8 * want.abs()
        }
        ReduceOp::Prod => (got - want).abs() <= 1e-6 * want.abs() + 1e-38,
        ReduceOp::LogSumExp => (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
        _ => got == want,
    };
    assert!(ok, "{what}: got {got}, want {want}");
}

/// Values on a coarse grid (many ties), with NaN and infinities only when asked.
fn grid_values(seed: u64, n: usize, specials: bool) -> Vec<f32> {
    let mut x = inputs(seed, n, 2.0, specials);
    for v in x.iter_mut() {
        if v.abs() < 1e5 {
            *v = (*v * 4.0).round() / 4.0;
        }
    }
    x
}

fn run_last(op: ReduceOp, x: &[f32], rows: usize, cols: usize) {
    let mut out = vec![0.0f32; rows];
    reduce::reduce_last_axis_f32(op, x, rows, cols, &mut out);
    let mut idx = vec![0i64; rows];
    if op.is_arg() {
        reduce::arg_reduce_last_axis_f32(op, x, rows, cols, &mut idx);
    }
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut out64 = vec![0.0; rows];
    reduce::reduce_last_axis_f64(op, &x64, rows, cols, &mut out64);
    for r in 0..rows {
        let vals = &x64[r * cols..(r + 1) * cols];
        let what = format!("{op:?} last rows={rows} cols={cols} row {r}");
        check(&what, op, vals, out[r] as f64);
        check(&format!("{what} (f64)"), op, vals, out64[r]);
        if op.is_arg() {
            check(&format!("{what} (i64)"), op, vals, idx[r] as f64);
        }
    }
}

#[test]
fn last_axis_every_op_and_size() {
    let sizes = [1usize, 7, 77, 1000, 4099, (1 << 20) + 3];
    for op in ReduceOp::ALL {
        for (k, &cols) in sizes.iter().enumerate() {
            let rows = if cols > 100_000 { 2 } else { 5 };
            let seed = 1000 + k as u64;
            // Row 0 plain normal values, the rest on a grid with specials.
            let mut x = inputs(seed, cols, 3.0, false);
            x.extend(grid_values(seed + 1, cols * (rows - 1), true));
            if op == ReduceOp::Prod {
                // Keep products finite and interesting: values near 1.
                x.iter_mut()
                    .for_each(|v| *v = 1.0 + (*v / 1e3).clamp(-0.5, 0.5));
            }
            run_last(op, &x, rows, cols);
        }
        // Empty rows and an all -inf row.
        run_last(op, &[], 3, 0);
        run_last(op, &[f32::NEG_INFINITY; 9], 3, 3);
    }
}

#[test]
fn many_short_rows_run_in_parallel() {
    let (rows, cols) = (100_000, 13);
    let x = grid_values(77, rows * cols, true);
    for op in ReduceOp::ALL {
        run_last(op, &x, rows, cols);
    }
}

#[test]
fn sum_of_a_million_values_is_precise() {
    let mut r = rng(3);
    let n = 1 << 20;
    let x: Vec<f32> = (0..n).map(|_| r.gen_range(0.0..1.0)).collect();
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    let mut out = [0.0f32];
    reduce::reduce_last_axis_f32(ReduceOp::Sum, &x, 1, n, &mut out);
    let rel = ((out[0] as f64 - want) / want).abs();
    assert!(rel < 1e-6, "relative error {rel}");
    // The result does not depend on how many threads ran it.
    let mut again = [0.0f32];
    emily_kernels::parallel::pool().install(|| {
        reduce::reduce_last_axis_f32(ReduceOp::Sum, &x, 1, n, &mut again);
    });
    assert_eq!(out[0].to_bits(), again[0].to_bits());
}

#[test]
fn logsumexp_special_rows() {
    let inf = f32::INFINITY;
    let x = [
        -inf,
        -inf,
        -inf, // all -inf
        1.0,
        -inf,
        2.0, // some -inf
        1.0,
        inf,
        2.0, // +inf
        1.0,
        f32::NAN,
        inf, // NaN wins
        1000.0,
        1000.0,
        -1000.0, // large
    ];
    let mut out = [0.0f32; 5];
    reduce::reduce_last_axis_f32(ReduceOp::LogSumExp, &x, 5, 3, &mut out);
    assert_eq!(out[0], -inf);
    assert!((out[1] - (1f64.exp() + 2f64.exp()).ln() as f32).abs() < 1e-6);
    assert_eq!(out[2], inf);
    assert!(out[3].is_nan());
    assert!((out[4] - (1000.0 + 2f32.ln())).abs() < 1e-4);
}

fn run_middle(op: ReduceOp, x: &[f32], outer: usize, len: usize, inner: usize) {
    let mut out = vec![0.0f32; outer * inner];
    reduce::reduce_middle_axis_f32(op, x, outer, len, inner, &mut out);
    let mut idx = vec![0i64; outer * inner];
    if op.is_arg() {
        reduce::arg_reduce_middle_axis_f32(op, x, outer, len, inner, &mut idx);
    }
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut out64 = vec![0.0; outer * inner];
    reduce::reduce_middle_axis_f64(op, &x64, outer, len, inner, &mut out64);
    for b in 0..outer {
        for j in 0..inner {
            let vals: Vec<f64> = (0..len).map(|l| x64[(b * len + l) * inner + j]).collect();
            let what = format!("{op:?} middle ({outer}, {len}, {inner}) at ({b}, {j})");
            let k = b * inner + j;
            check(&what, op, &vals, out[k] as f64);
            check(&format!("{what} (f64)"), op, &vals, out64[k]);
            if op.is_arg() {
                check(&format!("{what} (i64)"), op, &vals, idx[k] as f64);
            }
        }
    }
}

#[test]
fn middle_axis_every_op_and_shape() {
    let shapes = [
        (1, 1, 1),
        (3, 77, 5),
        (2, 1000, 300),
        (1, 4099, 7),
        (4, 7, 1000),
        (3, 0, 4),
        (2, 1 << 15, 33), // parallel over column tiles? (inner small: over outer)
        (1, 3000, 1100),  // few outer, wide: parallel over tiles
        (64, 100, 300),   // parallel over outer
        (5, 300, 1),      // inner == 1: last-axis path
    ];
    for op in ReduceOp::ALL {
        for (k, &(outer, len, inner)) in shapes.iter().enumerate() {
            let mut x = grid_values(2000 + k as u64, outer * len * inner, k % 2 == 1);
            if op == ReduceOp::Prod {
                x.iter_mut()
                    .for_each(|v| *v = 1.0 + (*v / 1e3).clamp(-0.5, 0.5));
            }
            run_middle(op, &x, outer, len, inner);
        }
    }
}
