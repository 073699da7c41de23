//! AVX2 + FMA kernels for blocks of a few query rows (decoding), in the
//! *rows* layout of [`super::avx512_rows`] on 8-lane vectors: features on
//! the lanes, one row of scores per query, keys and values read in place
//! (`f32`, or `f16`/`bf16` widened in registers, see [`KvLoad8`]) and each
//! key once for all the rows of a group. A single query row keeps every lane
//! busy, where the lanes layout ([`super::avx2`]) would use one lane of eight
//! and widen the tile into scratch first.
//!
//! Rows past `rows` (up to the group height `R`) alias the last valid row
//! and are not stored. Tails shorter than a vector are read through masked
//! loads (f32) or a zero-padded copy (16-bit types), so nothing past the
//! buffers is touched.

#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use half::{bf16, f16};

use super::tile::exp2;
use super::{prefetch_row, PREFETCH_ROWS};
use crate::prefetch::Hint;

const L: usize = 8;

/// The all-ones 32-bit mask of the first `n` (`< 8`) lanes, for
/// `_mm256_maskload_ps` / `_mm256_maskstore_ps`.
#[inline(always)]
unsafe fn lanes_mask(n: usize) -> __m256i {
    let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), iota)
}

/// The first `n` (`< 8`) 16-bit elements at `p` in the low lanes of a
/// 128-bit vector, zeros above (never reading past `p + n`).
#[inline(always)]
unsafe fn load_u16_n(p: *const u16, n: usize) -> __m128i {
    let mut buf = [0u16; L];
    std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
    _mm_loadu_si128(buf.as_ptr().cast())
}

/// An element type of keys and values read in place by the AVX2 row
/// kernels: 8 lanes (or the first `n`) widened to `f32` in registers.
pub(in crate::fast::attention) trait KvLoad8: Copy {
    /// 8 elements from `p`.
    ///
    /// # Safety
    /// AVX2 + F16C CPU; 8 elements readable at `p`.
    unsafe fn load8(p: *const Self) -> __m256;

    /// The first `n` (`< 8`) elements from `p`, zeros elsewhere.
    ///
    /// # Safety
    /// AVX2 + F16C CPU; `n` elements readable at `p`.
    unsafe fn load_n(p: *const Self, n: usize) -> __m256;
}

impl KvLoad8 for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn load_n(p: *const f32, n: usize) -> __m256 {
        _mm256_maskload_ps(p, lanes_mask(n))
    }
}

impl KvLoad8 for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
    }
    #[inline(always)]
    unsafe fn load_n(p: *const f16, n: usize) -> __m256 {
        _mm256_cvtph_ps(load_u16_n(p.cast(), n))
    }
}

/// bf16 → f32: the 16 bits become the high half of each lane.
#[inline(always)]
unsafe fn widen_bf16(h: __m128i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
}

impl KvLoad8 for bf16 {
    #[inline(always)]
    unsafe fn load8(p: *const bf16) -> __m256 {
        widen_bf16(_mm_loadu_si128(p.cast()))
    }
    #[inline(always)]
    unsafe fn load_n(p: *const bf16, n: usize) -> __m256 {
        widen_bf16(load_u16_n(p.cast(), n))
    }
}

/// The 8 horizontal sums of `v` in one vector, lane `i` = the sum of
/// `v[i]`'s lanes: two rounds of pairwise `hadd` and one cross-half add.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn reduce8(v: &[__m256; L]) -> __m256 {
    let t0 = _mm256_hadd_ps(v[0], v[1]);
    let t1 = _mm256_hadd_ps(v[2], v[3]);
    let t2 = _mm256_hadd_ps(v[4], v[5]);
    let t3 = _mm256_hadd_ps(v[6], v[7]);
    // Per 128-bit half h: u0 = (v0, v1, v2, v3) partial over the half.
    let u0 = _mm256_hadd_ps(t0, t1);
    let u1 = _mm256_hadd_ps(t2, t3);
    let lo = _mm256_permute2f128_ps::<0x20>(u0, u1);
    let hi = _mm256_permute2f128_ps::<0x31>(u0, u1);
    _mm256_add_ps(lo, hi)
}

