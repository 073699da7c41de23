//! B operands computed row by row (an im2col matrix, say) packed straight
//! into the bf16 panel layout: each logical row is produced once into a
//! contiguous scratch and its pair partner beside it, then the pair is
//! rounded and interleaved into every panel's word row, so the producer works
//! on whole rows (contiguous copies) rather than element by element.

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
        let layout = PanelLayout::new(k, n, 2);
        let mut data = Words::zeroed(layout.words());
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
                    for ((w, &lo), &hi) in dst.iter_mut().zip(&even[j0..]).zip(&odd[j0..]) {
                        *w = bf16_bits(lo) as u32 | (bf16_bits(hi) as u32) << 16;
                    }
                }
            }
        });
        PackedBf16 { layout, data }
    }
}
