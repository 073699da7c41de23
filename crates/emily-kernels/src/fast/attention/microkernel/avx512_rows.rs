//! AVX-512 kernels for blocks of a few query rows (decoding), in the *rows*
//! layout: features on the lanes, one row of scores per query. Keys and
//! values are read in place (`f32`, or `f16`/`bf16` widened in registers, see
//! [`KvLoad`]) and each key once for all the rows of a group; scores are dot
//! products whose horizontal sums come 16 at a time out of one shuffle tree,
//! the softmax runs along each row, and the value update broadcasts a
//! probability against rows of V, so every lane does useful work even for a
//! single query.
//!
//! Rows past `rows` (up to the tile height `R`) alias the last valid row and
//! are not stored. Tails shorter than a vector use masked loads and stores,
//! which never touch memory under a cleared mask bit.

#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use half::{bf16, f16};

use crate::prefetch::Hint;

use super::{prefetch_row, PREFETCH_ROWS};

use super::avx512::exp2;

const L: usize = 16;

/// Mask of the first `n` (`<= 16`) lanes.
#[inline(always)]
fn lanes_mask(n: usize) -> __mmask16 {
    ((1u32 << n.min(L)) - 1) as __mmask16
}

/// An element type of keys and values read in place by the row kernels:
/// 16 lanes (fewer under `m`; cleared mask bits never touch memory) widened
/// to `f32` in registers.
pub(in crate::fast::attention) trait KvLoad: Copy {
    /// Loads the lanes of `m` from `p`, zeros elsewhere.
    ///
    /// # Safety
    /// AVX-512F/BW/VL + F16C CPU; the lanes of `m` must be readable at `p`.
    unsafe fn load(p: *const Self, m: __mmask16) -> __m512;
}

impl KvLoad for f32 {
    #[inline(always)]
    unsafe fn load(p: *const f32, m: __mmask16) -> __m512 {
        _mm512_maskz_loadu_ps(m, p)
    }
}

impl KvLoad for f16 {
    #[inline(always)]
    unsafe fn load(p: *const f16, m: __mmask16) -> __m512 {
        _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p.cast()))
    }
}

impl KvLoad for bf16 {
    #[inline(always)]
    unsafe fn load(p: *const bf16, m: __mmask16) -> __m512 {
        let h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p.cast()));
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(h))
    }
}

/// Where [`reduce16`] takes the sum of output lane `i` from: the shuffle
/// tree below swaps index bits 0 ↔ 1 and 2 ↔ 3 (an involution, so an
/// accumulator for lane `i` is kept in slot `SLOT[i]`).
const SLOT: [usize; L] = [0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15];

/// The 16 horizontal sums of `v` in one vector, lane `i` = sum of
/// `v[SLOT[i]]`: a transpose-and-add tree of 15 shuffle pairs (45
/// instructions for 16 sums, against about 8 per `_mm512_reduce_add_ps`).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn reduce16(v: &[__m512; L]) -> __m512 {
    let z = _mm512_setzero_ps();
    // 16 → 8: 256-bit halves; w[i] = (v[i] folded, v[i + 8] folded).
    let mut w = [z; 8];
    for i in 0..8 {
        let lo = _mm512_shuffle_f32x4::<0b01_00_01_00>(v[i], v[i + 8]);
        let hi = _mm512_shuffle_f32x4::<0b11_10_11_10>(v[i], v[i + 8]);
        w[i] = _mm512_add_ps(lo, hi);
    }
    // 8 → 4: 128-bit chunks (v[i], v[i + 8], v[i + 4], v[i + 12]).
    let mut x = [z; 4];
    for i in 0..4 {
        let lo = _mm512_shuffle_f32x4::<0b10_00_10_00>(w[i], w[i + 4]);
        let hi = _mm512_shuffle_f32x4::<0b11_01_11_01>(w[i], w[i + 4]);
        x[i] = _mm512_add_ps(lo, hi);
    }
    // 4 → 2: pairs of lanes within each chunk.
    let mut y = [z; 2];
    for i in 0..2 {
        let lo = _mm512_shuffle_ps::<0b01_00_01_00>(x[i], x[i + 2]);
        let hi = _mm512_shuffle_ps::<0b11_10_11_10>(x[i], x[i + 2]);
        y[i] = _mm512_add_ps(lo, hi);
    }
    // 2 → 1: lane 4c + l of chunk c holds x[[0, 2, 1, 3][l]]'s chunk c.
    let lo = _mm512_shuffle_ps::<0b10_00_10_00>(y[0], y[1]);
    let hi = _mm512_shuffle_ps::<0b11_01_11_01>(y[0], y[1]);
    _mm512_add_ps(lo, hi)
}

