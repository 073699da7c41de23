//! Register-blocked GEMM micro-kernels of the attention inner loop, written in
//! the transposed ("queries on lanes") form: a block's query rows run along the
//! SIMD lanes, so both products broadcast one scalar of K or V against a vector
//! of queries and neither K nor V is ever packed or transposed:
//!
//! - scores: `S^T[key][lane] = sum_d K[key][d] * Q^T[d][lane]`
//! - softmax: the online-softmax step of [`super::softmax::online_update`] on a
//!   score tile, lane-wise (no horizontal reductions)
//! - values: `O^T[dv][lane] = alpha[lane] * O^T[dv][lane] + sum_j V[j][dv] * P^T[j][lane]`
//!
//! Each call computes an `MR x NR` register tile (`MR` keys or value features by
//! `NR` query lanes). Rows past the valid keys / features reuse the last
//! valid row and are not stored, so no input is ever read out of bounds.
//!
//! The x86 kernels use explicit intrinsics: LLVM's auto-vectoriser does not
//! reliably keep a 2-D accumulator tile in registers.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
pub(super) use avx512::{exp2 as exp2_avx512, safe_max as safe_max_avx512};
#[cfg(target_arch = "x86_64")]
pub(super) mod avx2_rows;
#[cfg(target_arch = "x86_64")]
pub(super) mod avx512_rows;
mod portable;
#[cfg(target_arch = "x86_64")]
pub(super) mod rows;
#[cfg(target_arch = "x86_64")]
mod tile;

/// One instruction set's pair of micro-kernels, with its tile shape.
pub(super) trait MicroKernels {
    /// Query lanes per register tile.
    const NR: usize;

    /// Computes `MR` rows of `S^T`: for `m < nk`,
    /// `st[m * ldst + n] = sum_{d < depth} k[m * ldk + d] * qt[d * ldq + n]`, `n < NR`.
    ///
    /// # Safety
    /// The CPU must support the kernel's ISA. `qt` must address `depth` rows of
    /// `NR` floats at stride `ldq`; `k` must address `nk` (`1..=MR`) rows of
    /// `depth` floats at stride `ldk`; `st` must address `nk` writable rows of
    /// `NR` floats at stride `ldst`, overlapping neither input.
    #[allow(clippy::too_many_arguments)]
    unsafe fn scores(
        qt: *const f32,
        ldq: usize,
        k: *const f32,
        ldk: usize,
        nk: usize,
        depth: usize,
        st: *mut f32,
        ldst: usize,
    );

    /// [`MicroKernels::scores`] that also raises `tmax[n]` (`NR` floats, not
    /// overlapping the others) to the largest of the `nk` stored scores of
    /// lane `n`: the tile's maximum found while its scores are in registers,
    /// for [`MicroKernels::softmax_max`].
    ///
    /// # Safety
    /// As [`MicroKernels::scores`], and `tmax` addresses `NR` writable floats.
    #[allow(clippy::too_many_arguments)]
    unsafe fn scores_max(
        qt: *const f32,
        ldq: usize,
        k: *const f32,
        ldk: usize,
        nk: usize,
        depth: usize,
        st: *mut f32,
        ldst: usize,
        tmax: *mut f32,
    );

    /// [`MicroKernels::softmax`] given `tmax`, each lane's maximum over `m`
    /// and the tile's `keys` scores (from [`MicroKernels::scores_max`] on an
    /// unmasked tile): the step without its pass for the maximum, with the
    /// same results when `!SHORT`; with `SHORT`, its exponential is the
    /// short polynomial instead (equal within round-off; which calls:
    /// [`super::softmax::short_exp`]).
    ///
    /// # Safety
    /// As [`MicroKernels::softmax`], and `tmax` addresses `NR` floats.
    unsafe fn softmax_max<const SHORT: bool>(
        st: *mut f32,
        ldst: usize,
        keys: usize,
        tmax: *const f32,
        m: *mut f32,
        l: *mut f32,
        alpha: *mut f32,
    );

    /// The online-softmax step of [`super::softmax::online_update`] on `NR` lanes:
    /// `st` holds `keys` rows of `NR` scores at stride `ldst`; `m`, `l` and
    /// `alpha` address `NR` floats each.
    ///
    /// # Safety
    /// The CPU must support the kernel's ISA, and the pointers must address
    /// disjoint buffers of the sizes above.
    unsafe fn softmax(
        st: *mut f32,
        ldst: usize,
        keys: usize,
        m: *mut f32,
        l: *mut f32,
        alpha: *mut f32,
    );

