//! The A operand packed once per call, for every job at once.
//!
//! The driver normally packs A inside each job (its rows, one depth chunk at
//! a time). For f32 activations on the int8 engines that would mean a full
//! quantization pass writing a row-major u8 copy, then a second pass packing
//! it per job; [`quantize_pack`] instead quantizes each micro-panel of rows
//! (12 rows for AVX-512, 32 for AMX) into a small scratch and writes its
//! words straight into the packed blocks the jobs read ([`Blocking`] gives
//! their offsets), once per call however the output is split.

use super::driver::MC;
use super::interleave::interleave_rows;
use super::pack_a::{ALayout, ASource, AMX_ROWS};
use super::quantize::{quantize_row_u8, RowQuant};
use super::words::Words;
use super::MatRef;
use crate::parallel;

/// How the driver walks A: layout, words per depth chunk and depth in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocking {
    /// The engine's A layout.
    pub layout: ALayout,
    /// Depth words per chunk.
    pub kc: usize,
    /// Depth words walked (real groups, or padded to the tile step for AMX).
    pub depth: usize,
}

impl Blocking {
    /// Number of depth chunks (at least one).
    pub fn chunks(&self) -> usize {
        self.depth.div_ceil(self.kc).max(1)
    }

    /// First word and width of chunk `ci`.
    pub fn chunk(&self, ci: usize) -> (usize, usize) {
        let g0 = ci * self.kc;
        (g0, self.kc.min(self.depth - g0.min(self.depth)))
    }

    /// Word offset, in a whole packed A, of the block of rows `i0 .. i0 +
    /// rows` (`i0` a multiple of [`MC`]) for the chunk starting at `g0`; the
    /// block holds `layout.words(rows, chunk width)` words, laid out as the
    /// per-job packer writes them.
    pub fn block_offset(&self, i0: usize, rows: usize, g0: usize) -> usize {
        i0 * self.depth + self.layout.words(rows, g0)
    }

    /// Words of a whole packed A of `m` rows.
    pub fn total_words(&self, m: usize) -> usize {
        let full = m / MC * MC;
        full * self.depth + self.layout.words(m - full, self.depth)
    }

    /// Rows per micro-panel (the unit that is packed independently).
    fn unit(&self) -> usize {
        match self.layout {
            ALayout::Broadcast { mr } => mr,
            ALayout::Tiles => AMX_ROWS,
        }
    }
}

/// Pointer into the packed words, written by disjoint units.
#[derive(Clone, Copy)]
struct Shared(*mut u32);
// SAFETY: every unit writes only its own rows' words.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

/// Pointer to the per-row parameters, written by disjoint rows.
#[derive(Clone, Copy)]
struct RowParams(*mut RowQuant);
// SAFETY: every row's entry is written by the unit holding that row alone.
unsafe impl Send for RowParams {}
// SAFETY: as above.
unsafe impl Sync for RowParams {}

