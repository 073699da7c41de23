//! Decode products of the 4-bit 32-element formats (`Q4_0`, `Q4_1` /
//! int4-g32) on 512-bit VNNI: two consecutive blocks of a weight row share
//! one vector — their codes, their scales — against 64 contiguous codes of
//! each activation row, so a block pair costs one `vpdpbusd`, one
//! conversion and one multiply-add per activation row where the 256-bit
//! kernel ([`super::row`]) spent that per block. With several activation
//! rows (a server's batch of sequences) the per-block work, not the weight
//! bytes, is what a decode step waits on: SmolLM2-135M's four-row step spent
//! 8.3 of its 13 ms in its Q4_1 products (7.4 with this kernel), and a
//! one-row step 5.6 of ~6.5 (3.7).

use std::arch::x86_64::*;

use super::legacy::{Q4_0, Q4_1};
use super::{prefetch_ahead, tile_rows, Format, RowKernel};
use crate::quant::activation::Q8Activations;

/// A format of [`rows`]: 32-element blocks of 16 bytes of 4-bit codes after
/// a header whose scale multiplies the codes' dot product and whose
/// coefficient multiplies the activation block's sum (times
/// [`Format::SCALAR_FACTOR`] at the end).
pub(crate) trait NibblePair: Format {
    /// Offset of the 16 code bytes in a block.
    const CODES: usize;

    /// `[d0, c0, d1, c1]`: scale and coefficient of the block at `w` and, when
    /// `PAIR`, of the one after it (zeros otherwise; its bytes are not read).
    unsafe fn scales<const PAIR: bool>(w: *const u8) -> __m128;
}

impl NibblePair for Q4_0 {
    const CODES: usize = 2;
    #[inline(always)]
    unsafe fn scales<const PAIR: bool>(w: *const u8) -> __m128 {
        // SAFETY: the block header (and the next one when `PAIR`) is readable.
        unsafe {
            let h0 = w.cast::<i16>().read_unaligned();
            let h1 = if PAIR {
                w.add(Self::BYTES).cast::<i16>().read_unaligned()
            } else {
                0
            };
            // The coefficient is the scale (codes are offset by 8).
            _mm_cvtph_ps(_mm_set_epi16(0, 0, 0, 0, h1, h1, h0, h0))
        }
    }
}

impl NibblePair for Q4_1 {
    const CODES: usize = 4;
    #[inline(always)]
    unsafe fn scales<const PAIR: bool>(w: *const u8) -> __m128 {
        // SAFETY: the block header (and the next one when `PAIR`) is readable.
        unsafe {
            let h0 = w.cast::<i32>().read_unaligned();
            let h1 = if PAIR {
                w.add(Self::BYTES).cast::<i32>().read_unaligned()
            } else {
                0
            };
            _mm_cvtph_ps(_mm_set_epi32(0, 0, h1, h0))
        }
    }
}

/// The 64 codes of the block pair at `w` (`PAIR`) or the 32 of the block
/// at `w` and zeros, in the activation codes' order.
#[inline(always)]
unsafe fn codes<F: NibblePair, const PAIR: bool>(w: *const u8) -> __m512i {
    // SAFETY: the code bytes of the block (pair) are readable; AVX-512 F/BW.
    unsafe {
        let lo = _mm_loadu_si128(w.add(F::CODES).cast());
        let hi = if PAIR {
            _mm_loadu_si128(w.add(F::BYTES + F::CODES).cast())
        } else {
            _mm_setzero_si128()
        };
        // [lo, hi, lo >> 4, hi >> 4] → [lo, lo >> 4, hi, hi >> 4]: a block's
        // low nibbles are its first 16 values, its high nibbles the rest.
        let both = _mm256_set_m128i(hi, lo);
        let z = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(both), _mm256_srli_epi16::<4>(both));
        let z = _mm512_shuffle_i64x2::<0b11_01_10_00>(z, z);
        _mm512_and_si512(z, _mm512_set1_epi8(0x0F))
    }
}

/// Per-row accumulators: products (16 lanes) and coefficient terms (lanes
/// 0 and 1).
struct Sums<const M: usize> {
    v: [__m512; M],
    c: [__m128; M],
}