    /// Updates `MR` rows of `O^T`: for `m < nv`,
    /// `ot[m * ldo + n] = alpha[n] * ot[m * ldo + n] + sum_{j < nkeys} v[j * ldv + m] * pt[j * ldp + n]`.
    ///
    /// # Safety
    /// The CPU must support the kernel's ISA. `pt` must address `nkeys` rows of
    /// `NR` floats at stride `ldp`; `v` must address `nkeys` rows of at least
    /// `nv` (`1..=MR`) floats at stride `ldv`; `alpha` must address `NR` floats;
    /// `ot` must address `nv` rows of `NR` floats at stride `ldo`, overlapping
    /// none of the inputs.
    #[allow(clippy::too_many_arguments)]
    unsafe fn values(
        pt: *const f32,
        ldp: usize,
        nkeys: usize,
        v: *const f32,
        ldv: usize,
        nv: usize,
        alpha: *const f32,
        ot: *mut f32,
        ldo: usize,
    );

    /// Rows per register tile (keys for `scores`, value features for `values`).
    const MR: usize;

    /// Scaled transpose: `dst[c * ldd + r] = src[r * lds + c] * scale[c]` for
    /// `r < rows`, `c < cols` (`scale` may instead hold one value for every
    /// column). Packs the queries and unpacks the output.
    ///
    /// # Safety
    /// The CPU must support the kernel's ISA; `src` must address `rows` rows of
    /// `cols` floats at stride `lds`, `dst` `cols` writable rows of `rows`
    /// floats at stride `ldd`, disjoint from `src`; `scale` has 1 or `cols`
    /// entries.
    #[allow(clippy::too_many_arguments)]
    unsafe fn transpose(
        src: *const f32,
        lds: usize,
        rows: usize,
        cols: usize,
        dst: *mut f32,
        ldd: usize,
        scale: &[f32],
    );
}

/// How many key (or value) rows ahead of the one being read the kernels ask
/// for: a decoding step streams each head's keys, then its values, once
/// (a cross-attention head of Whisper is 1500 rows of 64 f16, read a tile
/// of 256 rows at a time, keys and values alternating), and the hardware
/// prefetcher alone lets a busy core fall behind its streaming read.
pub(super) const PREFETCH_ROWS: usize = 16;

/// Asks for the cache lines of the `elems` elements at `p` with `hint` (any
/// address is allowed, nothing is read).
#[inline(always)]
pub(super) fn prefetch_row<E>(p: *const E, elems: usize, hint: crate::prefetch::Hint) {
    let (p, bytes) = (p.cast::<u8>(), elems * std::mem::size_of::<E>());
    let mut off = 0;
    while off < bytes {
        crate::prefetch::line(p.wrapping_add(off), hint);
        off += 64;
    }
    if bytes > 0 {
        // The last line of a row that does not start on a line.
        crate::prefetch::line(p.wrapping_add(bytes - 1), hint);
    }
}

/// `R` row pointers `base + min(r, rows − 1)·stride`: the rows of a
/// fixed-height register tile past the last valid one repeat it, so the tile
/// never reads out of bounds (those rows are computed and not stored).
///
/// # Safety
/// `rows ≥ 1` and `base` addresses `rows` rows at `stride` elements.
#[inline(always)]
pub(in crate::fast::attention) unsafe fn padded_rows<T, const R: usize>(
    base: *const T,
    rows: usize,
    stride: usize,
) -> [*const T; R] {
    // SAFETY: every offset is that of a valid row (caller's contract).
    std::array::from_fn(|r| unsafe { base.add(r.min(rows - 1) * stride) })
}

/// The scalar [`MicroKernels::transpose`].
///
/// # Safety
/// As [`MicroKernels::transpose`], minus the ISA.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn transpose_scalar(
    src: *const f32,
    lds: usize,
    rows: usize,
    cols: usize,
    dst: *mut f32,
    ldd: usize,
    scale: &[f32],
) {
    for r in 0..rows {
        for c in 0..cols {
            let sc = if scale.len() == 1 { scale[0] } else { scale[c] };
            *dst.add(c * ldd + r) = *src.add(r * lds + c) * sc;
        }
    }
}

