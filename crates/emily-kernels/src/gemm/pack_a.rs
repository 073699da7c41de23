//! Packing of the A operand (activations), per call, into the layout the
//! chosen engine reads: `MR`-row micro-panels of broadcast words for the
//! vector engines, 32-row tile rows for AMX. The source may be f32 (rounded
//! to bf16 here), bf16, u8 or s8 (shifted to u8 by +128), row-major or
//! strided.

use half::bf16;

use super::interleave::interleave_rows;
use super::quantize::bf16_bits;
use super::words::Words;
use super::MatRef;

/// An A operand (`m × k`) that can produce its words: 2 bf16 or 4 u8 values
/// of one row, `k` zero-padded to whole words.
pub trait ASource: Sync {
    /// Writes words `g0 .. g0 + out.len()` of row `i`.
    fn row_words(&self, i: usize, g0: usize, out: &mut [u32]);
}

/// f32 values rounded to bf16 pairs.
pub(crate) struct F32AsBf16<'a>(pub MatRef<'a, f32>);
/// bf16 values, two per word.
pub(crate) struct Bf16Pairs<'a>(pub MatRef<'a, bf16>);
/// u8 values, four per word.
pub(crate) struct U8Quads<'a>(pub MatRef<'a, u8>);
/// s8 values shifted by +128 into u8, four per word.
pub(crate) struct I8Shifted<'a>(pub MatRef<'a, i8>);

/// Fills `out` with words of `per` elements of `width` bits each from
/// `elem(kk)` for `kk` in `g0 * per ..`, zero past `k`.
#[inline(always)]
fn generic_words(k: usize, g0: usize, per: usize, out: &mut [u32], elem: impl Fn(usize) -> u32) {
    let width = 32 / per;
    for (g, w) in out.iter_mut().enumerate() {
        let base = (g0 + g) * per;
        let mut v = 0u32;
        for l in 0..per {
            if base + l < k {
                v |= elem(base + l) << (l * width);
            }
        }
        *w = v;
    }
}

crate::simd_dispatch! {
    /// `out[g] = bf16(src[2g]) | bf16(src[2g + 1]) << 16` for whole pairs.
    fn f32_pairs(src: &[f32], out: &mut [u32]) {
        for (w, p) in out.iter_mut().zip(src.chunks_exact(2)) {
            *w = bf16_bits(p[0]) as u32 | (bf16_bits(p[1]) as u32) << 16;
        }
    }
}

impl ASource for F32AsBf16<'_> {
    fn row_words(&self, i: usize, g0: usize, out: &mut [u32]) {
        let k = self.0.cols();
        if let Some(row) = self.0.row_slice(i) {
            let full = out.len().min((k / 2).saturating_sub(g0));
            f32_pairs(&row[2 * g0..2 * (g0 + full)], &mut out[..full]);
            generic_words(k, g0 + full, 2, &mut out[full..], |kk| {
                bf16_bits(row[kk]) as u32
            });
        } else {
            generic_words(k, g0, 2, out, |kk| bf16_bits(self.0.get(i, kk)) as u32);
        }
    }
}

impl ASource for Bf16Pairs<'_> {
    fn row_words(&self, i: usize, g0: usize, out: &mut [u32]) {
        let k = self.0.cols();
        if let Some(row) = self.0.row_slice(i) {
            let full = out.len().min((k / 2).saturating_sub(g0));
            let src = &row[2 * g0..2 * (g0 + full)];
            // bf16 pairs in memory are already words (little-endian: even k low).
            match bytemuck::try_cast_slice::<bf16, u32>(src) {
                Ok(p) => out[..full].copy_from_slice(p),
                Err(_) => {
                    for (w, p) in out[..full].iter_mut().zip(src.chunks_exact(2)) {
                        *w = p[0].to_bits() as u32 | (p[1].to_bits() as u32) << 16;
                    }
                }
            }
            generic_words(k, g0 + full, 2, &mut out[full..], |kk| {
                row[kk].to_bits() as u32
            });
        } else {
            generic_words(k, g0, 2, out, |kk| self.0.get(i, kk).to_bits() as u32);
        }
    }
}

