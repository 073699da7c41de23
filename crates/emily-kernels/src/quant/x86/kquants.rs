//! The K formats on x86: `Q4_K`, `Q5_K`, `Q6_K`. A super-block of 256 weights
//! meets 8 activation blocks of 32; sub-block scales are widened once per
//! super-block and multiplied with the 8 activation scales in one vector op,
//! and the min (or code offset) terms of all sub-blocks are one FMA with the
//! activation block sums.

use std::arch::x86_64::*;

use super::super::kquants::scale_min;
use super::{f16_at, Accs, ActRows, Dot, Format};

/// The 8 six-bit scales and mins of a `Q4_K`/`Q5_K` super-block (12 bytes at
/// `p`) as f32 vectors.
#[inline(always)]
unsafe fn scales_and_mins(p: *const u8) -> (__m256, __m256) {
    // SAFETY: 12 readable bytes at `p`; AVX2 enabled in every caller.
    unsafe {
        let q = std::slice::from_raw_parts(p, 12);
        let mut sc = [0u8; 8];
        let mut mn = [0u8; 8];
        for j in 0..8 {
            (sc[j], mn[j]) = scale_min(j, q);
        }
        let widen = |v: &[u8; 8]| {
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(v.as_ptr().cast())))
        };
        (widen(&sc), widen(&mn))
    }
}

/// `acc.v[set][i] += Σ_lanes cvt(dot)·scale` for one 32-block: the shared tail
/// of every K kernel.
#[inline(always)]
unsafe fn add_scaled<const M: usize>(
    acc: &mut Accs<M>,
    set: usize,
    i: usize,
    dot: __m256i,
    scale: __m256,
) {
    // SAFETY: AVX2/FMA enabled in every caller.
    unsafe {
        acc.v[set][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), scale, acc.v[set][i]);
    }
}

/// The shared body of `Q4_K` and `Q5_K`: `codes(c)` gives the low and high
/// sub-block codes of 64-element chunk `c`.
#[inline(always)]
unsafe fn q45k<D: Dot, const M: usize>(
    w: *const u8,
    a: ActRows,
    blk: usize,
    acc: &mut Accs<M>,
    mut codes: impl FnMut(usize) -> (__m256i, __m256i),
) {
    // SAFETY: the format's bytes at `w`; activation blocks 8blk..8blk+8 of the
    // M rows are in range; AVX2/FMA enabled in every caller.
    unsafe {
        let (sc, mn) = scales_and_mins(w.add(4));
        let scv = _mm256_mul_ps(_mm256_set1_ps(f16_at(w)), sc);
        let mnv = _mm256_mul_ps(_mm256_set1_ps(f16_at(w.add(2))), mn);
        let ab = 8 * blk;
        let mut s = [[0f32; 8]; M];
        for (i, s) in s.iter_mut().enumerate() {
            _mm256_storeu_ps(
                s.as_mut_ptr(),
                _mm256_mul_ps(scv, _mm256_loadu_ps(a.d(i, ab))),
            );
            let sums = _mm256_loadu_ps(a.sum32(i, ab));
            acc.v[1][i] = _mm256_fnmadd_ps(mnv, sums, acc.v[1][i]);
        }
        for c in 0..4 {
            let (lo, hi) = codes(c);
            for (i, s) in s.iter().enumerate() {
                let dl = D::dot_u7(lo, a.codes(i, ab + 2 * c));
                add_scaled(acc, 0, i, dl, _mm256_set1_ps(s[2 * c]));
                let dh = D::dot_u7(hi, a.codes(i, ab + 2 * c + 1));
                add_scaled(acc, 1, i, dh, _mm256_set1_ps(s[2 * c + 1]));
            }
        }
    }
}

/// The 64 codes of chunk `c` (sub-blocks 2c, 2c + 1) of the `Q4_K` block at
/// `w`: the low nibbles of its 32 code bytes, then the high nibbles.
///
/// # Safety
/// 144 readable bytes at `w`, `c < 4`; AVX2 enabled.
#[inline(always)]
pub(super) unsafe fn q4k_chunk(w: *const u8, c: usize) -> (__m256i, __m256i) {
    // SAFETY: the caller's contract.
    unsafe {
        let low = _mm256_set1_epi8(0x0F);
        let q = _mm256_loadu_si256(w.add(16 + 32 * c).cast());
        let lo = _mm256_and_si256(q, low);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), low);
        (lo, hi)
    }
}

/// The 64 codes of chunk `c` of the `Q5_K` block at `w`, the fifth bits
/// taken from `qh` (the block's 32 high-bit bytes, loaded by the caller for
/// chunk 0 and shifted down two bits per chunk here: bits 2c and 2c + 1).
///
/// # Safety
/// 176 readable bytes at `w`, chunks taken in order `c = 0..4`; AVX2 enabled.
#[inline(always)]
pub(super) unsafe fn q5k_chunk(w: *const u8, c: usize, qh: &mut __m256i) -> (__m256i, __m256i) {
    // SAFETY: the caller's contract.
    unsafe {
        let low = _mm256_set1_epi8(0x0F);
        let (one, two) = (_mm256_set1_epi8(1), _mm256_set1_epi8(2));
        let q = _mm256_loadu_si256(w.add(48 + 32 * c).cast());
        let lo = _mm256_or_si256(
            _mm256_and_si256(q, low),
            _mm256_slli_epi16::<4>(_mm256_and_si256(*qh, one)),
        );
        let hi = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(q), low),
            _mm256_slli_epi16::<3>(_mm256_and_si256(*qh, two)),
        );
        *qh = _mm256_srli_epi16::<2>(*qh);
        (lo, hi)
    }
}

