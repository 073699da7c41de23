//! The strips' transposes: a strip's queries (or output cotangents) by row
//! into features by row, so a product's vectors run along the strip's rows.
//! On AVX2 hosts whole 8 × 8 blocks go through registers (eight loads,
//! 24 shuffles, eight stores instead of 64 scalar stores); the edges, and
//! every other build, go element by element.

/// `dst[c·stride + j] = src[j·ld + c]` for the first `rows` rows of `src`
/// (row stride `ld`) and `c < cols`. `VEC`: the caller is compiled for
/// AVX2 + FMA (the `FMA` parameter of the strips on x86-64), so whole 8 × 8
/// blocks may use AVX registers.
#[inline(always)]
pub(super) fn transpose_into<const VEC: bool>(
    src: &[f32],
    rows: usize,
    cols: usize,
    ld: usize,
    dst: &mut [f32],
    stride: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        (rows - 1) * ld + cols <= src.len() && (cols - 1) * stride + rows <= dst.len(),
        "attention backward: a transpose past its buffers"
    );
    let (rb, cb) = if VEC && cfg!(target_arch = "x86_64") {
        (rows / 8 * 8, cols / 8 * 8)
    } else {
        (0, 0)
    };
    #[cfg(target_arch = "x86_64")]
    for j0 in (0..rb).step_by(8) {
        for c0 in (0..cb).step_by(8) {
            // SAFETY: `VEC` callers run with AVX2 (the contract above); the
            // block's rows and columns are inside the bounds asserted above.
            unsafe {
                avx::block8(
                    src.as_ptr().add(j0 * ld + c0),
                    ld,
                    dst.as_mut_ptr().add(c0 * stride + j0),
                    stride,
                )
            };
        }
    }
    // The rest: columns past the blocks for the blocks' rows, then every
    // column of the rows past them.
    for (j, row) in src.chunks(ld).take(rows).enumerate() {
        let c_from = if j < rb { cb } else { 0 };
        for (c, &x) in row[..cols].iter().enumerate().skip(c_from) {
            dst[c * stride + j] = x;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// Transposes the 8 × 8 block at `src` (rows `ld` apart) into `dst`
    /// (rows `stride` apart).
    ///
    /// # Safety
    /// The CPU has AVX; `src` addresses 8 rows of 8 floats `ld` apart and
    /// `dst` 8 writable rows of 8 floats `stride` apart.
    #[inline(always)]
    pub(super) unsafe fn block8(src: *const f32, ld: usize, dst: *mut f32, stride: usize) {
        // SAFETY: the caller's contract.
        unsafe {
            let r: [__m256; 8] = std::array::from_fn(|j| _mm256_loadu_ps(src.add(j * ld)));
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let cols = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
            for (c, v) in cols.into_iter().enumerate() {
                _mm256_storeu_ps(dst.add(c * stride), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both builds agree with the definition at whole blocks and edges (the
    /// vector one runs its blocks only where this CPU has AVX2).
    #[test]
    fn transposes_match_the_definition() {
        let avx2 = crate::simd::isa() != crate::simd::Isa::Baseline;
        for (rows, cols) in [(1, 1), (16, 16), (7, 9), (16, 77), (9, 8), (8, 1), (33, 17)] {
            let ld = cols + 3;
            let stride = rows + 5;
            let src: Vec<f32> = (0..rows * ld).map(|i| i as f32 * 0.25 - 7.0).collect();
            let mut want = vec![-1.0f32; cols * stride];
            for j in 0..rows {
                for c in 0..cols {
                    want[c * stride + j] = src[j * ld + c];
                }
            }
            let mut plain = vec![-1.0f32; cols * stride];
            transpose_into::<false>(&src, rows, cols, ld, &mut plain, stride);
            assert_eq!(plain, want, "{rows}x{cols}");
            if avx2 {
                let mut vec = vec![-1.0f32; cols * stride];
                transpose_into::<true>(&src, rows, cols, ld, &mut vec, stride);
                assert_eq!(vec, want, "{rows}x{cols} (AVX2)");
            }
        }
    }
}