impl ASource for U8Quads<'_> {
    fn row_words(&self, i: usize, g0: usize, out: &mut [u32]) {
        let k = self.0.cols();
        if let Some(row) = self.0.row_slice(i) {
            let full = out.len().min((k / 4).saturating_sub(g0));
            for (w, q) in out[..full].iter_mut().zip(row[4 * g0..].chunks_exact(4)) {
                *w = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
            }
            generic_words(k, g0 + full, 4, &mut out[full..], |kk| row[kk] as u32);
        } else {
            generic_words(k, g0, 4, out, |kk| self.0.get(i, kk) as u32);
        }
    }
}

impl ASource for I8Shifted<'_> {
    fn row_words(&self, i: usize, g0: usize, out: &mut [u32]) {
        let shift = |v: i8| (v as u8 ^ 0x80) as u32;
        generic_words(self.0.cols(), g0, 4, out, |kk| shift(self.0.get(i, kk)));
    }
}

/// How the engine wants A laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ALayout {
    /// Micro-panels of `mr` rows; within one, word `(g, r)` at `g * rows + r`
    /// where `rows` is that panel's row count (the last may be short).
    Broadcast { mr: usize },
    /// Micro-panels of 32 rows (zero rows past the end), tile major
    /// (`groups` a multiple of 16): each 16-row × 16-word AMX tile is one
    /// contiguous KiB, word `(r, g)` of panel `p` at `p * 32 * groups +
    /// (g / 16) * 512 + r * 16 + g % 16`.
    Tiles,
}

/// Rows per AMX micro-panel (two tiles).
pub(crate) const AMX_ROWS: usize = 32;

impl ALayout {
    /// Words needed for `rows × groups`.
    pub fn words(self, rows: usize, groups: usize) -> usize {
        match self {
            ALayout::Broadcast { .. } => rows * groups,
            ALayout::Tiles => rows.div_ceil(AMX_ROWS) * AMX_ROWS * groups,
        }
    }
}

/// Buffers for packing A blocks, reused across the chunks of one job.
#[derive(Default)]
pub(crate) struct APacker {
    block: Words,
    row: Vec<u32>,
}

thread_local! {
    /// This thread's [`APacker`], kept between jobs (see [`with_packer`]).
    static PACKER: std::cell::Cell<Option<Box<APacker>>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` on this thread's [`APacker`] (taken out while in use, so a
/// nested call gets a fresh one). Its buffers outlive the job: a fresh
/// packer per job zero-filled (and, above the allocator's mapping
/// threshold, page-faulted) its block each time — 2 % of the Whisper
/// tiny.en encoder's time in `memset` on the Xeon with AMX.
pub(crate) fn with_packer<R>(f: impl FnOnce(&mut APacker) -> R) -> R {
    let mut packer = PACKER.take().unwrap_or_default();
    let r = f(&mut packer);
    PACKER.set(Some(packer));
    r
}

impl APacker {
    /// Packs rows `i0 .. i0 + rows`, words `g0 .. g0 + groups` of `a` in
    /// `layout`; returns the packed block (`layout.words(rows, groups)` words).
    pub fn pack(
        &mut self,
        a: &dyn ASource,
        layout: ALayout,
        (i0, rows): (usize, usize),
        (g0, groups): (usize, usize),
    ) -> &[u32] {
        let words = layout.words(rows, groups);
        self.block.resize(words);
        let dst = self.block.as_mut_slice();
        match layout {
            ALayout::Tiles => {
                debug_assert_eq!(groups % 16, 0);
                self.row.resize(groups, 0);
                let panel_words = AMX_ROWS * groups;
                for (p, panel) in dst.chunks_mut(panel_words.max(1)).enumerate() {
                    for r in 0..AMX_ROWS {
                        let i = p * AMX_ROWS + r;
                        if i < rows {
                            a.row_words(i0 + i, g0, &mut self.row);
                        } else {
                            self.row.fill(0);
                        }
                        for (s, words) in self.row.chunks_exact(16).enumerate() {
                            panel[s * AMX_ROWS * 16 + r * 16..][..16].copy_from_slice(words);
                        }
                    }
                }
            }
            ALayout::Broadcast { mr } => {
                // A micro-panel's rows one after another, then interleaved.
                self.row.resize(mr * groups, 0);
                for p0 in (0..rows).step_by(mr) {
                    let pr = mr.min(rows - p0);
                    for r in 0..pr {
                        a.row_words(i0 + p0 + r, g0, &mut self.row[r * groups..][..groups]);
                    }
                    let panel = &mut dst[p0 * groups..][..pr * groups];
                    interleave_rows(&self.row, groups, pr, panel);
                }
            }
        }
        self.block.as_slice()
    }
}