/// Scores of `rows` (`1..=R`, `R` one of 1, 2, 4) query rows against `keys`
/// keys read in place: `s[r * lds + j] = sum_{c < depth} q[r * ldq + c] *
/// k[j * ldk + c]`. Each key is loaded (and widened) once for all `R` rows;
/// `8 / R` keys times `R` rows fill 8 accumulators whose horizontal sums come
/// out of one [`reduce8`].
///
/// # Safety
/// AVX2 + FMA + F16C CPU; `q` addresses `rows` rows of `depth` floats at
/// stride `ldq`, `k` addresses `keys` rows of `depth` elements at stride
/// `ldk`, and `s` addresses `rows` writable rows of `keys` floats at stride
/// `lds`, disjoint from both.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(in crate::fast::attention) unsafe fn scores<E: KvLoad8, const R: usize>(
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
    let (full, tail) = (depth / L * L, depth % L);
    let tail_mask = lanes_mask(tail);
    let mut j = 0;
    while j < keys {
        let n = g.min(keys - j);
        let kj = k.add(j * ldk);
        let mut acc = [_mm256_setzero_ps(); L];
        // Key by key (each key row one short sequential read), unrolled so
        // every accumulator index is a constant and stays in a register.
        macro_rules! keys {
            ($($u:literal)*) => {$(
                if $u < g {
                    let kp = kj.add($u.min(n - 1) * ldk);
                    prefetch_row(kp.wrapping_add(PREFETCH_ROWS * ldk), depth, hint);
                    let mut c = 0;
                    while c < full {
                        let kv = E::load8(kp.add(c));
                        for r in 0..R {
                            let slot = r * g + $u;
                            acc[slot] =
                                _mm256_fmadd_ps(_mm256_loadu_ps(qr[r].add(c)), kv, acc[slot]);
                        }
                        c += L;
                    }
                    if tail > 0 {
                        let kv = E::load_n(kp.add(full), tail);
                        for r in 0..R {
                            let slot = r * g + $u;
                            let qv = _mm256_maskload_ps(qr[r].add(full), tail_mask);
                            acc[slot] = _mm256_fmadd_ps(qv, kv, acc[slot]);
                        }
                    }
                }
            )*};
        }
        keys!(0 1 2 3 4 5 6 7);
        let sums = reduce8(&acc);
        if R == 1 && n == L {
            _mm256_storeu_ps(s.add(j), sums);
        } else {
            let mut lanes = [0f32; L];
            _mm256_storeu_ps(lanes.as_mut_ptr(), sums);
            for r in 0..rows.min(R) {
                std::ptr::copy_nonoverlapping(lanes.as_ptr().add(r * g), s.add(r * lds + j), n);
            }
        }
        j += n;
    }
}

/// The online-softmax step of `super::super::softmax::online_update` for one
/// contiguous row of `keys` scores (in place) and its scalar statistics.
///
/// # Safety
/// AVX2 + FMA CPU; `s` addresses `keys` floats; `m`, `l`, `alpha` one each.
#[target_feature(enable = "avx2,fma")]
pub(in crate::fast::attention) unsafe fn softmax_row(
    s: *mut f32,
    keys: usize,
    m: *mut f32,
    l: *mut f32,
    alpha: *mut f32,
) {
    let full = keys / L * L;
    let mut mx = [_mm256_set1_ps(f32::NEG_INFINITY); 2];
    let mut c = 0;
    while c < full {
        mx[(c / L) & 1] = _mm256_max_ps(mx[(c / L) & 1], _mm256_loadu_ps(s.add(c)));
        c += L;
    }
    let mut lanes = [0f32; L];
    _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_max_ps(mx[0], mx[1]));
    let tail = std::slice::from_raw_parts(s.add(full), keys - full);
    let tile_max = lanes
        .iter()
        .chain(tail)
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    let old = *m;
    let m_new = if tile_max > old { tile_max } else { old };
    let safe = if m_new == f32::NEG_INFINITY {
        0.0
    } else {
        m_new
    };
    let a = exp2_scalar(old - safe);
    let sv = _mm256_set1_ps(safe);
    let mut sum = [_mm256_setzero_ps(); 2];
    let mut c = 0;
    while c < full {
        let p = exp2::<__m256, false>(_mm256_sub_ps(_mm256_loadu_ps(s.add(c)), sv));
        _mm256_storeu_ps(s.add(c), p);
        sum[(c / L) & 1] = _mm256_add_ps(sum[(c / L) & 1], p);
        c += L;
    }
    if full < keys {
        // The tail through a padded vector: -inf lanes give exactly 0.
        let mut pad = [f32::NEG_INFINITY; L];
        pad[..keys - full].copy_from_slice(tail);
        let p = exp2::<__m256, false>(_mm256_sub_ps(_mm256_loadu_ps(pad.as_ptr()), sv));
        _mm256_storeu_ps(pad.as_mut_ptr(), p);
        std::ptr::copy_nonoverlapping(pad.as_ptr(), s.add(full), keys - full);
        sum[1] = _mm256_add_ps(sum[1], p);
    }
    _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(sum[0], sum[1]));
    *l = *l * a + lanes.iter().sum::<f32>();
    *m = m_new;
    *alpha = a;
}

