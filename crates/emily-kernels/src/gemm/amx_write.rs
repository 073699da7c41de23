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

/// Plain Rust (the tile model, the reference for the vector version and
/// its partial edge): `src` holds the block's rows at stride [`NR`], from
/// the first column to write.
///
/// # Safety
/// `into` addresses `rows` writable rows of `cols` words at stride `ldc`.
///
/// # Panics
/// If `src` is shorter than `(rows - 1) · NR + cols` words.
pub(crate) unsafe fn write_block_portable(
    src: &[u32],
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

/// AVX2 version (every CPU with AMX has it, and so do the CI hosts that
/// test it): four 8-word vectors per whole row, the plain code for the
/// columns of a partial edge.
///
/// # Safety
/// As [`write_block_portable`]; the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn write_block_avx2(
    src: &[u32; AMX_ROWS * NR],
    into: Block,
    accumulate: bool,
    p: Precision,
) {
    use std::arch::x86_64::*;
    let whole = into.cols / 8 * 8;
    for r in 0..into.rows {
        let s = src[r * NR..].as_ptr();
        // SAFETY: row r of the caller's region.
        let d = unsafe { into.c.add(r * into.ldc) };
        for j in (0..whole).step_by(8) {
            // SAFETY: words j..j + 8 are inside row r of the caller's region
            // and of the scratch row.
            unsafe {
                let v = _mm256_loadu_si256(s.add(j).cast());
                let dj = d.add(j);
                let v = match (accumulate, p) {
                    (false, _) => v,
                    (true, Precision::Bf16) => _mm256_castps_si256(_mm256_add_ps(
                        _mm256_castsi256_ps(v),
                        _mm256_loadu_ps(dj.cast()),
                    )),
                    (true, Precision::Int8) => _mm256_add_epi32(v, _mm256_loadu_si256(dj.cast())),
                };
                _mm256_storeu_si256(dj.cast(), v);
            }
        }
    }
    if whole < into.cols {
        let tail = Block {
            // SAFETY: column `whole` of the caller's region.
            c: unsafe { into.c.add(whole) },
            cols: into.cols - whole,
            ..into
        };
        // SAFETY: the remaining columns of the caller's region.
        unsafe { write_block_portable(&src[whole..], tail, accumulate, p) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 version equals the plain one, word for word, for every
    /// edge shape and mode (skipped on CPUs without AVX2).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vector_write_matches_the_plain_one() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            eprintln!("skipped: no AVX2 on this CPU");
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
                        write_block_avx2(&src, block(&mut vector), accumulate, p);
                    }
                    assert_eq!(plain, vector, "{rows}x{cols} accumulate {accumulate} {p:?}");
                }
            }
        }
    }
}
