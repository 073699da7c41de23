//! Row-wise widening for the f16/bf16 entry points: each row is converted into an
//! `f32` scratch row, processed by the `f32` kernel, and rounded back once.

use half::slice::HalfFloatSliceExt;

use crate::parallel;

/// Runs `f` on every length-`cols` row of `x` widened to `f32`, and writes the
/// rounded result to the same row of `out`. Rows are split across the pool.
pub(crate) fn map_rows_widened<T>(
    x: &[T],
    cols: usize,
    out: &mut [T],
    f: impl Fn(&mut [f32]) + Sync,
) where
    T: Copy + Send + Sync,
    [T]: HalfFloatSliceExt,
{
    if cols == 0 {
        return;
    }
    parallel::for_each_row_block_mut(out, cols, cols, |row0, block| {
        let mut row = vec![0.0f32; cols];
        for (r, dst) in block.chunks_exact_mut(cols).enumerate() {
            let start = (row0 + r) * cols;
            x[start..start + cols].convert_to_f32_slice(&mut row);
            f(&mut row);
            dst.convert_from_f32_slice(&row);
        }
    });
}

/// A half-precision weight vector widened once per call.
pub(crate) fn widen<T>(w: Option<&[T]>) -> Option<Vec<f32>>
where
    [T]: HalfFloatSliceExt,
{
    w.map(|w| w.to_f32_vec())
}
