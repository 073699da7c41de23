//! Matrix-vector products with half-precision (or f32) weights and f32
//! activations, for decoding steps where a few activation rows meet a large
//! weight matrix and the product is bound by memory bandwidth.
//!
//! The weights are row-major `(n, k)` (PyTorch `Linear` layout: out features ×
//! in features); `x` holds `m` row-major activation rows of length `k`; the
//! result is row-major `(m, n)`:
//! `out[i * n + r] = Σ_j w[r * k + j] as f32 * x[i * k + j]`, accumulated in f32.
//!
//! For one activation row, weight rows are streamed one after another (a
//! single sequential stream, which the hardware prefetcher follows best); for
//! several, in blocks of a few rows, each activation vector loaded once for
//! the block, with the next block prefetched in software. Activation rows are
//! taken in register-sized chunks of up to 8, and the weights are read from
//! memory once per chunk (once for the decoding sizes, m ≤ 8). Weights are widened in registers (F16C
//! for f16, a shift for bf16), multiplied with FMA into several independent f32
//! accumulators, and the `n` rows are split over the global pool above
//! [`crate::parallel::MIN_PARALLEL_ELEMS`] units of work.

use half::{bf16, f16};

use crate::parallel;
use crate::simd::{self, Isa};

/// Element type tags (const-generic parameters of the kernels).
const F16: u8 = 0;
const BF16: u8 = 1;
const F32: u8 = 2;

/// Activation rows per register-resident chunk.
const M_CHUNK: usize = 8;

/// `out = x · wᵀ` with f16 weights: `w` is `(n, k)` row-major, `x` is `(m, k)`,
/// `out` is `(m, n)`; products and sums in f32.
///
/// # Panics
/// If `w.len() != n * k`, `x.len() != m * k` or `out.len() != m * n`.
pub fn gemv_f16(w: &[f16], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    check(w.len(), n, k, x.len(), m, out.len());
    // SAFETY: f16 is a 2-byte plain-old-data type; lengths were checked.
    unsafe { run::<F16>(w.as_ptr().cast(), n, k, x, m, out) }
}

/// `out = x · wᵀ` with bf16 weights; see [`gemv_f16`] for the layout.
///
/// # Panics
/// If `w.len() != n * k`, `x.len() != m * k` or `out.len() != m * n`.
pub fn gemv_bf16(w: &[bf16], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    check(w.len(), n, k, x.len(), m, out.len());
    // SAFETY: bf16 is a 2-byte plain-old-data type; lengths were checked.
    unsafe { run::<BF16>(w.as_ptr().cast(), n, k, x, m, out) }
}

/// `out = x · wᵀ` with f32 weights; see [`gemv_f16`] for the layout.
///
/// # Panics
/// If `w.len() != n * k`, `x.len() != m * k` or `out.len() != m * n`.
pub fn gemv_f32(w: &[f32], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    check(w.len(), n, k, x.len(), m, out.len());
    // SAFETY: lengths were checked.
    unsafe { run::<F32>(w.as_ptr().cast(), n, k, x, m, out) }
}

fn check(wl: usize, n: usize, k: usize, xl: usize, m: usize, ol: usize) {
    assert_eq!(
        wl,
        n * k,
        "gemv: weights have {wl} elements, expected n*k = {n}*{k}"
    );
    assert_eq!(
        xl,
        m * k,
        "gemv: x has {xl} elements, expected m*k = {m}*{k}"
    );
    assert_eq!(
        ol,
        m * n,
        "gemv: out has {ol} elements, expected m*n = {m}*{n}"
    );
}

/// Shares the output pointer with the worker threads; each writes a disjoint
/// set of columns `r0..r1` of every output row.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: workers write disjoint elements (their own row range `r0..r1`).
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}
impl OutPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Same for the weight pointer (read-only).
#[derive(Clone, Copy)]
struct WPtr(*const u8);
// SAFETY: read-only access to data borrowed for the whole call.
unsafe impl Send for WPtr {}
// SAFETY: as above.
unsafe impl Sync for WPtr {}
impl WPtr {
    fn get(self) -> *const u8 {
        self.0
    }
}

