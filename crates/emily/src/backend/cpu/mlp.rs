//! [`crate::ops::Op::MlpInt8Then`]: two int8 products with their
//! epilogues, taken by row blocks.
//!
//! As two [`crate::ops::Op::MatmulThen`] nodes, the hidden activations of
//! an MLP block (Whisper tiny.en: 1500 × 1536 f32, 9.2 MB) are written by
//! the first product and read back by the second's quantization from L3.
//! Here each thread takes blocks of [`BLOCK_ROWS`] rows through the first
//! product, its epilogue (bias, GELU), the row quantization and the second
//! product, the block's hidden rows (384 KB) staying in its L2; the
//! products inside a block run on that thread alone. Each hidden row is
//! quantized by itself either way, so the results are the same bits.
//! (The Xeon with AMX, 2 threads, tiny.en's shapes alone: two products
//! 3.3–3.6 ms, row blocks of 64 2.24 ms; in the encoder 2.7 → 2.3 ms a
//! layer.)

use std::cell::RefCell;

use emily_kernels::gemm::{gemm_int8_quantized_then, MatRef, PackedInt8, QuantizedRows};
use emily_kernels::parallel;
use rayon::prelude::*;

use super::epilogue::RowProgram;
use super::packed_weights;
use crate::error::{invalid, Result};
use crate::ops::FusedProgram;
use crate::shape::numel;
use crate::{Array, DType};

/// Rows a thread takes through both products at a time (64: the hidden
/// block is 384 KB for a 1536-wide MLP). Whisper tiny.en's four MLPs per
/// encoder pass, 2 threads, two rounds: 32 rows 10.2–10.3 ms, 64 rows
/// 10.05–10.08, 96 10.7–11.1, 192 11.2–11.3.
const BLOCK_ROWS: usize = 64;

/// A thread's buffers for its blocks, kept from block to block (fresh ones
/// were allocated, and their pages faulted in, twice a block).
#[derive(Default)]
struct Scratch {
    /// The block's hidden rows.
    hidden: Vec<f32>,
    /// The block's input rows, then its hidden rows, quantized.
    rows: [Option<QuantizedRows>; 2],
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// `a` quantized for `w` into `kept` (its buffers reused when it holds one).
fn quantize_kept<'k>(
    kept: &'k mut Option<QuantizedRows>,
    a: MatRef<'_, f32>,
    w: &PackedInt8,
) -> &'k QuantizedRows {
    match kept {
        Some(q) => q.requantize(a, w),
        None => *kept = Some(QuantizedRows::quantize(a, w)),
    }
    kept.as_ref().expect("just filled")
}

/// One product's weight layout, epilogue program, the program's input
/// that is the product and the shape the program sees it at.
pub(crate) type Stage<'a> = (bool, &'a FusedProgram, usize, &'a [usize]);

/// Runs `then2(then1(x · w1) · w2)` (see the module docs); `inputs` as
/// [`crate::ops::Op::MlpInt8Then`] lists them, `second` the index of w2.
pub(crate) fn mlp_int8_then(
    inputs: &[Array],
    [(tb1, program1, acc1, hidden_shape), (tb2, program2, acc2, shape)]: [Stage<'_>; 2],
    second: usize,
    dtype: DType,
) -> Result<Array> {
    let x = &inputs[0];
    if dtype != DType::F32 || x.dtype() != DType::F32 || second < 2 || second >= inputs.len() {
        return Err(invalid(
            "mlp_int8_then",
            format!(
                "needs f32 activations and output and w2 among the inputs, got {} → {dtype}, w2 at {second} of {}",
                x.dtype(),
                inputs.len()
            ),
        ));
    }
    let (w1, w2) = (
        packed_weights::int8_weights(&inputs[1], tb1)?,
        packed_weights::int8_weights(&inputs[second], tb2)?,
    );
    let k = *x.shape().last().unwrap_or(&0);
    let (hidden, n) = (w1.n(), *shape.last().unwrap_or(&0));
    let rows = x.numel().checked_div(k).unwrap_or(0);
    if w1.k() != k
        || w2.k() != hidden
        || w2.n() != n
        || numel(shape) != rows * n
        || numel(hidden_shape) != rows * hidden
    {
        return Err(invalid(
            "mlp_int8_then",
            format!(
                "x {:?}, w1 {}x{}, w2 {}x{} and output {shape:?} do not chain",
                x.shape(),
                w1.k(),
                w1.n(),
                w2.k(),
                w2.n()
            ),
        ));
    }
    let mut then1 = RowProgram::new(program1, acc1, &inputs[2..second], hidden_shape)?;
    let mut then2 = RowProgram::new(program2, acc2, &inputs[second + 1..], shape)?;
    let (bias1, bias2) = (then1.fold_leading_bias(), then2.fold_leading_bias());
    let (then1, then2) = (then1, then2);
    let mut out = Array::uninit(shape, DType::F32)?;
    if rows == 0 || n == 0 {
        return Ok(out);
    }
    let xs = x.as_slice::<f32>();
    let o = out.as_mut_slice::<f32>().expect("fresh array");
    let block = |(b, ob): (usize, &mut [f32])| {
        let r0 = b * BLOCK_ROWS;
        let m = ob.len() / n;
        parallel::on_this_thread(|| {
            SCRATCH.with(|s| {
                let Scratch {
                    hidden: h,
                    rows: [xq, hq],
                } = &mut *s.borrow_mut();
                let a = MatRef::row_major(&xs[r0 * k..(r0 + m) * k], m, k);
                let xq = quantize_kept(xq, a, &w1);
                h.resize(m * hidden, 0.0);
                let epi1 = |i: usize, j0: usize, row: &mut [f32]| then1.apply(r0 + i, j0, row);
                gemm_int8_quantized_then(xq, &w1, bias1, Some(&epi1), h);
                let hq = quantize_kept(hq, MatRef::row_major(h, m, hidden), &w2);
                let epi2 = |i: usize, j0: usize, row: &mut [f32]| then2.apply(r0 + i, j0, row);
                gemm_int8_quantized_then(hq, &w2, bias2, Some(&epi2), ob);
            })
        })
    };
    if parallel::num_threads() == 1 {
        o.chunks_mut(BLOCK_ROWS * n).enumerate().for_each(block);
    } else {
        parallel::pool().install(|| o.par_chunks_mut(BLOCK_ROWS * n).enumerate().for_each(block));
    }
    Ok(out)
}
