//! x86-64 kernels of the int8-row GEMV (AVX512-VNNI and AVX2) and the AVX2
//! loop of its activation quantization.

use std::arch::x86_64::*;

use super::blocks::CODE_MAX;
use super::{Job, BLOCK, LINE, PANEL_ROWS, PREFETCH_LINES};

/// Asks for the lines of one block's weights [`PREFETCH_LINES`] ahead of
/// line `j` of a panel body (a hint: past the last panel it touches
/// nothing).
#[inline(always)]
unsafe fn prefetch_block(body: *const u8, j: usize) {
    let ahead = body.wrapping_add(LINE * (j + PREFETCH_LINES));
    for l in 0..BLOCK / 4 {
        crate::prefetch::stream_line(ahead.wrapping_add(LINE * l));
    }
}

/// Panels `p0..p1` times every activation row with `vpdpbusd`: each block's
/// sum is `256 · Σ u·hi + Σ u·lo` over the codes' byte planes, each plane's
/// chain started from its `-128 · Σ` offset.
///
/// Rows go through [`panels_rows`] up to [`ROW_GROUP`] at a time, so each
/// weight line is loaded once per group and the group's `2 × rows`
/// dot-product chains run side by side (one row's two chains wait on the
/// instruction's latency: a beam-5 step's 51,865 × 384 token table took
/// 0.90 ms one row at a time, 2.4× a single row's).
///
/// # Safety
/// AVX512-F/BW/VNNI present; `job.hi`/`job.lo` set; as
/// [`super::panels_portable`].
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn panels(job: Job, p0: usize, p1: usize) {
    let mut i0 = 0;
    while i0 < job.m {
        let rows = (job.m - i0).min(ROW_GROUP);
        // SAFETY: the caller's contract, rows `i0..i0 + rows` of it.
        unsafe {
            match rows {
                1 => panels_rows::<1>(job, p0, p1, i0),
                2 => panels_rows::<2>(job, p0, p1, i0),
                3 => panels_rows::<3>(job, p0, p1, i0),
                4 => panels_rows::<4>(job, p0, p1, i0),
                5 => panels_rows::<5>(job, p0, p1, i0),
                6 => panels_rows::<6>(job, p0, p1, i0),
                7 => panels_rows::<7>(job, p0, p1, i0),
                _ => panels_rows::<8>(job, p0, p1, i0),
            }
        }
        i0 += rows;
    }
}

/// Most activation rows [`panels`] runs against one load of a weight line
/// (three accumulators a row: 24 of the 32 vector registers).
const ROW_GROUP: usize = 8;

