//! Softmax over the last axis of a `(rows, cols)` array and over the middle
//! axis of an `(outer, len, inner)` array.
//!
//! Each row is three passes while it sits in L1: the max, then `exp(x - max)`
//! stored to `out` while summing it (32 f32 lanes per 256-element block, then
//! 32 f64 lanes), then a scale by `1 / sum`. Rows split over the global pool
//! above the size threshold. A row whose entries are all -inf (a fully masked
//! attention row) gives all zeros, the project-wide choice (NaN would be the
//! alternative); a NaN anywhere in a row, or a +inf entry, gives a NaN row.

use crate::math::{self, dispatch_fma};
use crate::parallel;
use crate::reduce::{extreme, flush, fold_lanes, BLOCK, COL_UNIT, LANES, WIDE};

/// Relative cost per element (an exp plus three passes) for the threshold.
const COST: usize = 4;

/// One lane-width chunk of [`exp_store_sum`]. (A function, not a closure: a
/// closure LLVM declines to inline loses the caller's target features.)
#[inline(always)]
fn exp_lanes<const FMA: bool>(xs: &[f32], m: f32, os: &mut [f32], acc: &mut [f32; LANES]) {
    for i in 0..LANES {
        let e = math::exp_nonpos_with::<FMA>(xs[i] - m);
        os[i] = e;
        acc[i] += e;
    }
}

/// `out = exp(x - m)` for a finite `m >= x`; returns the sum of `out`. A
/// tail shorter than the lanes runs padded with -inf, so it stays vectorised.
#[inline(always)]
pub(crate) fn exp_store_sum<const FMA: bool>(x: &[f32], m: f32, out: &mut [f32]) -> f64 {
    let mut acc64 = [0.0f64; LANES];
    let mut acc = [0.0f32; LANES];
    for (xb, ob) in x.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
        let mut xc = xb.chunks_exact(LANES);
        let mut oc = ob.chunks_exact_mut(LANES);
        for (xs, os) in (&mut xc).zip(&mut oc) {
            exp_lanes::<FMA>(xs, m, os, &mut acc);
        }
        let (xr, or) = (xc.remainder(), oc.into_remainder());
        if !xr.is_empty() {
            let (mut xp, mut op) = ([f32::NEG_INFINITY; LANES], [0.0f32; LANES]);
            xp[..xr.len()].copy_from_slice(xr);
            exp_lanes::<FMA>(&xp, m, &mut op, &mut acc);
            or.copy_from_slice(&op[..or.len()]);
        }
        flush(&mut acc64, &mut acc);
    }
    fold_lanes(acc64)
}

#[inline(always)]
fn softmax_row<const FMA: bool>(x: &[f32], out: &mut [f32]) {
    let m = extreme::<true>(x);
    if m == f32::NEG_INFINITY {
        out.fill(0.0);
        return;
    }
    if !m.is_finite() {
        out.fill(f32::NAN);
        return;
    }
    let inv = (1.0 / exp_store_sum::<FMA>(x, m, out)) as f32;
    for o in out.iter_mut() {
        *o *= inv;
    }
}

dispatch_fma! {
    fn k_rows<FMA>(x: &[f32], cols: usize, out: &mut [f32]) {
        for (xr, or) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
            softmax_row::<FMA>(xr, or);
        }
    }
}

/// Softmax of each row of the row-major `(rows, cols)` array `x` into `out`
/// (same shape). All -inf rows give zeros; see the module docs.
pub fn softmax_last_axis_f32(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    assert_eq!(x.len(), rows * cols, "softmax: x.len() != rows * cols");
    assert_eq!(out.len(), rows * cols, "softmax: out.len() != rows * cols");
    if cols == 0 {
        return;
    }
    parallel::for_each_row_block_mut(out, cols, cols * COST, |first, o| {
        k_rows(&x[first * cols..first * cols + o.len()], cols, o);
    });
}

