//! AVX-512 micro-kernels: tiles of `MR` rows by `NV` 16-lane vectors. Same
//! contracts as the [`super::MicroKernels`] methods, plus an AVX-512F CPU.

// Index loops over the tile keep every access a compile-time constant, which
// is what lets the accumulator tile live in registers.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

const L: usize = 16;

#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores<const NV: usize, const MR: usize>(
    qt: *const f32,
    ldq: usize,
    k: *const f32,
    ldk: usize,
    nk: usize,
    depth: usize,
    st: *mut f32,
    ldst: usize,
) {
    let mut rows = [k; MR];
    for (m, row) in rows.iter_mut().enumerate() {
        *row = k.add(m.min(nk - 1) * ldk);
    }
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    for d in 0..depth {
        let mut q = [_mm512_setzero_ps(); NV];
        for (x, qv) in q.iter_mut().enumerate() {
            *qv = _mm512_loadu_ps(qt.add(d * ldq + x * L));
        }
        for m in 0..MR {
            let kb = _mm512_set1_ps(*rows[m].add(d));
            for x in 0..NV {
                acc[m][x] = _mm512_fmadd_ps(kb, q[x], acc[m][x]);
            }
        }
    }
    for m in 0..MR {
        if m < nk {
            for x in 0..NV {
                _mm512_storeu_ps(st.add(m * ldst + x * L), acc[m][x]);
            }
        }
    }
}

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
    let mut cols = [0usize; MR];
    for (m, c) in cols.iter_mut().enumerate() {
        *c = m.min(nv - 1);
    }
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    for x in 0..NV {
        let a = _mm512_loadu_ps(alpha.add(x * L));
        for m in 0..MR {
            acc[m][x] = _mm512_mul_ps(_mm512_loadu_ps(ot.add(cols[m] * ldo + x * L)), a);
        }
    }
    for j in 0..nkeys {
        let mut p = [_mm512_setzero_ps(); NV];
        for (x, pv) in p.iter_mut().enumerate() {
            *pv = _mm512_loadu_ps(pt.add(j * ldp + x * L));
        }
        let vr = v.add(j * ldv);
        for m in 0..MR {
            let vb = _mm512_set1_ps(*vr.add(cols[m]));
            for x in 0..NV {
                acc[m][x] = _mm512_fmadd_ps(vb, p[x], acc[m][x]);
            }
        }
    }
    for m in 0..MR {
        if m < nv {
            for x in 0..NV {
                _mm512_storeu_ps(ot.add(m * ldo + x * L), acc[m][x]);
            }
        }
    }
}

/// `2^x` lane-wise for `x <= 0` (relative error ~2e-7); below -126 (and at
/// `-inf`) exactly 0; NaN stays NaN.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn exp2(x: __m512) -> __m512 {
    // `max(c, x)` returns `x` when it is NaN.
    let xc = _mm512_max_ps(_mm512_set1_ps(-127.0), x);
    let k = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(xc);
    let r = _mm512_mul_ps(_mm512_sub_ps(xc, k), _mm512_set1_ps(std::f32::consts::LN_2));
    // e^r on |r| <= ln(2)/2, the Cephes expf polynomial.
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let one = _mm512_set1_ps(1.0);
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, one));
    let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(-126.0));
    _mm512_maskz_scalef_ps(keep, p, k)
}

/// Independent running maxima / sums per vector (hides the add latency).
const U: usize = 4;

#[target_feature(enable = "avx512f")]
pub(super) unsafe fn softmax<const NV: usize>(
    st: *mut f32,
    ldst: usize,
    keys: usize,
    m: *mut f32,
    l: *mut f32,
    alpha: *mut f32,
) {
    let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut mx = [[neg_inf; NV]; U];
    for x in 0..NV {
        mx[0][x] = _mm512_loadu_ps(m.add(x * L));
    }
    let full = keys / U * U;
    for j in (0..full).step_by(U) {
        for u in 0..U {
            for x in 0..NV {
                let s = _mm512_loadu_ps(st.add((j + u) * ldst + x * L));
                mx[u][x] = _mm512_max_ps(mx[u][x], s);
            }
        }
    }
    for j in full..keys {
        for x in 0..NV {
            mx[0][x] = _mm512_max_ps(mx[0][x], _mm512_loadu_ps(st.add(j * ldst + x * L)));
        }
    }
    let mut safe = [neg_inf; NV];
    for x in 0..NV {
        let mut v = mx[0][x];
        for row in mx.iter().skip(1) {
            v = _mm512_max_ps(v, row[x]);
        }
        mx[0][x] = v;
        let unseen = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(v, neg_inf);
        safe[x] = _mm512_mask_blend_ps(unseen, v, _mm512_setzero_ps());
        let old = _mm512_loadu_ps(m.add(x * L));
        _mm512_storeu_ps(alpha.add(x * L), exp2(_mm512_sub_ps(old, safe[x])));
    }
    let mut sum = [[_mm512_setzero_ps(); NV]; 2];
    for j in 0..keys {
        for x in 0..NV {
            let ptr = st.add(j * ldst + x * L);
            let p = exp2(_mm512_sub_ps(_mm512_loadu_ps(ptr), safe[x]));
            _mm512_storeu_ps(ptr, p);
            sum[j & 1][x] = _mm512_add_ps(sum[j & 1][x], p);
        }
    }
    for x in 0..NV {
        let a = _mm512_loadu_ps(alpha.add(x * L));
        let s = _mm512_add_ps(sum[0][x], sum[1][x]);
        let lv = _mm512_fmadd_ps(_mm512_loadu_ps(l.add(x * L)), a, s);
        _mm512_storeu_ps(l.add(x * L), lv);
        _mm512_storeu_ps(m.add(x * L), mx[0][x]);
    }
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
