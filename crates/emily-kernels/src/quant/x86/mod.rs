//! x86-64 kernels for quantized weights × 8-bit activations.
//!
//! One weight row at a time is multiplied with up to [`M_TILE`] activation
//! rows: each weight block is loaded once, unpacked in registers into 32-byte
//! vectors of unsigned codes (or signed weights for `Q8_0`/`Int8`), and dotted
//! with each activation row's 32 codes by an integer dot product ([`Dot`]:
//! `vpdpbusd` from AVX512-VNNI or AVX-VNNI, `vpmaddubsw` + `vpmaddwd` on
//! AVX2) into eight i32 lanes. The lanes are converted to f32 and accumulated
//! with the product of the weight and activation scales; offsets and mins of
//! the codes are applied through the activation block sums. Blocks alternate
//! between two accumulator sets so consecutive FMAs do not wait on each other.

mod kquants;
mod legacy;
mod pairs;
pub(crate) mod tile;
mod unpack;

use std::arch::x86_64::*;

use super::activation::Q8Activations;
use super::BlockFormat;

/// Activation rows handled per pass over a weight row.
pub(crate) const M_TILE: usize = 4;

/// An integer dot product of 32 unsigned weight codes with 32 signed
/// activation codes, giving 8 i32 lanes (lane l sums bytes 4l..4l+4).
pub(crate) trait Dot: Copy {
    /// `codes` must be at most 127 (the AVX2 form saturates above).
    unsafe fn dot_u7(codes: __m256i, act: __m256i) -> __m256i;

    /// Byte j of the result is 0x10 when bit j of `bits` is set, else 0.
    unsafe fn bit4_bytes(bits: u32) -> __m256i;

    /// Signed weights: |w| times the activation with w's sign.
    #[inline(always)]
    unsafe fn dot_i8(w: __m256i, act: __m256i) -> __m256i {
        // SAFETY: AVX2 is part of every implementation's features. |w| <= 128
        // and |sign(act)| <= 127, so the AVX2 pair sums stay below 2^15.
        unsafe { Self::dot_u7(_mm256_abs_epi8(w), _mm256_sign_epi8(act, w)) }
    }
}

/// AVX512-VNNI (EVEX `vpdpbusd` on 256-bit vectors).
#[derive(Clone, Copy)]
pub(crate) struct Avx512Vnni;
/// AVX-VNNI (VEX `vpdpbusd`).
#[derive(Clone, Copy)]
pub(crate) struct AvxVnni;
/// AVX2 `vpmaddubsw` + `vpmaddwd`.
#[derive(Clone, Copy)]
pub(crate) struct Avx2;

/// Spreads the 32 bits of `bits` over bytes (AVX2 form): byte j gets 0x10
/// when bit j is set.
#[inline(always)]
unsafe fn bit4_bytes_avx2(bits: u32) -> __m256i {
    // SAFETY: AVX2 is enabled in every caller.
    unsafe {
        let v = _mm256_set1_epi32(bits as i32);
        let pick = _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3,
            3, 3, 3,
        );
        let bytes = _mm256_shuffle_epi8(v, pick);
        let mask = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, mask), mask);
        _mm256_and_si256(set, _mm256_set1_epi8(0x10))
    }
}

impl Dot for Avx512Vnni {
    #[inline(always)]
    unsafe fn dot_u7(codes: __m256i, act: __m256i) -> __m256i {
        // SAFETY: callers enable avx512vnni and avx512vl.
        unsafe { _mm256_dpbusd_epi32(_mm256_setzero_si256(), codes, act) }
    }
    #[inline(always)]
    unsafe fn bit4_bytes(bits: u32) -> __m256i {
        // SAFETY: callers enable avx512bw and avx512vl.
        unsafe { _mm256_and_si256(_mm256_movm_epi8(bits), _mm256_set1_epi8(0x10)) }
    }
}

impl Dot for AvxVnni {
    #[inline(always)]
    unsafe fn dot_u7(codes: __m256i, act: __m256i) -> __m256i {
        // SAFETY: callers enable avxvnni.
        unsafe { _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), codes, act) }
    }
    #[inline(always)]
    unsafe fn bit4_bytes(bits: u32) -> __m256i {
        // SAFETY: callers enable AVX2.
        unsafe { bit4_bytes_avx2(bits) }
    }
}

impl Dot for Avx2 {
    #[inline(always)]
    unsafe fn dot_u7(codes: __m256i, act: __m256i) -> __m256i {
        // SAFETY: callers enable AVX2; codes <= 127 keep the pair sums in i16.
        unsafe { _mm256_madd_epi16(_mm256_maddubs_epi16(codes, act), _mm256_set1_epi16(1)) }
    }
    #[inline(always)]
    unsafe fn bit4_bytes(bits: u32) -> __m256i {
        // SAFETY: callers enable AVX2.
        unsafe { bit4_bytes_avx2(bits) }
    }
}

