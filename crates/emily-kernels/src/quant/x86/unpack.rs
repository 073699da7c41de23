//! Weight blocks unpacked for the prefill tiles: every format as unsigned
//! byte codes `u` with, per sub-block of [`Unpack::SUB`] elements, a scale
//! `s` and a correction `c` such that the weight is `w = s·u + c`.
//!
//! With activations `x ≈ d_a·q` (8-bit blocks of 32), a sub-block's share of
//! `Σ w·x` is then `s·d_a·Σ u·q + c·(d_a·Σ q)`: an unsigned × signed integer
//! dot product (`vpdpbusd`) plus the activation block sum the
//! [`Q8Activations`](super::super::Q8Activations) already carry. Symmetric
//! formats shift their codes to be unsigned (`Q8_0`: `u = q + 128`,
//! `c = −128·d`; `Q4_0`: `c = −8·d`; ...), min formats put the min in `c`.

use std::arch::x86_64::*;

use super::super::kquants::scale_min;
use super::kquants::{q4k_chunk, q5k_chunk};
use super::{bit4_bytes_avx2, f16_at, nibbles16};

/// One weight format as the tile packer sees it.
pub(crate) trait Unpack {
    /// Elements per block.
    const ELEMS: usize;
    /// Bytes per block.
    const BYTES: usize;
    /// Elements per sub-block sharing one scale and correction (32 or 16).
    const SUB: usize;

    /// Writes the block at `w` as `ELEMS` codes at `codes`, and the scale and
    /// correction of sub-block `s` at `scale[s * stride]`, `corr[s * stride]`.
    ///
    /// # Safety
    /// `BYTES` readable at `w`, `ELEMS` writable at `codes`, `ELEMS / SUB`
    /// strided floats writable at `scale` and `corr`; AVX2 and F16C enabled.
    unsafe fn unpack(w: *const u8, codes: *mut u8, scale: *mut f32, corr: *mut f32, stride: usize);
}

/// Stores 32 codes.
#[inline(always)]
unsafe fn put(codes: *mut u8, v: __m256i) {
    // SAFETY: 32 writable bytes at `codes` (the caller's contract).
    unsafe { _mm256_storeu_si256(codes.cast(), v) }
}

/// Byte j of the result is 0x10 when bit j of the u32 at `p` is set.
#[inline(always)]
unsafe fn high_bits(p: *const u8) -> __m256i {
    // SAFETY: 4 readable bytes at `p`; AVX2 enabled in every caller.
    unsafe { bit4_bytes_avx2(p.cast::<u32>().read_unaligned()) }
}

