//! AVX2 int8 micro-kernel: u8 × s8 → i32 through `vpmaddwd` on operands
//! widened to i16, exact for every u8 and s8 value.
//!
//! (`vpmaddubsw` multiplies bytes directly but saturates its i16 pair sums,
//! 2 · 255 · 127 > 32767, so it cannot keep the engines' exact contract.)
//!
//! Per word row `g` of depth, 8 columns of the B panel (32 bytes: 4 s8 values
//! of one column per word) are sign-extended into two 16-lane i16 vectors,
//! each holding 4 columns × 4 depth values. The A word of each row (4 u8
//! values) is zero-extended once per call into 4 i16 lanes and broadcast to
//! all 64-bit lanes, so one `vpmaddwd` yields two partial sums per column for
//! 4 columns. The pairs are folded with `vphaddd` at the store. Rows of the
//! micro-panel share the B vectors: 4 rows × 8 columns = 8 accumulators.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::kernel_portable::Tile;
use super::packed::NR;

/// Columns per block (one pair of i16 B vectors).
const COLS: usize = 8;

/// Depth words whose widened A values live on the stack at once.
const CHUNK: usize = 128;

/// Runs one int8 tile (`t.mr ≤ 4`, the portable engine's micro-panel height).
///
/// # Safety
/// The CPU supports AVX2; the pointers address the regions in [`Tile`].
pub(crate) unsafe fn int8_tile(t: Tile) {
    // SAFETY: forwarded contract.
    unsafe {
        match t.mr {
            1 => rows::<1>(t),
            2 => rows::<2>(t),
            3 => rows::<3>(t),
            _ => rows::<4>(t),
        }
    }
}

/// A word's four u8 values as four u16 lanes of a u64.
#[inline(always)]
fn widen(w: u32) -> u64 {
    let w = w as u64;
    (w & 0xff) | (w & 0xff00) << 8 | (w & 0xff_0000) << 16 | (w & 0xff00_0000) << 24
}

#[target_feature(enable = "avx2")]
unsafe fn rows<const M: usize>(t: Tile) {
    // Only the first `gn * M` words are written and read per chunk; zeroing
    // all 4 KiB per call (one call per micro-panel and B panel) took ~2 % of
    // the tiny.en int8 encoder.
    let mut a16 = [std::mem::MaybeUninit::<u64>::uninit(); CHUNK * 4];
    let blocks = t.nc.div_ceil(COLS);
    // One pass even at zero depth, which writes zeros.
    for ci in 0..t.kg.div_ceil(CHUNK).max(1) {
        let g0 = ci * CHUNK;
        let gn = CHUNK.min(t.kg - g0);
        for (i, v) in a16[..gn * M].iter_mut().enumerate() {
            // SAFETY: word (g0 + i / M, i % M) of the micro-panel.
            v.write(widen(unsafe { *t.a.add(g0 * M + i) }));
        }
        let accumulate = t.accumulate || g0 > 0;
        for cb in 0..blocks {
            let mut acc = [[_mm256_setzero_si256(); 2]; M];
            // SAFETY: word rows g0..g0+gn of the panel hold NR ≥ (cb + 1) · COLS words.
            let mut b = unsafe { t.b.add(g0 * NR + cb * COLS) }.cast::<__m128i>();
            for g in 0..gn {
                // SAFETY: as above; unaligned 16-byte loads.
                let (b0, b1) = unsafe {
                    (
                        _mm256_cvtepi8_epi16(_mm_loadu_si128(b)),
                        _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(1))),
                    )
                };
                for (r, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: words 0..gn * M were written above.
                    let av = _mm256_set1_epi64x(unsafe { a16[g * M + r].assume_init() } as i64);
                    acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(av, b0));
                    acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(av, b1));
                }
                // SAFETY: the next word row (NR words = NR / 4 vectors on).
                b = unsafe { b.add(NR / 4) };
            }
            let c0 = cb * COLS;
            let cols = COLS.min(t.nc - c0);
            for (r, acc) in acc.iter().enumerate() {
                // Lanes [c0 c1 c4 c5 | c2 c3 c6 c7] → columns in order.
                let sums =
                    _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(acc[0], acc[1]));
                // SAFETY: row r < mr, columns c0..c0+cols < nc of the output tile.
                unsafe {
                    store(
                        t.c.add(r * t.ldc + c0).cast::<i32>(),
                        sums,
                        cols,
                        accumulate,
                    )
                };
            }
        }
    }
}

/// Writes (or adds) the first `cols` lanes of `v` at `dst`.
///
/// # Safety
/// `dst .. dst + cols` is writable (and readable when `accumulate`).
#[inline(always)]
unsafe fn store(dst: *mut i32, v: __m256i, cols: usize, accumulate: bool) {
    // SAFETY: forwarded contract; full blocks use one unaligned vector access.
    unsafe {
        if cols == COLS {
            let v = if accumulate {
                _mm256_add_epi32(v, _mm256_loadu_si256(dst.cast()))
            } else {
                v
            };
            _mm256_storeu_si256(dst.cast(), v);
        } else {
            let mut lanes = [0i32; COLS];
            _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v);
            for (c, &x) in lanes[..cols].iter().enumerate() {
                let d = dst.add(c);
                *d = if accumulate { (*d).wrapping_add(x) } else { x };
            }
        }
    }
}
