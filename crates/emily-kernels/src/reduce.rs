//! Reductions over the last axis of a `(rows, cols)` array and over the middle
//! axis of an `(outer, len, inner)` array (vectorised across `inner`).
//!
//! Sums accumulate in 32 independent f32 lanes over blocks of 256 elements,
//! then in 32 `f64` lanes; products accumulate in `f64`. A long row is
//! cut into fixed 65536-element segments whose partial results combine in
//! order, so results do not depend on the number of threads. Semantics:
//! Max / Min propagate NaN; ArgMax / ArgMin give the first index of the
//! extreme (the first NaN if there is one); LogSumExp subtracts the max
//! (rows of -inf give -inf, a +inf entry gives +inf). Empty reductions give
//! the identity: 0, 1, -inf, +inf, index 0, -inf.

use crate::math::{self, dispatch_fma};
use crate::parallel;

/// A reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Maximum (NaN if any element is NaN).
    Max,
    /// Minimum (NaN if any element is NaN).
    Min,
    /// Product.
    Prod,
    /// Index of the first maximum (of the first NaN, if any).
    ArgMax,
    /// Index of the first minimum (of the first NaN, if any).
    ArgMin,
    /// `log(sum(exp(x)))`, computed stably.
    LogSumExp,
}

impl ReduceOp {
    /// Every op, in declaration order.
    pub const ALL: [ReduceOp; 7] = [
        ReduceOp::Sum,
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::Prod,
        ReduceOp::ArgMax,
        ReduceOp::ArgMin,
        ReduceOp::LogSumExp,
    ];

    /// Whether the result is an index.
    pub fn is_arg(self) -> bool {
        matches!(self, ReduceOp::ArgMax | ReduceOp::ArgMin)
    }

    fn cost(self) -> usize {
        match self {
            ReduceOp::LogSumExp => 4,
            ReduceOp::ArgMax | ReduceOp::ArgMin | ReduceOp::Prod => 2,
            _ => 1,
        }
    }

    /// The result of an empty reduction.
    fn identity(self) -> f64 {
        match self {
            ReduceOp::Sum | ReduceOp::ArgMax | ReduceOp::ArgMin => 0.0,
            ReduceOp::Prod => 1.0,
            ReduceOp::Max | ReduceOp::LogSumExp => f64::NEG_INFINITY,
            ReduceOp::Min => f64::INFINITY,
        }
    }
}

/// Independent accumulators (a multiple of every vector width).
pub(crate) const LANES: usize = 32;
/// Elements summed in f32 lanes before the block sum joins the f64 total.
pub(crate) const BLOCK: usize = 256;
/// A long row splits over threads in segments of this many elements.
const SEGMENT: usize = 1 << 16;
/// Columns per middle-axis pass (each row contributes one contiguous run of
/// this length; the accumulators stay in L1/L2), the granularity at which
/// columns split over threads, and the rows summed in f32 before f64.
pub(crate) const WIDE: usize = 2048;
pub(crate) const COL_UNIT: usize = 64;
pub(crate) const TILE_ROWS: usize = 64;

#[inline(always)]
fn max_nan(a: f32, v: f32) -> f32 {
    if v > a || v.is_nan() {
        v
    } else {
        a
    }
}

#[inline(always)]
fn min_nan(a: f32, v: f32) -> f32 {
    if v < a || v.is_nan() {
        v
    } else {
        a
    }
}