/// Per-column accumulators of a middle-axis softmax pass.
struct Scratch {
    m: Vec<f32>,
    s: Vec<f32>,
    t: Vec<f64>,
}

/// A raw view of one `(len, inner)` output slab, for tasks that each own a
/// range of its columns (strided, so it cannot be split into `&mut` slices).
#[derive(Clone, Copy)]
struct SlabPtr(*mut f32, usize);
// SAFETY: tasks sharing a `SlabPtr` write disjoint column ranges.
unsafe impl Send for SlabPtr {}
unsafe impl Sync for SlabPtr {}

/// Softmax along the `len` rows of an `(len, inner)` slab over the columns
/// `j0..j0 + w`, vectorised across the columns. Writes only those columns of
/// `out`, which the caller must own exclusively for the call.
#[inline(always)]
fn middle_pass<const FMA: bool>(
    x: &[f32],
    out: SlabPtr,
    len: usize,
    inner: usize,
    j0: usize,
    w: usize,
    sc: &mut Scratch,
) {
    assert!(len * inner <= out.1 && j0 + w <= inner && x.len() >= len * inner);
    let xr = |l: usize| &x[l * inner + j0..l * inner + j0 + w];
    // SAFETY: in bounds (asserted above); the caller owns these columns and
    // only one such row slice is alive at a time.
    let or = |l: usize| unsafe { std::slice::from_raw_parts_mut(out.0.add(l * inner + j0), w) };
    let (m, s, t) = (&mut sc.m[..w], &mut sc.s[..w], &mut sc.t[..w]);
    m.fill(f32::NEG_INFINITY);
    let mut nan = 0u32;
    for l in 0..len {
        for (m, &v) in m.iter_mut().zip(xr(l)) {
            *m = if v > *m { v } else { *m };
            nan |= v.is_nan() as u32;
        }
    }
    if nan != 0 {
        // Rare: redo the max NaN-sticky so NaN columns become NaN.
        m.fill(f32::NEG_INFINITY);
        for l in 0..len {
            for (m, &v) in m.iter_mut().zip(xr(l)) {
                *m = if v > *m || v.is_nan() { v } else { *m };
            }
        }
    }
    // An all -inf column exps against 0 instead, so it sums to 0 (not NaN).
    m.iter_mut()
        .for_each(|m| *m = if *m == f32::NEG_INFINITY { 0.0 } else { *m });
    t.fill(0.0);
    for l in 0..len {
        for (((o, &v), &m), t) in or(l).iter_mut().zip(xr(l)).zip(m.iter()).zip(t.iter_mut()) {
            let e = math::exp_with::<FMA>(v - m);
            *o = e;
            *t += e as f64;
        }
    }
    // Columns of all -inf summed to 0 and scale to zero.
    for (s, &t) in s.iter_mut().zip(t.iter()) {
        *s = if t == 0.0 { 0.0 } else { (1.0 / t) as f32 };
    }
    for l in 0..len {
        or(l)
            .iter_mut()
            .zip(s.iter())
            .for_each(|(o, &inv)| *o *= inv);
    }
}

dispatch_fma! {
    fn k_middle<FMA>(x: &[f32], out: SlabPtr, len: usize, inner: usize, j0: usize, w: usize, sc: &mut Scratch) {
        middle_pass::<FMA>(x, out, len, inner, j0, w, sc);
    }
}

