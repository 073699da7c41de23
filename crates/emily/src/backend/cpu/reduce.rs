//! Reductions and softmax. Half types are widened to f32 (the accumulation
//! type), integers to f64; the result is narrowed to the node's dtype.

use emily_kernels::reduce::{self as k, ReduceOp};
use emily_kernels::softmax;

use super::convert;
use crate::error::Result;
use crate::ops::Reduction;
use crate::shape::numel;
use crate::{Array, DType};

fn compute_type(dtype: DType) -> DType {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => DType::F32,
        _ => DType::F64,
    }
}

/// Reduces `x` over the sorted `axes`.
pub(crate) fn reduce(
    x: &Array,
    op: Reduction,
    axes: &[usize],
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    let cdt = compute_type(x.dtype());
    let mut cur = convert(x, cdt)?;
    let mut cur_shape = x.shape().to_vec();
    // Reduce contiguous blocks of axes from the last block to the first.
    let mut blocks: Vec<(usize, usize)> = Vec::new();
    for &a in axes {
        match blocks.last_mut() {
            Some((_, end)) if *end + 1 == a => *end = a,
            _ => blocks.push((a, a)),
        }
    }
    let kop = match op {
        Reduction::Sum | Reduction::Mean => ReduceOp::Sum,
        Reduction::Max => ReduceOp::Max,
        Reduction::Min => ReduceOp::Min,
        Reduction::Prod => ReduceOp::Prod,
        Reduction::ArgMax => ReduceOp::ArgMax,
        Reduction::ArgMin => ReduceOp::ArgMin,
        Reduction::LogSumExp => ReduceOp::LogSumExp,
    };
    for &(a0, a1) in blocks.iter().rev() {
        let outer = numel(&cur_shape[..a0]);
        let len = numel(&cur_shape[a0..=a1]);
        let inner = numel(&cur_shape[a1 + 1..]);
        let mut next_shape = cur_shape.clone();
        for d in next_shape.iter_mut().take(a1 + 1).skip(a0) {
            *d = 1;
        }
        let mut out = Array::uninit(&next_shape, cdt)?;
        match cdt {
            DType::F32 => {
                let (xs, os) = (cur.as_slice::<f32>(), out.as_mut_slice::<f32>().unwrap());
                if inner == 1 {
                    k::reduce_last_axis_f32(kop, xs, outer, len, os);
                } else {
                    k::reduce_middle_axis_f32(kop, xs, outer, len, inner, os);
                }
            }
            _ => {
                let (xs, os) = (cur.as_slice::<f64>(), out.as_mut_slice::<f64>().unwrap());
                if inner == 1 {
                    k::reduce_last_axis_f64(kop, xs, outer, len, os);
                } else {
                    k::reduce_middle_axis_f64(kop, xs, outer, len, inner, os);
                }
            }
        }
        cur = out;
        cur_shape = next_shape;
    }
    if op == Reduction::Mean {
        let count: usize = axes.iter().map(|&a| x.shape()[a]).product();
        let scale = 1.0 / count.max(1) as f64;
        match cdt {
            DType::F32 => cur
                .as_mut_slice::<f32>()
                .unwrap()
                .iter_mut()
                .for_each(|v| *v *= scale as f32),
            _ => cur
                .as_mut_slice::<f64>()
                .unwrap()
                .iter_mut()
                .for_each(|v| *v *= scale),
        }
    }
    convert(&cur.reshaped(shape), dtype)
}

/// Softmax along `axis` (moved last and back when it is not the last axis).
pub(crate) fn softmax(x: &Array, axis: usize, dtype: DType) -> Result<Array> {
    let r = x.shape().len();
    if axis + 1 != r {
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(axis, r - 1);
        let pshape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
        let moved = super::layout::permute(x, &perm, &pshape)?;
        let y = softmax(&moved, r - 1, dtype)?;
        return super::layout::permute(&y, &perm, x.shape());
    }
    let cdt = compute_type(x.dtype());
    let xc = convert(x, cdt)?;
    let cols = x.shape()[r - 1].max(1);
    let rows = xc.numel() / cols;
    let mut out = Array::uninit(x.shape(), cdt)?;
    match cdt {
        DType::F32 => softmax::softmax_last_axis_f32(
            xc.as_slice::<f32>(),
            rows,
            cols,
            out.as_mut_slice::<f32>().unwrap(),
        ),
        _ => softmax::softmax_last_axis_f64(
            xc.as_slice::<f64>(),
            rows,
            cols,
            out.as_mut_slice::<f64>().unwrap(),
        ),
    }
    convert(&out, dtype)
}
