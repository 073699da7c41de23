//! The AMX program's last step: a finished 32 × 32 block, stored by the tile
//! unit into an L1 scratch, copied or added into the output with ordinary
//! stores (f32 sums for bf16 products, wrapping i32 sums for int8 ones).
//! Whole rows of 32 words and partial blocks at the edges take the same path.

use super::pack_a::AMX_ROWS;
use super::packed::NR;
use super::Precision;

/// Where a finished block goes: `rows × cols` words at `c`, row stride `ldc`.
#[derive(Clone, Copy)]
pub(crate) struct Block {
    pub c: *mut u32,
    pub ldc: usize,
    pub rows: usize,
    pub cols: usize,
}

/// Plain Rust (the tile model, and the reference for the vector version).
///
/// # Safety
/// `into` addresses `rows` writable rows of `cols` words at stride `ldc`.
pub(crate) unsafe fn write_block_portable(
    src: &[u32; AMX_ROWS * NR],
    into: Block,
    accumulate: bool,
    p: Precision,
) {
    for r in 0..into.rows {
        // SAFETY: row r of the caller's region.
        let dst = unsafe { std::slice::from_raw_parts_mut(into.c.add(r * into.ldc), into.cols) };
        let src = &src[r * NR..][..into.cols];
        match (accumulate, p) {
            (false, _) => dst.copy_from_slice(src),
            (true, Precision::Bf16) => {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = (f32::from_bits(*d) + f32::from_bits(s)).to_bits();
                }
            }
            (true, Precision::Int8) => {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = d.wrapping_add(s);
                }
            }
        }
    }
}

/// AVX-512 version: two 16-word vectors per row, masked at a partial edge.
///
/// # Safety
/// As [`write_block_portable`]; the CPU has AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn write_block_avx512(
    src: &[u32; AMX_ROWS * NR],
    into: Block,
    accumulate: bool,
    p: Precision,
) {
    use std::arch::x86_64::*;
    let mask = |from: usize| -> __mmask16 {
        let n = into.cols.saturating_sub(from).min(16);
        ((1u32 << n) - 1) as __mmask16
    };
    let masks = [mask(0), mask(16)];
    for r in 0..into.rows {
        for (h, &m) in masks.iter().enumerate() {
            if m == 0 {
                continue;
            }
            // SAFETY: lanes under `m` are inside row r of the caller's
            // region; the scratch row holds 32 words.
            unsafe {
                let s = _mm512_loadu_si512(src.as_ptr().add(r * NR + 16 * h).cast());
                let d = into.c.add(r * into.ldc + 16 * h);
                let v = match (accumulate, p) {
                    (false, _) => s,
                    (true, Precision::Bf16) => _mm512_castps_si512(_mm512_add_ps(
                        _mm512_castsi512_ps(s),
                        _mm512_maskz_loadu_ps(m, d.cast()),
                    )),
                    (true, Precision::Int8) => {
                        _mm512_add_epi32(s, _mm512_maskz_loadu_epi32(m, d.cast()))
                    }
                };
                _mm512_mask_storeu_epi32(d.cast(), m, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX-512 version equals the plain one, word for word, for every
    /// edge shape and mode (skipped on CPUs without AVX-512 F).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vector_write_matches_the_plain_one() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: no AVX-512 F on this CPU");
            return;
        }
        let mut seed = 0x9e37_79b9u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let mut src = [0u32; AMX_ROWS * NR];
        let ldc = 37;
        for (rows, cols) in [(32, 32), (1, 1), (7, 17), (32, 16), (31, 31), (5, 32)] {
            for accumulate in [false, true] {
                for p in [Precision::Bf16, Precision::Int8] {
                    let word = |x: u32| match p {
                        // finite f32 values in [1, 2)
                        Precision::Bf16 => 0x3f80_0000 | (x & 0x007f_ffff),
                        Precision::Int8 => x,
                    };
                    src.iter_mut().for_each(|w| *w = word(next()));
                    let base: Vec<u32> = (0..40 * ldc).map(|_| word(next())).collect();
                    let (mut plain, mut vector) = (base.clone(), base);
                    let block = |c: &mut Vec<u32>| Block {
                        c: c.as_mut_ptr(),
                        ldc,
                        rows,
                        cols,
                    };
                    // SAFETY: rows × cols at stride ldc fit in the 40 × ldc buffers.
                    unsafe {
                        write_block_portable(&src, block(&mut plain), accumulate, p);
                        write_block_avx512(&src, block(&mut vector), accumulate, p);
                    }
                    assert_eq!(plain, vector, "{rows}x{cols} accumulate {accumulate} {p:?}");
                }
            }
        }
    }
}
