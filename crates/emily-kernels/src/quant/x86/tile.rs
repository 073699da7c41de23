//! The prefill kernel on AVX512-VNNI: quantized weights × 8-bit activations,
//! register-tiled over [`PANEL`] weight rows × up to [`TILE_ROWS`] activation
//! rows.
//!
//! A worker takes a panel of 16 weight rows, unpacks it once
//! ([`super::unpack`]) and transposes it so that each 64-byte vector holds
//! 4 consecutive codes of each of the 16 rows. One `vpdpbusd` with 4
//! activation codes broadcast to every lane then advances 16 dot products at
//! once (lane j = weight row j), the vector reused by every activation row of
//! the tile; the integer sums of a sub-block are scaled into f32 accumulators
//! once per sub-block, with the corrections of [`super::unpack`] from the
//! activation block sums. Every activation row then meets the panel, which
//! stays in L2.

use std::arch::x86_64::*;

use super::super::activation::Q8Activations;
use super::unpack::Unpack;

/// Weight rows per panel (the 16 i32 lanes of a 512-bit vector).
pub(crate) const PANEL: usize = 16;
/// Activation rows per register tile.
pub(crate) const TILE_ROWS: usize = 8;

/// A worker's panel buffers: codes of the unpacked rows, their transposed
/// form, and the per-sub-block scales and corrections (`[sub][PANEL]`).
#[derive(Default)]
pub(crate) struct PanelBuf {
    rows: Vec<u8>,
    codes: Vec<u8>,
    scale: Vec<f32>,
    corr: Vec<f32>,
}

/// Transposes the 8×8 matrix of 32-bit words in `r`.
#[inline(always)]
unsafe fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
    // SAFETY: AVX2 enabled in every caller.
    unsafe {
        let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
        let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
        let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
        let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
        let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
        let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
        let u0 = _mm256_unpacklo_epi64(t0, t2);
        let u1 = _mm256_unpackhi_epi64(t0, t2);
        let u2 = _mm256_unpacklo_epi64(t1, t3);
        let u3 = _mm256_unpackhi_epi64(t1, t3);
        let u4 = _mm256_unpacklo_epi64(t4, t6);
        let u5 = _mm256_unpackhi_epi64(t4, t6);
        let u6 = _mm256_unpacklo_epi64(t5, t7);
        let u7 = _mm256_unpackhi_epi64(t5, t7);
        [
            _mm256_permute2x128_si256::<0x20>(u0, u4),
            _mm256_permute2x128_si256::<0x20>(u1, u5),
            _mm256_permute2x128_si256::<0x20>(u2, u6),
            _mm256_permute2x128_si256::<0x20>(u3, u7),
            _mm256_permute2x128_si256::<0x31>(u0, u4),
            _mm256_permute2x128_si256::<0x31>(u1, u5),
            _mm256_permute2x128_si256::<0x31>(u2, u6),
            _mm256_permute2x128_si256::<0x31>(u3, u7),
        ]
    }
}

/// Unpacks weight rows `r0..r0 + rows` (`rows <= PANEL`; missing rows are
/// zero) into `buf`: codes as `[k / 32][8 words][PANEL rows][4 bytes]`.
#[inline(always)]
unsafe fn pack<F: Unpack>(
    w: *const u8,
    row_bytes: usize,
    k: usize,
    r0: usize,
    rows: usize,
    buf: &mut PanelBuf,
) {
    let nsub = k / F::SUB;
    buf.rows.resize(PANEL * k, 0);
    buf.codes.resize(PANEL * k, 0);
    buf.scale.clear();
    buf.scale.resize(nsub * PANEL, 0.0);
    buf.corr.clear();
    buf.corr.resize(nsub * PANEL, 0.0);
    let per_block = F::ELEMS / F::SUB;
    // SAFETY: the caller's contract (rows r0..r0 + rows of `row_bytes` at
    // `w`, k a multiple of F::ELEMS); the buffers were sized above.
    unsafe {
        let (sc, co) = (buf.scale.as_mut_ptr(), buf.corr.as_mut_ptr());
        for j in 0..PANEL {
            let codes = buf.rows.as_mut_ptr().add(j * k);
            if j >= rows {
                std::ptr::write_bytes(codes, 0, k);
                continue;
            }
            let wr = w.add((r0 + j) * row_bytes);
            for b in 0..k / F::ELEMS {
                let s = b * per_block * PANEL + j;
                F::unpack(
                    wr.add(b * F::BYTES),
                    codes.add(b * F::ELEMS),
                    sc.add(s),
                    co.add(s),
                    PANEL,
                );
            }
        }
        let (src, dst) = (buf.rows.as_ptr(), buf.codes.as_mut_ptr());
        for b in 0..k / 32 {
            for half in 0..2 {
                let r: [__m256i; 8] = std::array::from_fn(|j| {
                    _mm256_loadu_si256(src.add((8 * half + j) * k + 32 * b).cast())
                });
                for (g, v) in transpose8(r).into_iter().enumerate() {
                    _mm256_storeu_si256(dst.add(b * 512 + g * 64 + half * 32).cast(), v);
                }
            }
        }
    }
}

