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
//! - **bf16 × bf16**: the same engine, a 2-D B packed once per buffer (a
//!   weight, as above), any other B per call; the f32 sums are rounded once
//!   to the bf16 output (from each finished row while it is in cache when
//!   the product is one GEMM).
//! - **int8** (`Tensor::matmul_int8`): activation rows quantized on the fly
//!   (once for consecutive products of the same input buffer, see
//!   [`super::quantized_input`]), the weight quantized per column and packed
//!   once per weight buffer.

use std::sync::Arc;

use emily_kernels::gemm::{
    gemm_bf16, gemm_bf16_then, gemm_int8_quantized_then, Bf16Input, MatRef, PackedBf16, RowEpilogue,
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
    // A narrower output of one GEMM is written from each finished row.
    let dims = MatmulDims::new(a.shape(), ta, shape);
    let mut narrowed = (dtype != DType::F32 && one_gemm(a, b, ta, &dims))
        .then(|| Array::uninit(shape, dtype))
        .transpose()?;
    let to = narrowed.as_mut().map(|o| Narrowed::new(o, dims.n));
    let o = out.as_mut_slice::<f32>().expect("fresh array");
    let narrow = |i: usize, j0: usize, row: &mut [f32]| {
        if let Some(to) = &to {
            to.store(i, j0, row);
        }
    };
    let then = to.is_some().then_some(&narrow as RowEpilogue<'_>);
    match a.dtype() {
        DType::BF16 => products::<bf16>(a, b, (ta, tb), &dims, cache_b, then, o)?,
        _ => products::<f32>(a, b, (ta, tb), &dims, cache_b, then, o)?,
    }
    match narrowed {
        Some(narrowed) => Ok(narrowed),
        None if dtype == DType::F32 => Ok(out),
        None => convert(&out, dtype),
    }
}

/// Whether `a @ b` is one GEMM: a weight (2-D `b`) against contiguous,
/// untransposed rows of `a`, every batch row at once.
fn one_gemm(a: &Array, b: &Array, ta: bool, dims: &MatmulDims) -> bool {
    b.shape().len() == 2 && !ta && a.numel() == dims.nb * dims.m * dims.k
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

/// The bf16 products of [`bf16_matmul`] (of `dims`) into `out`; `then` (given only
/// when the product is [`one_gemm`]) sees each finished row while it is in
/// cache.
fn products<T: Element + Bf16Input>(
    a: &Array,
    b: &Array,
    (ta, tb): (bool, bool),
    dims: &MatmulDims<'_>,
    cache_b: bool,
    then: Option<RowEpilogue<'_>>,
    out: &mut [f32],
) -> Result<()> {
    let (m, n, k, nb) = (dims.m, dims.n, dims.k, dims.nb);
    let (av, bv) = (a.as_slice::<T>(), b.as_slice::<bf16>());
    if one_gemm(a, b, ta, dims) {
        let packed = if cache_b {
            packed_weights::bf16_weights(b, tb)?
        } else {
            Arc::new(PackedBf16::from_bf16(b_view(bv, 0, k, n, tb)))
        };
        let a = MatRef::row_major(av, nb * m, k);
        match then {
            Some(then) => gemm_bf16_then(a, &packed, then, out),
            None => gemm_bf16(a, &packed, out),
        }
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
    let to = out.as_mut().map(|o| Narrowed::new(o, n));
    let epilogue = |i: usize, j0: usize, row: &mut [f32]| {
        then.apply(i, j0, row);
        if let Some(to) = &to {
            to.store(i, j0, row);
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

/// Rows of a GEMM's f32 product written on by its threads.
struct OutBytes(*mut u8);
// SAFETY: threads write disjoint ranges (see `matmul_then`).
unsafe impl Sync for OutBytes {}

/// A narrower (bf16, f16) output that a GEMM's epilogue writes each
/// finished piece of a row into while it is in cache, instead of a pass
/// over the whole f32 product after it.
struct Narrowed {
    dst: OutBytes,
    n: usize,
    dtype: DType,
}

impl Narrowed {
    /// The writer of `out` (a fresh array, rows of `n` values).
    fn new(out: &mut Array, n: usize) -> Narrowed {
        let dtype = out.dtype();
        let dst = OutBytes(out.bytes_mut().expect("fresh array").as_mut_ptr());
        Narrowed { dst, n, dtype }
    }

    /// Stores the product's row `i` from column `j0` (`row`) narrowed.
    fn store(&self, i: usize, j0: usize, row: &[f32]) {
        let size = self.dtype.size_in_bytes();
        // SAFETY: the epilogue passes each (row, column range) exactly once,
        // so the writes are disjoint, and they lie inside the `rows × n`
        // output of `dtype`.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                self.dst.0.add((i * self.n + j0) * size),
                row.len() * size,
            )
        };
        <f32 as Compute>::store(row, bytes, self.dtype);
    }
}
