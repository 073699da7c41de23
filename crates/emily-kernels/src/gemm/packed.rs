//! Packed B operands (weights): prepared once, read by every engine.
//!
//! Layout: the `n` columns are cut into panels of [`NR`] columns; within a
//! panel, `k` is cut into groups of 2 (bf16) or 4 (int8) consecutive
//! elements, and each group of one column is one 32-bit word (the operand of
//! `vdpbf16ps` / `vpdpbusd` lanes and of AMX B-tile rows). Word
//! `(panel, g, c)` sits at `(panel · groups + g) · NR + c`. The group count is
//! padded with zeros to a multiple of 16 (an AMX tile's depth) and the last
//! panel's missing columns are zeros, so every engine reads whole rows of
//! `NR` words without bounds checks; storage is 64-byte aligned.

use half::bf16;

use super::quantize::{bf16_bits, quantize_columns_s8, quantize_s8_slice};
use super::words::Words;
use super::MatRef;
use crate::parallel;

/// Columns per packed panel (two AVX-512 vectors, two AMX tiles).
pub const NR: usize = 32;

/// Group counts are padded to a multiple of this (the depth of an AMX tile).
pub(crate) const GROUP_ALIGN: usize = 16;

/// The shape of a packed operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PanelLayout {
    /// Logical rows (the GEMM's k).
    pub k: usize,
    /// Logical columns (the GEMM's n).
    pub n: usize,
    /// Elements per word: 2 (bf16) or 4 (int8).
    pub per_word: usize,
    /// Word rows per panel: `ceil(k / per_word)` padded to [`GROUP_ALIGN`].
    pub groups: usize,
    /// Number of panels: `ceil(n / NR)`.
    pub panels: usize,
}

impl PanelLayout {
    pub(crate) fn new(k: usize, n: usize, per_word: usize) -> Self {
        PanelLayout {
            k,
            n,
            per_word,
            groups: k.div_ceil(per_word).div_ceil(GROUP_ALIGN) * GROUP_ALIGN,
            panels: n.div_ceil(NR),
        }
    }

    /// Groups that hold data (the rest of `groups` is zero padding).
    pub fn real_groups(&self) -> usize {
        self.k.div_ceil(self.per_word)
    }

    pub(crate) fn words(&self) -> usize {
        self.panels
            .checked_mul(self.groups)
            .and_then(|w| w.checked_mul(NR))
            .expect("packed GEMM operand size overflows usize")
    }

    /// Word offset of `(panel, group, column 0)`.
    #[inline]
    pub fn offset(&self, panel: usize, group: usize) -> usize {
        (panel * self.groups + group) * NR
    }
}

/// Packs the `k × n` view `b` into the panel layout of `per_word` values a
/// word; `bits(v)` gives the `16`- or `8`-bit pattern of a value.
fn pack<T: Copy + Sync>(
    b: MatRef<'_, T>,
    per_word: usize,
    bits: impl Fn(T) -> u32 + Sync,
) -> (PanelLayout, Words) {
    let layout = PanelLayout::new(b.rows(), b.cols(), per_word);
    let mut words = Words::zeroed(layout.words());
    if layout.words() == 0 {
        return (layout, words);
    }
    let width = 32 / layout.per_word;
    let panel_len = layout.groups * NR;
    let cost = layout.groups * NR * layout.per_word;
    parallel::for_each_row_block_mut(words.as_mut_slice(), panel_len, cost, |first, block| {
        for (pi, panel) in block.chunks_mut(panel_len).enumerate() {
            let j0 = (first + pi) * NR;
            let nc = NR.min(layout.n - j0);
            if b.col_slice(j0).is_some() {
                // Column-contiguous sources (weights stored `n × k`): each
                // word is `per_word` consecutive values of one column.
                for c in 0..nc {
                    let src = b.col_slice(j0 + c).expect("columns are contiguous");
                    for (g, values) in src.chunks(layout.per_word).enumerate() {
                        panel[g * NR + c] = values
                            .iter()
                            .enumerate()
                            .fold(0, |w, (l, &v)| w | bits(v) << (l * width));
                    }
                }
                continue;
            }
            for g in 0..layout.real_groups() {
                let row = &mut panel[g * NR..][..nc];
                for l in 0..layout.per_word {
                    let i = g * layout.per_word + l;
                    if i >= layout.k {
                        break;
                    }
                    let shift = l * width;
                    // Row-major sources (quantized weights) are read as
                    // slices: no bounds check per element, and it vectorises.
                    match b.row_slice(i) {
                        Some(src) => {
                            for (w, &v) in row.iter_mut().zip(&src[j0..j0 + nc]) {
                                *w |= bits(v) << shift;
                            }
                        }
                        None => {
                            for (c, w) in row.iter_mut().enumerate() {
                                *w |= bits(b.get(i, j0 + c)) << shift;
                            }
                        }
                    }
                }
            }
        }
    });
    (layout, words)
}

/// The sum of each column of `b`, read in its storage order.
fn column_sums(b: MatRef<'_, i8>) -> Vec<i32> {
    let mut sums = vec![0i32; b.cols()];
    if b.rows() > 0 && b.col_slice(0).is_some() {
        for (j, sum) in sums.iter_mut().enumerate() {
            let col = b.col_slice(j).expect("columns are contiguous");
            *sum = col.iter().map(|&q| q as i32).sum();
        }
        return sums;
    }
    for i in 0..b.rows() {
        match b.row_slice(i) {
            Some(row) => sums.iter_mut().zip(row).for_each(|(s, &q)| *s += q as i32),
            None => sums
                .iter_mut()
                .enumerate()
                .for_each(|(j, s)| *s += b.get(i, j) as i32),
        }
    }
    sums
}

