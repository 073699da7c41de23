//! Reductions and softmax: each output element gathers its inputs into one
//! list and folds it in f64.

use super::element::{ravel, unravel};
use super::{Out, View};
use crate::error::Result;
use crate::ops::Reduction;
use crate::shape::numel;
use crate::DType;

/// The maximum (`max == true`) or minimum of `xs`, NaN if any is NaN,
/// `∓inf` for an empty list.
fn extreme(xs: &[f64], max: bool) -> f64 {
    let mut best = if max {
        f64::NEG_INFINITY
    } else {
        f64::INFINITY
    };
    for &x in xs {
        if x.is_nan() {
            return f64::NAN;
        }
        if (max && x > best) || (!max && x < best) {
            best = x;
        }
    }
    best
}

/// Index of the first extreme of `xs` (of the first NaN, if any; 0 when empty).
fn arg_extreme(xs: &[f64], max: bool) -> usize {
    if let Some(i) = xs.iter().position(|x| x.is_nan()) {
        return i;
    }
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if (max && x > xs[best]) || (!max && x < xs[best]) {
            best = i;
        }
    }
    best
}

/// `log(sum(exp(x)))` with the max subtracted: NaN if any is NaN, -inf for
/// an empty list or all -inf, +inf if any is +inf.
fn logsumexp(xs: &[f64]) -> f64 {
    let m = extreme(xs, true);
    if !m.is_finite() {
        return m;
    }
    m + xs.iter().map(|&x| (x - m).exp()).sum::<f64>().ln()
}

/// What one output element of `op` is, from the values it reduces.
fn fold(op: Reduction, xs: &[f64]) -> f64 {
    match op {
        Reduction::Sum => xs.iter().sum(),
        // An empty mean is 0 (the sum of nothing, scaled by 1).
        Reduction::Mean => xs.iter().sum::<f64>() / xs.len().max(1) as f64,
        Reduction::Max => extreme(xs, true),
        Reduction::Min => extreme(xs, false),
        Reduction::Prod => xs.iter().product(),
        Reduction::ArgMax => arg_extreme(xs, true) as f64,
        Reduction::ArgMin => arg_extreme(xs, false) as f64,
        Reduction::LogSumExp => logsumexp(xs),
    }
}

/// `op` over the sorted `axes` of `x`, into `shape` (with or without the
/// reduced axes kept as 1: the element order is the same).
pub(super) fn reduce(
    op: Reduction,
    x: &View,
    axes: &[usize],
    shape: &[usize],
    dtype: DType,
) -> Result<Out> {
    let kept: Vec<usize> = (0..x.shape.len()).filter(|a| !axes.contains(a)).collect();
    let kept_shape: Vec<usize> = kept.iter().map(|&a| x.shape[a]).collect();
    let red_shape: Vec<usize> = axes.iter().map(|&a| x.shape[a]).collect();
    let mut out = Out::new(shape, dtype)?;
    let mut xs = Vec::with_capacity(numel(&red_shape));
    let mut idx = vec![0; x.shape.len()];
    for o in 0..numel(&kept_shape) {
        for (&a, &i) in kept.iter().zip(&unravel(o, &kept_shape)) {
            idx[a] = i;
        }
        xs.clear();
        for r in 0..numel(&red_shape) {
            for (&a, &i) in axes.iter().zip(&unravel(r, &red_shape)) {
                idx[a] = i;
            }
            xs.push(x.get(ravel(&idx, x.shape)));
        }
        out.set(o, fold(op, &xs));
    }
    Ok(out)
}

/// Softmax along `axis`: a row of all -inf gives zeros; a NaN or +inf entry
/// gives a NaN row.
pub(super) fn softmax(x: &View, axis: usize, dtype: DType) -> Result<Out> {
    let mut out = Out::new(x.shape, dtype)?;
    let len = x.shape[axis];
    let mut rows_shape = x.shape.to_vec();
    rows_shape[axis] = 1;
    let mut idx;
    let mut at = Vec::with_capacity(len);
    for r in 0..numel(&rows_shape) {
        idx = unravel(r, &rows_shape);
        at.clear();
        for j in 0..len {
            idx[axis] = j;
            at.push(ravel(&idx, x.shape));
        }
        let xs: Vec<f64> = at.iter().map(|&i| x.get(i)).collect();
        let m = extreme(&xs, true);
        if m == f64::NEG_INFINITY {
            at.iter().for_each(|&i| out.set(i, 0.0));
            continue;
        }
        let e: Vec<f64> = xs.iter().map(|&v| (v - m).exp()).collect();
        let sum: f64 = e.iter().sum();
        for (&i, &ej) in at.iter().zip(&e) {
            out.set(i, ej / sum);
        }
    }
    Ok(out)
}