/// Adds the block pair at `w` (or the single last block: `!PAIR`) times
/// blocks `b, b + 1` of the `M` activation rows from row `i0`.
#[inline(always)]
unsafe fn pair<F: NibblePair, const M: usize, const PAIR: bool>(
    w: *const u8,
    act: &Q8Activations,
    (i0, b): (usize, usize),
    sums: &mut Sums<M>,
) {
    // SAFETY: the caller keeps the blocks in range; AVX-512 F/BW/VNNI, F16C.
    unsafe {
        let codes = codes::<F, PAIR>(w);
        let s = F::scales::<PAIR>(w);
        // [d0 × 8, d1 × 8] and [c0, c1, ·, ·].
        let halves = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
        let dw = _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(s));
        let coef = _mm_shuffle_ps::<0b11_01>(s, s);
        let per_block = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        let blocks = act.k / 32;
        for i in 0..M {
            let row = i0 + i;
            let qs = act.qs.as_ptr().add(row * act.k + 32 * b);
            let (d, sum) = (
                act.d.as_ptr().add(row * blocks + b),
                act.sum32.as_ptr().add(row * blocks + b),
            );
            let (x, da, sa) = if PAIR {
                (
                    _mm512_loadu_si512(qs.cast()),
                    _mm_castpd_ps(_mm_load_sd(d.cast())),
                    _mm_castpd_ps(_mm_load_sd(sum.cast())),
                )
            } else {
                (
                    _mm512_maskz_loadu_epi8(u32::MAX as u64, qs),
                    _mm_load_ss(d),
                    _mm_load_ss(sum),
                )
            };
            let dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, x);
            let da = _mm512_permutexvar_ps(per_block, _mm512_castps128_ps512(da));
            sums.v[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, da), sums.v[i]);
            sums.c[i] = _mm_fmadd_ps(coef, sa, sums.c[i]);
        }
    }
}

/// Weight row at `w` times activation rows `i0 .. i0 + M`; writes
/// `out[i * n]` for each.
#[inline(always)]
unsafe fn row<F: NibblePair, const M: usize>(
    w: *const u8,
    act: &Q8Activations,
    i0: usize,
    out: *mut f32,
    n: usize,
) {
    // SAFETY: the caller's contract (see `rows`); AVX-512 enabled.
    unsafe {
        let mut sums = Sums::<M> {
            v: [_mm512_setzero_ps(); M],
            c: [_mm_setzero_ps(); M],
        };
        let blocks = act.k / 32;
        let mut b = 0;
        while b + 2 <= blocks {
            let wb = w.add(b * F::BYTES);
            prefetch_ahead::<F>(wb);
            pair::<F, M, true>(wb, act, (i0, b), &mut sums);
            b += 2;
        }
        if b < blocks {
            pair::<F, M, false>(w.add(b * F::BYTES), act, (i0, b), &mut sums);
        }
        for i in 0..M {
            let c = sums.c[i];
            let terms = _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));
            *out.add(i * n) = _mm512_reduce_add_ps(sums.v[i]) + F::SCALAR_FACTOR * terms;
        }
    }
}

/// The pair kernel ([`row`]) for `F`.
struct Pairs<F>(std::marker::PhantomData<F>);

impl<F: NibblePair> RowKernel for Pairs<F> {
    #[inline(always)]
    unsafe fn row<const M: usize>(
        w: *const u8,
        act: &Q8Activations,
        i0: usize,
        out: *mut f32,
        n: usize,
    ) {
        // SAFETY: the caller's contract.
        unsafe { row::<F, M>(w, act, i0, out, n) }
    }
}

/// Weight rows `r0..r1` times every activation row ([`tile_rows`] with the
/// pair kernel); `out` is `(m, n)`.
///
/// # Safety
/// AVX-512 F/BW/VL and VNNI and F16C; as [`super::gemv_rows`] for `F`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn rows<F: NibblePair>(
    w: *const u8,
    act: &Q8Activations,
    out: *mut f32,
    n: usize,
    r0: usize,
    r1: usize,
) {
    // SAFETY: the caller's contract.
    unsafe { tile_rows::<Pairs<F>>(w, F::BYTES * (act.k / 32), act, out, n, r0, r1) }
}
