//! LayerNorm over the last axis: `out = (x - mean) / sqrt(var + eps) * weight + bias`
//! with the biased variance.
//!
//! The statistics come from sums of `x - m` for a shift `m` near the mean,
//! never from the cancellation-prone `E[x^2] - E[x]^2`: with `c = mean(x - m)`,
//! `mean = m + c` and `var = mean((x - m)^2) - c^2`, and `x - mean` is formed
//! as `(x - m) - c` (`x - m` is exact for values near `m`), so rows with a
//! large common offset keep full `f32` accuracy. The shift is first the row's
//! first element (one pass for the sums); if that leaves `c^2` large against
//! the variance (an outlier first element), the row is redone with the mean
//! itself as the shift (the corrected two-pass formula). Either way the row is
//! read from memory once and then from L1. Rows are split across the pool;
//! outputs too large for the cache are written with streaming stores.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use super::lanes::{self, fma_dispatch, fmadd};
use super::{stream, widen};
use crate::parallel;

/// LayerNorm of each length-`cols` row of `x` into `out`:
/// `(x - mean) / sqrt(mean((x - mean)^2) + eps) * weight + bias`, where a missing
/// `weight` is 1 and a missing `bias` is 0. Accumulates in `f32`. `cols == 0` is a
/// no-op.
///
/// # Panics
/// If `x` and `out` differ in length, the length is not a multiple of `cols`,
/// or `weight` / `bias` do not have `cols` elements.
pub fn layer_norm_f32(
    x: &[f32],
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    eps: f32,
    cols: usize,
    out: &mut [f32],
) {
    check(
        x.len(),
        weight.map(<[f32]>::len),
        bias.map(<[f32]>::len),
        cols,
        out.len(),
    );
    if cols == 0 || x.is_empty() {
        return;
    }
    let streaming = stream::should_stream(out.len());
    parallel::for_each_row_block_mut(out, cols, cols, |row0, block| {
        let src = &x[row0 * cols..row0 * cols + block.len()];
        if streaming {
            stream::stream_rows(block, cols, |r, buf| {
                ln_rows(&src[r * cols..][..buf.len()], weight, bias, eps, cols, buf)
            });
        } else {
            ln_rows(src, weight, bias, eps, cols, block);
        }
    });
}

/// [`layer_norm_f32`] for `f16` data: rows are widened to `f32`, normalised in
/// `f32` and rounded back once.
///
/// # Panics
/// As [`layer_norm_f32`].
pub fn layer_norm_f16(
    x: &[f16],
    weight: Option<&[f16]>,
    bias: Option<&[f16]>,
    eps: f32,
    cols: usize,
    out: &mut [f16],
) {
    layer_norm_half(x, weight, bias, eps, cols, out);
}

/// [`layer_norm_f32`] for `bf16` data: rows are widened to `f32`, normalised in
/// `f32` and rounded back once.
///
/// # Panics
/// As [`layer_norm_f32`].
pub fn layer_norm_bf16(
    x: &[bf16],
    weight: Option<&[bf16]>,
    bias: Option<&[bf16]>,
    eps: f32,
    cols: usize,
    out: &mut [bf16],
) {
    layer_norm_half(x, weight, bias, eps, cols, out);
}

/// The f16/bf16 entry points: rows widened to `f32`, normalised, rounded back.
fn layer_norm_half<T>(
    x: &[T],
    weight: Option<&[T]>,
    bias: Option<&[T]>,
    eps: f32,
    cols: usize,
    out: &mut [T],
) where
    T: Copy + Send + Sync,
    [T]: HalfFloatSliceExt,
{
    check(
        x.len(),
        weight.map(<[T]>::len),
        bias.map(<[T]>::len),
        cols,
        out.len(),
    );
    let (w, b) = (widen::widen(weight), widen::widen(bias));
    widen::map_rows_widened(x, cols, out, |row| {
        ln_row_inplace(row, w.as_deref(), b.as_deref(), eps)
    });
}

