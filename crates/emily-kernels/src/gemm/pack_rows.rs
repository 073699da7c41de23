//! B operands computed row by row (an im2col matrix, say) packed straight
//! into the bf16 panel layout: each logical row is produced once into a
//! contiguous scratch and its pair partner beside it, then the pair is
//! rounded and interleaved into every panel's word row, so the producer works
//! on whole rows (contiguous copies) rather than element by element. A caller
//! that packs such an operand on every call (a convolution's im2col matrix)
//! hands the last one back to be refilled: its storage is then neither
//! allocated nor cleared again (a fresh 3.5 MB operand for Whisper's second
//! convolution spent 6 % of the op clearing it).

use super::packed::{PackedBf16, PanelLayout, NR};
use super::quantize::bf16_bits;
use super::words::Words;
use crate::parallel;

/// The packed words, written through a raw pointer by disjoint word rows.
struct WordsPtr(*mut u32);
// SAFETY: every job writes only its own groups' word rows.
unsafe impl Send for WordsPtr {}
unsafe impl Sync for WordsPtr {}

impl PackedBf16 {
    /// Packs the `k × n` matrix whose row `i` the producer writes as `n`
    /// f32 values (`row(i, dst)`, `dst.len() == n`), rounded to bf16 exactly
    /// as [`PackedBf16::from_f32`] rounds. Pairs of rows are made and packed
    /// in parallel.
    pub fn from_rows(k: usize, n: usize, row: impl Fn(usize, &mut [f32]) + Sync) -> Self {
        Self::from_rows_reusing(None, k, n, row)
    }

    /// [`Self::from_rows`] into the storage of `old` (an operand this
    /// returned before, of any shape) when given.
    pub fn from_rows_reusing(
        old: Option<PackedBf16>,
        k: usize,
        n: usize,
        row: impl Fn(usize, &mut [f32]) + Sync,
    ) -> Self {
        let layout = PanelLayout::new(k, n, 2);
        let mut data = match old {
            Some(old) => {
                let mut data = old.data;
                data.resize(layout.words());
                clear_padding(&layout, data.as_mut_slice());
                data
            }
            None => Words::zeroed(layout.words()),
        };
        if layout.words() == 0 {
            return PackedBf16 { layout, data };
        }
        let out = WordsPtr(data.as_mut_slice().as_mut_ptr());
        parallel::for_each_range(layout.real_groups(), 2 * n, |g0, g1| {
            let out = &out;
            let mut pair = vec![0f32; 2 * n];
            for g in g0..g1 {
                let (even, odd) = pair.split_at_mut(n);
                row(2 * g, even);
                if 2 * g + 1 < k {
                    row(2 * g + 1, odd);
                } else {
                    odd.fill(0.0);
                }
                for panel in 0..layout.panels {
                    let j0 = panel * NR;
                    let nc = NR.min(n - j0);
                    // SAFETY: word row (panel, g) lies inside `data` and only
                    // this job writes group g.
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(out.0.add(layout.offset(panel, g)), nc)
                    };
                    pair_rows(&even[j0..j0 + nc], &odd[j0..j0 + nc], dst);
                }
            }
        });
        PackedBf16 { layout, data }
    }
}

/// Zeroes what the packing loop never writes: the last panel's columns past
/// `n` and every panel's groups past the real ones.
fn clear_padding(layout: &PanelLayout, words: &mut [u32]) {
    let (real, tail) = (layout.real_groups(), layout.n % NR);
    for panel in 0..layout.panels {
        if panel + 1 == layout.panels && tail != 0 {
            for g in 0..real {
                words[layout.offset(panel, g) + tail..][..NR - tail].fill(0);
            }
        }
        words[layout.offset(panel, real)..layout.offset(panel, layout.groups)].fill(0);
    }
}

crate::simd_dispatch! {
    /// `out[j] = bf16(even[j]) | bf16(odd[j]) << 16`: one word row of the
    /// panel layout from two consecutive rows.
    fn pair_rows(even: &[f32], odd: &[f32], out: &mut [u32]) {
        for ((w, &lo), &hi) in out.iter_mut().zip(even).zip(odd) {
            *w = bf16_bits(lo) as u32 | (bf16_bits(hi) as u32) << 16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::MatRef;
    use super::PackedBf16;

    /// A refilled operand is word for word the freshly packed one, whatever
    /// shape the storage held before (padding included).
    #[test]
    fn refilled_storage_packs_exactly_what_fresh_storage_does() {
        let mut old = None;
        for (i, &(k, n)) in [(77, 100), (7, 33), (301, 65), (2, 1000), (1, 1), (40, 70)]
            .iter()
            .enumerate()
        {
            let b: Vec<f32> = (0..k * n)
                .map(|j| ((j * 7919 + i * 31) % 1000) as f32 / 37.0 - 13.0)
                .collect();
            let fill = |r: usize, dst: &mut [f32]| dst.copy_from_slice(&b[r * n..][..n]);
            let fresh = PackedBf16::from_rows(k, n, fill);
            let refilled = PackedBf16::from_rows_reusing(old.take(), k, n, fill);
            assert_eq!(refilled.layout, fresh.layout);
            assert_eq!(
                refilled.data.as_slice(),
                fresh.data.as_slice(),
                "k={k} n={n}"
            );
            let stored = PackedBf16::from_f32(MatRef::row_major(&b, k, n));
            assert_eq!(fresh.data.as_slice(), stored.data.as_slice(), "k={k} n={n}");
            old = Some(refilled);
        }
    }
}