/// The f16 at `p` (unaligned), widened with F16C and broadcast to 8 lanes.
///
/// The conversion is an opaque `vcvtph2ps` of a broadcast: written with
/// intrinsics on lane 0 only, LLVM loads the f16 with `vpinsrw` into
/// whatever register held the previous block's scale, which chains every
/// block's scale conversion to the one before (≈13 cycles a block: the
/// decode GEMV's limit, not memory).
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16x8_at(p: *const u8) -> __m256 {
    // SAFETY: two readable bytes at `p`; AVX2 and F16C are enabled in every
    // caller; the asm only converts registers.
    unsafe {
        let h = _mm_set1_epi16(p.cast::<i16>().read_unaligned());
        let wide: __m256;
        std::arch::asm!(
            "vcvtph2ps {wide}, {h}",
            wide = lateout(ymm_reg) wide,
            h = in(xmm_reg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
        wide
    }
}

/// The f16 at `p` (unaligned), widened with F16C (see [`f16x8_at`]).
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller's contract, as `f16x8_at`'s.
    unsafe { _mm256_cvtss_f32(f16x8_at(p)) }
}

/// 16 bytes of packed nibbles at `p` as 32 codes: byte j's low nibble is code
/// j, its high nibble code j + 16.
#[inline(always)]
unsafe fn nibbles16(p: *const u8) -> __m256i {
    // SAFETY: 16 readable bytes at `p`; AVX2 enabled in every caller.
    unsafe {
        let v = _mm_loadu_si128(p.cast());
        let both = _mm256_set_m128i(_mm_srli_epi16::<4>(v), v);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }
}

/// Sum of the 8 lanes.
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: AVX enabled in every caller.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// Raw views of `M` activation rows starting at some row.
#[derive(Clone, Copy)]
pub(crate) struct ActRows {
    qs: *const i8,
    d: *const f32,
    sum32: *const f32,
    sum16: *const f32,
    /// Values per row.
    k: usize,
}

impl ActRows {
    /// Rows `i0..` of `a`.
    pub(crate) fn new(a: &Q8Activations, i0: usize) -> ActRows {
        let k = a.k;
        ActRows {
            qs: a.qs.as_ptr().wrapping_add(i0 * k),
            d: a.d.as_ptr().wrapping_add(i0 * k / 32),
            sum32: a.sum32.as_ptr().wrapping_add(i0 * k / 32),
            sum16: a.sum16.as_ptr().wrapping_add(i0 * k / 16),
            k,
        }
    }

    /// The 32 codes of 32-block `b` of row `i`.
    #[inline(always)]
    unsafe fn codes(self, i: usize, b: usize) -> __m256i {
        // SAFETY: the caller keeps `i` and `b` in range; AVX enabled.
        unsafe { _mm256_loadu_si256(self.qs.add(i * self.k + 32 * b).cast()) }
    }

    /// Pointer to the scale of 32-block `b` of row `i`.
    #[inline(always)]
    unsafe fn d(self, i: usize, b: usize) -> *const f32 {
        // SAFETY: the caller keeps `i` and `b` in range.
        unsafe { self.d.add(i * (self.k / 32) + b) }
    }

    /// Pointer to `d·Σq` of 32-block `b` of row `i`.
    #[inline(always)]
    unsafe fn sum32(self, i: usize, b: usize) -> *const f32 {
        // SAFETY: the caller keeps `i` and `b` in range.
        unsafe { self.sum32.add(i * (self.k / 32) + b) }
    }

    /// Pointer to `d·Σq` of 16-group `h` of row `i`.
    #[inline(always)]
    unsafe fn sum16(self, i: usize, h: usize) -> *const f32 {
        // SAFETY: the caller keeps `i` and `h` in range.
        unsafe { self.sum16.add(i * (self.k / 16) + h) }
    }
}

/// Two alternating sets of per-row accumulators: f32 vectors (summed across
/// lanes at the end) and scalars for the per-block offset or min terms.
pub(crate) struct Accs<const M: usize> {
    v: [[__m256; M]; 2],
    c: [[f32; M]; 2],
}

/// One weight format as the row kernel sees it.
pub(crate) trait Format {
    /// Elements per block.
    const ELEMS: usize;
    /// Bytes per block.
    const BYTES: usize;
    /// What the scalar accumulators are multiplied by at the end (the code
    /// offset for symmetric formats, 1 for min formats).
    const SCALAR_FACTOR: f32;

    /// Adds block `blk` of the weight row (at `w`) times block `blk` of the
    /// `M` activation rows into `acc` (set `p` where a format has one block
    /// per step).
    unsafe fn accumulate<D: Dot, const M: usize>(
        w: *const u8,
        a: ActRows,
        blk: usize,
        p: usize,
        acc: &mut Accs<M>,
    );
}

/// How far ahead of the blocks being multiplied the weight bytes are
/// requested (with the non-temporal hint; see
/// [`crate::prefetch::stream_ahead`]): rows are read once, front to back (and the next row follows in
/// memory), so asking ahead hides the memory latency the hardware prefetcher
/// leaves at the start of each block at decode size (one activation row).
const PREFETCH_BYTES: usize = 1024;

/// Requests the cache lines of two blocks' bytes, [`PREFETCH_BYTES`] ahead
/// of `w` (a hint: any address is allowed).
#[inline(always)]
unsafe fn prefetch_ahead<F: Format>(w: *const u8) {
    let at = w.wrapping_add(crate::prefetch::stream_ahead(PREFETCH_BYTES));
    let mut off = 0;
    while off < 2 * F::BYTES {
        crate::prefetch::stream_line(at.wrapping_add(off));
        off += 64;
    }
}

/// Weight row at `w` (`k / ELEMS` blocks) times `M` activation rows; writes
/// `out[i * n]` for each row i.
#[inline(always)]
unsafe fn row<D: Dot, F: Format, const M: usize>(
    w: *const u8,
    a: ActRows,
    out: *mut f32,
    n: usize,
) {
    // SAFETY: AVX enabled in every caller.
    let mut acc = Accs::<M> {
        v: [[unsafe { _mm256_setzero_ps() }; M]; 2],
        c: [[0.0; M]; 2],
    };
    let blocks = a.k / F::ELEMS;
    // SAFETY: blocks `0..blocks` of the weight row and the activation rows
    // are in range (the caller's contract); `out[i * n]` for i < M likewise.
    unsafe {
        // Two blocks per step with constant set indices, so the accumulators
        // stay in registers.
        let mut blk = 0;
        while blk + 2 <= blocks {
            prefetch_ahead::<F>(w.wrapping_add(blk * F::BYTES));
            F::accumulate::<D, M>(w.add(blk * F::BYTES), a, blk, 0, &mut acc);
            F::accumulate::<D, M>(w.add((blk + 1) * F::BYTES), a, blk + 1, 1, &mut acc);
            blk += 2;
        }
        if blk < blocks {
            F::accumulate::<D, M>(w.add(blk * F::BYTES), a, blk, 0, &mut acc);
        }
        for i in 0..M {
            let v = _mm256_add_ps(acc.v[0][i], acc.v[1][i]);
            *out.add(i * n) = hsum(v) + F::SCALAR_FACTOR * (acc.c[0][i] + acc.c[1][i]);
        }
    }
}

/// One weight row times `M` activation rows from row `i0`, written to
/// `out[i * n]` for each: the inner kernel [`tile_rows`] runs.
pub(crate) trait RowKernel {
    /// # Safety
    /// The weight row at `w` has `act.k` elements of the kernel's format;
    /// rows `i0 .. i0 + M` of `act` exist; `out[i * n]` is writable for
    /// `i < M`; the kernel's CPU features are enabled.
    unsafe fn row<const M: usize>(
        w: *const u8,
        act: &Q8Activations,
        i0: usize,
        out: *mut f32,
        n: usize,
    );
}

/// The 256-bit kernel ([`row`]) for `F` with the dot product `D`.
struct Blocks<D, F>(std::marker::PhantomData<(D, F)>);

impl<D: Dot, F: Format> RowKernel for Blocks<D, F> {
    #[inline(always)]
    unsafe fn row<const M: usize>(
        w: *const u8,
        act: &Q8Activations,
        i0: usize,
        out: *mut f32,
        n: usize,
    ) {
        // SAFETY: the caller's contract.
        unsafe { row::<D, F, M>(w, ActRows::new(act, i0), out, n) }
    }
}

/// Weight rows `r0..r1` (row `r` at `w + r · row_bytes`) times every
/// activation row, in tiles of [`M_TILE`] rows by `K`; `out` is `(m, n)`.
#[inline(always)]
pub(crate) unsafe fn tile_rows<K: RowKernel>(
    w: *const u8,
    row_bytes: usize,
    act: &Q8Activations,
    out: *mut f32,
    n: usize,
    r0: usize,
    r1: usize,
) {
    // SAFETY: the caller's contract (see `gemv_rows`).
    unsafe {
        for r in r0..r1 {
            let wr = w.add(r * row_bytes);
            let mut i = 0;
            while i < act.m {
                let o = out.add(i * n + r);
                match act.m - i {
                    1 => K::row::<1>(wr, act, i, o, n),
                    2 => K::row::<2>(wr, act, i, o, n),
                    3 => K::row::<3>(wr, act, i, o, n),
                    _ => K::row::<M_TILE>(wr, act, i, o, n),
                }
                i += M_TILE;
            }
        }
    }
}

/// Defines `gemv_rows_$isa`: [`tile_rows`] with the 256-bit kernel, compiled with the ISA's features, for
/// every format.
macro_rules! isa_entry {
    ($name:ident, $dot:ty, $feat:literal) => {
        /// # Safety
        /// The CPU has the features; see [`gemv_rows`].
        #[target_feature(enable = $feat)]
        unsafe fn $name(
            format: BlockFormat,
            w: *const u8,
            act: &Q8Activations,
            out: *mut f32,
            n: usize,
            r0: usize,
            r1: usize,
        ) {
            use kquants::{Q4K, Q5K, Q6K};
            use legacy::{Int4G64, Int8G32, Int8G64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0};
            let rb = format.block_bytes() * (act.k / format.block_elems());
            // SAFETY: the caller's contract.
            unsafe {
                match format {
                    BlockFormat::Q8_0 => {
                        tile_rows::<Blocks<$dot, Q8_0>>(w, rb, act, out, n, r0, r1)
                    }
                    BlockFormat::Q4_0 => {
                        tile_rows::<Blocks<$dot, Q4_0>>(w, rb, act, out, n, r0, r1)
                    }
                    BlockFormat::Q4_1 | BlockFormat::Int4G32 => {
                        tile_rows::<Blocks<$dot, Q4_1>>(w, rb, act, out, n, r0, r1)
                    }
                    BlockFormat::Q5_0 => {
                        tile_rows::<Blocks<$dot, Q5_0>>(w, rb, act, out, n, r0, r1)
                    }
                    BlockFormat::Q5_1 => {
                        tile_rows::<Blocks<$dot, Q5_1>>(w, rb, act, out, n, r0, r1)
                    }
                    BlockFormat::Q4K => tile_rows::<Blocks<$dot, Q4K>>(w, rb, act, out, n, r0, r1),
                    BlockFormat::Q5K => tile_rows::<Blocks<$dot, Q5K>>(w, rb, act, out, n, r0, r1),
                    BlockFormat::Q6K => tile_rows::<Blocks<$dot, Q6K>>(w, rb, act, out, n, r0, r1),
                    BlockFormat::Int8G32 => {
                        tile_rows::<Blocks<$dot, Int8G32>>(w, rb, act, out, n, r0, r1)
                    }
                    BlockFormat::Int8G64 => {
                        tile_rows::<Blocks<$dot, Int8G64>>(w, rb, act, out, n, r0, r1)
                    }
                    BlockFormat::Int4G64 => {
                        tile_rows::<Blocks<$dot, Int4G64>>(w, rb, act, out, n, r0, r1)
                    }
                }
            }
        }
    };
}

isa_entry!(
    rows_avx512vnni,
    Avx512Vnni,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"
);
isa_entry!(rows_avxvnni, AvxVnni, "avxvnni,avx2,fma,f16c");
isa_entry!(rows_avx2, Avx2, "avx2,fma,f16c");

/// Output columns `r0..r1` of `out = act · wᵀ` on x86 with `isa`.
///
/// # Safety
/// `isa` is available on this CPU and is not `Portable`; `w` holds `n` rows of
/// `act.k` elements of `format`; `out` points at `act.m * n` floats and no
/// one else writes columns `r0..r1`; `r1 <= n`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemv_rows(
    isa: super::QuantIsa,
    format: BlockFormat,
    w: *const u8,
    act: &Q8Activations,
    out: *mut f32,
    n: usize,
    r0: usize,
    r1: usize,
) {
    use super::QuantIsa;
    // SAFETY: the caller's contract.
    unsafe {
        match isa {
            QuantIsa::Avx512Vnni => match format {
                BlockFormat::Q4_0 => pairs::rows::<legacy::Q4_0>(w, act, out, n, r0, r1),
                BlockFormat::Q4_1 | BlockFormat::Int4G32 => {
                    pairs::rows::<legacy::Q4_1>(w, act, out, n, r0, r1)
                }
                _ => rows_avx512vnni(format, w, act, out, n, r0, r1),
            },
            QuantIsa::AvxVnni => rows_avxvnni(format, w, act, out, n, r0, r1),
            QuantIsa::Avx2 => rows_avx2(format, w, act, out, n, r0, r1),
            QuantIsa::Portable => unreachable!("portable kernels are not x86 kernels"),
        }
    }
}