/// Scores of `rows` (`1..=R`, `R` one of 1, 2, 4, 8) query rows against
/// `keys` keys read in place: `s[r * lds + j] = sum_{c < depth}
/// q[r * ldq + c] * k[j * ldk + c]`. Each key is loaded (and widened) once
/// for all `R` rows; `16 / R` keys times `R` rows fill 16 accumulators whose
/// horizontal sums come out of one [`reduce16`] tree.
///
/// # Safety
/// AVX-512F/BW/VL + F16C CPU; `q` addresses `rows` rows of `depth` floats at
/// stride `ldq`, `k` addresses `keys` rows of `depth` elements at stride
/// `ldk`, and `s` addresses `rows` writable rows of `keys` floats at stride
/// `lds`, disjoint from both.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,f16c")]
#[allow(clippy::too_many_arguments)]
pub(in crate::fast::attention) unsafe fn scores<E: KvLoad, const R: usize>(
    q: *const f32,
    ldq: usize,
    rows: usize,
    k: *const E,
    ldk: usize,
    keys: usize,
    depth: usize,
    s: *mut f32,
    lds: usize,
    hint: Hint,
) {
    let g = L / R; // keys per reduction
    let qr: [*const f32; R] = super::padded_rows(q, rows, ldq);
    let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let mut j = 0;
    while j < keys {
        let n = g.min(keys - j);
        let kj = k.add(j * ldk);
        for u in 0..n {
            prefetch_row(kj.wrapping_add((PREFETCH_ROWS + u) * ldk), depth, hint);
        }
        let sums = if n == g && R <= 2 && depth <= 4 * L {
            score_group_by_key::<E, R>(&qr, kj, ldk, depth)
        } else if n == g {
            score_group::<E, R, true>(&qr, kj, ldk, n, depth)
        } else {
            score_group::<E, R, false>(&qr, kj, ldk, n, depth)
        };
        for r in 0..rows.min(R) {
            // Lanes r * g .. r * g + n to the front.
            let row = if r == 0 {
                sums
            } else {
                _mm512_permutexvar_ps(
                    _mm512_add_epi32(iota, _mm512_set1_epi32((r * g) as i32)),
                    sums,
                )
            };
            _mm512_mask_storeu_ps(s.add(r * lds + j), lanes_mask(n), row);
        }
        j += n;
    }
}

/// [`score_group`] for a full group of 1 or 2 rows of at most 64 features,
/// key by key: the queries stay in registers and each key row is read in
/// order, a single sequential stream (walking 16 rows a vector at a time
/// read uncached f32 keys about 15 % slower).
#[target_feature(enable = "avx512f,avx512vl,avx512bw,f16c")]
#[inline]
unsafe fn score_group_by_key<E: KvLoad, const R: usize>(
    qr: &[*const f32; R],
    k: *const E,
    ldk: usize,
    depth: usize,
) -> __m512 {
    const C: usize = 4;
    let g = L / R;
    let mut qv = [[_mm512_setzero_ps(); C]; R];
    let mut masks = [0 as __mmask16; C];
    for (c, m) in masks.iter_mut().enumerate() {
        *m = lanes_mask(depth.saturating_sub(c * L));
    }
    for r in 0..R {
        for c in 0..C {
            if masks[c] != 0 {
                qv[r][c] = _mm512_maskz_loadu_ps(masks[c], qr[r].add(c * L));
            }
        }
    }
    let mut acc = [_mm512_setzero_ps(); L];
    // Unrolled over the group's keys, so every accumulator index is a
    // constant and the 16 accumulators stay in registers (as a loop they
    // lived on the stack: a store and a reload around every FMA, 3× slower).
    macro_rules! keys {
        ($($u:literal)*) => {$(
            if $u < g {
                let kp = k.add($u * ldk);
                for c in 0..C {
                    if masks[c] != 0 {
                        let kv = E::load(kp.add(c * L), masks[c]);
                        for r in 0..R {
                            let slot = SLOT[r * g + $u];
                            acc[slot] = _mm512_fmadd_ps(qv[r][c], kv, acc[slot]);
                        }
                    }
                }
            }
        )*};
    }
    keys!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    reduce16(&acc)
}

