//! AVX-512 micro-kernels: `vdpbf16ps` (AVX512-BF16) and `vpdpbusd`
//! (AVX512-VNNI) over `MR × NR` = 12 × 32 output tiles.
//!
//! Per word of depth, the two 16-lane B vectors of the panel row are loaded
//! once and every A word of the micro-panel is broadcast against them: 24
//! accumulators, 2 loads and 12 broadcasts per 24 dot-product instructions.
//! Short micro-panels (the last rows of A) use the same code with a smaller
//! const row count; the last panel's missing columns are masked on store.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::kernel_portable::Tile;
use super::packed::NR;
use super::Precision;

/// Rows per micro-panel.
pub(crate) const MR: usize = 12;

/// Runs one tile.
///
/// # Safety
/// The CPU supports AVX512-F/BW/VL and AVX512-BF16 (bf16) or AVX512-VNNI
/// (int8); `t.mr <= MR`; the pointers address the regions in [`Tile`].
pub(crate) unsafe fn tile(t: Tile) {
    macro_rules! by_rows {
        ($f:ident) => {
            match t.mr {
                1 => $f::<1>(t),
                2 => $f::<2>(t),
                3 => $f::<3>(t),
                4 => $f::<4>(t),
                5 => $f::<5>(t),
                6 => $f::<6>(t),
                7 => $f::<7>(t),
                8 => $f::<8>(t),
                9 => $f::<9>(t),
                10 => $f::<10>(t),
                11 => $f::<11>(t),
                _ => $f::<12>(t),
            }
        };
    }
    // SAFETY: forwarded contract.
    unsafe {
        match t.precision {
            Precision::Bf16 => by_rows!(bf16_tile),
            Precision::Int8 => by_rows!(int8_tile),
        }
    }
}

/// Store masks of the two 16-column halves for `nc` valid columns.
#[inline(always)]
fn masks(nc: usize) -> (__mmask16, __mmask16) {
    let m = if nc >= 32 { u32::MAX } else { (1u32 << nc) - 1 };
    (m as __mmask16, (m >> 16) as __mmask16)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn bf16_tile<const M: usize>(t: Tile) {
    let mut acc = [[_mm512_setzero_ps(); 2]; M];
    let (mut a, mut b) = (t.a, t.b);
    // SAFETY: `kg` word rows of the B panel (NR words each) and of the A
    // micro-panel (M words each) are readable; output rows < M and columns
    // < nc are writable (masked).
    unsafe {
        for _ in 0..t.kg {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(16).cast()));
            for (r, acc) in acc.iter_mut().enumerate() {
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(r) as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
            }
            a = a.add(M);
            b = b.add(NR);
        }
        let (m0, m1) = masks(t.nc);
        for (r, acc) in acc.iter().enumerate() {
            let row = t.c.add(r * t.ldc).cast::<f32>();
            let (mut v0, mut v1) = (acc[0], acc[1]);
            if t.accumulate {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row.add(16)));
            }
            _mm512_mask_storeu_ps(row, m0, v0);
            _mm512_mask_storeu_ps(row.add(16), m1, v1);
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn int8_tile<const M: usize>(t: Tile) {
    let mut acc = [[_mm512_setzero_si512(); 2]; M];
    let (mut a, mut b) = (t.a, t.b);
    // SAFETY: as in `bf16_tile`.
    unsafe {
        for _ in 0..t.kg {
            let b0 = _mm512_loadu_si512(b.cast());
            let b1 = _mm512_loadu_si512(b.add(16).cast());
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_epi32(*a.add(r) as i32);
                acc[0] = _mm512_dpbusd_epi32(acc[0], av, b0);
                acc[1] = _mm512_dpbusd_epi32(acc[1], av, b1);
            }
            a = a.add(M);
            b = b.add(NR);
        }
        let (m0, m1) = masks(t.nc);
        for (r, acc) in acc.iter().enumerate() {
            let row = t.c.add(r * t.ldc).cast::<i32>();
            let (mut v0, mut v1) = (acc[0], acc[1]);
            if t.accumulate {
                v0 = _mm512_add_epi32(v0, _mm512_maskz_loadu_epi32(m0, row));
                v1 = _mm512_add_epi32(v1, _mm512_maskz_loadu_epi32(m1, row.add(16)));
            }
            _mm512_mask_storeu_epi32(row, m0, v0);
            _mm512_mask_storeu_epi32(row.add(16), m1, v1);
        }
    }
}