/// Defines a 32-element format: `$codes(w)` gives the unsigned codes and
/// `$sc(w)` the (scale, correction) pair.
macro_rules! block32 {
    ($(#[$doc:meta])* $name:ident, $bytes:literal, |$w:ident| $codes:expr, $sc:expr) => {
        $(#[$doc])*
        pub(crate) struct $name;
        impl Unpack for $name {
            const ELEMS: usize = 32;
            const BYTES: usize = $bytes;
            const SUB: usize = 32;
            #[inline(always)]
            unsafe fn unpack(
                $w: *const u8,
                codes: *mut u8,
                scale: *mut f32,
                corr: *mut f32,
                _stride: usize,
            ) {
                // SAFETY: the trait's contract.
                unsafe {
                    put(codes, $codes);
                    let (s, c): (f32, f32) = $sc;
                    *scale = s;
                    *corr = c;
                }
            }
        }
    };
}

block32!(
    /// GGML `Q8_0`: `u = q + 128`.
    Q8_0, 34, |w| _mm256_xor_si256(_mm256_loadu_si256(w.add(2).cast()), _mm256_set1_epi8(-128)),
    { let d = f16_at(w); (d, -128.0 * d) }
);
block32!(
    /// GGML `Q4_0`: codes offset by 8.
    Q4_0, 18, |w| nibbles16(w.add(2)),
    { let d = f16_at(w); (d, -8.0 * d) }
);
block32!(
    /// GGML `Q4_1` and `Int4G32`: scale and min.
    Q4_1, 20, |w| nibbles16(w.add(4)),
    (f16_at(w), f16_at(w.add(2)))
);
block32!(
    /// GGML `Q5_0`: 5-bit codes offset by 16.
    Q5_0, 22, |w| _mm256_or_si256(nibbles16(w.add(6)), high_bits(w.add(2))),
    { let d = f16_at(w); (d, -16.0 * d) }
);
block32!(
    /// GGML `Q5_1`: 5-bit codes with scale and min.
    Q5_1, 24, |w| _mm256_or_si256(nibbles16(w.add(8)), high_bits(w.add(4))),
    (f16_at(w), f16_at(w.add(2)))
);
block32!(
    /// Affine 8-bit, groups of 32 (codes already unsigned).
    Int8G32, 36, |w| _mm256_loadu_si256(w.add(4).cast()),
    (f16_at(w), f16_at(w.add(2)))
);

/// Affine 8-bit, groups of 64: two sub-blocks with the same scale and bias.
pub(crate) struct Int8G64;
impl Unpack for Int8G64 {
    const ELEMS: usize = 64;
    const BYTES: usize = 68;
    const SUB: usize = 32;
    #[inline(always)]
    unsafe fn unpack(w: *const u8, codes: *mut u8, scale: *mut f32, corr: *mut f32, stride: usize) {
        // SAFETY: the trait's contract.
        unsafe {
            put(codes, _mm256_loadu_si256(w.add(4).cast()));
            put(codes.add(32), _mm256_loadu_si256(w.add(36).cast()));
            let (d, m) = (f16_at(w), f16_at(w.add(2)));
            for s in 0..2 {
                *scale.add(s * stride) = d;
                *corr.add(s * stride) = m;
            }
        }
    }
}

/// Affine 4-bit, groups of 64: byte j holds element j low, j + 32 high.
pub(crate) struct Int4G64;
impl Unpack for Int4G64 {
    const ELEMS: usize = 64;
    const BYTES: usize = 36;
    const SUB: usize = 32;
    #[inline(always)]
    unsafe fn unpack(w: *const u8, codes: *mut u8, scale: *mut f32, corr: *mut f32, stride: usize) {
        // SAFETY: the trait's contract.
        unsafe {
            let v = _mm256_loadu_si256(w.add(4).cast());
            let low = _mm256_set1_epi8(0x0F);
            put(codes, _mm256_and_si256(v, low));
            put(
                codes.add(32),
                _mm256_and_si256(_mm256_srli_epi16::<4>(v), low),
            );
            let (d, m) = (f16_at(w), f16_at(w.add(2)));
            for s in 0..2 {
                *scale.add(s * stride) = d;
                *corr.add(s * stride) = m;
            }
        }
    }
}

/// The eight (scale, correction) pairs of a `Q4_K`/`Q5_K` super-block.
#[inline(always)]
unsafe fn k_scales(w: *const u8, scale: *mut f32, corr: *mut f32, stride: usize) {
    // SAFETY: 16 readable bytes at `w`; 8 strided floats at `scale`, `corr`.
    unsafe {
        let (d, dmin) = (f16_at(w), f16_at(w.add(2)));
        let q = std::slice::from_raw_parts(w.add(4), 12);
        for j in 0..8 {
            let (sc, mn) = scale_min(j, q);
            *scale.add(j * stride) = d * sc as f32;
            *corr.add(j * stride) = -dmin * mn as f32;
        }
    }
}

/// GGML `Q4_K`: sub-blocks of 32 with 6-bit scales and mins.
pub(crate) struct Q4K;
impl Unpack for Q4K {
    const ELEMS: usize = 256;
    const BYTES: usize = 144;
    const SUB: usize = 32;
    #[inline(always)]
    unsafe fn unpack(w: *const u8, codes: *mut u8, scale: *mut f32, corr: *mut f32, stride: usize) {
        // SAFETY: the trait's contract.
        unsafe {
            k_scales(w, scale, corr, stride);
            for c in 0..4 {
                let (lo, hi) = q4k_chunk(w, c);
                put(codes.add(64 * c), lo);
                put(codes.add(64 * c + 32), hi);
            }
        }
    }
}

/// GGML `Q5_K`: as `Q4_K` with a fifth bit per code.
pub(crate) struct Q5K;
impl Unpack for Q5K {
    const ELEMS: usize = 256;
    const BYTES: usize = 176;
    const SUB: usize = 32;
    #[inline(always)]
    unsafe fn unpack(w: *const u8, codes: *mut u8, scale: *mut f32, corr: *mut f32, stride: usize) {
        // SAFETY: the trait's contract.
        unsafe {
            k_scales(w, scale, corr, stride);
            let mut qh = _mm256_loadu_si256(w.add(16).cast());
            for c in 0..4 {
                let (lo, hi) = q5k_chunk(w, c, &mut qh);
                put(codes.add(64 * c), lo);
                put(codes.add(64 * c + 32), hi);
            }
        }
    }
}

/// GGML `Q6_K`: sub-blocks of 16 with signed 8-bit scales, codes offset by 32.
pub(crate) struct Q6K;
impl Unpack for Q6K {
    const ELEMS: usize = 256;
    const BYTES: usize = 210;
    const SUB: usize = 16;
    #[inline(always)]
    unsafe fn unpack(w: *const u8, codes: *mut u8, scale: *mut f32, corr: *mut f32, stride: usize) {
        // SAFETY: the trait's contract.
        unsafe {
            let d = f16_at(w.add(208));
            for s in 0..16 {
                let v = d * (*w.add(192 + s) as i8) as f32;
                *scale.add(s * stride) = v;
                *corr.add(s * stride) = -32.0 * v;
            }
            let low = _mm256_set1_epi8(0x0F);
            let top = _mm256_set1_epi8(0x30);
            for h in 0..2 {
                let ql0 = _mm256_loadu_si256(w.add(64 * h).cast());
                let ql1 = _mm256_loadu_si256(w.add(64 * h + 32).cast());
                let qh = _mm256_loadu_si256(w.add(128 + 32 * h).cast());
                let out = codes.add(128 * h);
                put(
                    out,
                    _mm256_or_si256(
                        _mm256_and_si256(ql0, low),
                        _mm256_and_si256(_mm256_slli_epi16::<4>(qh), top),
                    ),
                );
                put(
                    out.add(32),
                    _mm256_or_si256(
                        _mm256_and_si256(ql1, low),
                        _mm256_and_si256(_mm256_slli_epi16::<2>(qh), top),
                    ),
                );
                put(
                    out.add(64),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), low),
                        _mm256_and_si256(qh, top),
                    ),
                );
                put(
                    out.add(96),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), low),
                        _mm256_and_si256(_mm256_srli_epi16::<2>(qh), top),
                    ),
                );
            }
        }
    }
}
