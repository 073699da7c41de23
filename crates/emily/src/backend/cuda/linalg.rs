//! Matrix products through cuBLAS (`cublasGemmStridedBatchedEx`, f32
//! accumulation for f16 / bf16, no TF32 unless `EMILY_CUDA_TF32=1`), a GEMV
//! kernel for decode-sized products of f32 activations with half weights,
//! and conv1d as im2col + batched GEMM.

use std::ffi::c_void;
use std::sync::Arc;

use cudarc::cublas::{result as blas, sys as bs};

use super::context::{arg, Gpu};
use super::elementwise::convert;
use super::layout::broadcast;
use super::sources::{ctype, Kernel, CONV, GEMV};
use super::{alloc, ptr};
use crate::error::{Error, Result};
use crate::shape::numel;
use crate::{Array, DType};

/// A row-major strided-batched product `C = op(A) · op(B)` of `dtype`
/// operands: op(A) is (m, k), op(B) is (k, n), C is (m, n); `ta` means A is
/// stored (k, m), `tb` that B is stored (n, k). Strides are in elements.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    gpu: &Gpu,
    dtype: DType,
    (ta, tb): (bool, bool),
    (m, n, k): (usize, usize, usize),
    (a, sa): (u64, usize),
    (b, sb): (u64, usize),
    (c, sc): (u64, usize),
    batch: usize,
) -> Result<()> {
    let too_big = |v: usize| v > i32::MAX as usize;
    if [m, n, k, batch].into_iter().any(too_big) {
        return Err(Error::Backend {
            op: "matmul",
            device: gpu.device(),
            msg: format!("({m}, {k}) x ({k}, {n}) x {batch} exceeds cuBLAS's 32-bit sizes"),
        });
    }
    let tf32 = std::env::var("EMILY_CUDA_TF32").is_ok_and(|v| v == "1");
    let (ty, compute) = match dtype {
        DType::F32 if tf32 => (
            bs::cudaDataType::CUDA_R_32F,
            bs::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32,
        ),
        DType::F32 => (
            bs::cudaDataType::CUDA_R_32F,
            bs::cublasComputeType_t::CUBLAS_COMPUTE_32F,
        ),
        DType::F16 => (
            bs::cudaDataType::CUDA_R_16F,
            bs::cublasComputeType_t::CUBLAS_COMPUTE_32F,
        ),
        DType::BF16 => (
            bs::cudaDataType::CUDA_R_16BF,
            bs::cublasComputeType_t::CUBLAS_COMPUTE_32F,
        ),
        DType::F64 => (
            bs::cudaDataType::CUDA_R_64F,
            bs::cublasComputeType_t::CUBLAS_COMPUTE_64F,
        ),
        d => {
            return Err(Error::Backend {
                op: "matmul",
                device: gpu.device(),
                msg: format!("no GEMM for {d}"),
            })
        }
    };
    let (one_f, zero_f, one_d, zero_d) = (1.0f32, 0.0f32, 1.0f64, 0.0f64);
    let (alpha, beta): (*const c_void, *const c_void) = if dtype == DType::F64 {
        (arg(&one_d), arg(&zero_d))
    } else {
        (arg(&one_f), arg(&zero_f))
    };
    // Column-major view: C^T (n, m) = op(B)^T (n, k) · op(A)^T (k, m).
    let op = |t: bool| {
        if t {
            bs::cublasOperation_t::CUBLAS_OP_T
        } else {
            bs::cublasOperation_t::CUBLAS_OP_N
        }
    };
    let ldb = if tb { k } else { n };
    let lda = if ta { m } else { k };
    gpu.bind()?;
    let h = gpu.blas.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: the pointers are live device buffers of the sizes the caller
    // derived from the operands' shapes; alpha/beta outlive the call.
    unsafe {
        blas::gemm_strided_batched_ex(
            h.0,
            op(tb),
            op(ta),
            n as i32,
            m as i32,
            k as i32,
            alpha,
            b as *const c_void,
            ty,
            ldb as i32,
            sb as i64,
            a as *const c_void,
            ty,
            lda as i32,
            sa as i64,
            beta,
            c as *mut c_void,
            ty,
            n as i32,
            sc as i64,
            batch as i32,
            compute,
            bs::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
    .map_err(|e| gpu.err("matmul", e))
}

/// The batched product of the catalogue's `matmul` (broadcast batch axes,
/// f32 x half mixed products widened to f32).
pub(crate) fn matmul(
    gpu: &Arc<Gpu>,
    a: &Array,
    b: &Array,
    ta: bool,
    tb: bool,
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    let dims = crate::backend::MatmulDims::new(a.shape(), ta, shape);
    let (m, n, k) = (dims.m, dims.n, dims.k);
    let (batch_shape, batch) = (dims.batch, dims.nb);
    let b_batch = numel(&b.shape()[..b.shape().len() - 2]);
    if a.dtype() != b.dtype() {
        // f32 activations x half weights: a GEMV kernel for a few rows.
        let rows = batch * m;
        if tb && !ta && b_batch == 1 && rows <= 8 && k.is_multiple_of(8) {
            return gemv(gpu, a, b, rows, n, k, shape);
        }
        let b32 = convert(gpu, b, DType::F32)?;
        return matmul(gpu, a, &b32, ta, tb, shape, dtype);
    }
    let (out, c) = alloc(gpu, shape, dtype)?;
    if k == 0 {
        super::elementwise::fill(gpu, c, numel(shape), 0.0, dtype)?;
        return Ok(out);
    }
    // Batch operands: full (stride m·k), shared (stride 0) or broadcast to full.
    let full = |x: &Array| -> Result<(Array, bool)> {
        let xb = &x.shape()[..x.shape().len() - 2];
        let nb = numel(xb);
        if nb == 1 {
            Ok((x.clone(), true))
        } else if nb == batch && xb.len() >= batch_shape.len() {
            Ok((x.clone(), false))
        } else {
            let mut s = batch_shape.to_vec();
            s.extend_from_slice(&x.shape()[x.shape().len() - 2..]);
            Ok((broadcast(gpu, x, &s)?, false))
        }
    };
    let (a2, a_shared) = full(a)?;
    let (b2, b_shared) = full(b)?;
    let (ap, bp) = (ptr("matmul", &a2)?, ptr("matmul", &b2)?);
    if b_shared && !a_shared && !ta {
        // Stack the batch into the rows of one product.
        gemm(
            gpu,
            dtype,
            (ta, tb),
            (batch * m, n, k),
            (ap, 0),
            (bp, 0),
            (c, 0),
            1,
        )?;
    } else {
        let sa = if a_shared { 0 } else { m * k };
        let sb = if b_shared { 0 } else { k * n };
        gemm(
            gpu,
            dtype,
            (ta, tb),
            (m, n, k),
            (ap, sa),
            (bp, sb),
            (c, m * n),
            batch,
        )?;
    }
    Ok(out)
}

fn gemv(
    gpu: &Arc<Gpu>,
    x: &Array,
    w: &Array,
    rows: usize,
    n: usize,
    k: usize,
    shape: &[usize],
) -> Result<Array> {
    let wc = ctype(w.dtype());
    let kern = Kernel::new(
        &GEMV,
        "DEFINE_GEMV",
        format!("gemv_{}", w.dtype().name()),
        &[wc],
    );
    let f = gpu.function("matmul", &kern)?;
    let (out, o) = alloc(gpu, shape, DType::F32)?;
    let (xp, wp) = (ptr("matmul", x)?, ptr("matmul", w)?);
    let (r64, n64, k64) = (rows as i64, n as i64, k as i64);
    let grid = (n * 32).div_ceil(256) as u32;
    gpu.launch(
        "matmul",
        &f,
        (grid, 1, 1),
        256,
        0,
        &mut [arg(&o), arg(&xp), arg(&wp), arg(&r64), arg(&n64), arg(&k64)],
    )?;
    Ok(out)
}

/// 1-D convolution: im2col into the compute dtype, then per batch entry a
/// GEMM batched over groups.
pub(crate) fn conv1d(
    gpu: &Arc<Gpu>,
    x: &Array,
    w: &Array,
    [stride, padding, dilation, groups]: [usize; 4],
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    let cdt = if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let (nb, cin, len) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let (cout, cg, kw) = (w.shape()[0], w.shape()[1], w.shape()[2]);
    let lout = shape[2];
    let per = cout / groups.max(1);
    let cols_shape = [nb, groups, cg * kw, lout];
    let kern = Kernel::new(
        &CONV,
        "DEFINE_IM2COL",
        format!("im2col_{}_{}", x.dtype().name(), cdt.name()),
        &[ctype(x.dtype()), ctype(cdt)],
    );
    let f = gpu.function("conv1d", &kern)?;
    let (cols, cp) = alloc(gpu, &cols_shape, cdt)?;
    let xp = ptr("conv1d", x)?;
    let v = [
        nb, cin, len, groups, cg, kw, lout, stride, padding, dilation,
    ]
    .map(|v| v as i64);
    let total = numel(&cols_shape);
    gpu.launch_over(
        "conv1d",
        &f,
        total,
        256,
        &mut [
            arg(&cp),
            arg(&xp),
            arg(&v[0]),
            arg(&v[1]),
            arg(&v[2]),
            arg(&v[3]),
            arg(&v[4]),
            arg(&v[5]),
            arg(&v[6]),
            arg(&v[7]),
            arg(&v[8]),
            arg(&v[9]),
        ],
    )?;
    let wc = convert(gpu, w, cdt)?;
    let wp = ptr("conv1d", &wc)?;
    let (out, op) = alloc(gpu, shape, cdt)?;
    let esz = cdt.size_in_bytes() as u64;
    let kk = cg * kw;
    for b in 0..nb {
        let cb = cp + (b * groups * kk * lout) as u64 * esz;
        let ob = op + (b * cout * lout) as u64 * esz;
        gemm(
            gpu,
            cdt,
            (false, false),
            (per, lout, kk),
            (wp, per * kk),
            (cb, kk * lout),
            (ob, per * lout),
            groups,
        )?;
    }
    drop(cols);
    convert(gpu, &out, dtype)
}

/// The GEMV and im2col instantiations.
pub(crate) fn catalogue(push: &mut dyn FnMut(Kernel)) {
    for d in [DType::F16, DType::BF16] {
        push(Kernel::new(
            &GEMV,
            "DEFINE_GEMV",
            format!("gemv_{}", d.name()),
            &[ctype(d)],
        ));
    }
    for d in [DType::F32, DType::F64, DType::F16, DType::BF16] {
        let c = if d == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        push(Kernel::new(
            &CONV,
            "DEFINE_IM2COL",
            format!("im2col_{}_{}", d.name(), c.name()),
            &[ctype(d), ctype(c)],
        ));
    }
}
