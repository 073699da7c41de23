//! AVX-512 micro-kernels: tiles of `MR` rows by `NV` 16-lane vectors, the
//! bodies of [`super::tile`] on `__m512`, and a 16x16 register transpose.
//! Same contracts as the [`super::MicroKernels`] methods, plus an AVX-512F CPU.

use std::arch::x86_64::*;

use super::tile::{self, F32Vector};

const L: usize = 16;

impl F32Vector for __m512 {
    const L: usize = L;
    #[inline(always)]
    unsafe fn zero() -> Self {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm512_storeu_ps(p, self)
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        _mm512_add_ps(self, o)
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        _mm512_sub_ps(self, o)
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        _mm512_mul_ps(self, o)
    }
    #[inline(always)]
    unsafe fn max(self, o: Self) -> Self {
        _mm512_max_ps(self, o)
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn round(self) -> Self {
        _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self)
    }
    /// `scalef`, with lanes whose exponent was below -126 zeroed.
    #[inline(always)]
    unsafe fn scale_pow2(self, k: Self, x: Self) -> Self {
        let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(-126.0));
        _mm512_maskz_scalef_ps(keep, self, k)
    }
    #[inline(always)]
    unsafe fn zero_if_neg_inf(self) -> Self {
        let unseen = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self, _mm512_set1_ps(f32::NEG_INFINITY));
        _mm512_mask_blend_ps(unseen, self, _mm512_setzero_ps())
    }
}

/// `MicroKernels::scores`, and with `MAX` `MicroKernels::scores_max` (see
/// [`tile::scores`]).
#[target_feature(enable = "avx512f")]
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
    tile::scores::<__m512, NV, MR, MAX>(qt, ldq, k, ldk, nk, depth, st, ldst, tmax)
}

/// `MicroKernels::values` (see [`tile::values`]).
#[target_feature(enable = "avx512f")]
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
    tile::values::<__m512, NV, MR>(pt, ldp, nkeys, v, ldv, nv, alpha, ot, ldo)
}

/// `MicroKernels::softmax` (see [`tile::softmax`]).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn softmax<const NV: usize>(
    st: *mut f32,
    ldst: usize,
    keys: usize,
    m: *mut f32,
    l: *mut f32,
    alpha: *mut f32,
) {
    tile::softmax::<__m512, NV>(st, ldst, keys, m, l, alpha)
}

/// `MicroKernels::softmax_max` (see [`tile::softmax_given_max`]).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn softmax_max<const NV: usize, const SHORT: bool>(
    st: *mut f32,
    ldst: usize,
    keys: usize,
    tmax: *const f32,
    m: *mut f32,
    l: *mut f32,
    alpha: *mut f32,
) {
    tile::softmax_given_max::<__m512, NV, SHORT>(st, ldst, keys, tmax, m, l, alpha)
}

/// `2^x` lane-wise for `x <= 0` (see [`tile::exp2`], the Cephes form, or
/// with `SHORT` the short polynomial), for the row kernels and the int8
/// value softmax, which follow [`crate::fast::attention::softmax::short_exp`].
#[target_feature(enable = "avx512f")]
#[inline]
pub(in crate::fast::attention) unsafe fn exp2<const SHORT: bool>(x: __m512) -> __m512 {
    tile::exp2::<__m512, SHORT>(x)
}

/// The running maximum to subtract: `mx`, or 0 in lanes that have seen only
/// masked keys (`-inf`), as every softmax kernel of the crate takes it.
#[target_feature(enable = "avx512f")]
#[inline]
pub(in crate::fast::attention) unsafe fn safe_max(mx: __m512) -> __m512 {
    mx.zero_if_neg_inf()
}

/// Mask of the first `n` (`<= 16`) lanes.
#[inline(always)]
fn lanes_mask(n: usize) -> __mmask16 {
    ((1u32 << n.min(L)) - 1) as __mmask16
}

/// Transposes 16 vectors (a 16x16 tile) in registers: 64 shuffles.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn transpose16(r: &[__m512; L]) -> [__m512; L] {
    let z = _mm512_setzero_ps();
    // Interleave row pairs, then row-pair pairs: u[4k + j] holds, in 128-bit
    // lane q, column 4q + j of rows 4k..4k + 4.
    let mut t = [z; L];
    for k in 0..8 {
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    let mut u = [z; L];
    for k in 0..4 {
        let a0 = _mm512_castps_pd(t[4 * k]);
        let a1 = _mm512_castps_pd(t[4 * k + 1]);
        let b0 = _mm512_castps_pd(t[4 * k + 2]);
        let b1 = _mm512_castps_pd(t[4 * k + 3]);
        u[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, b0));
        u[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, b0));
        u[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, b1));
        u[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, b1));
    }
    // Gather lane q of u[j], u[4 + j], u[8 + j], u[12 + j] into output 4q + j.
    let mut out = [z; L];
    for j in 0..4 {
        let lo = _mm512_shuffle_f32x4::<0x44>(u[j], u[4 + j]);
        let hi = _mm512_shuffle_f32x4::<0xEE>(u[j], u[4 + j]);
        let lo2 = _mm512_shuffle_f32x4::<0x44>(u[8 + j], u[12 + j]);
        let hi2 = _mm512_shuffle_f32x4::<0xEE>(u[8 + j], u[12 + j]);
        out[j] = _mm512_shuffle_f32x4::<0x88>(lo, lo2);
        out[4 + j] = _mm512_shuffle_f32x4::<0xDD>(lo, lo2);
        out[8 + j] = _mm512_shuffle_f32x4::<0x88>(hi, hi2);
        out[12 + j] = _mm512_shuffle_f32x4::<0xDD>(hi, hi2);
    }
    out
}

/// `MicroKernels::transpose` in 16x16 register tiles (masked at the edges).
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn transpose(
    src: *const f32,
    lds: usize,
    rows: usize,
    cols: usize,
    dst: *mut f32,
    ldd: usize,
    scale: &[f32],
) {
    for r0 in (0..rows).step_by(L) {
        let nr = L.min(rows - r0);
        let store_mask = lanes_mask(nr);
        for c0 in (0..cols).step_by(L) {
            let nc = L.min(cols - c0);
            let load_mask = lanes_mask(nc);
            let mut tile = [_mm512_setzero_ps(); L];
            for (k, v) in tile.iter_mut().enumerate().take(nr) {
                *v = _mm512_maskz_loadu_ps(load_mask, src.add((r0 + k) * lds + c0));
            }
            let cols_t = transpose16(&tile);
            for (k, v) in cols_t.iter().enumerate().take(nc) {
                let sc = if scale.len() == 1 {
                    scale[0]
                } else {
                    scale[c0 + k]
                };
                let v = _mm512_mul_ps(*v, _mm512_set1_ps(sc));
                _mm512_mask_storeu_ps(dst.add((c0 + k) * ldd + r0), store_mask, v);
            }
        }
    }
}
