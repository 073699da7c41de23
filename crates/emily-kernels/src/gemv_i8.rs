//! Matrix-vector products with int8 weight rows (one f32 step per row) and
//! f32 activations quantized to 8-bit blocks, for decode steps whose largest
//! read is one big weight matrix (Whisper's logits through the tied token
//! embedding: 51,864 × 384 codes for tiny, half the bytes of its f16 table).
//!
//! **Layout.** Rows are grouped in panels of 16. A panel is one 64-byte line
//! of the rows' f32 steps, then for every four consecutive columns one line
//! holding the 16 rows' four codes side by side, as unsigned bytes `q + 128`
//! (columns padded with code 0 to a multiple of 32, rows with zero rows).
//! One `vpdpbusd` multiplies such a line by four activation codes broadcast
//! to every lane and adds each row's four products into that row's own lane:
//! 16 rows advance at once, with no horizontal sums and one sequential stream
//! of weights. The +128 offset (the instruction takes unsigned × signed
//! bytes) adds `128 · Σq` per activation block, the same for every row; each
//! block's sum starts from `-128 · Σq` instead, exactly, in integers.
//!
//! **Arithmetic.** The activations are quantized in two 8-bit passes by
//! [`crate::quant::Q8Activations`] (blocks of 32, scale `d = max|x| / 127`,
//! codes `q = round(x / d)`): the values, then what the first pass left
//! (`x − d·q`, at most `d/2`), so `x ≈ d·q + e·p` with `|x − d·q − e·p| ≤
//! e/2 ≤ d/508`. One block with a large value (a layer norm's outlier
//! feature) would otherwise cost its other 31 values all but a few bits;
//! the second pass costs integer products only, on weights already in
//! registers (the product stays bound by reading the weights). So
//! `out[i, r] = step[r] · Σ_b (d[i, b] · Σ_{j ∈ b} qw[r, j] · q[i, j] +
//! e[i, b] · Σ_{j ∈ b} qw[r, j] · p[i, j])` with exact integer block sums and
//! f32 outside them; the result is within `step[r] · Σ_j |qw[r, j]| ·
//! e[i, b(j)] / 2` (plus f32 round-off) of the product of the dequantized
//! weights with the unquantized activations.

use crate::parallel;
use crate::quant::{Q8Activations, QuantIsa};

/// Rows per panel (lanes of a 512-bit vector of i32 sums).
const PANEL_ROWS: usize = 16;
/// Columns of one activation block.
const BLOCK: usize = 32;
/// Bytes of one panel line.
const LINE: usize = 64;
/// How many lines ahead of the block being multiplied the AVX2 kernel asks
/// for the weights (1 KiB): a panel is read once, front to back, and the
/// next panel follows in memory. Without the hint the hardware prefetcher
/// alone kept a busy core at ~10 GB/s against its ~12–15 GB/s streaming
/// read on the Zen 2 (tiny.en's logits, 20 MB: 2.0–2.4 → 1.6–1.7 ms, one
/// thread, loaded).
const PREFETCH_LINES: usize = 16;

/// One 64-byte, 64-byte-aligned line of a panel.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; LINE]);

/// An implementation of the int8-row GEMV.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum I8Isa {
    /// AVX512-VNNI `vpdpbusd` on 512-bit vectors.
    Avx512Vnni,
    /// AVX2 `vpmaddubsw` + `vpmaddwd` on 256-bit vectors (half a panel per
    /// vector), with the codes' magnitudes against sign-adjusted activation
    /// codes so no 16-bit pair sum saturates: the same exact integer sums.
    Avx2,
    /// Plain integer loops (any CPU).
    Portable,
}

impl I8Isa {
    /// The best implementation this CPU runs within the cap `EMILY_ISA` puts
    /// on the quantized kernels ([`QuantIsa::detected`]).
    pub fn detected() -> I8Isa {
        match QuantIsa::detected() {
            QuantIsa::Avx512Vnni => I8Isa::Avx512Vnni,
            QuantIsa::AvxVnni | QuantIsa::Avx2 => I8Isa::Avx2,
            QuantIsa::Portable => I8Isa::Portable,
        }
    }

