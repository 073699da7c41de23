//! Reductions over axis 1 of a row-major `(outer, len, inner)` array,
//! vectorised across `inner`: each pass keeps up to `WIDE` column
//! accumulators in cache while the rows stream through.

use super::lanes::{max_nan, min_nan};
use super::last_axis::{arg_reduce_last_axis_f32, reduce_last_axis_f32};
use super::{ReduceOp, COL_UNIT, TILE_ROWS, WIDE};
use crate::math::{self, dispatch_fma};
use crate::parallel;

/// Accumulators for one middle-axis pass over up to `WIDE` columns.
struct Scratch {
    /// f32 block sums, running max / min, or the best values for Arg*.
    a: Vec<f32>,
    /// LogSumExp block sums of `exp(x - max)`, and their f64 totals.
    s: Vec<f32>,
    t: Vec<f64>,
    idx: Vec<u32>,
    /// The pass's results.
    res: Vec<f64>,
}

impl Scratch {
    fn new(op: ReduceOp, w: usize) -> Scratch {
        let w = w.min(WIDE);
        let lse = if op == ReduceOp::LogSumExp { w } else { 0 };
        Scratch {
            a: vec![0.0; w],
            s: vec![0.0; lse],
            t: vec![0.0; lse],
            idx: vec![0; if op.is_arg() { w } else { 0 }],
            res: vec![0.0; w],
        }
    }
}

/// Reduces the `len` rows of an `(len, inner)` slab over the columns
/// `j0..j0 + w` into `sc.res[..w]`, vectorised across the columns.
#[inline(always)]
fn middle_pass<const FMA: bool>(
    op: ReduceOp,
    slab: &[f32],
    len: usize,
    inner: usize,
    j0: usize,
    w: usize,
    sc: &mut Scratch,
) {
    let row = |l: usize| &slab[l * inner + j0..l * inner + j0 + w];
    let (a, res) = (&mut sc.a[..w], &mut sc.res[..w]);
    if len == 0 {
        res.fill(op.identity());
        return;
    }
    match op {
        ReduceOp::Sum => {
            res.fill(0.0);
            for lb in (0..len).step_by(TILE_ROWS) {
                a.fill(0.0);
                let end = (lb + TILE_ROWS).min(len);
                let mut l = lb;
                // Four rows per pass over the accumulators (a quarter of the
                // accumulator loads and stores).
                while l + 4 <= end {
                    let (r0, r1, r2, r3) = (row(l), row(l + 1), row(l + 2), row(l + 3));
                    for j in 0..w {
                        a[j] += (r0[j] + r1[j]) + (r2[j] + r3[j]);
                    }
                    l += 4;
                }
                for l in l..end {
                    a.iter_mut().zip(row(l)).for_each(|(acc, &v)| *acc += v);
                }
                res.iter_mut()
                    .zip(a.iter())
                    .for_each(|(r, &v)| *r += v as f64);
            }
        }
        ReduceOp::Prod => {
            res.fill(1.0);
            for l in 0..len {
                res.iter_mut()
                    .zip(row(l))
                    .for_each(|(r, &v)| *r *= v as f64);
            }
        }
        ReduceOp::Max | ReduceOp::Min | ReduceOp::LogSumExp => {
            let f = if op == ReduceOp::Min {
                min_nan
            } else {
                max_nan
            };
            a.copy_from_slice(row(0));
            for l in 1..len {
                a.iter_mut()
                    .zip(row(l))
                    .for_each(|(acc, &v)| *acc = f(*acc, v));
            }
            res.iter_mut()
                .zip(a.iter())
                .for_each(|(r, &m)| *r = m as f64);
            if op == ReduceOp::LogSumExp {
                let (s, t) = (&mut sc.s[..w], &mut sc.t[..w]);
                t.fill(0.0);
                for lb in (0..len).step_by(TILE_ROWS) {
                    s.fill(0.0);
                    for l in lb..(lb + TILE_ROWS).min(len) {
                        for ((acc, &v), &m) in s.iter_mut().zip(row(l)).zip(a.iter()) {
                            *acc += math::exp_with::<FMA>(v - m);
                        }
                    }
                    t.iter_mut()
                        .zip(s.iter())
                        .for_each(|(t, &v)| *t += v as f64);
                }
                for (r, &t) in res.iter_mut().zip(t.iter()) {
                    if r.is_finite() {
                        *r += t.ln();
                    }
                }
            }
        }
        ReduceOp::ArgMax | ReduceOp::ArgMin => {
            let max = op == ReduceOp::ArgMax;
            let idx = &mut sc.idx[..w];
            idx.fill(0);
            a.copy_from_slice(row(0));
            for l in 1..len {
                for ((best, i), &v) in a.iter_mut().zip(idx.iter_mut()).zip(row(l)) {
                    let better = if max { v > *best } else { v < *best };
                    let take = better || (v.is_nan() && !best.is_nan());
                    *best = if take { v } else { *best };
                    *i = if take { l as u32 } else { *i };
                }
            }
            res.iter_mut()
                .zip(idx.iter())
                .for_each(|(r, &i)| *r = i as f64);
        }
    }
}

