//! The broadcast layout's interleaving of a micro-panel: `rows` rows of
//! words (row `r` at `r · stride`) stored column by column, the `rows` words
//! of column `g` next to each other — a transpose, which the A packing does
//! for every word of every activation row of the encoder's products.

/// Writes `dst[g · rows + r] = src[r · stride + g]` for `g < dst.len() /
/// rows` and `r < rows`; 16-word blocks on AVX-512 (a 16 × 16 register
/// transpose per block) when `rows <= 16`, word by word otherwise.
///
/// # Panics
/// If `rows` is 0, `dst.len()` is not a multiple of `rows`, or a row's
/// words run past `src`.
pub(crate) fn interleave_rows(src: &[u32], stride: usize, rows: usize, dst: &mut [u32]) {
    assert!(
        rows > 0 && dst.len().is_multiple_of(rows),
        "interleave_rows: {} words are not whole columns of {rows} rows",
        dst.len()
    );
    let cols = dst.len() / rows;
    if cols == 0 {
        return;
    }
    assert!(
        (rows - 1) * stride + cols <= src.len(),
        "interleave_rows: {rows} rows of {cols} words {stride} apart exceed {} words",
        src.len()
    );
    #[cfg(target_arch = "x86_64")]
    if rows <= 16 && crate::simd::isa() == crate::simd::Isa::Avx512 {
        // SAFETY: AVX-512 F is present; the bounds were checked above.
        unsafe { interleave_avx512(src, stride, rows, cols, dst) };
        return;
    }
    interleave_scalar(src, stride, rows, dst);
}

/// [`interleave_rows`] word by word.
fn interleave_scalar(src: &[u32], stride: usize, rows: usize, dst: &mut [u32]) {
    for (g, col) in dst.chunks_exact_mut(rows).enumerate() {
        for (r, w) in col.iter_mut().enumerate() {
            *w = src[r * stride + g];
        }
    }
}

/// [`interleave_rows`] by 16-column blocks: masked loads of the rows (the
/// missing rows and, in the last block, the missing columns read as zero),
/// a 16 × 16 transpose, and one masked store of `rows` words per column.
///
/// # Safety
/// AVX-512 F CPU; `rows <= 16`, `dst.len() == rows · cols` and every row's
/// `cols` words lie inside `src`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn interleave_avx512(src: &[u32], stride: usize, rows: usize, cols: usize, dst: &mut [u32]) {
    use std::arch::x86_64::*;
    let row_mask = ((1u32 << rows) - 1) as __mmask16;
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    for g0 in (0..cols).step_by(16) {
        let n = (cols - g0).min(16);
        let col_mask = ((1u32 << n) - 1) as __mmask16;
        let mut r = [_mm512_setzero_si512(); 16];
        for (i, v) in r.iter_mut().take(rows).enumerate() {
            // SAFETY: row i's words g0 .. g0 + n lie inside `src`.
            *v = unsafe { _mm512_maskz_loadu_epi32(col_mask, sp.add(i * stride + g0).cast()) };
        }
        // Pairs of rows, then quads: t/u hold 2/4-row runs of each column.
        let mut t = [_mm512_setzero_si512(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm512_setzero_si512(); 16];
        for q in 0..4 {
            let (a, b) = (4 * q, 4 * q + 2);
            // Columns 4k + 0, 1, 2, 3 of rows 4q .. 4q + 4, in 128-bit lane k.
            u[4 * q] = _mm512_unpacklo_epi64(t[a], t[b]);
            u[4 * q + 1] = _mm512_unpackhi_epi64(t[a], t[b]);
            u[4 * q + 2] = _mm512_unpacklo_epi64(t[a + 1], t[b + 1]);
            u[4 * q + 3] = _mm512_unpackhi_epi64(t[a + 1], t[b + 1]);
        }
        for c in 0..4 {
            // Lanes of column c (+ 4k): rows 0-3 | 4-7, then 8-11 | 12-15.
            let v0 = _mm512_shuffle_i32x4::<0x88>(u[c], u[4 + c]);
            let v1 = _mm512_shuffle_i32x4::<0xdd>(u[c], u[4 + c]);
            let v2 = _mm512_shuffle_i32x4::<0x88>(u[8 + c], u[12 + c]);
            let v3 = _mm512_shuffle_i32x4::<0xdd>(u[8 + c], u[12 + c]);
            let out = [
                (c, _mm512_shuffle_i32x4::<0x88>(v0, v2)),
                (c + 4, _mm512_shuffle_i32x4::<0x88>(v1, v3)),
                (c + 8, _mm512_shuffle_i32x4::<0xdd>(v0, v2)),
                (c + 12, _mm512_shuffle_i32x4::<0xdd>(v1, v3)),
            ];
            for (g, col) in out {
                if g < n {
                    // SAFETY: column g0 + g < cols: its `rows` words lie inside `dst`.
                    unsafe {
                        _mm512_mask_storeu_epi32(dp.add((g0 + g) * rows).cast(), row_mask, col)
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row count 1..=20 (past the register width too) and column
    /// counts around the 16-word block, against the word-by-word loop.
    #[test]
    fn interleaving_matches_the_scalar_loop() {
        let mut x = 0x9e37_79b9u32;
        for rows in 1..=20 {
            for cols in [0, 1, 7, 15, 16, 17, 33, 77] {
                let stride = cols + 3;
                let src: Vec<u32> = (0..rows * stride)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x
                    })
                    .collect();
                let mut want = vec![0u32; rows * cols];
                interleave_scalar(&src, stride, rows, &mut want);
                let mut got = vec![1u32; rows * cols];
                interleave_rows(&src, stride, rows, &mut got);
                assert_eq!(got, want, "{rows} rows x {cols} columns");
            }
        }
    }
}
