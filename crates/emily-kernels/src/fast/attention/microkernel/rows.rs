//! The kernel sets of the rows layout ([`super::super::decode`]): one per
//! instruction set, each a zero-sized type whose methods forward to its
//! module's kernels with the row-group height `R` picked from the rows
//! given (1, 2, or 4 for 3..=4).

use super::{avx2_rows, avx512_rows};
use crate::prefetch::Hint;

/// An element type the row kernels of every instruction set read in place.
pub(in crate::fast::attention) trait KvElem:
    avx512_rows::KvLoad + avx2_rows::KvLoad8
{
}

impl<T: avx512_rows::KvLoad + avx2_rows::KvLoad8> KvElem for T {}

/// One instruction set's rows-layout kernels. Same contracts as
/// `avx512_rows::{scores, softmax_row, rows_pv}` with `rows` in `1..=4`,
/// plus a CPU with the set's features.
pub(in crate::fast::attention) trait RowKernels {
    /// Scores of `rows` query rows against `keys` keys read in place.
    ///
    /// # Safety
    /// As `avx512_rows::scores`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn scores<E: KvElem>(
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
    );

    /// The online-softmax step on one contiguous row of scores.
    ///
    /// # Safety
    /// As `avx512_rows::softmax_row`.
    unsafe fn softmax_row(s: *mut f32, keys: usize, m: *mut f32, l: *mut f32, alpha: *mut f32);

    /// The value update of `rows` output rows.
    ///
    /// # Safety
    /// As `avx512_rows::rows_pv`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn values<E: KvElem>(
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
    );
}

/// Defines a zero-sized [`RowKernels`] set forwarding to `$module`'s
/// `scores::<E, R>`, `softmax_row` and `rows_pv::<E, R, ...>`, with the
/// value kernel's generic arguments per row-group height given as
/// `[$r1], [$r2], [$r4]` (the rows 1, 2 and 3..=4).
macro_rules! row_kernels {
    ($(#[$meta:meta])* $name:ident, $module:ident, [$($v1:tt)*], [$($v2:tt)*], [$($v4:tt)*]) => {
        $(#[$meta])*
        pub(in crate::fast::attention) struct $name;

        impl RowKernels for $name {
            #[inline(always)]
            unsafe fn scores<E: KvElem>(
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
                use $module::scores;
                match rows {
                    1 => scores::<E, 1>(q, ldq, rows, k, ldk, keys, depth, s, lds, hint),
                    2 => scores::<E, 2>(q, ldq, rows, k, ldk, keys, depth, s, lds, hint),
                    _ => scores::<E, 4>(q, ldq, rows, k, ldk, keys, depth, s, lds, hint),
                }
            }

            #[inline(always)]
            unsafe fn softmax_row(
                s: *mut f32,
                keys: usize,
                m: *mut f32,
                l: *mut f32,
                alpha: *mut f32,
            ) {
                $module::softmax_row(s, keys, m, l, alpha)
            }

            #[inline(always)]
            unsafe fn values<E: KvElem>(
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
                use $module::rows_pv;
                match rows {
                    1 => rows_pv::<E, $($v1)*>(p, ldp, rows, keys, v, ldv, width, alpha, o, ldo, hint),
                    2 => rows_pv::<E, $($v2)*>(p, ldp, rows, keys, v, ldv, width, alpha, o, ldo, hint),
                    _ => rows_pv::<E, $($v4)*>(p, ldp, rows, keys, v, ldv, width, alpha, o, ldo, hint),
                }
            }
        }
    };
}

row_kernels!(
    /// The AVX-512 (F/BW/VL + F16C) row kernels.
    Avx512Rows,
    avx512_rows,
    [1],
    [2],
    [4]
);

row_kernels!(
    /// The AVX2 + FMA + F16C row kernels: `8 / R` feature vectors per pass
    /// of the value update (R·(8/R) accumulators).
    Avx2Rows,
    avx2_rows,
    [1, 8],
    [2, 4],
    [4, 2]
);
