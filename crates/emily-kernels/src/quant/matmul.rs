//! `out = x · wᵀ` with quantized weights, choosing the kernel by the number
//! of activation rows.

use super::activation::Q8Activations;
use super::gemm::gemm_f32;
use super::gemv::{check_product, gemv_q8};
use super::{BlockFormat, QuantError};

/// Most activation rows that take the integer GEMV (quantized activations,
/// weights streamed once per tile of rows); more take the f32 GEMM.
pub const GEMV_MAX_ROWS: usize = 8;

/// `out = x · wᵀ`: `w` holds `n` rows of `k` elements in `format` (the layout
/// of a `Linear` weight, out × in), `x` is row-major `(m, k)` f32 and `out`
/// row-major `(m, n)`.
///
/// Up to [`GEMV_MAX_ROWS`] rows (decoding) quantize `x` to 8-bit blocks and
/// use integer dot products ([`super::gemv_q8`]): the result is within
/// `Σ_j |w_j| · d_j / 2` (d the activation block scales, ≈ max|x|/254 per
/// block of 32) of the exact product, plus f32 round-off. More rows
/// (prefill) keep `x` in f32 ([`gemm_f32`]) and are exact to round-off.
pub fn matmul(
    format: BlockFormat,
    w: &[u8],
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) -> Result<(), QuantError> {
    check_product(format, w.len(), n, k, m, out.len())?;
    if x.len() != m * k {
        return Err(QuantError::InputLength { m, k, len: x.len() });
    }
    if m > GEMV_MAX_ROWS {
        return gemm_f32(format, w, n, k, x, m, out);
    }
    let act = Q8Activations::quantize(x, m, k);
    gemv_q8(format, w, n, &act, out)
}