/// Arguments shared by every row range of one call.
#[derive(Clone, Copy)]
struct Job {
    w: *const u8,
    n: usize,
    k: usize,
    x: *const f32,
    m: usize,
    out: *mut f32,
}

/// # Safety
/// `w` points at `n * k` elements of type `DT`; `x.len() == m * k`;
/// `out.len() == m * n`.
unsafe fn run<const DT: u8>(
    w: *const u8,
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) {
    if n == 0 || m == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    let isa = simd::isa();
    let (wp, op) = (WPtr(w), OutPtr(out.as_mut_ptr()));
    // Cost of one weight row: its k elements, plus the FMAs for m > 1.
    let cost = k.saturating_mul(1 + m / 2);
    parallel::for_each_even_range(n, cost, |r0, r1| {
        let job = Job {
            w: wp.get(),
            n,
            k,
            x: x.as_ptr(),
            m,
            out: op.get(),
        };
        // SAFETY: the caller's contract; `r0..r1` is within `0..n` and disjoint
        // from every other range.
        unsafe { rows::<DT>(isa, job, r0, r1) }
    });
}

/// Computes output columns `r0..r1` of every output row.
///
/// # Safety
/// As [`run`], with `r0 <= r1 <= n`.
unsafe fn rows<const DT: u8>(isa: Isa, job: Job, r0: usize, r1: usize) {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: `isa()` reported these features; the caller's contract.
        Isa::Avx512 => return unsafe { x86::rows512::<DT>(job, r0, r1) },
        // SAFETY: as above.
        Isa::Avx2 => return unsafe { x86::rows256::<DT>(job, r0, r1) },
        Isa::Baseline => {}
    }
    let _ = isa;
    // SAFETY: the caller's contract.
    unsafe { rows_baseline::<DT>(job, r0, r1) }
}

/// Portable fallback: widens a chunk of one weight row into a stack buffer and
/// dots it with every activation row (plain loops that LLVM vectorises).
///
/// # Safety
/// As [`rows`].
unsafe fn rows_baseline<const DT: u8>(job: Job, r0: usize, r1: usize) {
    use half::slice::HalfFloatSliceExt;
    const CH: usize = 512;
    let Job { w, n, k, x, m, out } = job;
    // SAFETY: the caller's contract on `x`.
    let x = unsafe { std::slice::from_raw_parts(x, m * k) };
    let mut buf = [0f32; CH];
    for r in r0..r1 {
        for i in 0..m {
            // SAFETY: `i * n + r < m * n`.
            unsafe { *out.add(i * n + r) = 0.0 };
        }
        let mut j0 = 0;
        while j0 < k {
            let len = CH.min(k - j0);
            let wr: &[f32] = match DT {
                // SAFETY: `r * k + j0 + len <= n * k` elements of the right type.
                F16 => unsafe {
                    let s = std::slice::from_raw_parts(w.cast::<f16>().add(r * k + j0), len);
                    s.convert_to_f32_slice(&mut buf[..len]);
                    &buf[..len]
                },
                // SAFETY: as above.
                BF16 => unsafe {
                    let s = std::slice::from_raw_parts(w.cast::<bf16>().add(r * k + j0), len);
                    s.convert_to_f32_slice(&mut buf[..len]);
                    &buf[..len]
                },
                // SAFETY: as above.
                _ => unsafe { std::slice::from_raw_parts(w.cast::<f32>().add(r * k + j0), len) },
            };
            for i in 0..m {
                let d = dot(wr, &x[i * k + j0..i * k + j0 + len]);
                // SAFETY: `i * n + r < m * n`.
                unsafe { *out.add(i * n + r) += d };
            }
            j0 += len;
        }
    }
}

