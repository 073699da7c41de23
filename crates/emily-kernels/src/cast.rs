//! Dtype conversions between slices.
//!
//! f16 uses F16C on x86-64 (every non-baseline [`crate::simd::Isa`] has it),
//! elsewhere `half`'s slice conversions (FP16 on aarch64 when present). bf16 has no
//! such instructions on most CPUs, so it is converted here with integer code
//! that vectorises (round to nearest even, NaN stays NaN). The other
//! conversions are plain loops with Rust `as` semantics: float to integer
//! truncates toward zero and saturates, NaN becomes 0. The `_par` versions
//! split large slices over the global pool.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::parallel;

fn check_len(what: &str, a: usize, b: usize) {
    assert_eq!(a, b, "{what}: length mismatch ({a} vs {b})");
}

/// `dst[i] = src[i]` widened from f16 (exact).
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    check_len("f16_to_f32", src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if crate::simd::isa() != crate::simd::Isa::Baseline {
        // SAFETY: both non-baseline ISAs include F16C and AVX.
        return unsafe { f16c::widen(src.reinterpret_cast(), dst) };
    }
    src.convert_to_f32_slice(dst);
}

/// `dst[i] = src[i]` rounded to f16 (nearest even; overflow to ±inf).
pub fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    check_len("f32_to_f16", src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if crate::simd::isa() != crate::simd::Isa::Baseline {
        // SAFETY: both non-baseline ISAs include F16C and AVX.
        return unsafe { f16c::narrow(src, dst.reinterpret_cast_mut()) };
    }
    dst.convert_from_f32_slice(src);
}

/// F16C loops, inlined (`half` converts 8 values per indirect call).
#[cfg(target_arch = "x86_64")]
mod f16c {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must have AVX and F16C; `dst.len() == src.len()`.
    #[target_feature(enable = "avx,f16c")]
    pub unsafe fn widen(src: &[u16], dst: &mut [f32]) {
        let mut s = src.chunks_exact(8);
        let mut d = dst.chunks_exact_mut(8);
        for (s, d) in (&mut s).zip(&mut d) {
            // SAFETY: 8 u16 (16 bytes) readable, 8 f32 writable.
            unsafe {
                let h = _mm_loadu_si128(s.as_ptr() as *const __m128i);
                _mm256_storeu_ps(d.as_mut_ptr(), _mm256_cvtph_ps(h));
            }
        }
        for (&s, d) in s.remainder().iter().zip(d.into_remainder()) {
            *d = half::f16::from_bits(s).to_f32();
        }
    }

    /// # Safety
    /// The CPU must have AVX and F16C; `dst.len() == src.len()`.
    #[target_feature(enable = "avx,f16c")]
    pub unsafe fn narrow(src: &[f32], dst: &mut [u16]) {
        let mut s = src.chunks_exact(8);
        let mut d = dst.chunks_exact_mut(8);
        for (s, d) in (&mut s).zip(&mut d) {
            // SAFETY: 8 f32 readable, 8 u16 (16 bytes) writable.
            unsafe {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(s.as_ptr()));
                _mm_storeu_si128(d.as_mut_ptr() as *mut __m128i, h);
            }
        }
        for (&s, d) in s.remainder().iter().zip(d.into_remainder()) {
            *d = half::f16::from_f32(s).to_bits();
        }
    }
}

crate::simd_dispatch! {
    fn k_bf16_to_f32(src: &[u16], dst: &mut [f32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f32::from_bits((s as u32) << 16);
        }
    }
}

crate::simd_dispatch! {
    fn k_f32_to_bf16(src: &[f32], dst: &mut [u16]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            let b = s.to_bits();
            // Round to nearest even on the 16 dropped bits; a carry into the
            // exponent rounds up correctly (to inf past the largest bf16).
            let r = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
            let nan = (b & 0x7fff_ffff) > 0x7f80_0000;
            *d = (if nan { (b >> 16) | 0x40 } else { r }) as u16;
        }
    }
}