/// The f32 max (`MAX`) or min of `x`, NaN-propagating. The lanes take plain
/// `v > acc` selects (one vmaxps each) and count NaNs on the side, which is
/// much faster than a NaN-sticky select chain.
#[inline(always)]
pub(crate) fn extreme<const MAX: bool>(x: &[f32]) -> f32 {
    let init = if MAX {
        f32::NEG_INFINITY
    } else {
        f32::INFINITY
    };
    let step = |a: f32, v: f32| {
        let better = if MAX { v > a } else { v < a };
        if better {
            v
        } else {
            a
        }
    };
    let mut acc = [init; LANES];
    let mut nan = [0u32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            acc[i] = step(acc[i], c[i]);
            nan[i] |= c[i].is_nan() as u32;
        }
    }
    for ((a, n), &v) in acc.iter_mut().zip(nan.iter_mut()).zip(chunks.remainder()) {
        *a = step(*a, v);
        *n |= v.is_nan() as u32;
    }
    if nan.iter().any(|&n| n != 0) {
        return f32::NAN;
    }
    acc.iter().fold(init, |a, &v| step(a, v))
}

/// `sum(x)`, or `sum(exp(x - m))` for a finite `m >= x` when `EXP`, with f32
/// lanes per block and f64 lanes across blocks. (No closure carries the exp: a closure that LLVM
/// declines to inline is compiled without the caller's target features.)
#[inline(always)]
pub(crate) fn sum_exp<const EXP: bool, const FMA: bool>(x: &[f32], m: f32) -> f64 {
    // Plain sums are memory-bound and tolerate longer f32 runs.
    let block = if EXP { BLOCK } else { 16 * BLOCK };
    let mut acc64 = [0.0f64; LANES];
    let mut acc = [0.0f32; LANES];
    for b in x.chunks(block) {
        let mut chunks = b.chunks_exact(LANES);
        for c in &mut chunks {
            for i in 0..LANES {
                acc[i] += if EXP {
                    math::exp_nonpos_with::<FMA>(c[i] - m)
                } else {
                    c[i]
                };
            }
        }
        for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
            *a += if EXP {
                math::exp_nonpos_with::<FMA>(v - m)
            } else {
                v
            };
        }
        flush(&mut acc64, &mut acc);
    }
    fold_lanes(acc64)
}

/// Adds the f32 lanes into the f64 lanes and clears them.
#[inline(always)]
pub(crate) fn flush(acc64: &mut [f64; LANES], acc: &mut [f32; LANES]) {
    for i in 0..LANES {
        acc64[i] += acc[i] as f64;
        acc[i] = 0.0;
    }
}

/// Pairwise sum of the lanes.
#[inline(always)]
pub(crate) fn fold_lanes(mut acc: [f64; LANES]) -> f64 {
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0]
}

#[inline(always)]
fn prod(x: &[f32]) -> f64 {
    let mut acc = [1.0f64; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            acc[i] *= c[i] as f64;
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a *= v as f64;
    }
    acc.iter().product()
}

/// Index of the first element equal to `m` (the first NaN when `m` is NaN),
/// scanning 64-element chunks with a vectorised any-test.
#[inline(always)]
fn find_first(x: &[f32], m: f32) -> usize {
    for (ci, c) in x.chunks(64).enumerate() {
        let mut any = 0u32;
        if m.is_nan() {
            c.iter().for_each(|&v| any |= v.is_nan() as u32);
        } else {
            c.iter().for_each(|&v| any |= (v == m) as u32);
        }
        if any != 0 {
            let hit = |&v: &f32| if m.is_nan() { v.is_nan() } else { v == m };
            return ci * 64 + c.iter().position(hit).unwrap_or(0);
        }
    }
    0
}

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

/// [`reduce_last_axis_f32`] in `f64` (scalar reference; indices as f64).
pub fn reduce_last_axis_f64(op: ReduceOp, x: &[f64], rows: usize, cols: usize, out: &mut [f64]) {
    assert_eq!(x.len(), rows * cols, "reduce: x.len() != rows * cols");
    assert_eq!(out.len(), rows, "reduce: out.len() != rows");
    for (r, o) in out.iter_mut().enumerate() {
        *o = reduce_f64_by(op, cols, |i| x[r * cols + i]);
    }
}

/// [`reduce_middle_axis_f32`] in `f64` (scalar reference; indices as f64).
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
