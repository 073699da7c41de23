//! AVX2 + FMA micro-kernels: tiles of `MR` rows by `NV` 8-lane vectors, the
//! bodies of [`super::tile`] on `__m256`. Same contracts as the
//! [`super::MicroKernels`] methods, plus an AVX2 + FMA CPU.

pub(super) use super::transpose_scalar as transpose;
use std::arch::x86_64::*;

use super::tile::{self, F32Vector};

const L: usize = 8;

impl F32Vector for __m256 {
    const L: usize = L;
    #[inline(always)]
    unsafe fn zero() -> Self {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm256_storeu_ps(p, self)
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        _mm256_add_ps(self, o)
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        _mm256_sub_ps(self, o)
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        _mm256_mul_ps(self, o)
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        _mm256_max_ps(self, o)
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self)
    }
    /// 2^k from the exponent bits: k = -127 gives +0.0, so the result is 0.
    #[inline(always)]
    unsafe fn scale_pow2(self, k: Self, _x: Self) -> Self {
        let ki = _mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127));
        _mm256_mul_ps(self, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(ki)))
    }
    #[inline(always)]
    unsafe fn zero_if_neg_inf(self) -> Self {
        let unseen = _mm256_cmp_ps::<_CMP_EQ_OQ>(self, _mm256_set1_ps(f32::NEG_INFINITY));
        _mm256_andnot_ps(unseen, self)
    }
}

/// `MicroKernels::scores`, and with `MAX` `MicroKernels::scores_max` (see
/// [`tile::scores`]).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores<const NV: usize, const MR: usize, const MAX: bool>(
    qt: *const f32,
    ldq: usize,
    k: *const f32,
    ldk: usize,
    nk: usize,
    depth: usize,
    st: *mut f32,
    ldst: usize,
    tmax: *mut f32,
) {
    tile::scores::<__m256, NV, MR, MAX>(qt, ldq, k, ldk, nk, depth, st, ldst, tmax)
}

/// `MicroKernels::values` (see [`tile::values`]).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn values<const NV: usize, const MR: usize>(
    pt: *const f32,
    ldp: usize,
    nkeys: usize,
    v: *const f32,
    ldv: usize,
    nv: usize,
    alpha: *const f32,
    ot: *mut f32,
    ldo: usize,
) {
    tile::values::<__m256, NV, MR>(pt, ldp, nkeys, v, ldv, nv, alpha, ot, ldo)
}

/// `MicroKernels::softmax` (see [`tile::softmax`]).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn softmax<const NV: usize>(
    st: *mut f32,
    ldst: usize,
    keys: usize,
    m: *mut f32,
    l: *mut f32,
    alpha: *mut f32,
) {
    tile::softmax::<__m256, NV>(st, ldst, keys, m, l, alpha)
}

/// `MicroKernels::softmax_max` (see [`tile::softmax_given_max`]).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn softmax_max<const NV: usize, const SHORT: bool>(
    st: *mut f32,
    ldst: usize,
    keys: usize,
    tmax: *const f32,
    m: *mut f32,
    l: *mut f32,
    alpha: *mut f32,
) {
    tile::softmax_given_max::<__m256, NV, SHORT>(st, ldst, keys, tmax, m, l, alpha)
}