    /// The implementations this CPU runs, best first.
    pub fn all_available() -> Vec<I8Isa> {
        let mut v = Vec::new();
        if QuantIsa::Avx512Vnni.available() {
            v.push(I8Isa::Avx512Vnni);
        }
        if QuantIsa::Avx2.available() {
            v.push(I8Isa::Avx2);
        }
        v.push(I8Isa::Portable);
        v
    }
}

/// `n` weight rows of `k` columns as int8 codes with one f32 step per row
/// (`w[r, j] ≈ step[r] · q[r, j]`), in the panel layout of the module doc.
#[derive(Clone)]
pub struct I8Rows {
    n: usize,
    k: usize,
    /// `k` rounded up to whole activation blocks.
    kp: usize,
    lines: Vec<Line>,
}

impl std::fmt::Debug for I8Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I8Rows")
            .field("n", &self.n)
            .field("k", &self.k)
            .finish_non_exhaustive()
    }
}

impl I8Rows {
    /// Packs `n` rows of `k` columns: `row(r, codes)` writes row `r`'s `k`
    /// codes and returns its step. Rows are packed in parallel.
    pub fn from_rows(n: usize, k: usize, row: impl Fn(usize, &mut [i8]) -> f32 + Sync) -> I8Rows {
        let kp = k.div_ceil(BLOCK).max(1) * BLOCK;
        let per_panel = 1 + kp / 4;
        let panels = n.div_ceil(PANEL_ROWS);
        let mut lines = vec![Line([0; LINE]); panels * per_panel];
        parallel::for_each_row_block_mut(&mut lines, per_panel, PANEL_ROWS * kp, |p0, block| {
            let mut codes = vec![0i8; k];
            for (p, panel) in block.chunks_mut(per_panel).enumerate() {
                let (steps, body) = panel.split_at_mut(1);
                // Zero codes (byte 128) everywhere first: padding rows/columns.
                body.iter_mut().for_each(|l| l.0 = [128; LINE]);
                for t in 0..PANEL_ROWS {
                    let r = (p0 + p) * PANEL_ROWS + t;
                    if r >= n {
                        break;
                    }
                    codes.fill(0);
                    let step = row(r, &mut codes);
                    steps[0].0[4 * t..4 * t + 4].copy_from_slice(&step.to_le_bytes());
                    for (j, &q) in codes.iter().enumerate() {
                        body[j / 4].0[4 * t + j % 4] = (q as i16 + 128) as u8;
                    }
                }
            }
        });
        I8Rows { n, k, kp, lines }
    }