/// Activation rows `i0..i0 + M` times the packed panel into `out` (which
/// points at column 0 of the panel in row 0; `mask` marks its real columns).
/// `SUBS` sub-blocks per 32 elements (1, or 2 for 16-element sub-blocks).
#[inline(always)]
unsafe fn tile<const M: usize, const SUBS: usize>(
    buf: &PanelBuf,
    a: &Q8Activations,
    i0: usize,
    out: *mut f32,
    n: usize,
    mask: __mmask16,
) {
    let k = a.k;
    let nb = k / 32;
    let groups = 8 / SUBS;
    // SAFETY: rows i0..i0 + M exist in `a`; the panel holds k / 32 blocks;
    // `out` has rows i0..i0 + M of stride n with the masked columns ours.
    unsafe {
        let codes = buf.codes.as_ptr();
        let (scale, corr) = (buf.scale.as_ptr(), buf.corr.as_ptr());
        let qs = a.qs.as_ptr().add(i0 * k);
        let d = a.d.as_ptr().add(i0 * nb);
        let sums = if SUBS == 1 {
            a.sum32.as_ptr().add(i0 * nb)
        } else {
            a.sum16.as_ptr().add(i0 * nb * 2)
        };
        let mut accf = [_mm512_setzero_ps(); M];
        for b in 0..nb {
            for s in 0..SUBS {
                let mut acc = [_mm512_setzero_si512(); M];
                for g in s * groups..(s + 1) * groups {
                    let wv = _mm512_loadu_si512(codes.add(b * 512 + g * 64).cast());
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let x = qs
                            .add(r * k + 32 * b + 4 * g)
                            .cast::<i32>()
                            .read_unaligned();
                        *acc = _mm512_dpbusd_epi32(*acc, wv, _mm512_set1_epi32(x));
                    }
                }
                let sb = b * SUBS + s;
                let sc = _mm512_loadu_ps(scale.add(sb * PANEL));
                let co = _mm512_loadu_ps(corr.add(sb * PANEL));
                for (r, (accf, acc)) in accf.iter_mut().zip(acc).enumerate() {
                    let da = _mm512_set1_ps(*d.add(r * nb + b));
                    let sum = _mm512_set1_ps(*sums.add(r * nb * SUBS + sb));
                    *accf = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_mul_ps(sc, da), *accf);
                    *accf = _mm512_fmadd_ps(co, sum, *accf);
                }
            }
        }
        for (r, v) in accf.into_iter().enumerate() {
            _mm512_mask_storeu_ps(out.add((i0 + r) * n), mask, v);
        }
    }
}

/// Panels `p0..p1` of `out = act · wᵀ` (`w` holds `n` rows in format `F`).
#[inline(always)]
unsafe fn panels<F: Unpack, const SUBS: usize>(
    w: *const u8,
    n: usize,
    act: &Q8Activations,
    out: *mut f32,
    (p0, p1): (usize, usize),
    buf: &mut PanelBuf,
) {
    let row_bytes = act.k / F::ELEMS * F::BYTES;
    // SAFETY: the caller's contract (see `gemm_panels`).
    unsafe {
        for p in p0..p1 {
            let r0 = p * PANEL;
            let rows = PANEL.min(n - r0);
            pack::<F>(w, row_bytes, act.k, r0, rows, buf);
            let mask = ((1u32 << rows) - 1) as __mmask16;
            let o = out.add(r0);
            let mut i = 0;
            while i < act.m {
                match act.m - i {
                    1 => tile::<1, SUBS>(buf, act, i, o, n, mask),
                    2 => tile::<2, SUBS>(buf, act, i, o, n, mask),
                    3 => tile::<3, SUBS>(buf, act, i, o, n, mask),
                    4 => tile::<4, SUBS>(buf, act, i, o, n, mask),
                    5 => tile::<5, SUBS>(buf, act, i, o, n, mask),
                    6 => tile::<6, SUBS>(buf, act, i, o, n, mask),
                    7 => tile::<7, SUBS>(buf, act, i, o, n, mask),
                    _ => tile::<TILE_ROWS, SUBS>(buf, act, i, o, n, mask),
                }
                i += TILE_ROWS;
            }
        }
    }
}

/// Panels `p0..p1` (weight rows `16·p0..min(16·p1, n)`) of `out = act · wᵀ`
/// for `format`; `out` is row-major `(act.m, n)`.
///
/// # Safety
/// The CPU has AVX512F/BW/VL/VNNI, AVX2, FMA and F16C; `w` holds `n` rows
/// of `act.k` elements of `format`; `out` points at `act.m · n` floats of
/// which no one else writes these panels' columns; `16·p1 <= n + 15`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn gemm_panels(
    format: super::super::BlockFormat,
    w: *const u8,
    n: usize,
    act: &Q8Activations,
    out: *mut f32,
    range: (usize, usize),
    buf: &mut PanelBuf,
) {
    use super::super::BlockFormat as B;
    use super::unpack::{Int4G64, Int8G32, Int8G64, Q4K, Q4_0, Q4_1, Q5K, Q5_0, Q5_1, Q6K, Q8_0};
    // SAFETY: the caller's contract.
    unsafe {
        match format {
            B::Q8_0 => panels::<Q8_0, 1>(w, n, act, out, range, buf),
            B::Q4_0 => panels::<Q4_0, 1>(w, n, act, out, range, buf),
            B::Q4_1 | B::Int4G32 => panels::<Q4_1, 1>(w, n, act, out, range, buf),
            B::Q5_0 => panels::<Q5_0, 1>(w, n, act, out, range, buf),
            B::Q5_1 => panels::<Q5_1, 1>(w, n, act, out, range, buf),
            B::Q4K => panels::<Q4K, 1>(w, n, act, out, range, buf),
            B::Q5K => panels::<Q5K, 1>(w, n, act, out, range, buf),
            B::Q6K => panels::<Q6K, 2>(w, n, act, out, range, buf),
            B::Int8G32 => panels::<Int8G32, 1>(w, n, act, out, range, buf),
            B::Int8G64 => panels::<Int8G64, 1>(w, n, act, out, range, buf),
            B::Int4G64 => panels::<Int4G64, 1>(w, n, act, out, range, buf),
        }
    }
}
