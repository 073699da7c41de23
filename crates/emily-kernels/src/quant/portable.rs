//! The portable quantized GEMV: each weight block is dequantized into a small
//! f32 buffer and dotted with the activation codes, 32 at a time (plain loops
//! for any CPU; the x86 kernels stay in the integer domain instead).

use super::activation::Q8Activations;
use super::row::dequantize_row;
use super::BlockFormat;

/// Output columns `r0..r1` of `out = act · wᵀ`, `out` row-major `(act.m, n)`.
///
/// # Safety
/// `w` holds `n` rows of `act.k` elements of `format`; `out` points at
/// `act.m * n` floats and no one else writes columns `r0..r1`; `r1 <= n`.
pub(crate) unsafe fn gemv_rows(
    format: BlockFormat,
    w: &[u8],
    act: &Q8Activations,
    out: *mut f32,
    n: usize,
    r0: usize,
    r1: usize,
) {
    let (be, bb) = (format.block_elems(), format.block_bytes());
    let k = act.k;
    let row_bytes = k / be * bb;
    let mut buf = vec![0f32; be];
    for r in r0..r1 {
        let wr = &w[r * row_bytes..(r + 1) * row_bytes];
        let mut sums = vec![0f32; act.m];
        for (blk, wb) in wr.chunks_exact(bb).enumerate() {
            dequantize_row(format, wb, &mut buf).expect("block sizes match the format");
            for (i, s) in sums.iter_mut().enumerate() {
                let qs = &act.row_qs(i)[blk * be..(blk + 1) * be];
                let ds = &act.d[i * (k / 32) + blk * be / 32..];
                for (sub, (wv, q)) in buf.chunks_exact(32).zip(qs.chunks_exact(32)).enumerate() {
                    let dot: f32 = wv.iter().zip(q).map(|(&a, &b)| a * b as f32).sum();
                    *s += dot * ds[sub];
                }
            }
        }
        for (i, s) in sums.into_iter().enumerate() {
            // SAFETY: `i * n + r < m * n`, a column this call owns.
            unsafe { *out.add(i * n + r) = s };
        }
    }
}
