//! RMSNorm over the last axis: `out = x / sqrt(mean(x^2) + eps) * weight`.
//!
//! Each row is read twice while it sits in L1 (sum of squares, then the scaled
//! write with the weight multiply fused in); rows are split across the pool;
//! outputs too large for the cache are written with streaming stores.

use half::{bf16, f16};

use super::lanes::{self, fma_dispatch};
use super::{stream, widen};
use crate::parallel;

/// RMSNorm of each length-`cols` row of `x` into `out`:
/// `out = x / sqrt(mean(x^2) + eps) * weight` (no weight: `* 1`).
///
/// The mean of squares is accumulated in `f32` with 32 independent partial
/// sums. `cols == 0` is a no-op.
///
/// # Panics
/// If `x` and `out` differ in length, the length is not a multiple of `cols`,
/// or `weight` does not have `cols` elements.
pub fn rms_norm_f32(x: &[f32], weight: Option<&[f32]>, eps: f32, cols: usize, out: &mut [f32]) {
    check(x.len(), weight.map(<[f32]>::len), cols, out.len());
    if cols == 0 || x.is_empty() {
        return;
    }
    let streaming = stream::should_stream(out.len());
    parallel::for_each_row_block_mut(out, cols, cols, |row0, block| {
        let src = &x[row0 * cols..row0 * cols + block.len()];
        if streaming {
            stream::stream_rows(block, cols, |r, buf| {
                rms_rows(&src[r * cols..][..buf.len()], weight, eps, cols, buf)
            });
        } else {
            rms_rows(src, weight, eps, cols, block);
        }
    });
}

/// [`rms_norm_f32`] for `f16` data: each row is widened to `f32`, normalised in
/// `f32` and rounded back once.
///
/// # Panics
/// As [`rms_norm_f32`].
pub fn rms_norm_f16(x: &[f16], weight: Option<&[f16]>, eps: f32, cols: usize, out: &mut [f16]) {
    check(x.len(), weight.map(<[f16]>::len), cols, out.len());
    let w = widen::widen(weight);
    widen::map_rows_widened(x, cols, out, |row| rms_row_inplace(row, w.as_deref(), eps));
}

/// [`rms_norm_f32`] for `bf16` data: each row is widened to `f32`, normalised in
/// `f32` and rounded back once.
///
/// # Panics
/// As [`rms_norm_f32`].
pub fn rms_norm_bf16(x: &[bf16], weight: Option<&[bf16]>, eps: f32, cols: usize, out: &mut [bf16]) {
    check(x.len(), weight.map(<[bf16]>::len), cols, out.len());
    let w = widen::widen(weight);
    widen::map_rows_widened(x, cols, out, |row| rms_row_inplace(row, w.as_deref(), eps));
}

fn check(x_len: usize, w_len: Option<usize>, cols: usize, out_len: usize) {
    assert_eq!(
        x_len, out_len,
        "[rms_norm] x has {x_len} elements, out has {out_len}"
    );
    if cols > 0 {
        assert!(
            x_len.is_multiple_of(cols),
            "[rms_norm] x has {x_len} elements, not a multiple of the row length {cols}"
        );
    }
    if let Some(n) = w_len {
        assert_eq!(
            n, cols,
            "[rms_norm] weight has {n} elements, x's last axis is {cols}"
        );
    }
}

/// `1 / sqrt(mean(x^2) + eps)` of one row.
#[inline(always)]
pub(super) fn inv_rms<const FMA: bool>(row: &[f32], eps: f32) -> f32 {
    1.0 / (lanes::sum_sq::<FMA>(row) / row.len() as f32 + eps).sqrt()
}

/// Rows whose sums [`rms_rows`] (rows of at most [`GROUP_MAX_COLS`]
/// features) and the gradient's `grad_rows` accumulate side by side: one
/// short row's dependent chain (a sum, a square root, a division) would leave
/// the core idle.
pub(super) const GROUP: usize = 4;

/// Lanes of the per-row partial sums in a group (one AVX2 vector).
pub(super) const GW: usize = 8;

/// The longest rows that [`rms_rows`] groups: longer rows keep the core busy
/// alone with [`inv_rms`]'s many independent partial sums.
const GROUP_MAX_COLS: usize = 256;

fma_dispatch! {
    /// Normalises the whole rows of `x` into `out` (same length, multiple of
    /// `cols`). Short rows whose length is a multiple of [`GW`] run [`GROUP`]
    /// at a time.
    fn rms_rows(x: &[f32], weight: Option<&[f32]>, eps: f32, cols: usize, out: &mut [f32]) {
        let rows = x.len() / cols;
        let grouped = if cols.is_multiple_of(GW) && cols <= GROUP_MAX_COLS {
            rows / GROUP * GROUP
        } else {
            0
        };
        for g0 in (0..grouped).step_by(GROUP) {
            let at = g0 * cols..(g0 + GROUP) * cols;
            let inv = group_inv_rms::<FMA>(&x[at.clone()], eps, cols);
            let rows = x[at.clone()].chunks_exact(cols).zip(out[at].chunks_exact_mut(cols));
            for ((src, dst), inv) in rows.zip(inv) {
                scale_row(src, weight, inv, dst);
            }
        }
        let at = grouped * cols..;
        for (src, dst) in x[at.clone()].chunks_exact(cols).zip(out[at].chunks_exact_mut(cols)) {
            scale_row(src, weight, inv_rms::<FMA>(src, eps), dst);
        }
    }
}

/// `dst = src · inv (· w)`.
#[inline(always)]
fn scale_row(src: &[f32], weight: Option<&[f32]>, inv: f32, dst: &mut [f32]) {
    match weight {
        Some(w) => {
            for ((o, v), w) in dst.iter_mut().zip(src).zip(w) {
                *o = *v * inv * *w;
            }
        }
        None => {
            for (o, v) in dst.iter_mut().zip(src) {
                *o = *v * inv;
            }
        }
    }
}

/// `1 / sqrt(mean(x²) + eps)` of each of the [`GROUP`] rows of `x` (length
/// `cols`, a multiple of [`GW`]), their partial sums interleaved.
#[inline(always)]
fn group_inv_rms<const FMA: bool>(x: &[f32], eps: f32, cols: usize) -> [f32; GROUP] {
    let mut ss = [[0.0f32; GW]; GROUP];
    for c0 in (0..cols).step_by(GW) {
        for (r, acc) in ss.iter_mut().enumerate() {
            let xv: &[f32; GW] = x[r * cols + c0..][..GW].try_into().unwrap();
            for l in 0..GW {
                acc[l] = lanes::fmadd::<FMA>(xv[l], xv[l], acc[l]);
            }
        }
    }
    ss.map(|acc| 1.0 / (lanes::halving_sum(acc) / cols as f32 + eps).sqrt())
}

fma_dispatch! {
    /// Normalises one `f32` row in place (the f16/bf16 paths).
    fn rms_row_inplace(row: &mut [f32], weight: Option<&[f32]>, eps: f32) {
        let inv = inv_rms::<FMA>(row, eps);
        match weight {
            Some(w) => {
                for (v, w) in row.iter_mut().zip(w) {
                    *v = *v * inv * *w;
                }
            }
            None => {
                for v in row.iter_mut() {
                    *v *= inv;
                }
            }
        }
    }
}