fn check(x_len: usize, w_len: Option<usize>, b_len: Option<usize>, cols: usize, out_len: usize) {
    assert_eq!(
        x_len, out_len,
        "[layer_norm] x has {x_len} elements, out has {out_len}"
    );
    if cols > 0 {
        assert!(
            x_len.is_multiple_of(cols),
            "[layer_norm] x has {x_len} elements, not a multiple of the row length {cols}"
        );
    }
    for (what, len) in [("weight", w_len), ("bias", b_len)] {
        if let Some(n) = len {
            assert_eq!(
                n, cols,
                "[layer_norm] {what} has {n} elements, x's last axis is {cols}"
            );
        }
    }
}

/// Largest `c^2 / var` accepted from the first-element shift: `var` is then a
/// difference of terms at most `1 + WELL_SHIFTED` times its size, losing at
/// most a few bits more than the exact-mean shift.
const WELL_SHIFTED: f32 = 8.0;

/// `(m, c, 1 / sqrt(var + eps))` of one row, where `m` is the shift and
/// `m + c` the mean (see the module docs).
#[inline(always)]
fn moments<const FMA: bool>(row: &[f32], eps: f32) -> (f32, f32, f32) {
    let m = row[0];
    let (c, var) = shifted_moments::<FMA>(row, m);
    // A NaN row fails the test and takes the fallback (and stays NaN).
    if c * c <= WELL_SHIFTED * var {
        return (m, c, 1.0 / (var + eps).sqrt());
    }
    let m = lanes::sum(row) / row.len() as f32;
    let (c, var) = shifted_moments::<FMA>(row, m);
    (m, c, 1.0 / (var + eps).sqrt())
}

/// `(mean(x - m), mean((x - m)^2) - mean(x - m)^2)` of one row. (A function,
/// not a closure: closures are not inlined reliably into the ISA-specific
/// copies, and `FMA` code outside them would call a software `fma`.)
#[inline(always)]
fn shifted_moments<const FMA: bool>(row: &[f32], m: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let (s1, s2) = lanes::sums_shifted::<FMA>(row, m);
    let c = s1 / n;
    (c, (s2 / n - c * c).max(0.0))
}

/// Writes `((src - m) - c) * inv * weight + bias` into `dst`.
#[inline(always)]
fn affine<const FMA: bool>(
    src: &[f32],
    (m, c, inv): (f32, f32, f32),
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    dst: &mut [f32],
) {
    match (weight, bias) {
        (Some(w), Some(b)) => {
            for (((o, v), w), b) in dst.iter_mut().zip(src).zip(w).zip(b) {
                *o = fmadd::<FMA>(((*v - m) - c) * inv, *w, *b);
            }
        }
        (Some(w), None) => {
            for ((o, v), w) in dst.iter_mut().zip(src).zip(w) {
                *o = ((*v - m) - c) * inv * *w;
            }
        }
        (None, Some(b)) => {
            for ((o, v), b) in dst.iter_mut().zip(src).zip(b) {
                *o = ((*v - m) - c) * inv + *b;
            }
        }
        (None, None) => {
            for (o, v) in dst.iter_mut().zip(src) {
                *o = ((*v - m) - c) * inv;
            }
        }
    }
}

fma_dispatch! {
    /// Normalises the whole rows of `x` into `out` (same length, multiple of `cols`).
    fn ln_rows(
        x: &[f32],
        weight: Option<&[f32]>,
        bias: Option<&[f32]>,
        eps: f32,
        cols: usize,
        out: &mut [f32],
    ) {
        for (src, dst) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
            affine::<FMA>(src, moments::<FMA>(src, eps), weight, bias, dst);
        }
    }
}

fma_dispatch! {
    /// Normalises one `f32` row in place (the f16/bf16 paths).
    fn ln_row_inplace(row: &mut [f32], weight: Option<&[f32]>, bias: Option<&[f32]>, eps: f32) {
        let stats = moments::<FMA>(row, eps);
        let n = row.len();
        // `affine` reads and writes disjoint slices; go through a small stack
        // buffer so the in-place update stays vectorised.
        let mut buf = [0.0f32; 256];
        let mut start = 0;
        while start < n {
            let end = (start + buf.len()).min(n);
            let chunk = &mut buf[..end - start];
            chunk.copy_from_slice(&row[start..end]);
            affine::<FMA>(
                chunk,
                stats,
                weight.map(|w| &w[start..end]),
                bias.map(|b| &b[start..end]),
                &mut row[start..end],
            );
            start = end;
        }
    }
}