/// A `k × n` bf16 B operand packed for the bf16 GEMM engines.
#[derive(Clone, Debug)]
pub struct PackedBf16 {
    pub(crate) layout: PanelLayout,
    pub(crate) data: Words,
}

impl PackedBf16 {
    /// Packs bf16 values (`b` is the `k × n` view; use [`MatRef::transposed`]
    /// for weights stored `n × k`).
    pub fn from_bf16(b: MatRef<'_, bf16>) -> Self {
        let (layout, data) = pack(b, 2, |v| v.to_bits() as u32);
        PackedBf16 { layout, data }
    }

    /// Rounds f32 values to bf16 (nearest, ties to even) and packs them.
    pub fn from_f32(b: MatRef<'_, f32>) -> Self {
        let (layout, data) = pack(b, 2, |v| bf16_bits(v) as u32);
        PackedBf16 { layout, data }
    }

    /// Rows of the logical matrix (the GEMM's k).
    pub fn k(&self) -> usize {
        self.layout.k
    }

    /// Columns of the logical matrix (the GEMM's n).
    pub fn n(&self) -> usize {
        self.layout.n
    }

    /// Bytes of packed storage.
    pub fn size_in_bytes(&self) -> usize {
        self.data.as_slice().len() * 4
    }
}

/// A `k × n` s8 B operand packed for the int8 GEMM engines, with one scale
/// per column (output channel) and the column sums the zero-point
/// correction needs.
#[derive(Clone, Debug)]
pub struct PackedInt8 {
    pub(crate) layout: PanelLayout,
    pub(crate) data: Words,
    pub(crate) col_sums: Vec<i32>,
    pub(crate) scales: Vec<f32>,
}

impl PackedInt8 {
    /// Quantizes each column of `b` (`k × n`) symmetrically to s8 with scale
    /// `max|column| / 127`, and packs it.
    pub fn quantize(b: MatRef<'_, f32>) -> Self {
        let (k, n) = (b.rows(), b.cols());
        if k > 0 && b.col_slice(0).is_some() {
            // Weights stored `n × k`: quantized column by column into codes
            // of the same layout, packed from there (no `k × n` transpose).
            let mut codes = vec![0i8; n * k];
            let scales = codes
                .chunks_exact_mut(k)
                .enumerate()
                .map(|(j, out)| {
                    quantize_s8_slice(b.col_slice(j).expect("columns are contiguous"), out)
                })
                .collect();
            return Self::from_i8(MatRef::transposed(&codes, k, n), scales);
        }
        let (q, scales) = quantize_columns_s8(b);
        Self::from_i8(MatRef::row_major(&q, k, n), scales)
    }

    /// Packs s8 values with their per-column `scales` (`b ≈ scale[j] · q`).
    ///
    /// # Panics
    /// If `scales.len() != b.cols()`.
    pub fn from_i8(b: MatRef<'_, i8>, scales: Vec<f32>) -> Self {
        assert_eq!(
            scales.len(),
            b.cols(),
            "PackedInt8: {} scales for {} columns",
            scales.len(),
            b.cols()
        );
        let (layout, data) = pack(b, 4, |v| v as u8 as u32);
        let col_sums = column_sums(b);
        PackedInt8 {
            layout,
            data,
            col_sums,
            scales,
        }
    }

    /// Rows of the logical matrix (the GEMM's k).
    pub fn k(&self) -> usize {
        self.layout.k
    }

    /// Columns of the logical matrix (the GEMM's n).
    pub fn n(&self) -> usize {
        self.layout.n
    }

    /// The per-column scales.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Bytes of packed storage (values, scales and column sums).
    pub fn size_in_bytes(&self) -> usize {
        self.data.as_slice().len() * 4 + self.scales.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as f32 / u32::MAX as f32 - 0.5
            })
            .collect()
    }

    /// A weight stored `n × k` packs the same whether it is read through
    /// its column-contiguous `k × n` view or copied row-major first: words,
    /// scales and column sums, at odd sizes (partial panels and groups).
    #[test]
    fn column_and_row_major_sources_pack_alike() {
        for (k, n) in [(1, 1), (7, 3), (77, 33), (384, 65), (1000, 7)] {
            let stored = values(n * k, 7 + k as u32);
            let view = MatRef::transposed(&stored, k, n);
            let row_major: Vec<f32> = (0..k * n).map(|e| view.get(e / n, e % n)).collect();
            let rows = MatRef::row_major(&row_major, k, n);
            let (a, b) = (PackedInt8::quantize(view), PackedInt8::quantize(rows));
            assert_eq!(a.data.as_slice(), b.data.as_slice(), "{k}x{n} int8 words");
            assert_eq!(a.scales, b.scales, "{k}x{n} scales");
            assert_eq!(a.col_sums, b.col_sums, "{k}x{n} column sums");
            let (a, b) = (PackedBf16::from_f32(view), PackedBf16::from_f32(rows));
            assert_eq!(a.data.as_slice(), b.data.as_slice(), "{k}x{n} bf16 words");
        }
    }
}
