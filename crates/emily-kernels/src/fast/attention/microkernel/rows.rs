//! The kernel sets of the rows layout ([`super::super::decode`]): one per
//! instruction set, each a zero-sized type whose methods forward to its
//! module's kernels with the row-group height `R` picked from the rows
//! given (1, 2, or 4 for 3..=4).

use super::{avx2_rows, avx512_rows};

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
    );
}

/// The AVX-512 (F/BW/VL + F16C) row kernels.
pub(in crate::fast::attention) struct Avx512Rows;

/// The AVX2 + FMA + F16C row kernels.
pub(in crate::fast::attention) struct Avx2Rows;

impl RowKernels for Avx512Rows {
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
    ) {
        use avx512_rows::scores;
        match rows {
            1 => scores::<E, 1>(q, ldq, rows, k, ldk, keys, depth, s, lds),
            2 => scores::<E, 2>(q, ldq, rows, k, ldk, keys, depth, s, lds),
            _ => scores::<E, 4>(q, ldq, rows, k, ldk, keys, depth, s, lds),
        }
    }

    #[inline(always)]
    unsafe fn softmax_row(s: *mut f32, keys: usize, m: *mut f32, l: *mut f32, alpha: *mut f32) {
        avx512_rows::softmax_row(s, keys, m, l, alpha)
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
    ) {
        use avx512_rows::rows_pv;
        match rows {
            1 => rows_pv::<E, 1>(p, ldp, rows, keys, v, ldv, width, alpha, o, ldo),
            2 => rows_pv::<E, 2>(p, ldp, rows, keys, v, ldv, width, alpha, o, ldo),
            _ => rows_pv::<E, 4>(p, ldp, rows, keys, v, ldv, width, alpha, o, ldo),
        }
    }
}

impl RowKernels for Avx2Rows {
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
    ) {
        use avx2_rows::scores;
        match rows {
            1 => scores::<E, 1>(q, ldq, rows, k, ldk, keys, depth, s, lds),
            2 => scores::<E, 2>(q, ldq, rows, k, ldk, keys, depth, s, lds),
            _ => scores::<E, 4>(q, ldq, rows, k, ldk, keys, depth, s, lds),
        }
    }

    #[inline(always)]
    unsafe fn softmax_row(s: *mut f32, keys: usize, m: *mut f32, l: *mut f32, alpha: *mut f32) {
        avx2_rows::softmax_row(s, keys, m, l, alpha)
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
    ) {
        // `8 / R` feature vectors per pass: R·(8/R) accumulators.
        use avx2_rows::rows_pv;
        match rows {
            1 => rows_pv::<E, 1, 8>(p, ldp, rows, keys, v, ldv, width, alpha, o, ldo),
            2 => rows_pv::<E, 2, 4>(p, ldp, rows, keys, v, ldv, width, alpha, o, ldo),
            _ => rows_pv::<E, 4, 2>(p, ldp, rows, keys, v, ldv, width, alpha, o, ldo),
        }
    }
}
