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
