//! Batched matrix products through the `gemm` crate. Transposed operands are
//! passed as strides; broadcast batch axes as zero strides (nothing is copied).

use emily_kernels::parallel;
use gemm::Parallelism;

use super::{convert, lowp};
use crate::backend::MatmulDims;
use crate::error::Result;
use crate::{Array, DType};

/// Below this many multiply-adds per matrix, batches run one GEMM per thread
/// instead of splitting each GEMM.
const SMALL_GEMM: usize = 1 << 21;

/// Fewest output rows per thread for which a large GEMM is split into
/// row blocks, one single-threaded GEMM per thread (each packs its own copy
/// of `b`), rather than threaded inside the `gemm` crate, which forks and
/// joins twice per depth block and shares each packed block between
/// threads. Measured on Zen 2 at 2 threads (quiet): 1500 × 512 × 512 4.77 →
/// 4.05 ms, 1500 × 512 × 2048 17.3–21.2 → 17.1 ms, 1500 × 2048 × 512 16.6 →
/// 16.2 ms.
const ROWS_PER_THREAD: usize = 128;

struct Ptr<T>(*mut T);
// SAFETY: each batch entry writes its own output matrix.
unsafe impl<T> Send for Ptr<T> {}
unsafe impl<T> Sync for Ptr<T> {}
impl<T> Ptr<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

/// `a @ b` with output `shape` (…, m, n).
pub(crate) fn matmul(
    a: &Array,
    b: &Array,
    ta: bool,
    tb: bool,
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    if a.dtype() != b.dtype() {
        return mixed(a, b, ta, tb, shape);
    }
    if dtype == DType::BF16 {
        // A 2-D right operand is a weight here too (a bf16 model's `Linear`):
        // packed once per buffer, as next to f32 activations.
        return lowp::bf16_matmul(a, b, (ta, tb), shape, dtype, b.shape().len() == 2);
    }
    match dtype {
        DType::F32 => typed::<f32>(a, b, ta, tb, shape, dtype),
        DType::F64 => typed::<f64>(a, b, ta, tb, shape, dtype),
        // Half types widen to f32 and round once: the gemm crate's f16 kernel
        // keeps f16 partial sums (errors of many output ulps after cancellation,
        // found by the reference-backend parity suite).
        _ => {
            let (a32, b32) = (convert(a, DType::F32)?, convert(b, DType::F32)?);
            let out = typed::<f32>(&a32, &b32, ta, tb, shape, DType::F32)?;
            convert(&out, dtype)
        }
    }
}