/// [`panels`] for the `R` activation rows `i0..i0 + R`.
///
/// # Safety
/// As [`panels`], with `i0 + R <= job.m`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn panels_rows<const R: usize>(job: Job, p0: usize, p1: usize, i0: usize) {
    let kp = job.blocks * BLOCK;
    for p in p0..p1 {
        // SAFETY: the caller's contract: panel `p` and the activation
        // rows are in bounds; the lines are 64-byte aligned.
        unsafe {
            let panel = job.lines.add(p * job.per_panel).cast::<__m512i>();
            let steps = _mm512_castsi512_ps(_mm512_load_si512(panel));
            let body = panel.add(1);
            let valid = (job.n - p * PANEL_ROWS).min(PANEL_ROWS);
            let mask: __mmask16 = if valid == PANEL_ROWS {
                !0
            } else {
                (1u16 << valid) - 1
            };
            let hi: [*const i32; R] =
                std::array::from_fn(|i| job.hi.add((i0 + i) * kp).cast::<i32>());
            let lo: [*const i32; R] =
                std::array::from_fn(|i| job.lo.add((i0 + i) * kp).cast::<i32>());
            let mut acc = [_mm512_setzero_ps(); R];
            for b in 0..job.blocks {
                let mut a: [__m512i; R] = std::array::from_fn(|i| {
                    _mm512_set1_epi32(*job.hi_off.add((i0 + i) * job.blocks + b))
                });
                let mut r: [__m512i; R] = std::array::from_fn(|i| {
                    _mm512_set1_epi32(*job.lo_off.add((i0 + i) * job.blocks + b))
                });
                let j = b * BLOCK / 4;
                for t in 0..BLOCK / 4 {
                    let w = _mm512_load_si512(body.add(j + t));
                    for i in 0..R {
                        a[i] = _mm512_dpbusd_epi32(
                            a[i],
                            w,
                            _mm512_set1_epi32(hi[i].add(j + t).read_unaligned()),
                        );
                        r[i] = _mm512_dpbusd_epi32(
                            r[i],
                            w,
                            _mm512_set1_epi32(lo[i].add(j + t).read_unaligned()),
                        );
                    }
                }
                for i in 0..R {
                    let sum = _mm512_add_epi32(_mm512_slli_epi32::<8>(a[i]), r[i]);
                    acc[i] = _mm512_fmadd_ps(
                        _mm512_cvtepi32_ps(sum),
                        _mm512_set1_ps(*job.scales.add((i0 + i) * job.blocks + b)),
                        acc[i],
                    );
                }
            }
            for (i, acc) in acc.into_iter().enumerate() {
                let out = job.out.add((i0 + i) * job.n + p * PANEL_ROWS);
                _mm512_mask_storeu_ps(out, mask, _mm512_mul_ps(acc, steps));
            }
        }
    }
}

/// Panels `p0..p1` times every activation row on AVX2. Each 16-byte quarter
/// of a panel line holds four rows' four codes (`u = q + 128`); widened to
/// 16 bits (`vpmovzxbw`) and multiplied by the line's four 16-bit
/// activation codes broadcast (`vpmaddwd`), it gives each of the four rows
/// two pair sums, which stay in their lanes across the block; a row's sum
/// is then `Σ u·a − 128 · Σa`, the offset put into one lane of each pair at
/// the block's start. Pair sums are at most `2 · 255 · 32512`, a block's at
/// most `32 · 255 · 32512`: no overflow. Two multiplies per 32 weight bytes
/// (half what 8-bit activations in two passes cost on `vpmaddubsw` +
/// `vpmaddwd`).
///
/// # Safety
/// AVX2 and FMA present; as [`super::panels_portable`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn panels_avx2(job: Job, p0: usize, p1: usize) {
    let kp = job.blocks * BLOCK;
    // Lanes 0, 2, 4, 6: the first of each row's pair.
    let first = _mm256_setr_epi32(-1, 0, -1, 0, -1, 0, -1, 0);
    for p in p0..p1 {
        // SAFETY: the caller's contract: panel `p` and the activation
        // rows are in bounds; the lines are 64-byte aligned.
        unsafe {
            let panel = job.lines.add(p * job.per_panel).cast::<u8>();
            let steps = [0, 1].map(|h| _mm256_load_ps(panel.add(32 * h).cast()));
            let body = panel.add(LINE);
            let valid = (job.n - p * PANEL_ROWS).min(PANEL_ROWS);
            for i in 0..job.m {
                let codes = job.codes.add(i * kp);
                // Rows in the order the pair sums leave them (see below).
                let mut acc = [_mm256_setzero_ps(); 2];
                for b in 0..job.blocks {
                    let at = i * job.blocks + b;
                    let off = _mm256_and_si256(_mm256_set1_epi32(*job.offsets.add(at)), first);
                    let mut s = [off; 4];
                    let j = b * BLOCK / 4;
                    prefetch_block(body, j);
                    for t in 0..BLOCK / 4 {
                        let line = body.add(LINE * (j + t));
                        let a = _mm256_set1_epi64x(
                            codes.add(4 * (j + t)).cast::<i64>().read_unaligned(),
                        );
                        for (c, s) in s.iter_mut().enumerate() {
                            let w = _mm256_cvtepu8_epi16(_mm_load_si128(line.add(16 * c).cast()));
                            *s = _mm256_add_epi32(*s, _mm256_madd_epi16(w, a));
                        }
                    }
                    // Pairs summed: rows 0 1 4 5 2 3 6 7 (and 8 more).
                    let scale = _mm256_set1_ps(*job.scales.add(at));
                    for h in 0..2 {
                        let rows = _mm256_hadd_epi32(s[2 * h], s[2 * h + 1]);
                        acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(rows), scale, acc[h]);
                    }
                }
                let out = job.out.add(i * job.n + p * PANEL_ROWS);
                for h in 0..2 {
                    // Rows 0 1 4 5 2 3 6 7 back in order.
                    let v =
                        _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(acc[h])));
                    let v = _mm256_mul_ps(v, steps[h]);
                    let n = valid.saturating_sub(8 * h).min(8);
                    if n == 8 {
                        _mm256_storeu_ps(out.add(8 * h), v);
                    } else if n > 0 {
                        let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), iota);
                        _mm256_maskstore_ps(out.add(8 * h), mask, v);
                    }
                }
            }
        }
    }
}

