//! The 32- and 64-element formats on x86: `Q8_0`, `Q4_0`, `Q4_1` (and
//! `Int4G32`, the same layout), `Q5_0`, `Q5_1`, `Int8G32/64`, `Int4G64`.

use std::arch::x86_64::*;

use super::{f16_at, nibbles16, Accs, ActRows, Dot, Format};

/// 32 weight codes times 32-block `ab` of each activation row, scaled by
/// `d` × the activation scale, into set `p`; when `COEF`, also adds `coef` ×
/// the activation block sum to the scalar accumulators. `SIGNED` codes are
/// i8 weights, otherwise unsigned codes ≤ 127.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block32<D: Dot, const M: usize, const SIGNED: bool, const COEF: bool>(
    codes: __m256i,
    d: f32,
    coef: f32,
    a: ActRows,
    ab: usize,
    p: usize,
    acc: &mut Accs<M>,
) {
    // SAFETY: the caller keeps block `ab` of the M rows in range; AVX2/FMA
    // are enabled in every caller.
    unsafe {
        let dv = _mm256_set1_ps(d);
        for i in 0..M {
            let x = a.codes(i, ab);
            let dot = if SIGNED {
                D::dot_i8(codes, x)
            } else {
                D::dot_u7(codes, x)
            };
            let s = _mm256_mul_ps(dv, _mm256_broadcast_ss(&*a.d(i, ab)));
            acc.v[p][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), s, acc.v[p][i]);
            if COEF {
                acc.c[p][i] = coef.mul_add(*a.sum32(i, ab), acc.c[p][i]);
            }
        }
    }
}

/// GGML `Q8_0`.
pub(crate) struct Q8_0;
impl Format for Q8_0 {
    const ELEMS: usize = 32;
    const BYTES: usize = 34;
    const SCALAR_FACTOR: f32 = 0.0;
    #[inline(always)]
    unsafe fn accumulate<D: Dot, const M: usize>(
        w: *const u8,
        a: ActRows,
        blk: usize,
        p: usize,
        acc: &mut Accs<M>,
    ) {
        // SAFETY: 34 readable bytes at `w`.
        unsafe {
            let q = _mm256_loadu_si256(w.add(2).cast());
            block32::<D, M, true, false>(q, f16_at(w), 0.0, a, blk, p, acc);
        }
    }
}

/// GGML `Q4_0`: codes offset by 8.
pub(crate) struct Q4_0;
impl Format for Q4_0 {
    const ELEMS: usize = 32;
    const BYTES: usize = 18;
    const SCALAR_FACTOR: f32 = -8.0;
    #[inline(always)]
    unsafe fn accumulate<D: Dot, const M: usize>(
        w: *const u8,
        a: ActRows,
        blk: usize,
        p: usize,
        acc: &mut Accs<M>,
    ) {
        // SAFETY: 18 readable bytes at `w`.
        unsafe {
            let d = f16_at(w);
            block32::<D, M, false, true>(nibbles16(w.add(2)), d, d, a, blk, p, acc);
        }
    }
}

/// GGML `Q4_1` (and `Int4G32`): scale and min.
pub(crate) struct Q4_1;
impl Format for Q4_1 {
    const ELEMS: usize = 32;
    const BYTES: usize = 20;
    const SCALAR_FACTOR: f32 = 1.0;
    #[inline(always)]
    unsafe fn accumulate<D: Dot, const M: usize>(
        w: *const u8,
        a: ActRows,
        blk: usize,
        p: usize,
        acc: &mut Accs<M>,
    ) {
        // SAFETY: 20 readable bytes at `w`.
        unsafe {
            let (d, m) = (f16_at(w), f16_at(w.add(2)));
            block32::<D, M, false, true>(nibbles16(w.add(4)), d, m, a, blk, p, acc);
        }
    }
}

/// GGML `Q5_0`: 5-bit codes offset by 16.
pub(crate) struct Q5_0;
impl Format for Q5_0 {
    const ELEMS: usize = 32;
    const BYTES: usize = 22;
    const SCALAR_FACTOR: f32 = -16.0;
    #[inline(always)]
    unsafe fn accumulate<D: Dot, const M: usize>(
        w: *const u8,
        a: ActRows,
        blk: usize,
        p: usize,
        acc: &mut Accs<M>,
    ) {
        // SAFETY: 22 readable bytes at `w`.
        unsafe {
            let d = f16_at(w);
            let high = D::bit4_bytes(w.add(2).cast::<u32>().read_unaligned());
            let codes = _mm256_or_si256(nibbles16(w.add(6)), high);
            block32::<D, M, false, true>(codes, d, d, a, blk, p, acc);
        }
    }
}