fn typed<T: crate::Element + Copy + 'static>(
    a: &Array,
    b: &Array,
    ta: bool,
    tb: bool,
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    let dims = MatmulDims::new(a.shape(), ta, shape);
    let (m, n, k, nb) = (dims.m, dims.n, dims.k, dims.nb);
    // Batch strides in units of whole matrices.
    let a_bs = dims.batch_strides(a.shape());
    let b_bs = dims.batch_strides(b.shape());
    let (a_mat, b_mat) = (m * k, k * n);
    let (a_rs, a_cs) = if ta {
        (1isize, m as isize)
    } else {
        (k as isize, 1isize)
    };
    let (b_rs, b_cs) = if tb {
        (1isize, k as isize)
    } else {
        (n as isize, 1isize)
    };
    let mut out = Array::uninit(shape, dtype)?;
    if nb == 0 || m == 0 || n == 0 {
        return Ok(out);
    }
    let av = a.as_slice::<T>().as_ptr();
    let bv = b.as_slice::<T>().as_ptr();
    let (ap, bp) = (Ptr(av as *mut T), Ptr(bv as *mut T));
    let op = Ptr(out.as_mut_slice::<T>().unwrap().as_mut_ptr());
    let threads = parallel::num_threads();
    // Rows `r0..r0 + rows` of batch entry `i`.
    let block = |i: usize, r0: usize, rows: usize, par: Parallelism| {
        let (ao, bo) = (
            dims.batch_offset(i, &a_bs) * a_mat,
            dims.batch_offset(i, &b_bs) * b_mat,
        );
        // SAFETY: offsets and strides stay inside a, b and out (shapes were
        // validated; r0 + rows <= m).
        unsafe {
            gemm::gemm(
                rows,
                n,
                k,
                op.get().add(i * m * n + r0 * n),
                1,
                n as isize,
                false,
                ap.get().add(ao).offset(r0 as isize * a_rs),
                a_cs,
                a_rs,
                bp.get().add(bo),
                b_cs,
                b_rs,
                T::from_f64(0.0),
                T::from_f64(1.0),
                false,
                false,
                false,
                par,
            )
        }
    };
    let one = |i: usize, par: Parallelism| {
        if matches!(par, Parallelism::Rayon(_)) && m >= ROWS_PER_THREAD * threads {
            // Row blocks of whole micro-panels (16 rows), one per thread —
            // not `parallel::for_each_even_range`, whose blocks need not be
            // whole panels: base's encoder at 2 threads ran 548–553 ms with
            // it against 539–541 ms (quiet, three rounds, session 15).
            let per = m.div_ceil(threads).next_multiple_of(16);
            rayon::scope(|s| {
                for r0 in (0..m).step_by(per) {
                    s.spawn(move |_| block(i, r0, per.min(m - r0), Parallelism::None));
                }
            });
        } else {
            block(i, 0, m, par)
        }
    };
    let run = || {
        if k == 0 {
            // Empty inner dimension: the product is zero.
            out_zero::<T>(op.get(), nb * m * n);
        } else if nb > 1 && m * n * k < SMALL_GEMM && threads > 1 {
            use rayon::prelude::*;
            (0..nb)
                .into_par_iter()
                .for_each(|i| one(i, Parallelism::None));
        } else {
            let par = if m * n * k < (1 << 15) || threads == 1 {
                Parallelism::None
            } else {
                Parallelism::Rayon(threads)
            };
            for i in 0..nb {
                one(i, par);
            }
        }
    };
    // One thread: run here, not handed to the pool's one worker and back.
    if threads == 1 {
        run();
    } else {
        parallel::pool().install(run);
    }
    Ok(out)
}

fn out_zero<T: crate::Element>(p: *mut T, n: usize) {
    // SAFETY: p points at n elements of the freshly allocated output.
    unsafe { std::slice::from_raw_parts_mut(p, n).fill(T::from_f64(0.0)) }
}

/// f32 activations times half-precision weights. Decode-sized products (a few
/// rows against weights stored (n, k), i.e. `x · Wᵀ`) stream the half weights
/// through a GEMV kernel; larger products with bf16 weights run on the bf16
/// engine with the weights packed once ([`lowp`]); f16 weights are widened
/// to f32 for GEMM (exactly: the bf16 engine would drop 3 mantissa bits).
/// With bf16 weights the activations are rounded to bf16 on both paths.
fn mixed(a: &Array, b: &Array, ta: bool, tb: bool, shape: &[usize]) -> Result<Array> {
    let dims = MatmulDims::new(a.shape(), ta, shape);
    let (n, k, rows) = (dims.n, dims.k, dims.rows());
    let gemv = tb && !ta && b.shape().len() == 2 && rows <= GEMV_MAX_ROWS;
    if gemv {
        let mut out = Array::uninit(shape, DType::F32)?;
        let o = out.as_mut_slice::<f32>().expect("fresh array");
        let x = a.as_slice::<f32>();
        match b.dtype() {
            DType::F16 => emily_kernels::gemv::gemv_f16(b.as_slice(), n, k, x, rows, o),
            _ => {
                // The bf16 rule: activations rounded to bf16, as on the engine.
                let xr: Vec<f32> = x
                    .iter()
                    .map(|&v| half::bf16::from_f32(v).to_f32())
                    .collect();
                emily_kernels::gemv::gemv_bf16(b.as_slice(), n, k, &xr, rows, o)
            }
        }
        return Ok(out);
    }
    if b.dtype() == DType::BF16 {
        return lowp::bf16_matmul(a, b, (ta, tb), shape, DType::F32, b.shape().len() == 2);
    }
    typed::<f32>(a, &convert(b, DType::F32)?, ta, tb, shape, DType::F32)
}

/// Most activation rows for which the GEMV path beats widening + GEMM.
pub(crate) const GEMV_MAX_ROWS: usize = 8;
