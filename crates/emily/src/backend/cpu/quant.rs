//! Block-quantised tensors on the CPU: `x · wᵀ` through the quantised GEMV /
//! GEMM kernels (weights dequantised in registers or one tile at a time,
//! never as a whole), and casts that dequantise or quantise. (Row gathers
//! live with the other gathers in `indexing`.)

use emily_kernels::gemv_i8::I8Rows;
use std::cell::RefCell;

use emily_kernels::quant::{self, BlockFormat, Q8Activations, QuantError};

use super::quantized_input::{with_kept, Kept};
use super::{convert, layout};
use crate::error::{dtype_err, invalid, Error, Result};
use crate::ops::Op;
use crate::shape::numel;
use crate::{Array, DType};

/// A kernel error as an op error.
fn op_err(op: &'static str, e: QuantError) -> Error {
    invalid(op, e.to_string())
}

/// Whether `op` over `inputs` producing `dtype` touches a quantised type.
pub(super) fn involved(inputs: &[Array], dtype: DType) -> bool {
    dtype.is_quantized() || inputs.iter().any(|a| a.dtype().is_quantized())
}

/// Runs an op that involves a quantised type (its node passed the build
/// rules, so only matmul, gather's f32 rows and casts arrive here).
pub(super) fn execute(op: &Op, inputs: &[Array], shape: &[usize], dtype: DType) -> Result<Array> {
    match op {
        Op::Matmul { transpose_a, .. } => {
            let format = inputs[1].dtype().block_format().expect("quantised weight");
            matmul(&inputs[0], *transpose_a, &inputs[1], format, shape)
        }
        Op::Gather { axis } => super::indexing::gather(&inputs[0], &inputs[1], *axis, shape),
        Op::Cast => match (inputs[0].dtype(), dtype) {
            (DType::Quantized(f), to) => dequantize(&inputs[0], f, to),
            (_, DType::Quantized(f)) => quantize(&inputs[0], f, shape),
            _ => unreachable!("a cast reaching here involves a quantised type"),
        },
        _ => {
            let q = inputs
                .iter()
                .map(|a| a.dtype())
                .chain([dtype])
                .find(|d| d.is_quantized())
                .expect("a quantised type is involved");
            Err(dtype_err(
                op.name(),
                q,
                ": the CPU backend runs block-quantised tensors only through matmul, gather and cast",
            ))
        }
    }
}

/// `x · wᵀ`: `x` (…, m, k) f32 (stored (…, k, m) when `ta`), `w` (n, k).
fn matmul(x: &Array, ta: bool, w: &Array, format: BlockFormat, shape: &[usize]) -> Result<Array> {
    let x = if ta {
        let r = x.shape().len();
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        let mut logical = x.shape().to_vec();
        logical.swap(r - 2, r - 1);
        layout::permute(x, &perm, &logical)?
    } else {
        x.clone()
    };
    let (n, k) = (w.shape()[0], w.shape()[1]);
    let rows = numel(&x.shape()[..x.shape().len() - 1]);
    let mut out = Array::uninit(shape, DType::F32)?;
    let o = out.as_mut_slice::<f32>().expect("fresh array");
    if let Some(w) = super::int8_rows::of(w) {
        int8_rows_product(w, x.as_slice::<f32>(), rows, o);
        return Ok(out);
    }
    if quant::quantizes_activations(rows) && k % 32 == 0 && x.numel() == rows * k {
        with_q8_activations(&x, rows, k, |act| {
            quant::matmul_quantized(format, w.bytes(), n, act, o)
        })
    } else {
        quant::matmul(format, w.bytes(), n, k, x.as_slice::<f32>(), rows, o)
    }
    .map_err(|e| op_err("matmul", e))?;
    Ok(out)
}

thread_local! {
    /// The last product's 8-bit activation blocks on this thread.
    static LAST_Q8: Kept<Q8Activations> = const { RefCell::new(None) };
}

/// Runs `f` with `x` (`rows × k` f32) as 8-bit activation blocks: those the
/// last product on this thread made when they came from `x`'s buffer at
/// this shape, else freshly quantized (see [`with_kept`]). q, k and v (gate
/// and up) of one decode step read one input: it is quantized once.
fn with_q8_activations<R>(
    x: &Array,
    rows: usize,
    k: usize,
    f: impl FnOnce(&Q8Activations) -> R,
) -> R {
    let values = || x.as_slice::<f32>();
    with_kept(
        &LAST_Q8,
        x,
        rows * k,
        |act| act.m == rows && act.k == k,
        |act| act.requantize(values(), rows, k),
        || Q8Activations::quantize(values(), rows, k),
        f,
    )
}

/// `out = x · wᵀ` for weights held as int8 rows: the int8-row GEMV, or
/// under [`quant::with_exact_products`] the dequantized rows times the f32
/// activations (exact to round-off, as the block formats' exact path).
fn int8_rows_product(w: &I8Rows, x: &[f32], m: usize, out: &mut [f32]) {
    if quant::exact_products() {
        w.gemm_f32(x, m, out);
    } else {
        w.gemv(x, m, out);
    }
}

/// A quantised array as `to` (f32 directly, other floats through f32).
fn dequantize(x: &Array, format: BlockFormat, to: DType) -> Result<Array> {
    let mut out = Array::uninit(x.shape(), DType::F32)?;
    let o = out.as_mut_slice::<f32>().expect("fresh array");
    quant::dequantize_into(format, x.bytes(), o).map_err(|e| op_err("cast", e))?;
    convert(&out, to)
}

/// A float array quantised to `format` blocks along its last axis.
fn quantize(x: &Array, format: BlockFormat, shape: &[usize]) -> Result<Array> {
    let x32 = convert(x, DType::F32)?;
    let mut out = Array::uninit(shape, DType::Quantized(format))?;
    let o = out.bytes_mut().expect("fresh array");
    quant::quantize_into(format, x32.as_slice::<f32>(), o).map_err(|e| op_err("cast", e))?;
    Ok(out)
}
