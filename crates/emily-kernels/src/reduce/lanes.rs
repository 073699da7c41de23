//! The vectorised loops over one contiguous run of values: NaN-propagating
//! extremes, f32-lane sums (optionally of `exp(x - m)`) folded into f64 lanes,
//! products, and the first index of a value.

use super::{BLOCK, LANES};
use crate::math;

#[inline(always)]
pub(super) fn max_nan(a: f32, v: f32) -> f32 {
    if v > a || v.is_nan() {
        v
    } else {
        a
    }
}

#[inline(always)]
pub(super) fn min_nan(a: f32, v: f32) -> f32 {
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
    if nan.iter().fold(0, |a, &n| a | n) != 0 {
        return f32::NAN;
    }
    // A pairwise fold (vectorised; a sequential one is a 32-step dependency
    // chain, most of a short row's time). Deterministic; only the sign of
    // a zero extreme reached by both signs may differ from a sequential fold.
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] = step(acc[i], acc[i + w]);
        }
    }
    acc[0]
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
pub(super) fn prod(x: &[f32]) -> f64 {
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
pub(super) fn find_first(x: &[f32], m: f32) -> usize {
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
