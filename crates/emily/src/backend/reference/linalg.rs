//! Matrix products and 1-D convolution as triple loops with f64 dot products.

use super::{Out, View};
use crate::error::Result;
use crate::shape::numel;
use crate::DType;

/// An f32 activation next to bf16 weights is rounded to bf16 (the dtype rule
/// of `matmul` and `conv1d`: bf16 weights mean bf16 products).
fn bf16_rule(x: &View, w: &View) -> impl Fn(f64) -> f64 {
    let round = x.dtype == DType::F32 && w.dtype == DType::BF16;
    move |v| {
        if round {
            half::bf16::from_f32(v as f32).to_f64()
        } else {
            v
        }
    }
}

/// `a @ b` into `shape` (…, m, n). A transposed operand is stored with its
/// last two axes swapped; batch axes broadcast.
pub(super) fn matmul(
    a: &View,
    b: &View,
    ta: bool,
    tb: bool,
    shape: &[usize],
    dtype: DType,
) -> Result<Out> {
    let dims = crate::backend::MatmulDims::new(a.shape, ta, shape);
    let (m, n, k) = (dims.m, dims.n, dims.k);
    let a_bs = dims.batch_strides(a.shape);
    let b_bs = dims.batch_strides(b.shape);
    // Element (row, col) of each operand's logical matrix inside its batch entry.
    let a_at = |i: usize, p: usize| if ta { p * m + i } else { i * k + p };
    let b_at = |p: usize, j: usize| if tb { j * k + p } else { p * n + j };
    let ra = bf16_rule(a, b);
    let mut out = Out::new(shape, dtype)?;
    for e in 0..dims.nb {
        let a0 = dims.batch_offset(e, &a_bs) * m * k;
        let b0 = dims.batch_offset(e, &b_bs) * k * n;
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|p| ra(a.get(a0 + a_at(i, p))) * b.get(b0 + b_at(p, j)))
                    .sum();
                out.set((e * m + i) * n + j, dot);
            }
        }
    }
    Ok(out)
}

/// Convolution of x (N, C_in, L) with w (C_out, C_in/groups, K) into
/// `shape` (N, C_out, L_out); `params` = [stride, padding, dilation, groups].
pub(super) fn conv1d(
    x: &View,
    w: &View,
    params: [usize; 4],
    shape: &[usize],
    dtype: DType,
) -> Result<Out> {
    let [stride, padding, dilation, groups] = params;
    let (cin, l) = (x.shape[1], x.shape[2]);
    let (cout, cg, k) = (w.shape[0], w.shape[1], w.shape[2]);
    let (batch, lout) = (shape[0], shape[2]);
    let per_group = cout / groups;
    let rx = bf16_rule(x, w);
    let mut out = Out::new(shape, dtype)?;
    for bi in 0..batch {
        for o in 0..cout {
            let g = o / per_group;
            for t in 0..lout {
                let mut acc = 0.0f64;
                for c in 0..cg {
                    for tap in 0..k {
                        // Input position, with `padding` zeros on both sides.
                        let pos = (t * stride + tap * dilation) as isize - padding as isize;
                        if pos < 0 || pos >= l as isize {
                            continue;
                        }
                        let xi = (bi * cin + g * cg + c) * l + pos as usize;
                        acc += rx(x.get(xi)) * w.get((o * cg + c) * k + tap);
                    }
                }
                out.set((bi * cout + o) * lout + t, acc);
            }
        }
    }
    Ok(out)
}

/// [`crate::Tensor::matmul_int8`] as specified: each row of `x` quantized to
/// u8 and each column of the `(k, n)` weight (stored `(n, k)` when `tb`) to
/// s8 exactly as the CPU engines do (`emily_kernels::gemm`'s quantizers),
/// integer sums, dequantized in f64.
pub(super) fn matmul_int8(x: &View, w: &View, tb: bool, shape: &[usize]) -> Result<Out> {
    use emily_kernels::gemm::{quantize_columns_s8, quantize_row_u8, MatRef};
    let (k, n) = (x.shape[x.shape.len() - 1], shape[shape.len() - 1]);
    let rows = numel(&shape[..shape.len() - 1]);
    let wf: Vec<f32> = (0..k * n).map(|i| w.get(i) as f32).collect();
    let wv = if tb {
        MatRef::transposed(&wf, k, n)
    } else {
        MatRef::row_major(&wf, k, n)
    };
    let (qw, sw) = quantize_columns_s8(wv);
    let mut out = Out::new(shape, DType::F32)?;
    let mut qx = vec![0u8; k];
    for i in 0..rows {
        let row: Vec<f32> = (0..k).map(|p| x.get(i * k + p) as f32).collect();
        let rq = quantize_row_u8(&row, &mut qx);
        for j in 0..n {
            let dot: i64 = (0..k)
                .map(|p| (qx[p] as i64 - rq.zero_point as i64) * qw[p * n + j] as i64)
                .sum();
            out.set(i * n + j, dot as f64 * rq.scale as f64 * sw[j] as f64);
        }
    }
    Ok(out)
}
