//! 1-D convolution as im2col + GEMM.

use super::{convert, matmul::matmul};
use crate::{Array, DType};

/// Stride, padding, dilation and groups of a convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvParams {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

/// Convolution of x (N, C_in, L) with w (C_out, C_in/groups, K) into `shape`.
pub(crate) fn conv1d(x: &Array, w: &Array, p: ConvParams, shape: &[usize], dtype: DType) -> Array {
    let cdt = if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let (x, w) = (convert(x, cdt), convert(w, cdt));
    let out = match cdt {
        DType::F64 => typed::<f64>(&x, &w, p, shape, cdt),
        _ => typed::<f32>(&x, &w, p, shape, cdt),
    };
    convert(&out, dtype)
}

fn typed<T: crate::Element + Default>(
    x: &Array,
    w: &Array,
    p: ConvParams,
    shape: &[usize],
    dtype: DType,
) -> Array {
    let ConvParams {
        stride,
        padding,
        dilation,
        groups,
    } = p;
    let (n, cin, l) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let (cout, cg, k) = (w.shape()[0], w.shape()[1], w.shape()[2]);
    let lout = shape[2];
    let og = cout / groups;
    let xs = x.as_slice::<T>();
    let mut outs = Vec::with_capacity(n * groups);
    for b in 0..n {
        for g in 0..groups {
            // cols[(c*k + t), o] = x[b, g*cg + c, o*stride + t*dilation - padding]
            let mut cols = vec![T::default(); cg * k * lout];
            for c in 0..cg {
                let row = &xs[(b * cin + g * cg + c) * l..][..l];
                for t in 0..k {
                    let dst = &mut cols[(c * k + t) * lout..][..lout];
                    for (o, d) in dst.iter_mut().enumerate() {
                        let pos = (o * stride + t * dilation) as isize - padding as isize;
                        if pos >= 0 && (pos as usize) < l {
                            *d = row[pos as usize];
                        }
                    }
                }
            }
            let cols = Array::from_slice(&cols, &[cg * k, lout]);
            let wg = Array::from_slice(
                &w.as_slice::<T>()[g * og * cg * k..][..og * cg * k],
                &[og, cg * k],
            );
            outs.push(matmul(&wg, &cols, false, false, &[og, lout], dtype));
        }
    }
    let mut out = Array::uninit(shape, dtype);
    let dst = out.as_mut_slice::<T>().unwrap();
    for (i, o) in outs.iter().enumerate() {
        dst[i * og * lout..][..og * lout].copy_from_slice(o.as_slice::<T>());
    }
    out
}
