//! Prefill-size products: `out = x · wᵀ` for many activation rows, in f32.
//!
//! The weight rows are split into panels of [`PANEL_ROWS`] over the pool; a
//! worker dequantizes its panel one depth slice of [`DEPTH`] at a time into
//! an L2-resident f32 tile and multiplies every activation row with it
//! through the `gemm` crate's f32 kernel, accumulating into the output. Each
//! weight block is thus dequantized once per call and reused by all `m`
//! rows, and no more than one tile per thread of the weights is ever f32.
//! The activations stay f32, so the result is the exact product with the
//! dequantized weights up to f32 round-off.

use gemm::Parallelism;

use super::gemv::check_product;
use super::row::dequantize_row;
use super::send_ptr::SendPtr;
use super::{BlockFormat, QuantError};
use crate::parallel;

/// Weight rows per panel.
const PANEL_ROWS: usize = 96;
/// Depth (elements along k) per dequantized tile: a multiple of every block.
const DEPTH: usize = 512;

/// `out = x · wᵀ` in f32: `w` holds `n` rows of `k` elements in `format`,
/// `x` is row-major `(m, k)`, `out` row-major `(m, n)`.
pub fn gemm_f32(
    format: BlockFormat,
    w: &[u8],
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) -> Result<(), QuantError> {
    check_product(format, w.len(), n, k, (m, x.len()), out.len())?;
    gemm_f32_unchecked(format, w, n, k, x, m, out);
    Ok(())
}

/// [`gemm_f32`] after [`check_product`].
pub(crate) fn gemm_f32_unchecked(
    format: BlockFormat,
    w: &[u8],
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    let row_bytes = w.len() / n;
    gemm_dequantized(n, k, x, m, out, |r, cols, tile| {
        let (b0, b1) = (
            cols.start / format.block_elems() * format.block_bytes(),
            cols.end / format.block_elems() * format.block_bytes(),
        );
        let wr = &w[r * row_bytes..(r + 1) * row_bytes];
        dequantize_row(format, &wr[b0..b1], tile).expect("tile sizes are whole blocks");
    });
}

/// `out = x · wᵀ` in f32 for `n` weight rows of `k` values that
/// `row(r, cols, tile)` dequantizes, a part at a time (`cols`: a range of
/// columns starting at a multiple of 512, `tile`: its `cols.len()` values):
/// panels of rows dequantized into a tile of up to 512 columns and
/// multiplied by the f32 GEMM. `x` is row-major `(m, k)`, `out` row-major
/// `(m, n)`; `k > 0`.
pub(crate) fn gemm_dequantized(
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
    row: impl Fn(usize, std::ops::Range<usize>, &mut [f32]) + Sync,
) {
    let panels = n.div_ceil(PANEL_ROWS);
    let o = SendPtr(out.as_mut_ptr());
    let cost = PANEL_ROWS.saturating_mul(k).saturating_mul(m);
    parallel::for_each_range(panels, cost, |p0, p1| {
        let mut tile = vec![0f32; PANEL_ROWS * DEPTH.min(k)];
        for p in p0..p1 {
            let r0 = p * PANEL_ROWS;
            let rows = PANEL_ROWS.min(n - r0);
            let mut k0 = 0;
            while k0 < k {
                let depth = DEPTH.min(k - k0);
                for r in 0..rows {
                    row(
                        r0 + r,
                        k0..k0 + depth,
                        &mut tile[r * depth..(r + 1) * depth],
                    );
                }
                // SAFETY: `x` is (m, k) and `out` (m, n) (checked above); the
                // tile holds `rows` rows of `depth`; this worker alone writes
                // output columns r0..r0 + rows.
                unsafe {
                    gemm::gemm(
                        m,
                        rows,
                        depth,
                        o.get().add(r0),
                        1,
                        n as isize,
                        k0 > 0,
                        x.as_ptr().add(k0),
                        1,
                        k as isize,
                        tile.as_ptr(),
                        depth as isize,
                        1,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
                k0 += depth;
            }
        }
    });
}