/// `dst[i] = src[i]` widened from bf16 (exact).
pub fn bf16_to_f32(src: &[bf16], dst: &mut [f32]) {
    check_len("bf16_to_f32", src.len(), dst.len());
    k_bf16_to_f32(src.reinterpret_cast(), dst);
}

/// `dst[i] = src[i]` rounded to bf16 (nearest even, NaN kept as a quiet NaN;
/// bit-identical to `half::bf16::from_f32`).
pub fn f32_to_bf16(src: &[f32], dst: &mut [bf16]) {
    check_len("f32_to_bf16", src.len(), dst.len());
    k_f32_to_bf16(src, dst.reinterpret_cast_mut());
}

/// Elements per parallel work unit.
const PAR_BLOCK: usize = 4096;

/// Runs `f` on matching blocks of `src` and `dst`, in parallel when large.
fn par<S: Sync, D: Send>(src: &[S], dst: &mut [D], f: impl Fn(&[S], &mut [D]) + Sync) {
    check_len("cast", src.len(), dst.len());
    parallel::for_each_row_block_mut(dst, PAR_BLOCK, PAR_BLOCK, |row, d| {
        let s = row * PAR_BLOCK;
        f(&src[s..s + d.len()], d);
    });
}

/// [`f16_to_f32`] split over the global pool when large.
pub fn f16_to_f32_par(src: &[f16], dst: &mut [f32]) {
    par(src, dst, f16_to_f32);
}

/// [`f32_to_f16`] split over the global pool when large.
pub fn f32_to_f16_par(src: &[f32], dst: &mut [f16]) {
    par(src, dst, f32_to_f16);
}

/// [`bf16_to_f32`] split over the global pool when large.
pub fn bf16_to_f32_par(src: &[bf16], dst: &mut [f32]) {
    par(src, dst, bf16_to_f32);
}

/// [`f32_to_bf16`] split over the global pool when large.
pub fn f32_to_bf16_par(src: &[f32], dst: &mut [bf16]) {
    par(src, dst, f32_to_bf16);
}

/// Defines a plain `as` conversion loop (LLVM vectorises these).
macro_rules! as_cast {
    ($(#[$doc:meta])* $name:ident, $from:ty, $to:ty) => {
        $(#[$doc])*
        pub fn $name(src: &[$from], dst: &mut [$to]) {
            check_len(stringify!($name), src.len(), dst.len());
            crate::simd_dispatch! {
                fn kernel(src: &[$from], dst: &mut [$to]) {
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d = s as $to;
                    }
                }
            }
            kernel(src, dst);
        }
    };
}

as_cast!(
    /// `dst[i] = src[i]` widened to f64 (exact).
    f32_to_f64, f32, f64
);
as_cast!(
    /// `dst[i] = src[i]` rounded to f32 (nearest even; overflow to ±inf).
    f64_to_f32, f64, f32
);
as_cast!(
    /// `dst[i] = src[i]` as f32 (rounded to nearest above 2^24).
    i32_to_f32, i32, f32
);
as_cast!(
    /// `dst[i] = src[i]` truncated toward zero, saturating; NaN becomes 0.
    f32_to_i32, f32, i32
);
as_cast!(
    /// `dst[i] = src[i]` as f32 (rounded to nearest above 2^24).
    i64_to_f32, i64, f32
);
as_cast!(
    /// `dst[i] = src[i]` truncated toward zero, saturating; NaN becomes 0.
    f32_to_i64, f32, i64
);
as_cast!(
    /// `dst[i] = src[i]` as f32 (exact).
    u8_to_f32, u8, f32
);
as_cast!(
    /// `dst[i] = src[i]` truncated toward zero and saturated to 0..=255;
    /// NaN becomes 0.
    f32_to_u8, f32, u8
);

crate::simd_dispatch! {
    fn k_f32_to_bool(src: &[f32], dst: &mut [u8]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = (s != 0.0) as u8;
        }
    }
}

/// `dst[i] = 1` where `src[i] != 0` (NaN included), else 0: a `bool` tensor.
pub fn f32_to_bool(src: &[f32], dst: &mut [u8]) {
    check_len("f32_to_bool", src.len(), dst.len());
    k_f32_to_bool(src, dst);
}
