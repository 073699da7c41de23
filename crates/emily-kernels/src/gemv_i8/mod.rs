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
//! **Memory.** Panels of 64 KiB and more are mapped on transparent huge
//! pages ([`HugePageSlice`]; below 2 MiB several products' panels share a
//! mapping): Whisper's int8 logits (20 MB for tiny, 27 MB for base) read
//! from 4 KiB pages made the whole decoder step 1.1–1.15× slower, the
//! layers' 147 KB–1 MB matrices a further ~1.08× at two threads (process
//! CPU, loaded).
//!
//! **Arithmetic.** The activations are quantized to 16-bit codes in blocks
//! of 32 by [`I16Blocks`] (scale `s = max|x| / 32512`, codes `a = round(x /
//! s)`, so `|x − s·a| ≤ s/2`: one block with a large value, a layer norm's
//! outlier feature, still keeps its other 31 values to ~16 bits). So
//! `out[i, r] = step[r] · Σ_b s[i, b] · Σ_{j ∈ b} qw[r, j] · a[i, j]` with
//! exact integer block sums and f32 outside them; the result is within
//! `step[r] · Σ_j |qw[r, j]| · s[i, b(j)] / 2` (plus f32 round-off) of the
//! product of the dequantized weights with the unquantized activations.
//! AVX2 multiplies the weights widened to 16 bits by the codes
//! (`vpmaddwd`); VNNI takes the codes' two byte planes (`a = 256·hi + lo`)
//! through `vpdpbusd` and joins the planes' block sums exactly.

mod blocks;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use blocks::{BytePlanes, I16Blocks, CODE_MAX};

use crate::huge_pages::HugePageSlice;
use crate::parallel;
use crate::quant::QuantIsa;