dispatch_fma! {
    fn k_middle<FMA>(op: ReduceOp, slab: &[f32], len: usize, inner: usize, j0: usize, w: usize, sc: &mut Scratch) {
        middle_pass::<FMA>(op, slab, len, inner, j0, w, sc);
    }
}

/// Shared driver of the middle-axis reductions: parallel over `outer`, or over
/// ranges of columns when `outer` is small; each task passes over its columns
/// `WIDE` at a time with one scratch allocation.
fn middle_axis<T: Send + Copy>(
    op: ReduceOp,
    x: &[f32],
    shape: (usize, usize, usize),
    out: &mut [T],
    conv: fn(f64) -> T,
) {
    let (outer, len, inner) = shape;
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
    let slab = len * inner;
    let cost = op.cost();
    // Columns `j0..j0 + o.len()` of batch `b`.
    let run = |b: usize, j0: usize, o: &mut [T], sc: &mut Scratch| {
        let xs = &x[b * slab..(b + 1) * slab];
        for (c, o) in o.chunks_mut(WIDE).enumerate() {
            k_middle(op, xs, len, inner, j0 + c * WIDE, o.len(), sc);
            o.iter_mut().zip(&sc.res).for_each(|(o, &r)| *o = conv(r));
        }
    };
    if outer >= 2 * parallel::num_threads() || inner <= 4 * COL_UNIT {
        parallel::for_each_row_block_mut(out, inner, slab * cost, |first, o| {
            let mut sc = Scratch::new(op, inner);
            for (k, orow) in o.chunks_mut(inner).enumerate() {
                run(first + k, 0, orow, &mut sc);
            }
        });
        return;
    }
    // One column range per thread: long contiguous runs per row.
    let unit = inner
        .div_ceil(parallel::num_threads())
        .next_multiple_of(COL_UNIT);
    for (b, orow) in out.chunks_mut(inner).enumerate() {
        parallel::for_each_row_block_mut(orow, unit, unit * len * cost, |first, cols| {
            run(b, first * unit, cols, &mut Scratch::new(op, cols.len()));
        });
    }
}

/// Reduces axis 1 of the row-major `(outer, len, inner)` array `x` into the
/// `(outer, inner)` array `out`, vectorised across `inner` (`inner == 1` is a
/// last-axis reduction). ArgMax / ArgMin write the index as f32 (exact below
/// 2^24; see [`arg_reduce_middle_axis_f32`]). Sums accumulate 64 rows in f32,
/// then in f64.
pub fn reduce_middle_axis_f32(
    op: ReduceOp,
    x: &[f32],
    outer: usize,
    len: usize,
    inner: usize,
    out: &mut [f32],
) {
    if inner == 1 {
        return reduce_last_axis_f32(op, x, outer, len, out);
    }
    middle_axis(op, x, (outer, len, inner), out, |v| v as f32);
}

/// ArgMax / ArgMin over axis 1 of `(outer, len, inner)`, as `i64` indices.
/// Panics for other ops.
pub fn arg_reduce_middle_axis_f32(
    op: ReduceOp,
    x: &[f32],
    outer: usize,
    len: usize,
    inner: usize,
    out: &mut [i64],
) {
    assert!(op.is_arg(), "arg_reduce needs ArgMax or ArgMin, got {op:?}");
    if inner == 1 {
        return arg_reduce_last_axis_f32(op, x, outer, len, out);
    }
    middle_axis(op, x, (outer, len, inner), out, |v| v as i64);
}
