//! AVX-512 kernels for blocks of a few query rows (decoding), in the *rows*
//! layout: features on the lanes, one row of scores per query. Scores are dot
//! products reduced across lanes, the softmax runs along each row, and the
//! value update broadcasts a probability against rows of V, so every lane does
//! useful work even for a single query.
//!
//! Rows past `rows` (up to the tile height `R`) alias the last valid row and
//! are not stored. Tails shorter than a vector use masked loads and stores,
//! which never touch memory under a cleared mask bit.

#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::avx512::exp2;

const L: usize = 16;

/// Mask of the first `n` (`<= 16`) lanes.
#[inline(always)]
fn lanes_mask(n: usize) -> __mmask16 {
    ((1u32 << n.min(L)) - 1) as __mmask16
}

/// Scores of `rows` (`1..=R`) query rows against `keys` keys:
/// `s[r * lds + j] = sum_{d < depth} q[r * ldq + d] * k[j * ldk + d]`.
///
/// # Safety
/// AVX-512F CPU; `q` addresses `rows` rows of `depth` floats at stride `ldq`,
/// `k` addresses `keys` rows of `depth` floats at stride `ldk`, and `s` addresses
/// `rows` writable rows of `keys` floats at stride `lds`, disjoint from both.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(in crate::fast::attention) unsafe fn dots<const R: usize, const JU: usize>(
    q: *const f32,
    ldq: usize,
    rows: usize,
    k: *const f32,
    ldk: usize,
    keys: usize,
    depth: usize,
    s: *mut f32,
    lds: usize,
) {
    let mut qr = [q; R];
    for (r, ptr) in qr.iter_mut().enumerate() {
        *ptr = q.add(r.min(rows - 1) * ldq);
    }
    let mut j = 0;
    while j + JU <= keys {
        dot_group::<R, JU>(&qr, rows, k.add(j * ldk), ldk, depth, s.add(j), lds);
        j += JU;
    }
    while j < keys {
        dot_group::<R, 1>(&qr, rows, k.add(j * ldk), ldk, depth, s.add(j), lds);
        j += 1;
    }
}

/// `U` consecutive keys of [`dots`] (independent accumulators hide the FMA
/// latency).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn dot_group<const R: usize, const U: usize>(
    qr: &[*const f32; R],
    rows: usize,
    k: *const f32,
    ldk: usize,
    depth: usize,
    s: *mut f32,
    lds: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); R]; U];
    let mut c = 0;
    while c < depth {
        let m = lanes_mask(depth - c);
        let mut kv = [_mm512_setzero_ps(); U];
        for u in 0..U {
            kv[u] = _mm512_maskz_loadu_ps(m, k.add(u * ldk + c));
        }
        for r in 0..R {
            let qv = _mm512_maskz_loadu_ps(m, qr[r].add(c));
            for u in 0..U {
                acc[u][r] = _mm512_fmadd_ps(qv, kv[u], acc[u][r]);
            }
        }
        c += L;
    }
    for r in 0..R {
        if r < rows {
            for u in 0..U {
                *s.add(r * lds + u) = _mm512_reduce_add_ps(acc[u][r]);
            }
        }
    }
}

