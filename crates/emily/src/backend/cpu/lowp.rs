//! Matrix products on the low-precision GEMM engines of
//! [`emily_kernels::gemm`] (AMX, AVX512-BF16/VNNI, AVX2, portable; chosen at
//! run time).
//!
//! The rules (what `Tensor::matmul` promises for these dtypes):
//! - **f32 × bf16** (activations × weights) with more than
//!   [`super::matmul::GEMV_MAX_ROWS`] activation rows: A is rounded to bf16
//!   while it is packed, B is packed once per weight buffer
//!   ([`super::packed_weights`]), products are exact and sums are f32; the
//!   output is f32. (Fewer rows stream the weights through the GEMV kernel.)
//! - **bf16 × bf16**: the same engine with B packed per call; the f32 sums are
//!   rounded once to the bf16 output.
//! - **int8** (`Tensor::matmul_int8`): activation rows quantized on the fly
//!   (once for consecutive products of the same input buffer, see
//!   [`super::quantized_input`]), the weight quantized per column and packed
//!   once per weight buffer.

use std::sync::Arc;

use emily_kernels::gemm::{
    gemm_bf16, gemm_bf16_then, gemm_int8_quantized_then, Bf16Input, MatRef, PackedBf16,
};
use emily_kernels::parallel;
use half::bf16;

use super::compute::Compute;
use super::epilogue::RowProgram;
use super::quantized_input::with_quantized;
use super::{convert, packed_weights};
use crate::backend::MatmulDims;
use crate::error::{invalid, Result};
use crate::ops::FusedProgram;
use crate::shape::numel;
use crate::{Array, DType, Element};

/// `a @ b` (A f32 or bf16, B bf16) on the bf16 engine, output `dtype` (f32 or bf16).
/// `cache_b`: B is a weight whose packed form is kept (see [`packed_weights`]).
pub(crate) fn bf16_matmul(
    a: &Array,
    b: &Array,
    (ta, tb): (bool, bool),
    shape: &[usize],
    dtype: DType,
    cache_b: bool,
) -> Result<Array> {
    let mut out = Array::uninit(shape, DType::F32)?;
    let o = out.as_mut_slice::<f32>().expect("fresh array");
    match a.dtype() {
        DType::BF16 => products::<bf16>(a, b, (ta, tb), shape, cache_b, o)?,
        _ => products::<f32>(a, b, (ta, tb), shape, cache_b, o)?,
    }
    if dtype == DType::F32 {
        Ok(out)
    } else {
        convert(&out, dtype)
    }
}

/// The `k × n` view of one B matrix (`b` at element offset `off`, stored
/// `(k, n)`, or `(n, k)` when `tb`).
fn b_view(b: &[bf16], off: usize, k: usize, n: usize, tb: bool) -> MatRef<'_, bf16> {
    let data = &b[off..off + k * n];
    if tb {
        MatRef::transposed(data, k, n)
    } else {
        MatRef::row_major(data, k, n)
    }
}

fn products<T: Element + Bf16Input>(
    a: &Array,
    b: &Array,
    (ta, tb): (bool, bool),
    shape: &[usize],
    cache_b: bool,
    out: &mut [f32],
) -> Result<()> {
    let dims = MatmulDims::new(a.shape(), ta, shape);
    let (m, n, k, nb) = (dims.m, dims.n, dims.k, dims.nb);
    let (av, bv) = (a.as_slice::<T>(), b.as_slice::<bf16>());
    // A weight against contiguous rows: one product over every batch row.
    if b.shape().len() == 2 && !ta && a.numel() == nb * m * k {
        let packed = if cache_b {
            packed_weights::bf16_weights(b, tb)?
        } else {
            Arc::new(PackedBf16::from_bf16(b_view(bv, 0, k, n, tb)))
        };
        gemm_bf16(MatRef::row_major(av, nb * m, k), &packed, out);
        return Ok(());
    }
    let a_bs = dims.batch_strides(a.shape());
    let b_bs = dims.batch_strides(b.shape());
    for (i, o) in out.chunks_mut((m * n).max(1)).enumerate().take(nb) {
        let (ao, bo) = (
            dims.batch_offset(i, &a_bs) * m * k,
            dims.batch_offset(i, &b_bs) * k * n,
        );
        let a_data = &av[ao..ao + m * k];
        let a_view = if ta {
            MatRef::transposed(a_data, m, k)
        } else {
            MatRef::row_major(a_data, m, k)
        };
        let packed = PackedBf16::from_bf16(b_view(bv, bo, k, n, tb));
        gemm_bf16(a_view, &packed, o);
    }
    Ok(())
}