/// GGML `Q4_K`.
pub(crate) struct Q4K;
impl Format for Q4K {
    const ELEMS: usize = 256;
    const BYTES: usize = 144;
    const SCALAR_FACTOR: f32 = 0.0;
    #[inline(always)]
    unsafe fn accumulate<D: Dot, const M: usize>(
        w: *const u8,
        a: ActRows,
        blk: usize,
        _p: usize,
        acc: &mut Accs<M>,
    ) {
        // SAFETY: 144 readable bytes at `w`; the caller's range contract.
        unsafe { q45k::<D, M>(w, a, blk, acc, |c| q4k_chunk(w, c)) }
    }
}

/// GGML `Q5_K`.
pub(crate) struct Q5K;
impl Format for Q5K {
    const ELEMS: usize = 256;
    const BYTES: usize = 176;
    const SCALAR_FACTOR: f32 = 0.0;
    #[inline(always)]
    unsafe fn accumulate<D: Dot, const M: usize>(
        w: *const u8,
        a: ActRows,
        blk: usize,
        _p: usize,
        acc: &mut Accs<M>,
    ) {
        // SAFETY: 176 readable bytes at `w`; the caller's range contract.
        unsafe {
            let mut qh = _mm256_loadu_si256(w.add(16).cast());
            q45k::<D, M>(w, a, blk, acc, |c| q5k_chunk(w, c, &mut qh))
        }
    }
}

/// GGML `Q6_K`.
pub(crate) struct Q6K;
impl Format for Q6K {
    const ELEMS: usize = 256;
    const BYTES: usize = 210;
    const SCALAR_FACTOR: f32 = 0.0;
    #[inline(always)]
    unsafe fn accumulate<D: Dot, const M: usize>(
        w: *const u8,
        a: ActRows,
        blk: usize,
        _p: usize,
        acc: &mut Accs<M>,
    ) {
        // SAFETY: 210 readable bytes at `w`; activation blocks 8blk..8blk+8
        // (16-groups 16blk..16blk+16) of the M rows are in range.
        unsafe {
            let d = _mm256_set1_ps(f16_at(w.add(208)));
            let sc = |o: usize| {
                let v = _mm_loadl_epi64(w.add(192 + o).cast());
                _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)))
            };
            let scf = [sc(0), sc(8)];
            // Codes carry an offset of 32: subtract 32·scale·d_a·Σq per 16-group.
            let minus32 = _mm256_set1_ps(32.0);
            for i in 0..M {
                for (h, s) in scf.iter().enumerate() {
                    let sums = _mm256_loadu_ps(a.sum16(i, 16 * blk + 8 * h));
                    acc.v[h][i] = _mm256_fnmadd_ps(_mm256_mul_ps(*s, minus32), sums, acc.v[h][i]);
                }
            }
            let low = _mm256_set1_epi8(0x0F);
            let top = _mm256_set1_epi8(0x30);
            let ab = 8 * blk;
            for (h, s) in scf.iter().enumerate() {
                let ql0 = _mm256_loadu_si256(w.add(64 * h).cast());
                let ql1 = _mm256_loadu_si256(w.add(64 * h + 32).cast());
                let qh = _mm256_loadu_si256(w.add(128 + 32 * h).cast());
                let codes = [
                    _mm256_or_si256(
                        _mm256_and_si256(ql0, low),
                        _mm256_and_si256(_mm256_slli_epi16::<4>(qh), top),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(ql1, low),
                        _mm256_and_si256(_mm256_slli_epi16::<2>(qh), top),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), low),
                        _mm256_and_si256(qh, top),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), low),
                        _mm256_and_si256(_mm256_srli_epi16::<2>(qh), top),
                    ),
                ];
                for (t, code) in codes.into_iter().enumerate() {
                    // Lanes 0-3 take the first 16-group's scale, 4-7 the second's.
                    let t2 = 2 * t as i32;
                    let idx = _mm256_setr_epi32(t2, t2, t2, t2, t2 + 1, t2 + 1, t2 + 1, t2 + 1);
                    let lane_scale = _mm256_permutevar8x32_ps(*s, idx);
                    let b = ab + 4 * h + t;
                    for i in 0..M {
                        let dot = D::dot_u7(code, a.codes(i, b));
                        let scale = _mm256_mul_ps(lane_scale, _mm256_broadcast_ss(&*a.d(i, b)));
                        add_scaled(acc, t & 1, i, dot, scale);
                    }
                }
            }
        }
    }
}