thread_local! {
    /// A strided activation row gathered into contiguous values before it is
    /// quantized, reused across rows and calls on this thread.
    static GATHERED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Quantizes every row of `a` to u8 ([`quantize_row_u8`]) straight into the
/// packed A of `blocking`, held in `words` (resized to
/// [`Blocking::total_words`]; every word is written, so a reused buffer
/// needs no clearing); returns each row's parameters.
pub(crate) fn quantize_pack(
    a: MatRef<'_, f32>,
    blocking: Blocking,
    words: &mut Words,
) -> Vec<RowQuant> {
    let (m, k) = (a.rows(), a.cols());
    let unit_quant = RowQuant {
        scale: 1.0,
        zero_point: 0,
    };
    let mut quant = vec![unit_quant; m];
    let params = RowParams(quant.as_mut_ptr());
    pack_units(m, k, blocking, words, |i, row| {
        let p = params;
        // Quantizing writes only the first `k` bytes: the rest stay zero.
        let out = &mut bytemuck::cast_slice_mut::<u32, u8>(row)[..k];
        let rq = match a.row_slice(i) {
            Some(src) => quantize_row_u8(src, out),
            None => GATHERED.with_borrow_mut(|row| {
                row.clear();
                row.extend((0..k).map(|j| a.get(i, j)));
                quantize_row_u8(row, out)
            }),
        };
        // SAFETY: row i belongs to this unit alone; `quant` has m entries.
        unsafe { *p.0.add(i) = rq };
        // Element 4g + l is byte l of word g, little-endian (a no-op there).
        for w in row.iter_mut() {
            *w = u32::from_le(*w);
        }
    });
    quant
}

/// Packs every row of `a` (its words: bf16 pairs or u8 quads, zero past the
/// data) into the packed A of `blocking`, held in `words` (resized to
/// [`Blocking::total_words`]) — once per call, for products whose jobs would
/// otherwise each pack the same rows (several jobs per row block).
pub(crate) fn pack(a: &dyn ASource, m: usize, k: usize, blocking: Blocking, words: &mut Words) {
    pack_units(m, k, blocking, words, |i, row| a.row_words(i, 0, row));
}

/// The packing shared by [`quantize_pack`] and [`pack`]: each micro-panel's
/// rows are produced once by `fill(row, words)` into a small zero-initialised
/// scratch of whole words (`blocking.depth` per row; `fill` may leave the
/// words past the data untouched, they stay zero), which are then stored at
/// their places in every depth chunk's block (no intermediate packed copy);
/// the rows of a last, short AMX micro-panel are written as zeros. Units run
/// in parallel.
fn pack_units(
    m: usize,
    k: usize,
    blocking: Blocking,
    words: &mut Words,
    fill: impl Fn(usize, &mut [u32]) + Sync,
) {
    words.resize(blocking.total_words(m));
    if m == 0 {
        return;
    }
    let unit = blocking.unit();
    let per_block = MC / unit;
    let units = m.div_ceil(MC) * per_block;
    let shared = Shared(words.as_mut_slice().as_mut_ptr());
    let depth = blocking.depth;
    parallel::for_each_range(units, unit * k.max(1), |u0, u1| {
        let s = shared;
        // One micro-panel's rows as words: row r at r * depth.
        let mut panel = vec![0u32; unit * depth];
        for u in u0..u1 {
            let (i0, p0) = (u / per_block * MC, u % per_block * unit);
            if i0 + p0 >= m {
                continue;
            }
            let (rows, pr) = (MC.min(m - i0), unit.min(m - i0 - p0));
            for r in 0..pr {
                fill(i0 + p0 + r, &mut panel[r * depth..][..depth]);
            }
            if blocking.layout == ALayout::Tiles {
                // A short AMX panel still spans whole tiles: its missing rows are zeros.
                panel[pr * depth..].fill(0);
            }
            for ci in 0..blocking.chunks() {
                let (g0, gn) = blocking.chunk(ci);
                let at = blocking.block_offset(i0, rows, g0) + blocking.layout.words(p0, gn);
                let len = blocking.layout.words(pr, gn);
                // SAFETY: this unit's micro-panel in the block of chunk ci is
                // `len` words at `at`, inside `words` (`total_words` covers
                // every block); no other unit writes them.
                let dst = unsafe { std::slice::from_raw_parts_mut(s.0.add(at), len) };
                match blocking.layout {
                    ALayout::Broadcast { .. } => interleave_rows(&panel[g0..], depth, pr, dst),
                    ALayout::Tiles => {
                        for (t, tile) in dst.chunks_exact_mut(AMX_ROWS * 16).enumerate() {
                            for (r, words) in tile.chunks_exact_mut(16).enumerate() {
                                words.copy_from_slice(&panel[r * depth + g0 + 16 * t..][..16]);
                            }
                        }
                    }
                }
            }
        }
    });
}