/// Rows per panel (lanes of a 512-bit vector of i32 sums).
const PANEL_ROWS: usize = 16;
/// Columns of one activation block.
const BLOCK: usize = 32;
/// Bytes of one panel line.
const LINE: usize = 64;
/// Most activation rows multiplied panel by panel with the panels split
/// among the workers (decoding: beams, a batch's rows); more are taken in
/// blocks of this many rows, the blocks split among the workers.
const ROW_BLOCK: usize = 16;
/// Activation rows from which [`I8Rows::gemv`] multiplies in f32
/// ([`I8Rows::gemm_f32`]): a window's 1500 encoder rows (the cross
/// keys/values) took 1.02× the time of the `Q8_0` blocks' f32 GEMM there,
/// the AVX2 int8 kernel 1.2×; at 63 rows the int8 kernel took 0.6× the
/// f32 GEMM's (thread CPU time, 512 × 512, loaded).
pub const F32_MIN_ROWS: usize = 256;
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
    /// AVX2 `vpmaddwd` of the codes widened to 16 bits with the 16-bit
    /// activation codes (a quarter panel line per vector): the same exact
    /// integer sums.
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
    /// The panels, on huge pages when large ([`HugePageSlice`]).
    lines: HugePageSlice<Line>,
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
        // SAFETY: a line of zero bytes is a valid `Line`.
        let mut lines = unsafe { HugePageSlice::<Line>::zeroed(panels * per_panel) };
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
                    // Each 4 codes of the row, offset by 128 (`q ^ 0x80` as
                    // bytes), to their line's slot `t`.
                    for (line, quad) in body.iter_mut().zip(codes.chunks(4)) {
                        for (b, &q) in line.0[4 * t..4 * t + 4].iter_mut().zip(quad) {
                            *b = q as u8 ^ 0x80;
                        }
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

    /// Whether the panels are mapped on transparent huge pages (from
    /// [`crate::huge_pages::SHARED_MIN`] bytes, on Linux): a product streams
    /// them without a page walk and a prefetcher restart every 4 KiB.
    pub fn on_huge_pages(&self) -> bool {
        self.lines.is_mapped()
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
        self.dequantize_cols(r, 0..self.k, out);
    }

    /// Columns `cols` of row `r` dequantized into `out` (in bounds).
    fn dequantize_cols(&self, r: usize, cols: std::ops::Range<usize>, out: &mut [f32]) {
        let per_panel = self.per_panel();
        let body = &self.lines[(r / PANEL_ROWS) * per_panel + 1..][..per_panel - 1];
        let (step, t) = (self.step(r), 4 * (r % PANEL_ROWS));
        for (v, j) in out.iter_mut().zip(cols) {
            *v = step * (body[j / 4].0[t + j % 4] as i32 - 128) as f32;
        }
    }

    /// `out = x · wᵀ` in f32 (`x` row-major `(m, k)`, `out` `(m, n)`): the
    /// dequantized rows, a tile at a time, through the f32 GEMM — exact to
    /// f32 round-off, and faster than the int8 kernels from
    /// [`F32_MIN_ROWS`] activation rows on (their integer multiplies do
    /// fewer products per instruction than f32 FMAs once the weights no
    /// longer stream from memory).
    ///
    /// # Panics
    /// If `x.len() != m * k` or `out.len() != m * n`.
    pub fn gemm_f32(&self, x: &[f32], m: usize, out: &mut [f32]) {
        self.check(x, m, out);
        if m == 0 || self.n == 0 {
            return;
        }
        if self.k == 0 {
            out.fill(0.0);
            return;
        }
        crate::quant::gemm_dequantized(self.n, self.k, x, m, out, |r, cols, tile| {
            self.dequantize_cols(r, cols, tile)
        });
    }

    fn check(&self, x: &[f32], m: usize, out: &[f32]) {
        let (n, k) = (self.n, self.k);
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
    }

    /// `out = x · wᵀ` with the best implementation of this CPU: `x` is
    /// row-major `(m, k)`, `out` row-major `(m, n)`. Up to 16 rows (decoding,
    /// beams) the panels are split among the workers; more rows go in
    /// blocks of 16; from [`F32_MIN_ROWS`] rows on the product is
    /// [`I8Rows::gemm_f32`]'s.
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
        self.check(x, m, out);
        if m == 0 || n == 0 {
            return;
        }
        if m >= F32_MIN_ROWS && k > 0 {
            return self.gemm_f32(x, m, out);
        }
        let isa = match isa {
            I8Isa::Avx512Vnni if QuantIsa::Avx512Vnni.available() => isa,
            I8Isa::Avx2 if QuantIsa::Avx2.available() => isa,
            _ => I8Isa::Portable,
        };
        let act = I16Blocks::quantize(x, m, k, kp, isa != I8Isa::Portable);
        // The weights' +128 offset, exactly: `-128 · Σ` per block.
        let minus_128 = |sums: &[i32]| -> Vec<i32> { sums.iter().map(|s| -128 * s).collect() };
        let offsets = minus_128(&act.sums);
        let planes = if isa == I8Isa::Avx512Vnni {
            act.split()
        } else {
            BytePlanes::default()
        };
        let (hi_off, lo_off) = (minus_128(&planes.hi_sums), minus_128(&planes.lo_sums));
        let job = Job {
            lines: self.lines.as_ptr(),
            per_panel: self.per_panel(),
            n,
            blocks: kp / BLOCK,
            m,
            codes: act.codes.as_ptr(),
            scales: act.scales.as_ptr(),
            offsets: offsets.as_ptr(),
            hi: planes.hi.as_ptr(),
            lo: planes.lo.as_ptr(),
            hi_off: hi_off.as_ptr(),
            lo_off: lo_off.as_ptr(),
            out: out.as_mut_ptr(),
        };
        let panels = n.div_ceil(PANEL_ROWS);
        if m <= ROW_BLOCK {
            // Decoding: the panels split among the workers, one run each,
            // each panel read once.
            let cost = PANEL_ROWS * kp * (1 + m / 2);
            parallel::for_each_even_range(panels, cost, |p0, p1| {
                // SAFETY: `job` points at buffers that outlive this call,
                // sized as checked above; panels `p0..p1` write only their
                // own output columns.
                unsafe { run_panels(isa, job, p0, p1) }
            });
        } else {
            // More rows (a prompt, a batch): blocks of rows split among the
            // workers, each block times every panel, so a block's codes stay
            // in cache while the weights stream.
            let row_blocks = m.div_ceil(ROW_BLOCK);
            let cost = n * kp * ROW_BLOCK / 2;
            parallel::for_each_range(row_blocks, cost, |b0, b1| {
                for b in b0..b1 {
                    let i0 = b * ROW_BLOCK;
                    let rows = job.rows(i0, (m - i0).min(ROW_BLOCK));
                    // SAFETY: as above; row block `b` writes only its own
                    // output rows.
                    unsafe { run_panels(isa, rows, 0, panels) };
                }
            });
        }
    }
}