/// GGML `Q5_1`: 5-bit codes with scale and min.
pub(crate) struct Q5_1;
impl Format for Q5_1 {
    const ELEMS: usize = 32;
    const BYTES: usize = 24;
    const SCALAR_FACTOR: f32 = 1.0;
    #[inline(always)]
    unsafe fn accumulate<D: Dot, const M: usize>(
        w: *const u8,
        a: ActRows,
        blk: usize,
        p: usize,
        acc: &mut Accs<M>,
    ) {
        // SAFETY: 24 readable bytes at `w`.
        unsafe {
            let (d, m) = (f16_at(w), f16_at(w.add(2)));
            let high = D::bit4_bytes(w.add(4).cast::<u32>().read_unaligned());
            let codes = _mm256_or_si256(nibbles16(w.add(8)), high);
            block32::<D, M, false, true>(codes, d, m, a, blk, p, acc);
        }
    }
}

/// 32 unsigned 8-bit affine codes at `q` as signed weights `q − 128` (the
/// caller adds `128·d` to the bias).
#[inline(always)]
unsafe fn int8_as_signed(q: *const u8) -> __m256i {
    // SAFETY: 32 readable bytes at `q`; AVX2 enabled in every caller.
    unsafe { _mm256_xor_si256(_mm256_loadu_si256(q.cast()), _mm256_set1_epi8(-128)) }
}

/// Affine 8-bit, groups of 32.
pub(crate) struct Int8G32;
impl Format for Int8G32 {
    const ELEMS: usize = 32;
    const BYTES: usize = 36;
    const SCALAR_FACTOR: f32 = 1.0;
    #[inline(always)]
    unsafe fn accumulate<D: Dot, const M: usize>(
        w: *const u8,
        a: ActRows,
        blk: usize,
        p: usize,
        acc: &mut Accs<M>,
    ) {
        // SAFETY: 36 readable bytes at `w`.
        unsafe {
            let (d, m) = (f16_at(w), f16_at(w.add(2)));
            let codes = int8_as_signed(w.add(4));
            block32::<D, M, true, true>(codes, d, d.mul_add(128.0, m), a, blk, p, acc);
        }
    }
}

/// Affine 8-bit, groups of 64 (two activation blocks per group).
pub(crate) struct Int8G64;
impl Format for Int8G64 {
    const ELEMS: usize = 64;
    const BYTES: usize = 68;
    const SCALAR_FACTOR: f32 = 1.0;
    #[inline(always)]
    unsafe fn accumulate<D: Dot, const M: usize>(
        w: *const u8,
        a: ActRows,
        blk: usize,
        _p: usize,
        acc: &mut Accs<M>,
    ) {
        // SAFETY: 68 readable bytes at `w`; activation blocks 2blk, 2blk + 1.
        unsafe {
            let (d, m) = (f16_at(w), f16_at(w.add(2)));
            let bias = d.mul_add(128.0, m);
            let lo = int8_as_signed(w.add(4));
            let hi = int8_as_signed(w.add(36));
            block32::<D, M, true, true>(lo, d, bias, a, 2 * blk, 0, acc);
            block32::<D, M, true, true>(hi, d, bias, a, 2 * blk + 1, 1, acc);
        }
    }
}

/// Affine 4-bit, groups of 64: byte j holds element j low, j + 32 high.
pub(crate) struct Int4G64;
impl Format for Int4G64 {
    const ELEMS: usize = 64;
    const BYTES: usize = 36;
    const SCALAR_FACTOR: f32 = 1.0;
    #[inline(always)]
    unsafe fn accumulate<D: Dot, const M: usize>(
        w: *const u8,
        a: ActRows,
        blk: usize,
        _p: usize,
        acc: &mut Accs<M>,
    ) {
        // SAFETY: 36 readable bytes at `w`; activation blocks 2blk, 2blk + 1.
        unsafe {
            let (d, m) = (f16_at(w), f16_at(w.add(2)));
            let v = _mm256_loadu_si256(w.add(4).cast());
            let low = _mm256_set1_epi8(0x0F);
            let lo = _mm256_and_si256(v, low);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
            block32::<D, M, false, true>(lo, d, m, a, 2 * blk, 0, acc);
            block32::<D, M, false, true>(hi, d, m, a, 2 * blk + 1, 1, acc);
        }
    }
}