/// `x @ w` with int8 products (x f32 `(…, m, k)`, w 2-D float, `(n, k)` when
/// `tb`); f32 output of `shape`.
pub(crate) fn int8_matmul(x: &Array, w: &Array, tb: bool, shape: &[usize]) -> Result<Array> {
    let k = x.shape()[x.shape().len() - 1];
    let n = shape[shape.len() - 1];
    let rows = numel(&shape[..shape.len() - 1]);
    let mut out = Array::uninit(shape, DType::F32)?;
    if rows == 0 || n == 0 {
        return Ok(out);
    }
    let packed = packed_weights::int8_weights(w, tb)?;
    let o = out.as_mut_slice::<f32>().expect("fresh array");
    with_quantized(x, (rows, k), &packed, |a| {
        gemm_int8_quantized_then(a, &packed, None, None, o)
    });
    Ok(out)
}

/// A product with `program` applied to it as it is written (`inputs`: x,
/// w, then the program's inputs other than `acc`): the int8 product
/// (`int8`) or x · w for f32 x and bf16 w (`tb`: w stored `(n, k)`); output
/// `dtype` (f32, or bf16/f16 narrowed from each finished row). Equal to the
/// product followed by the program. Any other product (a few rows on the
/// GEMV kernels, f32/f16/quantized weights) is `plain_product` — the backend's
/// own matmul — with the program applied to its rows, one op instead of two
/// (a decode step's bias adds, bias + residual and bias + GELU).
pub(crate) fn matmul_then(
    inputs: &[Array],
    (int8, tb): (bool, bool),
    program: &FusedProgram,
    acc: usize,
    shape: &[usize],
    dtype: DType,
    plain_product: impl FnOnce() -> Result<Array>,
) -> Result<Array> {
    let (x, w) = (&inputs[0], &inputs[1]);
    let mut then = RowProgram::new(program, acc, &inputs[2..], shape)?;
    let k = x.shape()[x.shape().len() - 1];
    let n = shape[shape.len() - 1];
    let rows = numel(&shape[..shape.len() - 1]);
    if rows == 0 || n == 0 {
        return Array::uninit(shape, dtype);
    }
    let mut out = (dtype != DType::F32)
        .then(|| Array::uninit(shape, dtype))
        .transpose()?;
    // The int8 product's dequantizing pass adds a leading bias itself.
    let bias = if int8 { then.fold_leading_bias() } else { None };
    let then = then;
    let size = dtype.size_in_bytes();
    let dst = OutBytes(out.as_mut().map_or(std::ptr::null_mut(), |o| {
        o.bytes_mut().expect("fresh array").as_mut_ptr()
    }));
    let epilogue = |i: usize, j0: usize, row: &mut [f32]| {
        then.apply(i, j0, row);
        let d = &dst;
        if !d.0.is_null() {
            // SAFETY: each (row, column range) is passed exactly once, so
            // the writes are disjoint, and they lie inside the `rows × n`
            // output of `dtype`.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(d.0.add((i * n + j0) * size), row.len() * size)
            };
            <f32 as Compute>::store(row, bytes, dtype);
        }
    };
    let a = || MatRef::row_major(x.as_slice::<f32>(), rows, k);
    let product = if int8 {
        let packed = packed_weights::int8_weights(w, tb)?;
        let mut product = Array::uninit(shape, DType::F32)?;
        let o = product.as_mut_slice::<f32>().expect("fresh array");
        with_quantized(x, (rows, k), &packed, |a| {
            gemm_int8_quantized_then(a, &packed, bias, Some(&epilogue), o)
        });
        product
    } else if rows > super::matmul::GEMV_MAX_ROWS && w.dtype() == DType::BF16 {
        let packed = packed_weights::bf16_weights(w, tb)?;
        let mut product = Array::uninit(shape, DType::F32)?;
        let o = product.as_mut_slice::<f32>().expect("fresh array");
        gemm_bf16_then(a(), &packed, &epilogue, o);
        product
    } else {
        // A few rows (the GEMV path) or other dtypes: the product, then the
        // program over its rows (in parallel when there are many).
        let mut product = plain_product()?;
        let Some(o) = product.as_mut_slice::<f32>() else {
            return Err(invalid(
                "matmul_then",
                "the product is not a fresh f32 buffer",
            ));
        };
        let o = OutBytes(o.as_mut_ptr().cast());
        parallel::for_each_range(rows, n * (program.instrs.len() + 1), |r0, r1| {
            let o = &o;
            for i in r0..r1 {
                // SAFETY: each row of the `rows × n` f32 product is passed to
                // one range only.
                let row =
                    unsafe { std::slice::from_raw_parts_mut(o.0.cast::<f32>().add(i * n), n) };
                epilogue(i, 0, row);
            }
        });
        product
    };
    Ok(out.unwrap_or(product))
}

/// The narrowed output of [`matmul_then`], written by the GEMM's threads.
struct OutBytes(*mut u8);
// SAFETY: threads write disjoint ranges (see `matmul_then`).
unsafe impl Sync for OutBytes {}
