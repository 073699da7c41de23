//! `out = x · wᵀ` with quantized weights, choosing the kernel by the number
//! of activation rows.

use super::activation::Q8Activations;
use super::gemm::gemm_f32_unchecked;
use super::gemm_q8::gemm_q8;
use super::gemv::{check_product, gemv_q8};
use super::{exact_products, BlockFormat, QuantError, QuantIsa};

/// Most activation rows that take the integer GEMV (quantized activations,
/// weights streamed once per tile of rows); more take the prefill kernel.
pub const GEMV_MAX_ROWS: usize = 8;

/// `out = x · wᵀ`: `w` holds `n` rows of `k` elements in `format` (the layout
/// of a `Linear` weight, out × in), `x` is row-major `(m, k)` f32 and `out`
/// row-major `(m, n)`.
///
/// By default `x` is quantized to 8-bit blocks and multiplied with integer
/// dot products, as llama.cpp's CPU path does: up to [`GEMV_MAX_ROWS`] rows
/// (decoding) by [`super::gemv_q8`], more (prefill) by [`super::gemm_q8`]
/// where the CPU has AVX512-VNNI. The result is within
/// `Σ_j |w_j| · d_j / 2` (d the activation block scales, ≈ max|x|/254 per
/// block of 32) of the exact product, plus f32 round-off. Under
/// [`super::with_exact_products`] — and for prefill on CPUs without
/// AVX512-VNNI — `x` stays f32 ([`super::gemm_f32`]): exact to round-off.
pub fn matmul(
    format: BlockFormat,
    w: &[u8],
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) -> Result<(), QuantError> {
    check_product(format, w.len(), n, k, (m, x.len()), out.len())?;
    if !quantizes_activations(m) {
        gemm_f32_unchecked(format, w, n, k, x, m, out);
        return Ok(());
    }
    matmul_quantized(format, w, n, &Q8Activations::quantize(x, m, k), out)
}

/// Whether [`matmul`] multiplies `m` activation rows as 8-bit blocks (the
/// integer kernels) rather than as f32: so a caller that multiplies one
/// input by several weights (q, k and v; gate and up) can quantize it once
/// and call [`matmul_quantized`] for each.
pub fn quantizes_activations(m: usize) -> bool {
    !exact_products() && (m <= GEMV_MAX_ROWS || QuantIsa::detected() == QuantIsa::Avx512Vnni)
}

/// [`matmul`] on activations already quantized (`act`: `act.m` rows of
/// `act.k`), where [`quantizes_activations`] holds for `act.m`: the same
/// kernels ([`gemm_q8`] or [`gemv_q8`] by row count), the same result.
pub fn matmul_quantized(
    format: BlockFormat,
    w: &[u8],
    n: usize,
    act: &Q8Activations,
    out: &mut [f32],
) -> Result<(), QuantError> {
    if act.m > GEMV_MAX_ROWS {
        gemm_q8(format, w, n, act, out)
    } else {
        gemv_q8(format, w, n, act, out)
    }
}