/// Softmax along axis 1 of the row-major `(outer, len, inner)` array `x`
/// into `out` (same shape), vectorised across `inner`; all -inf columns give
/// zeros. Parallel over `outer`, or over column ranges when `outer` is small.
pub fn softmax_middle_axis_f32(x: &[f32], outer: usize, len: usize, inner: usize, out: &mut [f32]) {
    assert_eq!(
        x.len(),
        outer * len * inner,
        "softmax: x.len() != outer * len * inner"
    );
    assert_eq!(out.len(), x.len(), "softmax: out.len() != x.len()");
    if inner == 1 {
        return softmax_last_axis_f32(x, outer, len, out);
    }
    let slab = len * inner;
    if slab == 0 {
        return;
    }
    let new = |w: usize| {
        let w = w.min(WIDE);
        Scratch {
            m: vec![0.0; w],
            s: vec![0.0; w],
            t: vec![0.0; w],
        }
    };
    // Columns `j0..j1` of one slab, `WIDE` at a time.
    let run = |xs: &[f32], os: SlabPtr, j0: usize, j1: usize, sc: &mut Scratch| {
        for c in (j0..j1).step_by(WIDE) {
            k_middle(xs, os, len, inner, c, (j1 - c).min(WIDE), sc);
        }
    };
    if outer >= 2 * parallel::num_threads() || inner <= 4 * COL_UNIT {
        parallel::for_each_row_block_mut(out, slab, slab * COST, |first, o| {
            let mut sc = new(inner);
            for (k, os) in o.chunks_mut(slab).enumerate() {
                let xs = &x[(first + k) * slab..(first + k + 1) * slab];
                run(xs, SlabPtr(os.as_mut_ptr(), os.len()), 0, inner, &mut sc);
            }
        });
        return;
    }
    // Few slabs: split each slab's columns, one range per thread.
    let unit = inner
        .div_ceil(parallel::num_threads())
        .next_multiple_of(COL_UNIT);
    for (b, os) in out.chunks_mut(slab).enumerate() {
        let xs = &x[b * slab..(b + 1) * slab];
        let ptr = SlabPtr(os.as_mut_ptr(), os.len());
        parallel::for_each_range(inner.div_ceil(unit), unit * len * COST, |u0, u1| {
            let (j0, j1) = (u0 * unit, (u1 * unit).min(inner));
            run(xs, ptr, j0, j1, &mut new(j1 - j0));
        });
    }
}

/// Softmax of one lane of `n` values `get(i)` into `set(i, v)`, in `f64`.
fn softmax_f64_by(n: usize, get: impl Fn(usize) -> f64, mut set: impl FnMut(usize, f64)) {
    // NaN-propagating max.
    let m = (0..n).map(&get).fold(f64::NEG_INFINITY, |m, v| {
        if m.is_nan() || v > m || v.is_nan() {
            if m.is_nan() {
                m
            } else {
                v
            }
        } else {
            m
        }
    });
    if m == f64::NEG_INFINITY {
        (0..n).for_each(|i| set(i, 0.0));
        return;
    }
    let s: f64 = (0..n).map(|i| (get(i) - m).exp()).sum();
    (0..n).for_each(|i| set(i, (get(i) - m).exp() / s));
}

/// [`softmax_last_axis_f32`] in `f64` (scalar reference, same semantics).
pub fn softmax_last_axis_f64(x: &[f64], rows: usize, cols: usize, out: &mut [f64]) {
    assert_eq!(x.len(), rows * cols, "softmax: x.len() != rows * cols");
    assert_eq!(out.len(), rows * cols, "softmax: out.len() != rows * cols");
    for (xr, or) in x.chunks(cols.max(1)).zip(out.chunks_mut(cols.max(1))) {
        softmax_f64_by(cols, |i| xr[i], |i, v| or[i] = v);
    }
}

/// [`softmax_middle_axis_f32`] in `f64` (scalar reference, same semantics).
pub fn softmax_middle_axis_f64(x: &[f64], outer: usize, len: usize, inner: usize, out: &mut [f64]) {
    assert_eq!(
        x.len(),
        outer * len * inner,
        "softmax: x.len() != outer * len * inner"
    );
    assert_eq!(out.len(), x.len(), "softmax: out.len() != x.len()");
    for b in 0..outer {
        for j in 0..inner {
            let at = |l: usize| (b * len + l) * inner + j;
            softmax_f64_by(len, |l| x[at(l)], |l, v| out[at(l)] = v);
        }
    }
}