/// The online-softmax step of `super::super::softmax::online_update` for one
/// contiguous row of `keys` scores (in place) and its scalar statistics.
///
/// # Safety
/// AVX-512F CPU; `s` addresses `keys` floats; `m`, `l`, `alpha` one each.
#[target_feature(enable = "avx512f")]
pub(in crate::fast::attention) unsafe fn softmax_row(
    s: *mut f32,
    keys: usize,
    m: *mut f32,
    l: *mut f32,
    alpha: *mut f32,
) {
    let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut mx = [neg_inf; 4];
    let mut c = 0;
    while c < keys {
        let v = _mm512_mask_loadu_ps(neg_inf, lanes_mask(keys - c), s.add(c));
        mx[(c / L) & 3] = _mm512_max_ps(mx[(c / L) & 3], v);
        c += L;
    }
    let v = _mm512_max_ps(_mm512_max_ps(mx[0], mx[1]), _mm512_max_ps(mx[2], mx[3]));
    let tile_max = _mm512_reduce_max_ps(v);
    let old = *m;
    let m_new = if tile_max > old { tile_max } else { old };
    let safe = if m_new == f32::NEG_INFINITY {
        0.0
    } else {
        m_new
    };
    let a = _mm512_cvtss_f32(exp2(_mm512_set1_ps(old - safe)));
    let sv = _mm512_set1_ps(safe);
    let mut sum = [_mm512_setzero_ps(); 2];
    let mut c = 0;
    while c < keys {
        let mask = lanes_mask(keys - c);
        let p = exp2(_mm512_sub_ps(
            _mm512_mask_loadu_ps(neg_inf, mask, s.add(c)),
            sv,
        ));
        _mm512_mask_storeu_ps(s.add(c), mask, p);
        sum[(c / L) & 1] = _mm512_add_ps(sum[(c / L) & 1], p);
        c += L;
    }
    *l = *l * a + _mm512_reduce_add_ps(_mm512_add_ps(sum[0], sum[1]));
    *m = m_new;
    *alpha = a;
}

/// Value update of `rows` (`1..=R`) rows:
/// `o[r * ldo + x] = alpha[r] * o[r * ldo + x] + sum_{j < keys} p[r * ldp + j] * v[j * ldv + x]`
/// for `x < width`.
///
/// # Safety
/// AVX-512F CPU; `p` addresses `rows` rows of `keys` floats at stride `ldp`, `v`
/// addresses `keys` rows of `width` floats at stride `ldv`, `alpha` `rows`
/// floats, and `o` `rows` writable rows of `width` floats at stride `ldo`,
/// disjoint from the inputs.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(in crate::fast::attention) unsafe fn rows_pv<const R: usize>(
    p: *const f32,
    ldp: usize,
    rows: usize,
    keys: usize,
    v: *const f32,
    ldv: usize,
    width: usize,
    alpha: *const f32,
    o: *mut f32,
    ldo: usize,
) {
    /// Vectors of features per pass over the keys.
    const NV: usize = 4;
    let mut pr = [p; R];
    let mut orow = [o; R];
    let mut al = [_mm512_setzero_ps(); R];
    for r in 0..R {
        let rr = r.min(rows - 1);
        pr[r] = p.add(rr * ldp);
        orow[r] = o.add(rr * ldo);
        al[r] = _mm512_set1_ps(*alpha.add(rr));
    }
    let mut x0 = 0;
    while x0 < width {
        let mut masks = [0 as __mmask16; NV];
        for (x, m) in masks.iter_mut().enumerate() {
            *m = lanes_mask(width.saturating_sub(x0 + x * L));
        }
        let mut acc = [[_mm512_setzero_ps(); NV]; R];
        for r in 0..R {
            for x in 0..NV {
                let cur = _mm512_maskz_loadu_ps(masks[x], orow[r].wrapping_add(x0 + x * L));
                acc[r][x] = _mm512_mul_ps(cur, al[r]);
            }
        }
        for j in 0..keys {
            let vrow = v.wrapping_add(j * ldv + x0);
            let mut vv = [_mm512_setzero_ps(); NV];
            for x in 0..NV {
                vv[x] = _mm512_maskz_loadu_ps(masks[x], vrow.wrapping_add(x * L));
            }
            for r in 0..R {
                let pb = _mm512_set1_ps(*pr[r].add(j));
                for x in 0..NV {
                    acc[r][x] = _mm512_fmadd_ps(pb, vv[x], acc[r][x]);
                }
            }
        }
        for r in 0..R {
            if r < rows {
                for x in 0..NV {
                    _mm512_mask_storeu_ps(orow[r].wrapping_add(x0 + x * L), masks[x], acc[r][x]);
                }
            }
        }
        x0 += NV * L;
    }
}