/// [`exp2`] (the Cephes form) of one value (lane 0 of a splat).
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn exp2_scalar(x: f32) -> f32 {
    _mm256_cvtss_f32(exp2::<__m256, false>(_mm256_set1_ps(x)))
}

/// Value update of `rows` (`1..=R`) rows, values read in place (widened in
/// registers):
/// `o[r * ldo + x] = alpha[r] * o[r * ldo + x] + sum_{j < keys} p[r * ldp + j] * v[j * ldv + x]`
/// for `x < width`. `8 / R` vectors of features per pass over the keys
/// (`R * 8 / R` accumulators, `R` broadcasts and one value vector in
/// registers).
///
/// # Safety
/// AVX2 + FMA + F16C CPU; `p` addresses `rows` rows of `keys` floats at
/// stride `ldp`, `v` addresses `keys` rows of `width` elements at stride
/// `ldv`, `alpha` `rows` floats, and `o` `rows` writable rows of `width`
/// floats at stride `ldo`, disjoint from the inputs.
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub(in crate::fast::attention) unsafe fn rows_pv<E: KvLoad8, const R: usize, const NV: usize>(
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
    let pr: [*const f32; R] = super::padded_rows(p, rows, ldp);
    let orow = super::padded_rows::<f32, R>(o, rows, ldo).map(<*const f32>::cast_mut);
    let al = super::padded_rows::<f32, R>(alpha, rows, 1).map(|a| _mm256_set1_ps(*a));
    let mut x0 = 0;
    while x0 < width {
        // Lanes of each vector inside the row (8: whole, 0: none).
        let mut lanes = [0usize; NV];
        for (x, n) in lanes.iter_mut().enumerate() {
            *n = width.saturating_sub(x0 + x * L).min(L);
        }
        let mut acc = [[_mm256_setzero_ps(); NV]; R];
        for r in 0..R {
            for x in 0..NV {
                let at = orow[r].wrapping_add(x0 + x * L);
                let cur = match lanes[x] {
                    L => _mm256_loadu_ps(at),
                    0 => _mm256_setzero_ps(),
                    n => _mm256_maskload_ps(at, lanes_mask(n)),
                };
                acc[r][x] = _mm256_mul_ps(cur, al[r]);
            }
        }
        let ahead = PREFETCH_ROWS * ldv;
        let span = width.saturating_sub(x0).min(NV * L);
        if lanes[NV - 1] == L {
            for j in 0..keys {
                let vrow = v.add(j * ldv + x0);
                prefetch_row(vrow.wrapping_add(ahead), span, hint);
                let pb: [__m256; R] = std::array::from_fn(|r| _mm256_broadcast_ss(&*pr[r].add(j)));
                for x in 0..NV {
                    let vv = E::load8(vrow.add(x * L));
                    for r in 0..R {
                        acc[r][x] = _mm256_fmadd_ps(pb[r], vv, acc[r][x]);
                    }
                }
            }
        } else {
            for j in 0..keys {
                let vrow = v.add(j * ldv + x0);
                prefetch_row(vrow.wrapping_add(ahead), span, hint);
                let pb: [__m256; R] = std::array::from_fn(|r| _mm256_broadcast_ss(&*pr[r].add(j)));
                for x in 0..NV {
                    let vv = match lanes[x] {
                        L => E::load8(vrow.add(x * L)),
                        0 => continue,
                        n => E::load_n(vrow.add(x * L), n),
                    };
                    for r in 0..R {
                        acc[r][x] = _mm256_fmadd_ps(pb[r], vv, acc[r][x]);
                    }
                }
            }
        }
        for r in 0..rows.min(R) {
            for x in 0..NV {
                let at = orow[r].wrapping_add(x0 + x * L);
                match lanes[x] {
                    L => _mm256_storeu_ps(at, acc[r][x]),
                    0 => {}
                    n => _mm256_maskstore_ps(at, lanes_mask(n), acc[r][x]),
                }
            }
        }
        x0 += NV * L;
    }
}