/// Defines a zero-sized [`MicroKernels`] implementation that forwards to a
/// module's `scores::<NV, MR>` / `values::<NV, MR>` functions.
macro_rules! kernels {
    ($(#[$meta:meta])* $name:ident, $module:ident, $lanes:expr) => {
        $(#[$meta])*
        pub(in crate::fast::attention) struct $name<const NV: usize, const MR: usize>;

        impl<const NV: usize, const MR: usize> MicroKernels for $name<NV, MR> {
            const NR: usize = NV * $lanes;
            const MR: usize = MR;

            #[inline(always)]
            unsafe fn scores(
                qt: *const f32,
                ldq: usize,
                k: *const f32,
                ldk: usize,
                nk: usize,
                depth: usize,
                st: *mut f32,
                ldst: usize,
            ) {
                let tmax = std::ptr::null_mut();
                $module::scores::<NV, MR, false>(qt, ldq, k, ldk, nk, depth, st, ldst, tmax)
            }

            #[inline(always)]
            unsafe fn scores_max(
                qt: *const f32,
                ldq: usize,
                k: *const f32,
                ldk: usize,
                nk: usize,
                depth: usize,
                st: *mut f32,
                ldst: usize,
                tmax: *mut f32,
            ) {
                $module::scores::<NV, MR, true>(qt, ldq, k, ldk, nk, depth, st, ldst, tmax)
            }

            #[inline(always)]
            unsafe fn softmax_max<const SHORT: bool>(
                st: *mut f32,
                ldst: usize,
                keys: usize,
                tmax: *const f32,
                m: *mut f32,
                l: *mut f32,
                alpha: *mut f32,
            ) {
                $module::softmax_max::<NV, SHORT>(st, ldst, keys, tmax, m, l, alpha)
            }

            #[inline(always)]
            unsafe fn softmax(
                st: *mut f32,
                ldst: usize,
                keys: usize,
                m: *mut f32,
                l: *mut f32,
                alpha: *mut f32,
            ) {
                $module::softmax::<NV>(st, ldst, keys, m, l, alpha)
            }

            #[inline(always)]
            unsafe fn transpose(
                src: *const f32,
                lds: usize,
                rows: usize,
                cols: usize,
                dst: *mut f32,
                ldd: usize,
                scale: &[f32],
            ) {
                $module::transpose(src, lds, rows, cols, dst, ldd, scale)
            }

            #[inline(always)]
            unsafe fn values(
                pt: *const f32,
                ldp: usize,
                nkeys: usize,
                v: *const f32,
                ldv: usize,
                nv: usize,
                alpha: *const f32,
                ot: *mut f32,
                ldo: usize,
            ) {
                $module::values::<NV, MR>(pt, ldp, nkeys, v, ldv, nv, alpha, ot, ldo)
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
kernels!(
    /// AVX-512 kernels: `NV` 16-lane vectors per tile row.
    Avx512,
    avx512,
    16
);
#[cfg(target_arch = "x86_64")]
kernels!(
    /// AVX2 + FMA kernels: `NV` 8-lane vectors per tile row.
    Avx2,
    avx2,
    8
);
kernels!(
    /// Portable kernels: `NV` groups of 4 lanes per tile row.
    Portable,
    portable,
    4
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector transposes agree with the scalar one at full tiles and edges.
    #[test]
    fn transposes_match_scalar() {
        for (rows, cols) in [(1, 1), (16, 16), (5, 70), (33, 17), (64, 64), (70, 3)] {
            let (lds, ldd) = (cols + 3, rows + 5);
            let src: Vec<f32> = (0..rows * lds).map(|i| i as f32 * 0.25 - 7.0).collect();
            let scale: Vec<f32> = (0..cols).map(|c| 1.0 + c as f32).collect();
            for sc in [&scale[..], &[0.5][..]] {
                let mut want = vec![-1.0f32; cols * ldd];
                // SAFETY: the buffers have the documented sizes.
                unsafe {
                    transpose_scalar(src.as_ptr(), lds, rows, cols, want.as_mut_ptr(), ldd, sc)
                };
                let mut got = vec![-1.0f32; cols * ldd];
                #[cfg(target_arch = "x86_64")]
                if crate::simd::isa() == crate::simd::Isa::Avx512 {
                    // SAFETY: AVX-512 present; sizes as above.
                    unsafe {
                        Avx512::<2, 8>::transpose(
                            src.as_ptr(),
                            lds,
                            rows,
                            cols,
                            got.as_mut_ptr(),
                            ldd,
                            sc,
                        )
                    };
                    assert_eq!(got, want, "{rows}x{cols}");
                }
                // SAFETY: portable kernels run anywhere.
                unsafe {
                    Portable::<2, 4>::transpose(
                        src.as_ptr(),
                        lds,
                        rows,
                        cols,
                        got.as_mut_ptr(),
                        ldd,
                        sc,
                    )
                };
                assert_eq!(got, want, "{rows}x{cols}");
            }
        }
    }
}