/// `max|x|` of one block, NaN when any value is NaN or infinite.
///
/// # Safety
/// AVX2 present.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn amax_avx2(x: &[f32; BLOCK]) -> f32 {
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX));
    let (mut m, mut bad) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for c in 0..BLOCK / 8 {
        // SAFETY: 8 readable values at `8 c`.
        let v = _mm256_and_ps(unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * c)) }, abs);
        m = _mm256_max_ps(m, v);
        // Not `|v| <= MAX`: NaN or infinite.
        bad = _mm256_or_ps(
            bad,
            _mm256_cmp_ps::<_CMP_NLE_UQ>(v, _mm256_set1_ps(f32::MAX)),
        );
    }
    if _mm256_movemask_ps(bad) != 0 {
        return f32::NAN;
    }
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
}

/// One finite block's codes `round(x · inv)` (ties to even, the default
/// rounding of `vcvtps2dq`) clamped to ±[`CODE_MAX`]: the plain loop's
/// codes; returns their sum.
///
/// # Safety
/// AVX2 present.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn codes_avx2(x: &[f32; BLOCK], inv: f32, codes: &mut [i16; BLOCK]) -> i32 {
    let inv = _mm256_set1_ps(inv);
    let (lo, hi) = (_mm256_set1_epi32(-CODE_MAX), _mm256_set1_epi32(CODE_MAX));
    let mut c = [_mm256_setzero_si256(); 4];
    for (q, c) in c.iter_mut().enumerate() {
        // SAFETY: 8 readable values at `8 q`.
        let v = _mm256_mul_ps(unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * q)) }, inv);
        *c = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(v), lo), hi);
    }
    let sum = _mm256_add_epi32(_mm256_add_epi32(c[0], c[1]), _mm256_add_epi32(c[2], c[3]));
    let sum = _mm_add_epi32(
        _mm256_castsi256_si128(sum),
        _mm256_extracti128_si256::<1>(sum),
    );
    let sum = _mm_add_epi32(sum, _mm_shuffle_epi32::<0b00_00_11_10>(sum));
    let sum = _mm_add_epi32(sum, _mm_shuffle_epi32::<0b00_00_00_01>(sum));
    for h in 0..2 {
        // `vpackssdw` interleaves 128-bit lanes; the permute restores order.
        let packed = _mm256_permute4x64_epi64::<0xD8>(_mm256_packs_epi32(c[2 * h], c[2 * h + 1]));
        // SAFETY: 16 writable codes at `16 h`.
        unsafe { _mm256_storeu_si256(codes.as_mut_ptr().add(16 * h).cast(), packed) };
    }
    _mm_cvtsi128_si32(sum)
}
