//! Portable micro-kernels, also compiled for AVX2 + FMA (the AVX2 engine's
//! bf16 kernel; its int8 kernel is `kernel_avx2`).
//!
//! One call computes `C[0..mr, 0..nc] (+)= A · B` for one micro-panel of A
//! (`mr ≤ MR` rows in the broadcast layout) and one packed B panel (`NR`
//! columns), over `kg` words of depth. The panel is processed in two halves
//! of 16 columns so the accumulators (`MR × 16`) stay in registers. Plain
//! loops over fixed-size arrays, written for LLVM to vectorise.

use super::packed::NR;
use super::Precision;

/// Rows per micro-panel.
pub(crate) const MR: usize = 4;

/// Columns per half panel.
const HALF: usize = 16;

/// Arguments of one micro-kernel call.
#[derive(Clone, Copy)]
pub(crate) struct Tile {
    /// Precision (how words are read).
    pub precision: Precision,
    /// Rows of this micro-panel (1..=MR for this engine).
    pub mr: usize,
    /// Depth in words.
    pub kg: usize,
    /// The A micro-panel: word `(g, r)` at `a[g * mr + r]`.
    pub a: *const u32,
    /// The B panel at the first word row: word `(g, c)` at `b[g * NR + c]`.
    pub b: *const u32,
    /// Output element `(r, c)` at `c[r * ldc + c]` (f32 or i32 bits).
    pub c: *mut u32,
    /// Output row stride.
    pub ldc: usize,
    /// Valid columns (1..=NR).
    pub nc: usize,
    /// Add to the output instead of overwriting it.
    pub accumulate: bool,
}

/// Runs one tile with the portable code.
///
/// # Safety
/// The pointers address the regions described in [`Tile`].
pub(crate) unsafe fn tile_portable(t: Tile) {
    // SAFETY: forwarded contract.
    unsafe { dispatch::<false>(t) }
}

/// Runs one tile with the code compiled for AVX2 + FMA.
///
/// # Safety
/// The CPU supports AVX2 and FMA; the pointers address the regions in [`Tile`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn tile_avx2(t: Tile) {
    // SAFETY: forwarded contract.
    unsafe { dispatch::<true>(t) }
}

#[inline(always)]
unsafe fn dispatch<const FMA: bool>(t: Tile) {
    // SAFETY: forwarded contract.
    unsafe {
        match (t.precision, t.mr) {
            (Precision::Bf16, 1) => bf16_tile::<1, FMA>(t),
            (Precision::Bf16, 2) => bf16_tile::<2, FMA>(t),
            (Precision::Bf16, 3) => bf16_tile::<3, FMA>(t),
            (Precision::Bf16, _) => bf16_tile::<4, FMA>(t),
            (Precision::Int8, 1) => int8_tile::<1>(t),
            (Precision::Int8, 2) => int8_tile::<2>(t),
            (Precision::Int8, 3) => int8_tile::<3>(t),
            (Precision::Int8, _) => int8_tile::<4>(t),
        }
    }
}

/// Writes (or adds) `acc[r][..]` into columns `c0..c0 + HALF` of the tile, up to `nc`.
#[inline(always)]
unsafe fn store<const M: usize>(
    t: &Tile,
    c0: usize,
    acc: &[[u32; HALF]; M],
    add: impl Fn(u32, u32) -> u32,
) {
    let cols = HALF.min(t.nc - c0);
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: rows < mr and columns < nc are inside the output tile.
        let dst = unsafe { std::slice::from_raw_parts_mut(t.c.add(r * t.ldc + c0), cols) };
        for (d, &v) in dst.iter_mut().zip(row) {
            *d = if t.accumulate { add(*d, v) } else { v };
        }
    }
}

#[inline(always)]
unsafe fn bf16_tile<const M: usize, const FMA: bool>(t: Tile) {
    for c0 in (0..t.nc).step_by(HALF) {
        let mut acc = [[0f32; HALF]; M];
        for g in 0..t.kg {
            // SAFETY: word row g of the panel has NR ≥ c0 + HALF words.
            let brow = unsafe { &*t.b.add(g * NR + c0).cast::<[u32; HALF]>() };
            let mut be = [0f32; HALF];
            let mut bo = [0f32; HALF];
            for j in 0..HALF {
                be[j] = f32::from_bits(brow[j] << 16);
                bo[j] = f32::from_bits(brow[j] & 0xffff_0000);
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: word (g, r) of the micro-panel.
                let w = unsafe { *t.a.add(g * M + r) };
                let (ae, ao) = (f32::from_bits(w << 16), f32::from_bits(w & 0xffff_0000));
                for j in 0..HALF {
                    acc[j] = if FMA {
                        ao.mul_add(bo[j], ae.mul_add(be[j], acc[j]))
                    } else {
                        acc[j] + ae * be[j] + ao * bo[j]
                    };
                }
            }
        }
        let bits = acc.map(|row| row.map(f32::to_bits));
        // SAFETY: forwarded contract.
        unsafe {
            store::<M>(&t, c0, &bits, |d, v| {
                (f32::from_bits(d) + f32::from_bits(v)).to_bits()
            })
        };
    }
}

#[inline(always)]
unsafe fn int8_tile<const M: usize>(t: Tile) {
    for c0 in (0..t.nc).step_by(HALF) {
        let mut acc = [[0i32; HALF]; M];
        for g in 0..t.kg {
            // SAFETY: word row g of the panel has NR ≥ c0 + HALF words.
            let brow = unsafe { &*t.b.add(g * NR + c0).cast::<[u32; HALF]>() };
            let mut b = [[0i32; HALF]; 4];
            for j in 0..HALF {
                for (l, bl) in b.iter_mut().enumerate() {
                    bl[j] = (brow[j] >> (8 * l)) as u8 as i8 as i32;
                }
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: word (g, r) of the micro-panel.
                let w = unsafe { *t.a.add(g * M + r) };
                let a = [0, 1, 2, 3].map(|l| ((w >> (8 * l)) & 0xff) as i32);
                for j in 0..HALF {
                    acc[j] = acc[j].wrapping_add(
                        a[0] * b[0][j] + a[1] * b[1][j] + a[2] * b[2][j] + a[3] * b[3][j],
                    );
                }
            }
        }
        let bits = acc.map(|row| row.map(|v| v as u32));
        // SAFETY: forwarded contract.
        unsafe { store::<M>(&t, c0, &bits, |d, v| d.wrapping_add(v)) };
    }
}
