//! Reductions over the last axis of a row-major `(rows, cols)` array: parallel
//! over rows, or over fixed segments of each row when there are few long rows
//! (segments combine in order, so results do not depend on the thread count).

use super::lanes::{extreme, find_first, prod, sum_exp};
use super::{ReduceOp, SEGMENT};
use crate::math::dispatch_fma;
use crate::parallel;

/// A segment's partial result: the value (the max for LogSumExp), the sum of
/// `exp(x - max)` for LogSumExp, and the index for ArgMax / ArgMin.
#[derive(Clone, Copy, Debug, Default)]
struct Partial {
    v: f64,
    s: f64,
    idx: usize,
}

#[inline(always)]
fn seg_partial<const FMA: bool>(op: ReduceOp, x: &[f32], offset: usize) -> Partial {
    let p = |v: f64| Partial { v, s: 0.0, idx: 0 };
    match op {
        ReduceOp::Sum => p(sum_exp::<false, FMA>(x, 0.0)),
        ReduceOp::Prod => p(prod(x)),
        ReduceOp::Max => p(extreme::<true>(x) as f64),
        ReduceOp::Min => p(extreme::<false>(x) as f64),
        ReduceOp::ArgMax | ReduceOp::ArgMin => {
            let m = if op == ReduceOp::ArgMax {
                extreme::<true>(x)
            } else {
                extreme::<false>(x)
            };
            let idx = offset + find_first(x, m);
            Partial {
                v: m as f64,
                s: 0.0,
                idx,
            }
        }
        ReduceOp::LogSumExp => {
            let m = extreme::<true>(x);
            let s = if m.is_finite() {
                sum_exp::<true, FMA>(x, m)
            } else {
                0.0
            };
            Partial {
                v: m as f64,
                s,
                idx: 0,
            }
        }
    }
}

/// Combines the partials of two consecutive segments (`a` first).
fn combine(op: ReduceOp, a: Partial, b: Partial) -> Partial {
    let nan = Partial { v: f64::NAN, ..a };
    match op {
        ReduceOp::Sum => Partial { v: a.v + b.v, ..a },
        ReduceOp::Prod => Partial { v: a.v * b.v, ..a },
        _ if !op.is_arg() && (a.v.is_nan() || b.v.is_nan()) => nan,
        ReduceOp::Max => Partial {
            v: a.v.max(b.v),
            ..a
        },
        ReduceOp::Min => Partial {
            v: a.v.min(b.v),
            ..a
        },
        ReduceOp::ArgMax | ReduceOp::ArgMin => {
            let better = if op == ReduceOp::ArgMax {
                b.v > a.v
            } else {
                b.v < a.v
            };
            if !a.v.is_nan() && (b.v.is_nan() || better) {
                b
            } else {
                a
            }
        }
        ReduceOp::LogSumExp => {
            let m = a.v.max(b.v);
            if !m.is_finite() {
                return Partial {
                    v: m,
                    s: 0.0,
                    idx: 0,
                };
            }
            let s = a.s * (a.v - m).exp() + b.s * (b.v - m).exp();
            Partial { v: m, s, idx: 0 }
        }
    }
}

fn finish(op: ReduceOp, p: Partial) -> f64 {
    match op {
        ReduceOp::ArgMax | ReduceOp::ArgMin => p.idx as f64,
        ReduceOp::LogSumExp if p.v.is_finite() => p.v + p.s.ln(),
        _ => p.v,
    }
}

/// One row, as the in-order combination of its segments.
#[inline(always)]
fn row_value<const FMA: bool>(op: ReduceOp, row: &[f32]) -> f64 {
    let mut segs = row.chunks(SEGMENT).enumerate();
    let Some((_, first)) = segs.next() else {
        return op.identity();
    };
    let mut acc = seg_partial::<FMA>(op, first, 0);
    for (k, seg) in segs {
        acc = combine(op, acc, seg_partial::<FMA>(op, seg, k * SEGMENT));
    }
    finish(op, acc)
}

/// Rows handled per kernel call: the kernel writes `f64` results into a stack
/// buffer of this size, converted by the driver.
const CHUNK: usize = 256;

dispatch_fma! {
    fn k_rows<FMA>(op: ReduceOp, x: &[f32], cols: usize, out: &mut [f64]) {
        for (r, o) in out.iter_mut().enumerate() {
            *o = row_value::<FMA>(op, &x[r * cols..(r + 1) * cols]);
        }
    }
}

dispatch_fma! {
    fn k_segments<FMA>(op: ReduceOp, row: &[f32], first: usize, out: &mut [Partial]) {
        for (j, p) in out.iter_mut().enumerate() {
            let s = (first + j) * SEGMENT;
            *p = seg_partial::<FMA>(op, &row[s..(s + SEGMENT).min(row.len())], s);
        }
    }
}

/// Shared driver of the last-axis reductions: parallel over rows, or over the
/// segments of each row when there are few long rows.
fn last_axis<T: Send + Copy>(
    op: ReduceOp,
    x: &[f32],
    rows: usize,
    cols: usize,
    out: &mut [T],
    conv: fn(f64) -> T,
) {
    assert_eq!(x.len(), rows * cols, "reduce: x.len() != rows * cols");
    assert_eq!(out.len(), rows, "reduce: out.len() != rows");
    let cost = op.cost();
    if cols < 2 * SEGMENT || rows >= 2 * parallel::num_threads() {
        parallel::for_each_row_block_mut(out, 1, cols * cost, |first, o| {
            let mut res = [0.0f64; CHUNK];
            for (c, o) in o.chunks_mut(CHUNK).enumerate() {
                let r0 = first + c * CHUNK;
                k_rows(
                    op,
                    &x[r0 * cols..(r0 + o.len()) * cols],
                    cols,
                    &mut res[..o.len()],
                );
                o.iter_mut().zip(&res).for_each(|(o, &r)| *o = conv(r));
            }
        });
        return;
    }
    let mut parts = vec![Partial::default(); cols.div_ceil(SEGMENT)];
    for (r, o) in out.iter_mut().enumerate() {
        let row = &x[r * cols..(r + 1) * cols];
        parallel::for_each_row_block_mut(&mut parts, 1, SEGMENT * cost, |first, p| {
            k_segments(op, row, first, p);
        });
        let total = parts.iter().copied().reduce(|a, b| combine(op, a, b));
        *o = conv(finish(op, total.unwrap_or_default()));
    }
}

/// Reduces each row of the row-major `(rows, cols)` array `x` into `out[row]`.
/// ArgMax / ArgMin write the index as f32 (exact below 2^24; see
/// [`arg_reduce_last_axis_f32`] for `i64` indices). Parallel above the
/// threshold; results do not depend on the thread count.
pub fn reduce_last_axis_f32(op: ReduceOp, x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    last_axis(op, x, rows, cols, out, |v| v as f32);
}

/// ArgMax / ArgMin over the last axis, as `i64` indices. Panics for other ops.
pub fn arg_reduce_last_axis_f32(
    op: ReduceOp,
    x: &[f32],
    rows: usize,
    cols: usize,
    out: &mut [i64],
) {
    assert!(op.is_arg(), "arg_reduce needs ArgMax or ArgMin, got {op:?}");
    last_axis(op, x, rows, cols, out, |v| v as i64);
}
