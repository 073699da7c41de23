//! AVX2 + FMA micro-kernels: tiles of `MR` rows by `NV` 8-lane vectors. Same
//! contracts as the [`super::MicroKernels`] methods, plus an AVX2 + FMA CPU.

// Index loops over the tile keep every access a compile-time constant, which
// is what lets the accumulator tile live in registers.
#![allow(clippy::needless_range_loop)]

pub(super) use super::transpose_scalar as transpose;
use std::arch::x86_64::*;

const L: usize = 8;

#[target_feature(enable = "avx2,fma")]
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
    let mut acc = [[_mm256_setzero_ps(); NV]; MR];
    for d in 0..depth {
        let mut q = [_mm256_setzero_ps(); NV];
        for (x, qv) in q.iter_mut().enumerate() {
            *qv = _mm256_loadu_ps(qt.add(d * ldq + x * L));
        }
        for m in 0..MR {
            let kb = _mm256_set1_ps(*rows[m].add(d));
            for x in 0..NV {
                acc[m][x] = _mm256_fmadd_ps(kb, q[x], acc[m][x]);
            }
        }
    }
    for m in 0..MR {
        if m < nk {
            for x in 0..NV {
                _mm256_storeu_ps(st.add(m * ldst + x * L), acc[m][x]);
            }
        }
    }
}

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
    let mut cols = [0usize; MR];
    for (m, c) in cols.iter_mut().enumerate() {
        *c = m.min(nv - 1);
    }
    let mut acc = [[_mm256_setzero_ps(); NV]; MR];
    for x in 0..NV {
        let a = _mm256_loadu_ps(alpha.add(x * L));
        for m in 0..MR {
            acc[m][x] = _mm256_mul_ps(_mm256_loadu_ps(ot.add(cols[m] * ldo + x * L)), a);
        }
    }
    for j in 0..nkeys {
        let mut p = [_mm256_setzero_ps(); NV];
        for (x, pv) in p.iter_mut().enumerate() {
            *pv = _mm256_loadu_ps(pt.add(j * ldp + x * L));
        }
        let vr = v.add(j * ldv);
        for m in 0..MR {
            let vb = _mm256_set1_ps(*vr.add(cols[m]));
            for x in 0..NV {
                acc[m][x] = _mm256_fmadd_ps(vb, p[x], acc[m][x]);
            }
        }
    }
    for m in 0..MR {
        if m < nv {
            for x in 0..NV {
                _mm256_storeu_ps(ot.add(m * ldo + x * L), acc[m][x]);
            }
        }
    }
}

/// `2^x` lane-wise for `x <= 0` (relative error ~2e-7); below -126.5 (and at
/// `-inf`) exactly 0; NaN stays NaN.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn exp2(x: __m256) -> __m256 {
    // `max(c, x)` returns `x` when it is NaN.
    let xc = _mm256_max_ps(_mm256_set1_ps(-127.0), x);
    let k = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(xc);
    let r = _mm256_mul_ps(_mm256_sub_ps(xc, k), _mm256_set1_ps(std::f32::consts::LN_2));
    // e^r on |r| <= ln(2)/2, the Cephes expf polynomial.
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let one = _mm256_set1_ps(1.0);
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, one));
    // 2^k from the exponent bits; k = -127 gives +0.0, so the result is 0.
    let ki = _mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127));
    _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(ki)))
}

/// Independent running maxima / sums per vector (hides the add latency).
const U: usize = 4;

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn softmax<const NV: usize>(
    st: *mut f32,
    ldst: usize,
    keys: usize,
    m: *mut f32,
    l: *mut f32,
    alpha: *mut f32,
) {
    let neg_inf = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut mx = [[neg_inf; NV]; U];
    for x in 0..NV {
        mx[0][x] = _mm256_loadu_ps(m.add(x * L));
    }
    let full = keys / U * U;
    for j in (0..full).step_by(U) {
        for u in 0..U {
            for x in 0..NV {
                let s = _mm256_loadu_ps(st.add((j + u) * ldst + x * L));
                mx[u][x] = _mm256_max_ps(mx[u][x], s);
            }
        }
    }
    for j in full..keys {
        for x in 0..NV {
            mx[0][x] = _mm256_max_ps(mx[0][x], _mm256_loadu_ps(st.add(j * ldst + x * L)));
        }
    }
    let mut safe = [neg_inf; NV];
    for x in 0..NV {
        let mut v = mx[0][x];
        for row in mx.iter().skip(1) {
            v = _mm256_max_ps(v, row[x]);
        }
        mx[0][x] = v;
        let unseen = _mm256_cmp_ps::<_CMP_EQ_OQ>(v, neg_inf);
        safe[x] = _mm256_andnot_ps(unseen, v);
        let old = _mm256_loadu_ps(m.add(x * L));
        _mm256_storeu_ps(alpha.add(x * L), exp2(_mm256_sub_ps(old, safe[x])));
    }
    let mut sum = [[_mm256_setzero_ps(); NV]; 2];
    for j in 0..keys {
        for x in 0..NV {
            let ptr = st.add(j * ldst + x * L);
            let p = exp2(_mm256_sub_ps(_mm256_loadu_ps(ptr), safe[x]));
            _mm256_storeu_ps(ptr, p);
            sum[j & 1][x] = _mm256_add_ps(sum[j & 1][x], p);
        }
    }
    for x in 0..NV {
        let a = _mm256_loadu_ps(alpha.add(x * L));
        let s = _mm256_add_ps(sum[0][x], sum[1][x]);
        let lv = _mm256_fmadd_ps(_mm256_loadu_ps(l.add(x * L)), a, s);
        _mm256_storeu_ps(l.add(x * L), lv);
        _mm256_storeu_ps(m.add(x * L), mx[0][x]);
    }
}
