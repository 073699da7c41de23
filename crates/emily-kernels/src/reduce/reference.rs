//! Scalar `f64` reductions: the reference the vectorised kernels are tested
//! against (and the f64 dtype's implementation).

use super::ReduceOp;

/// Scalar `f64` reduction of `n` values `get(0..n)` (indices as f64 for Arg*).
fn reduce_f64_by(op: ReduceOp, n: usize, get: impl Fn(usize) -> f64) -> f64 {
    if n == 0 {
        return op.identity();
    }
    let nan_first = (0..n).find(|&i| get(i).is_nan());
    let extreme = |max: bool| {
        (1..n).fold(0, |b, i| {
            let better = if max {
                get(i) > get(b)
            } else {
                get(i) < get(b)
            };
            if better {
                i
            } else {
                b
            }
        })
    };
    match op {
        ReduceOp::Sum => (0..n).map(&get).sum(),
        ReduceOp::Prod => (0..n).map(&get).product(),
        _ if nan_first.is_some() && !op.is_arg() => f64::NAN,
        ReduceOp::Max => get(extreme(true)),
        ReduceOp::Min => get(extreme(false)),
        ReduceOp::ArgMax => nan_first.unwrap_or_else(|| extreme(true)) as f64,
        ReduceOp::ArgMin => nan_first.unwrap_or_else(|| extreme(false)) as f64,
        ReduceOp::LogSumExp => {
            let m = get(extreme(true));
            if !m.is_finite() {
                return m;
            }
            m + (0..n).map(|i| (get(i) - m).exp()).sum::<f64>().ln()
        }
    }
}

/// [`reduce_last_axis_f32`](super::reduce_last_axis_f32) in `f64` (scalar reference; indices as f64).
pub fn reduce_last_axis_f64(op: ReduceOp, x: &[f64], rows: usize, cols: usize, out: &mut [f64]) {
    assert_eq!(x.len(), rows * cols, "reduce: x.len() != rows * cols");
    assert_eq!(out.len(), rows, "reduce: out.len() != rows");
    for (r, o) in out.iter_mut().enumerate() {
        *o = reduce_f64_by(op, cols, |i| x[r * cols + i]);
    }
}

/// [`reduce_middle_axis_f32`](super::reduce_middle_axis_f32) in `f64` (scalar reference; indices as f64).
pub fn reduce_middle_axis_f64(
    op: ReduceOp,
    x: &[f64],
    outer: usize,
    len: usize,
    inner: usize,
    out: &mut [f64],
) {
    assert_eq!(
        x.len(),
        outer * len * inner,
        "reduce: x.len() != outer * len * inner"
    );
    assert_eq!(
        out.len(),
        outer * inner,
        "reduce: out.len() != outer * inner"
    );
    for (k, o) in out.iter_mut().enumerate() {
        let (b, j) = (k / inner, k % inner);
        *o = reduce_f64_by(op, len, |l| x[(b * len + l) * inner + j]);
    }
}