    /// Quantizes the row-major `(n, k)` matrix `w` row by row, symmetric:
    /// `step = max|w_r| / 127` (1/127 for a zero row), `q = round(w / step)`
    /// with ties to even.
    ///
    /// # Panics
    /// If `w.len() != n * k`.
    pub fn quantize(w: &[f32], n: usize, k: usize) -> I8Rows {
        assert_eq!(w.len(), n * k, "I8Rows: {} values for {n} × {k}", w.len());
        I8Rows::from_rows(n, k, |r, codes| {
            let row = &w[r * k..(r + 1) * k];
            let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let step = if amax > 0.0 {
                amax / 127.0
            } else {
                1.0 / 127.0
            };
            for (q, &v) in codes.iter_mut().zip(row) {
                *q = (v / step).round_ties_even().clamp(-127.0, 127.0) as i8;
            }
            step
        })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Bytes held (codes, steps and padding).
    pub fn bytes(&self) -> usize {
        self.lines.len() * LINE
    }

    fn per_panel(&self) -> usize {
        1 + self.kp / 4
    }

    /// Row `r`'s step and code `j`.
    fn code(&self, r: usize, j: usize) -> i8 {
        let panel = &self.lines[(r / PANEL_ROWS) * self.per_panel()..];
        (panel[1 + j / 4].0[4 * (r % PANEL_ROWS) + j % 4] as i16 - 128) as i8
    }

    /// Row `r`'s step.
    pub fn step(&self, r: usize) -> f32 {
        let line = &self.lines[(r / PANEL_ROWS) * self.per_panel()].0;
        let t = 4 * (r % PANEL_ROWS);
        f32::from_le_bytes([line[t], line[t + 1], line[t + 2], line[t + 3]])
    }

    /// Row `r`'s codes into `out` (`k` values).
    ///
    /// # Panics
    /// If `r >= n` or `out.len() != k`.
    pub fn codes_of_row(&self, r: usize, out: &mut [i8]) {
        assert!(
            r < self.n && out.len() == self.k,
            "I8Rows: row {r} into {}",
            out.len()
        );
        for (j, q) in out.iter_mut().enumerate() {
            *q = self.code(r, j);
        }
    }

    /// Row `r` dequantized (`step · q`) into `out` (`k` values).
    ///
    /// # Panics
    /// If `r >= n` or `out.len() != k`.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        assert!(
            r < self.n && out.len() == self.k,
            "I8Rows: row {r} into {}",
            out.len()
        );
        let step = self.step(r);
        for (j, v) in out.iter_mut().enumerate() {
            *v = step * self.code(r, j) as f32;
        }
    }

    /// `out = x · wᵀ` with the best implementation of this CPU: `x` is
    /// row-major `(m, k)`, `out` row-major `(m, n)`.
    ///
    /// # Panics
    /// If `x.len() != m * k` or `out.len() != m * n`.
    pub fn gemv(&self, x: &[f32], m: usize, out: &mut [f32]) {
        self.gemv_with(I8Isa::detected(), x, m, out)
    }

    /// [`I8Rows::gemv`] with a given implementation; one this CPU lacks runs
    /// the portable loops. Every implementation gives the same integer block
    /// sums.
    ///
    /// # Panics
    /// If `x.len() != m * k` or `out.len() != m * n`.
    pub fn gemv_with(&self, isa: I8Isa, x: &[f32], m: usize, out: &mut [f32]) {
        let (n, k, kp) = (self.n, self.k, self.kp);
        assert_eq!(
            x.len(),
            m * k,
            "I8Rows::gemv: x has {} values, expected {m} × {k}",
            x.len()
        );
        assert_eq!(
            out.len(),
            m * n,
            "I8Rows::gemv: out has {} values, expected {m} × {n}",
            out.len()
        );
        if m == 0 || n == 0 {
            return;
        }
        let (act, rest) = quantize_two_pass(x, m, k, kp);
        // -128 · Σq per activation block of each pass: the weights' +128
        // offset, exactly.
        let offsets: Vec<i32> = act
            .qs
            .chunks(BLOCK)
            .chain(rest.qs.chunks(BLOCK))
            .map(|b| -128 * b.iter().map(|&q| q as i32).sum::<i32>())
            .collect();
        let isa = match isa {
            I8Isa::Avx512Vnni if QuantIsa::Avx512Vnni.available() => isa,
            I8Isa::Avx2 if QuantIsa::Avx2.available() => isa,
            _ => I8Isa::Portable,
        };
        let job = Job {
            lines: self.lines.as_ptr(),
            per_panel: self.per_panel(),
            n,
            blocks: kp / BLOCK,
            m,
            qs: act.qs.as_ptr(),
            d: act.d.as_ptr(),
            ps: rest.qs.as_ptr(),
            e: rest.d.as_ptr(),
            offsets: offsets.as_ptr(),
            out: out.as_mut_ptr(),
        };
        let panels = n.div_ceil(PANEL_ROWS);
        let cost = PANEL_ROWS * kp * (1 + m / 2);
        parallel::for_each_range(panels, cost, |p0, p1| {
            // SAFETY: `job` points at buffers that outlive this call, sized
            // as checked above; panels `p0..p1` write only their own output
            // columns.
            unsafe {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    I8Isa::Avx512Vnni => x86::panels(job, p0, p1),
                    #[cfg(target_arch = "x86_64")]
                    I8Isa::Avx2 => x86::panels_avx2(job, p0, p1),
                    _ => panels_portable(job, p0, p1),
                }
            }
        });
    }
}

/// `x` (`m` rows of `k`) quantized in two passes (module doc), rows padded
/// with zeros to `kp` columns: the values' blocks and the residual's.
pub fn quantize_two_pass(
    x: &[f32],
    m: usize,
    k: usize,
    kp: usize,
) -> (Q8Activations, Q8Activations) {
    let mut padded = vec![0f32; m * kp];
    for (dst, src) in padded.chunks_mut(kp).zip(x.chunks(k.max(1))) {
        dst[..k].copy_from_slice(src);
    }
    let act = Q8Activations::quantize(&padded, m, kp);
    for (j, v) in padded.iter_mut().enumerate() {
        *v -= act.d[j / BLOCK] * act.qs[j] as f32;
    }
    let rest = Q8Activations::quantize(&padded, m, kp);
    (act, rest)
}