/// The `16 / R` keys from `k` (stride `ldk`) against the `R` query rows of
/// [`scores`], summed by [`reduce16`]: lane `r * (16 / R) + u` holds row
/// `r`'s score of key `u`. Unless `FULL`, keys from `n` on alias key `n - 1`.
/// Key addresses are recomputed from `k` (not held per key), so 16 keys do
/// not take 16 general registers.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,f16c")]
#[inline]
unsafe fn score_group<E: KvLoad, const R: usize, const FULL: bool>(
    qr: &[*const f32; R],
    k: *const E,
    ldk: usize,
    n: usize,
    depth: usize,
) -> __m512 {
    let g = L / R;
    let mut acc = [_mm512_setzero_ps(); L];
    let mut c = 0;
    while c < depth {
        let m = lanes_mask(depth - c);
        let mut qv = [_mm512_setzero_ps(); R];
        for r in 0..R {
            qv[r] = _mm512_maskz_loadu_ps(m, qr[r].add(c));
        }
        let mut kp = k.add(c);
        for u in 0..g {
            if !FULL && u < n {
                kp = k.add(u * ldk + c);
            }
            let kv = E::load(kp, m);
            if FULL {
                kp = kp.add(ldk);
            }
            for r in 0..R {
                let slot = SLOT[r * g + u];
                acc[slot] = _mm512_fmadd_ps(qv[r], kv, acc[slot]);
            }
        }
        c += L;
    }
    reduce16(&acc)
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
    let a = _mm512_cvtss_f32(exp2::<false>(_mm512_set1_ps(old - safe)));
    let sv = _mm512_set1_ps(safe);
    let mut sum = [_mm512_setzero_ps(); 2];
    let mut c = 0;
    while c < keys {
        let mask = lanes_mask(keys - c);
        let p = exp2::<false>(_mm512_sub_ps(
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

/// Value update of `rows` (`1..=R`) rows, values read in place (widened in
/// registers):
/// `o[r * ldo + x] = alpha[r] * o[r * ldo + x] + sum_{j < keys} p[r * ldp + j] * v[j * ldv + x]`
/// for `x < width`.
///
/// # Safety
/// AVX-512F/BW/VL + F16C CPU; `p` addresses `rows` rows of `keys` floats at
/// stride `ldp`, `v` addresses `keys` rows of `width` elements at stride `ldv`, `alpha` `rows`
/// floats, and `o` `rows` writable rows of `width` floats at stride `ldo`,
/// disjoint from the inputs.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,f16c")]
#[allow(clippy::too_many_arguments)]
pub(in crate::fast::attention) unsafe fn rows_pv<E: KvLoad, const R: usize>(
    p: *const f32,
    ldp: usize,
    rows: usize,
    keys: usize,
    v: *const E,
    ldv: usize,
    width: usize,
    alpha: *const f32,
    o: *mut f32,
    ldo: usize,
    hint: Hint,
) {
    /// Vectors of features per pass over the keys.
    const NV: usize = 4;
    let pr: [*const f32; R] = super::padded_rows(p, rows, ldp);
    let orow = super::padded_rows::<f32, R>(o, rows, ldo).map(<*const f32>::cast_mut);
    let al = super::padded_rows::<f32, R>(alpha, rows, 1).map(|a| _mm512_set1_ps(*a));
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
        let span = width.saturating_sub(x0).min(NV * L);
        for j in 0..keys {
            let vrow = v.wrapping_add(j * ldv + x0);
            prefetch_row(vrow.wrapping_add(PREFETCH_ROWS * ldv), span, hint);
            let mut vv = [_mm512_setzero_ps(); NV];
            for x in 0..NV {
                vv[x] = E::load(vrow.wrapping_add(x * L), masks[x]);
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