/// Panels `p0..p1` of `job` with implementation `isa` (one this CPU runs).
///
/// # Safety
/// As [`panels_portable`]; `isa` is available.
unsafe fn run_panels(isa: I8Isa, job: Job, p0: usize, p1: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            I8Isa::Avx512Vnni => x86::panels(job, p0, p1),
            #[cfg(target_arch = "x86_64")]
            I8Isa::Avx2 => x86::panels_avx2(job, p0, p1),
            _ => panels_portable(job, p0, p1),
        }
    }
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
    /// Activation codes `(m, kp)`, block scales and `-128 · Σa` per block
    /// `(m, kp / 32)`.
    codes: *const i16,
    scales: *const f32,
    offsets: *const i32,
    /// The codes' byte planes and their blocks' `-128 · Σ` (VNNI only;
    /// empty otherwise).
    hi: *const i8,
    lo: *const i8,
    hi_off: *const i32,
    lo_off: *const i32,
    out: *mut f32,
}
// SAFETY: workers read the shared inputs and write disjoint outputs.
unsafe impl Send for Job {}
// SAFETY: as above.
unsafe impl Sync for Job {}

impl Job {
    /// The same product restricted to activation rows `i0..i0 + m`
    /// (`i0 + m` at most the job's rows).
    fn rows(self, i0: usize, m: usize) -> Job {
        let kp = self.blocks * BLOCK;
        // Offsets within the buffers (`wrapping_add`: the byte planes are
        // empty off VNNI, and are then never read).
        Job {
            m,
            codes: self.codes.wrapping_add(i0 * kp),
            scales: self.scales.wrapping_add(i0 * self.blocks),
            offsets: self.offsets.wrapping_add(i0 * self.blocks),
            hi: self.hi.wrapping_add(i0 * kp),
            lo: self.lo.wrapping_add(i0 * kp),
            hi_off: self.hi_off.wrapping_add(i0 * self.blocks),
            lo_off: self.lo_off.wrapping_add(i0 * self.blocks),
            out: self.out.wrapping_add(i0 * self.n),
            ..self
        }
    }
}

/// Panels `p0..p1` times every activation row, in plain loops on the
/// signed codes.
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
            // SAFETY: row `i`'s codes and scales are within the activations.
            let (codes, scales) = unsafe {
                (
                    std::slice::from_raw_parts(job.codes.add(i * kp), kp),
                    std::slice::from_raw_parts(job.scales.add(i * job.blocks), job.blocks),
                )
            };
            let mut acc = [0f32; PANEL_ROWS];
            for (b, &scale) in scales.iter().enumerate() {
                let mut sums = [0i32; PANEL_ROWS];
                for j4 in b * BLOCK / 4..(b + 1) * BLOCK / 4 {
                    let line = &panel[1 + j4].0;
                    for c in 0..4 {
                        let a = codes[4 * j4 + c] as i32;
                        for (t, s) in sums.iter_mut().enumerate() {
                            *s += (line[4 * t + c] as i32 - 128) * a;
                        }
                    }
                }
                for (a, &s) in acc.iter_mut().zip(&sums) {
                    *a += s as f32 * scale;
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