/// Dot product with 8 independent partial sums.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (p, q) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += p[l] * q[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (p, q) in ra.iter().zip(rb) {
        s += p * q;
    }
    s
}

/// Widens one weight element of type `DT` (for scalar tails).
///
/// # Safety
/// `w` points at more than `idx` elements of type `DT`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn weight_scalar<const DT: u8>(w: *const u8, idx: usize) -> f32 {
    // SAFETY: the caller's contract.
    unsafe {
        match DT {
            F16 => (*w.cast::<f16>().add(idx)).to_f32(),
            BF16 => (*w.cast::<bf16>().add(idx)).to_f32(),
            _ => *w.cast::<f32>().add(idx),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{weight_scalar, Job, BF16, F16, F32, M_CHUNK};

    /// AVX2 walk over weight rows `r0..r1`. One activation row (or more
    /// than [`M_CHUNK`]): a weight row at a time (one sequential stream,
    /// which the hardware prefetcher follows; interleaving several rows'
    /// short streams halves the bandwidth), multiplied with every chunk of
    /// up to [`M_CHUNK`] activation rows while it is in L1. Two to six
    /// activation rows over 2-byte weights: blocks of `R` weight rows (the
    /// block after next prefetched in software), each activation vector
    /// loaded once for all `R`, so that `R·M` independent sums hide the FMA
    /// latency (a row at a time, a beam's 5 rows ran at one FMA per cycle:
    /// Whisper base's f16 logits 5.5 ms against 2.9 for one row; 3.5 ms in
    /// blocks of 2). f32 weights stay a row at a time: with twice the bytes
    /// per FMA they are bound by the read rate already, and blocks read them
    /// slower (512 × 512, 5 rows: 0.070 against 0.062 ms). Every output is
    /// summed in the same order whatever `R` (bit-identical to a row at a
    /// time).
    ///
    /// # Safety
    /// AVX2, FMA and F16C present; as [`super::rows`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn rows256<const DT: u8>(job: Job, r0: usize, r1: usize) {
        /// `(M, U, R)`: activation rows, accumulators per output, weight rows
        /// per block (R·M·U accumulators + R·U weight vectors + 1 < 16 registers).
        macro_rules! blocks {
            ($mc:expr, $($mm:literal => $uu:literal, $rr:literal);*) => {
                match $mc {
                    $($mm => {
                        let mut r = r0;
                        while r1 - r >= $rr {
                            // SAFETY: rows `r..r + R` and x rows `0..M` are in range.
                            unsafe { block256::<DT, $mm, $uu, $rr>(job, r, 0) };
                            r += $rr;
                        }
                        while r < r1 {
                            // SAFETY: as above.
                            unsafe { block256::<DT, $mm, $uu, 1>(job, r, 0) };
                            r += 1;
                        }
                    })*
                    _ => unreachable!(),
                }
            };
        }
        if DT != F32 && (2..=6).contains(&job.m) {
            blocks!(job.m, 2 => 2, 2; 3 => 1, 3; 4 => 1, 2; 5 => 1, 2; 6 => 1, 2);
            return;
        }
        for r in r0..r1 {
            let mut i = 0;
            while i < job.m {
                let mc = M_CHUNK.min(job.m - i);
                // SAFETY: row `r` and x rows `i..i + mc` are in range.
                unsafe {
                    match mc {
                        1 => block256::<DT, 1, 4, 1>(job, r, i),
                        2 => block256::<DT, 2, 2, 1>(job, r, i),
                        3 => block256::<DT, 3, 1, 1>(job, r, i),
                        4 => block256::<DT, 4, 1, 1>(job, r, i),
                        5 => block256::<DT, 5, 1, 1>(job, r, i),
                        6 => block256::<DT, 6, 1, 1>(job, r, i),
                        7 => block256::<DT, 7, 1, 1>(job, r, i),
                        8 => block256::<DT, 8, 1, 1>(job, r, i),
                        _ => unreachable!(),
                    }
                }
                i += mc;
            }
        }
    }

    /// AVX-512 walk over weight rows `r0..r1`. One activation row: a weight
    /// row at a time (one sequential stream, four accumulators), the bytes
    /// [`crate::prefetch::stream_ahead`] of [`ROW_PREFETCH_BYTES`] ahead
    /// asked for in software (the Xeon with AMX, hardware prefetcher alone:
    /// Whisper base's f16 matrices and logits table read at ~8–10 of an
    /// 18 GB/s floor; its f32 decoder step at 1 thread 15–16 → 10–11 ms with
    /// a 4 KiB lead, 1–16 KiB all alike). Several:
    /// blocks of `R` weight rows, each activation vector loaded once for all
    /// `R` of them, so the FMAs, not the loads, set the pace once the rows
    /// outnumber what the bandwidth hides (a beam's 5 rows ran at a third of
    /// the read rate a row at a time). Every output is summed in the same
    /// order whatever `R` (bit-identical to a row at a time).
    ///
    /// # Safety
    /// AVX-512F/VL/BW/DQ, AVX2, FMA and F16C present; as [`super::rows`].
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")]
    pub unsafe fn rows512<const DT: u8>(job: Job, r0: usize, r1: usize) {
        /// `(M, U, R)`: activation rows, accumulators per output, weight rows
        /// per block (R·M·U accumulators + R·U weight vectors ≤ 32 registers).
        macro_rules! chunk {
            ($i:expr, $mc:expr, $($mm:literal => $uu:literal, $rr:literal);*) => {
                match $mc {
                    $($mm => {
                        let mut r = r0;
                        while r1 - r >= $rr {
                            // SAFETY: rows `r..r + R` and x rows `i..i + M` are in range.
                            unsafe { block512::<DT, $mm, $uu, $rr>(job, r, $i) };
                            r += $rr;
                        }
                        while r < r1 {
                            // SAFETY: as above.
                            unsafe { block512::<DT, $mm, $uu, 1>(job, r, $i) };
                            r += 1;
                        }
                    })*
                    _ => unreachable!(),
                }
            };
        }
        let mut i = 0;
        while i < job.m {
            let mc = M_CHUNK.min(job.m - i);
            chunk!(i, mc, 1 => 4, 1; 2 => 2, 4; 3 => 2, 3; 4 => 2, 3;
                5 => 1, 4; 6 => 1, 4; 7 => 1, 3; 8 => 1, 3);
            i += mc;
        }
    }

    /// Bytes of one weight element of type `DT`.
    const fn elem_bytes<const DT: u8>() -> usize {
        if DT == F32 {
            4
        } else {
            2
        }
    }

    /// 16 weights of type `DT` from `w + j` (elements), widened to f32.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")]
    unsafe fn load16<const DT: u8>(w: *const u8, j: usize) -> __m512 {
        // SAFETY: the caller guarantees 16 readable elements.
        unsafe {
            match DT {
                F16 => _mm512_cvtph_ps(_mm256_loadu_si256(w.cast::<u16>().add(j).cast())),
                BF16 => {
                    let h = _mm256_loadu_si256(w.cast::<u16>().add(j).cast());
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
                }
                _ => _mm512_loadu_ps(w.cast::<f32>().add(j)),
            }
        }
    }

    /// [`load16`] of the lanes set in `mask` (others 0; masked lanes are not read).
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")]
    unsafe fn load16_mask<const DT: u8>(w: *const u8, j: usize, mask: __mmask16) -> __m512 {
        // SAFETY: the caller guarantees the masked lanes are readable.
        unsafe {
            match DT {
                F16 => _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, w.cast::<i16>().add(j))),
                BF16 => {
                    let h = _mm256_maskz_loadu_epi16(mask, w.cast::<i16>().add(j));
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
                }
                _ => _mm512_maskz_loadu_ps(mask, w.cast::<f32>().add(j)),
            }
        }
    }

    /// Weight rows `r0..r0 + R` times activation rows `i0..i0 + M` (U
    /// accumulators per output), written to `out[(i0 + i) * n + r0 + q]`.
    ///
    /// # Safety
    /// AVX-512 present; the rows are in range.
    #[inline]
    #[allow(clippy::needless_range_loop)] // acc[q][u][i] reads best indexed
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")]
    unsafe fn block512<const DT: u8, const M: usize, const U: usize, const R: usize>(
        job: Job,
        r0: usize,
        i0: usize,
    ) {
        let Job {
            w, n, k, x, out, ..
        } = job;
        let x = x.wrapping_add(i0 * k);
        let wo = r0 * k;
        let mut acc = [[[_mm512_setzero_ps(); M]; U]; R];
        let mut j = 0;
        // SAFETY: every load below is within rows `r0..r0 + R` of w (k
        // elements each) or row `i0 + i` of x (k elements); the tail is
        // masked to `j..k`.
        unsafe {
            while j + 16 * U <= k {
                if R == 1 {
                    let eb = elem_bytes::<DT>();
                    prefetch_row_ahead(w.wrapping_add((wo + j) * eb), 16 * U * eb);
                }
                for u in 0..U {
                    let jj = j + 16 * u;
                    if R > 1 {
                        // The next block, as far into it as this one has
                        // come (the blocks are contiguous): the hardware
                        // prefetcher does not follow R interleaved streams.
                        let eb = elem_bytes::<DT>();
                        let next = w.wrapping_add((wo + R * k + jj * R) * eb);
                        let mut l = 0;
                        while l < 16 * R * eb {
                            // Kept in cache on AVX-512 hosts until the
                            // non-temporal hint is measured there.
                            crate::prefetch::line(
                                next.wrapping_add(l),
                                crate::prefetch::Hint::Keep,
                            );
                            l += 64;
                        }
                    }
                    let wv: [__m512; R] = std::array::from_fn(|q| load16::<DT>(w, wo + q * k + jj));
                    for i in 0..M {
                        let xv = _mm512_loadu_ps(x.add(i * k + jj));
                        for q in 0..R {
                            acc[q][u][i] = _mm512_fmadd_ps(wv[q], xv, acc[q][u][i]);
                        }
                    }
                }
                j += 16 * U;
            }
            while j + 16 <= k {
                let wv: [__m512; R] = std::array::from_fn(|q| load16::<DT>(w, wo + q * k + j));
                for i in 0..M {
                    let xv = _mm512_loadu_ps(x.add(i * k + j));
                    for q in 0..R {
                        acc[q][0][i] = _mm512_fmadd_ps(wv[q], xv, acc[q][0][i]);
                    }
                }
                j += 16;
            }
            if j < k {
                let mask = ((1u32 << (k - j)) - 1) as __mmask16;
                let wv: [__m512; R] =
                    std::array::from_fn(|q| load16_mask::<DT>(w, wo + q * k + j, mask));
                for i in 0..M {
                    let xv = _mm512_maskz_loadu_ps(mask, x.add(i * k + j));
                    for q in 0..R {
                        acc[q][0][i] = _mm512_fmadd_ps(wv[q], xv, acc[q][0][i]);
                    }
                }
            }
            for (q, acc) in acc.iter().enumerate() {
                for i in 0..M {
                    let mut s = acc[0][i];
                    for a in &acc[1..] {
                        s = _mm512_add_ps(s, a[i]);
                    }
                    *out.add((i0 + i) * n + r0 + q) = _mm512_reduce_add_ps(s);
                }
            }
        }
    }

    /// 8 weights of type `DT` from `w + j` (elements), widened to f32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8<const DT: u8>(w: *const u8, j: usize) -> __m256 {
        // SAFETY: the caller guarantees 8 readable elements.
        unsafe {
            match DT {
                F16 => _mm256_cvtph_ps(_mm_loadu_si128(w.cast::<u16>().add(j).cast())),
                BF16 => {
                    let h = _mm_loadu_si128(w.cast::<u16>().add(j).cast());
                    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
                }
                _ => _mm256_loadu_ps(w.cast::<f32>().add(j)),
            }
        }
    }

    /// Sum of the 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }

    /// How far ahead of its current position a one-row walk asks for
    /// weights, before [`crate::prefetch::stream_ahead`]'s factor.
    const ROW_PREFETCH_BYTES: usize = 1024;

    /// Asks for the `bytes` of a one-row walk's weight stream that lie the
    /// lead past `at` (the rows follow one another in memory, so the lead
    /// runs on into the next row): with only the hardware prefetcher a busy
    /// core read the stream well below its streaming rate.
    #[inline(always)]
    fn prefetch_row_ahead(at: *const u8, bytes: usize) {
        let ahead = at.wrapping_add(crate::prefetch::stream_ahead(ROW_PREFETCH_BYTES));
        let mut l = 0;
        while l < bytes {
            crate::prefetch::stream_line(ahead.wrapping_add(l));
            l += 64;
        }
    }

    /// AVX2 version of [`block512`] (scalar tail): weight rows
    /// `r0..r0 + R` × activation rows `i0..i0 + M`, `U` accumulators each.
    ///
    /// # Safety
    /// AVX2, FMA and F16C present; the rows are in range.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::needless_range_loop)] // acc[q][u][i] reads best indexed
    unsafe fn block256<const DT: u8, const M: usize, const U: usize, const R: usize>(
        job: Job,
        r0: usize,
        i0: usize,
    ) {
        let Job {
            w, n, k, x, out, ..
        } = job;
        let x = x.wrapping_add(i0 * k);
        let wo = r0 * k;
        let eb = elem_bytes::<DT>();
        let mut acc = [[[_mm256_setzero_ps(); M]; U]; R];
        let mut j = 0;
        // SAFETY: every load below is within rows `r0..r0 + R` of w (k
        // elements each) or row `i0 + i` of x (k elements).
        unsafe {
            while j + 8 * U <= k {
                if R == 1 {
                    prefetch_row_ahead(w.wrapping_add((wo + j) * eb), 8 * U * eb);
                } else {
                    // The block after next, as far into it as this one has
                    // come (the blocks are contiguous): the hardware
                    // prefetcher does not follow R interleaved streams.
                    let next = w.wrapping_add((wo + 2 * R * k + j * R) * eb);
                    let mut l = 0;
                    while l < 8 * U * R * eb {
                        crate::prefetch::stream_line(next.wrapping_add(l));
                        l += 64;
                    }
                }
                for u in 0..U {
                    let jj = j + 8 * u;
                    let wv: [__m256; R] = std::array::from_fn(|q| load8::<DT>(w, wo + q * k + jj));
                    for i in 0..M {
                        let xv = _mm256_loadu_ps(x.add(i * k + jj));
                        for q in 0..R {
                            acc[q][u][i] = _mm256_fmadd_ps(wv[q], xv, acc[q][u][i]);
                        }
                    }
                }
                j += 8 * U;
            }
            while j + 8 <= k {
                let wv: [__m256; R] = std::array::from_fn(|q| load8::<DT>(w, wo + q * k + j));
                for i in 0..M {
                    let xv = _mm256_loadu_ps(x.add(i * k + j));
                    for q in 0..R {
                        acc[q][0][i] = _mm256_fmadd_ps(wv[q], xv, acc[q][0][i]);
                    }
                }
                j += 8;
            }
            for (q, acc) in acc.iter().enumerate() {
                let wq = wo + q * k;
                for i in 0..M {
                    let mut v = acc[0][i];
                    for a in &acc[1..] {
                        v = _mm256_add_ps(v, a[i]);
                    }
                    let mut s = hsum256(v);
                    for jj in j..k {
                        s += weight_scalar::<DT>(w, wq + jj) * *x.add(i * k + jj);
                    }
                    *out.add((i0 + i) * n + r0 + q) = s;
                }
            }
        }
    }
}