/// What every panel of one product needs (raw pointers into buffers the
/// caller keeps alive).
#[derive(Clone, Copy)]
struct Job {
    lines: *const Line,
    per_panel: usize,
    n: usize,
    blocks: usize,
    m: usize,
    /// First pass: codes `(m, kp)` and block scales `(m, kp / 32)`.
    qs: *const i8,
    d: *const f32,
    /// Second pass (the residual), same shapes.
    ps: *const i8,
    e: *const f32,
    /// `-128 · Σq` per block: the first pass's `(m, kp / 32)`, then the
    /// second's.
    offsets: *const i32,
    out: *mut f32,
}
// SAFETY: workers read the shared inputs and write disjoint output columns.
unsafe impl Send for Job {}
// SAFETY: as above.
unsafe impl Sync for Job {}

/// Panels `p0..p1` times every activation row, in plain loops.
///
/// # Safety
/// `job`'s pointers are valid for the sizes it states; `p0 <= p1 <=` panels.
unsafe fn panels_portable(job: Job, p0: usize, p1: usize) {
    let kp = job.blocks * BLOCK;
    for p in p0..p1 {
        // SAFETY: panel `p` is within the lines.
        let panel =
            unsafe { std::slice::from_raw_parts(job.lines.add(p * job.per_panel), job.per_panel) };
        for i in 0..job.m {
            let mut acc = [0f32; PANEL_ROWS];
            let all = job.m * job.blocks;
            for b in 0..job.blocks {
                let at = i * job.blocks + b;
                // SAFETY: block `b` of row `i` is within the activations.
                let (off, d, off2, e) = unsafe {
                    (
                        *job.offsets.add(at),
                        *job.d.add(at),
                        *job.offsets.add(all + at),
                        *job.e.add(at),
                    )
                };
                let (mut sums, mut sums2) = ([off; PANEL_ROWS], [off2; PANEL_ROWS]);
                for j4 in b * BLOCK / 4..(b + 1) * BLOCK / 4 {
                    let line = &panel[1 + j4].0;
                    for c in 0..4 {
                        let j = i * kp + 4 * j4 + c;
                        // SAFETY: column `4 * j4 + c < kp` of row `i`.
                        let (q, p) = unsafe { (*job.qs.add(j) as i32, *job.ps.add(j) as i32) };
                        for t in 0..PANEL_ROWS {
                            let w = line[4 * t + c] as i32;
                            sums[t] += w * q;
                            sums2[t] += w * p;
                        }
                    }
                }
                for t in 0..PANEL_ROWS {
                    acc[t] += sums[t] as f32 * d + sums2[t] as f32 * e;
                }
            }
            for (t, a) in acc.iter().enumerate() {
                let r = p * PANEL_ROWS + t;
                if r < job.n {
                    let s = &panel[0].0[4 * t..4 * t + 4];
                    let step = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                    // SAFETY: `i * n + r < m * n`, a column of this panel.
                    unsafe { *job.out.add(i * job.n + r) = a * step };
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Job, BLOCK, LINE, PANEL_ROWS, PREFETCH_LINES};

    /// Panels `p0..p1` times every activation row with `vpdpbusd`.
    ///
    /// # Safety
    /// AVX512-F/BW/VNNI present; as [`super::panels_portable`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn panels(job: Job, p0: usize, p1: usize) {
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
                let all = job.m * job.blocks;
                for i in 0..job.m {
                    let qs = job.qs.add(i * kp).cast::<i32>();
                    let ps = job.ps.add(i * kp).cast::<i32>();
                    let mut acc = _mm512_setzero_ps();
                    for b in 0..job.blocks {
                        let at = i * job.blocks + b;
                        let mut a = _mm512_set1_epi32(*job.offsets.add(at));
                        let mut r = _mm512_set1_epi32(*job.offsets.add(all + at));
                        let j = b * BLOCK / 4;
                        for t in 0..BLOCK / 4 {
                            let w = _mm512_load_si512(body.add(j + t));
                            a = _mm512_dpbusd_epi32(
                                a,
                                w,
                                _mm512_set1_epi32(qs.add(j + t).read_unaligned()),
                            );
                            r = _mm512_dpbusd_epi32(
                                r,
                                w,
                                _mm512_set1_epi32(ps.add(j + t).read_unaligned()),
                            );
                        }
                        acc = _mm512_fmadd_ps(
                            _mm512_cvtepi32_ps(a),
                            _mm512_set1_ps(*job.d.add(at)),
                            acc,
                        );
                        acc = _mm512_fmadd_ps(
                            _mm512_cvtepi32_ps(r),
                            _mm512_set1_ps(*job.e.add(at)),
                            acc,
                        );
                    }
                    let out = job.out.add(i * job.n + p * PANEL_ROWS);
                    _mm512_mask_storeu_ps(out, mask, _mm512_mul_ps(acc, steps));
                }
            }
        }
    }

    /// Panels `p0..p1` times every activation row on AVX2: each 256-bit half
    /// of a panel line holds 8 rows' four codes; `|code|` (`vpabsb` of the
    /// line with its +128 offset removed) times the activation codes with
    /// the code's sign (`vpsignb`) in `vpmaddubsw` gives 16-bit pair sums of
    /// at most 2 · 128 · 127 (no saturation), and `vpmaddwd` by ones the
    /// row's four-product sum: exactly the signed sum, so each block starts
    /// from 0, not from the +128 offsets the unsigned forms subtract.
    ///
    /// # Safety
    /// AVX2 present; as [`super::panels_portable`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn panels_avx2(job: Job, p0: usize, p1: usize) {
        let kp = job.blocks * BLOCK;
        let flip = _mm256_set1_epi8(-128);
        for p in p0..p1 {
            // SAFETY: the caller's contract: panel `p` and the activation
            // rows are in bounds; the lines are 64-byte aligned.
            unsafe {
                let panel = job.lines.add(p * job.per_panel).cast::<__m256i>();
                let steps = [0, 1].map(|h| _mm256_castsi256_ps(_mm256_load_si256(panel.add(h))));
                let body = panel.add(2);
                let valid = (job.n - p * PANEL_ROWS).min(PANEL_ROWS);
                for i in 0..job.m {
                    let qs = job.qs.add(i * kp).cast::<i32>();
                    let ps = job.ps.add(i * kp).cast::<i32>();
                    let mut acc = [_mm256_setzero_ps(); 2];
                    for b in 0..job.blocks {
                        let at = i * job.blocks + b;
                        let (mut a, mut r) =
                            ([_mm256_setzero_si256(); 2], [_mm256_setzero_si256(); 2]);
                        let j = b * BLOCK / 4;
                        // The block's lines `PREFETCH_LINES` ahead (a hint:
                        // past the last panel it touches nothing).
                        let ahead = body.wrapping_add(2 * (j + PREFETCH_LINES)).cast::<i8>();
                        for l in 0..BLOCK / 4 {
                            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(LINE * l));
                        }
                        for t in 0..BLOCK / 4 {
                            let qb = _mm256_set1_epi32(qs.add(j + t).read_unaligned());
                            let pb = _mm256_set1_epi32(ps.add(j + t).read_unaligned());
                            for h in 0..2 {
                                let codes = _mm256_xor_si256(
                                    _mm256_load_si256(body.add(2 * (j + t) + h)),
                                    flip,
                                );
                                let mag = _mm256_abs_epi8(codes);
                                a[h] = _mm256_add_epi32(a[h], dot(mag, codes, qb));
                                r[h] = _mm256_add_epi32(r[h], dot(mag, codes, pb));
                            }
                        }
                        let (d, e) = (
                            _mm256_set1_ps(*job.d.add(at)),
                            _mm256_set1_ps(*job.e.add(at)),
                        );
                        for h in 0..2 {
                            acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a[h]), d, acc[h]);
                            acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(r[h]), e, acc[h]);
                        }
                    }
                    let out = job.out.add(i * job.n + p * PANEL_ROWS);
                    for h in 0..2 {
                        let v = _mm256_mul_ps(acc[h], steps[h]);
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

    /// One half line's four-product sums per row: `mag` the codes'
    /// magnitudes, `signs` the codes, `qb` four activation codes broadcast.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn dot(mag: __m256i, signs: __m256i, qb: __m256i) -> __m256i {
        let pairs = _mm256_maddubs_epi16(mag, _mm256_sign_epi8(qb, signs));
        _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
    }
}
