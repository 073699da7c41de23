//! Softmax and log-sum-exp of each row in one pass over the row: what a
//! cross-entropy loss and its gradient need (the loss reads `logsumexp(x)`,
//! the gradient `exp(x - logsumexp(x))`), with one exp per element instead
//! of one for the reduction and another for the gradient.
//!
//! Each row, while it sits in L1: its max `m`, then `e = exp(x - m)` stored
//! to the output while summing it (the lanes and order of
//! [`crate::reduce::reduce_last_axis_f32`]'s LogSumExp, so the log-sum-exp
//! `m + ln Σe` has the same bits as that reduction), then a scale by
//! `1 / Σe`. The probabilities therefore agree with `exp(x - lse)` to
//! round-off (a few ulp; they avoid the cancellation in `x - lse`). Rows
//! whose max is not finite (all -inf, a +inf or a NaN) and rows longer than
//! one reduction segment take `lse` from the reduction and
//! `exp(x - lse)` element by element, exactly as composed.

use crate::math::{self, dispatch_fma};
use crate::parallel;
use crate::reduce::{extreme, reduce_last_axis_f32, ReduceOp, SEGMENT};
use crate::softmax::exp_store_sum;

/// Relative cost per element (an exp plus three passes) for the threshold.
const COST: usize = 4;

/// A raw pointer to the log-sum-exp outputs, for tasks that each write
/// their own rows.
#[derive(Clone, Copy)]
struct RowsPtr(*mut f32);
// SAFETY: tasks write disjoint rows.
unsafe impl Send for RowsPtr {}
unsafe impl Sync for RowsPtr {}
impl RowsPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// One row: the probabilities times `c` into `out`, the log-sum-exp
/// returned.
#[inline(always)]
fn row<const FMA: bool>(x: &[f32], c: f32, out: &mut [f32]) -> f32 {
    let m = extreme::<true>(x);
    if !m.is_finite() || x.len() > SEGMENT {
        let mut lse = [0.0f32];
        reduce_last_axis_f32(ReduceOp::LogSumExp, x, 1, x.len(), &mut lse);
        for (o, &v) in out.iter_mut().zip(x) {
            *o = c * math::exp_with::<FMA>(v - lse[0]);
        }
        return lse[0];
    }
    let s = exp_store_sum::<FMA>(x, m, out);
    let k = (1.0 / s) as f32 * c;
    for o in out.iter_mut() {
        *o *= k;
    }
    (m as f64 + s.ln()) as f32
}

dispatch_fma! {
    fn k_rows<FMA>(x: &[f32], cols: usize, scale: Option<&[f32]>, out: &mut [f32], lse: &mut [f32]) {
        let rows = x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)).zip(lse.iter_mut());
        for (r, ((xr, or), l)) in rows.enumerate() {
            *l = row::<FMA>(xr, scale.map_or(1.0, |s| s[r]), or);
        }
    }
}

/// Softmax `probs = exp(x - lse)` (same shape as `x`; times `scale[r]` in
/// row `r` when given) and log-sum-exp `lse` (one per row) of each row of
/// the row-major `(rows, cols)` array `x`; see the module docs for how they
/// relate to the separate kernels (a scale multiplies the composed form's
/// result, and is folded into the row's `1 / Σe` otherwise). Parallel over
/// rows above the size threshold. Panics if a length disagrees.
pub fn softmax_logsumexp_f32(
    x: &[f32],
    rows: usize,
    cols: usize,
    scale: Option<&[f32]>,
    probs: &mut [f32],
    lse: &mut [f32],
) {
    assert_eq!(
        x.len(),
        rows * cols,
        "softmax_logsumexp: x.len() != rows * cols"
    );
    assert_eq!(
        probs.len(),
        x.len(),
        "softmax_logsumexp: probs.len() != x.len()"
    );
    assert_eq!(lse.len(), rows, "softmax_logsumexp: lse.len() != rows");
    if let Some(s) = scale {
        assert_eq!(s.len(), rows, "softmax_logsumexp: scale.len() != rows");
    }
    if cols == 0 {
        // Empty rows: log Σ of nothing is -inf, as the reduction gives.
        reduce_last_axis_f32(ReduceOp::LogSumExp, x, rows, cols, lse);
        return;
    }
    let lse_rows = RowsPtr(lse.as_mut_ptr());
    parallel::for_each_row_block_mut(probs, cols, cols * COST, |first, o| {
        let n = o.len() / cols;
        // SAFETY: this task alone writes rows first..first + n of `lse`.
        let l = unsafe { std::slice::from_raw_parts_mut(lse_rows.get().add(first), n) };
        let s = scale.map(|s| &s[first..first + n]);
        k_rows(&x[first * cols..first * cols + o.len()], cols, s, o, l);
    });
}
