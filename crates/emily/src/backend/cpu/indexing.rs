//! Gather along an axis and the dynamic slice update.

use emily_kernels::quant::{dequantize_row, BlockFormat};

use crate::error::{invalid, Result};
use crate::shape::{contiguous_strides, numel};
use crate::{Array, DType};

fn indices_of(idx: &Array) -> Vec<i64> {
    match idx.dtype() {
        DType::I32 => idx.as_slice::<i32>().iter().map(|&v| v as i64).collect(),
        DType::I64 => idx.as_slice::<i64>().to_vec(),
        DType::U8 => idx.as_slice::<u8>().iter().map(|&v| v as i64).collect(),
        d => unreachable!("index dtype {d} rejected at build"),
    }
}

/// `x` indexed along `axis` by `idx`.
pub(crate) fn gather(x: &Array, idx: &Array, axis: usize, shape: &[usize]) -> Result<Array> {
    let ids = indices_of(idx);
    let dim = x.shape()[axis];
    if let Some(bad) = ids.iter().find(|&&i| i < 0 || i as usize >= dim) {
        return Err(invalid(
            "gather",
            format!("index {bad} out of range for axis {axis} of size {dim}"),
        ));
    }
    if let DType::Quantized(format) = x.dtype() {
        return gather_rows_quantized(x, format, &ids, axis, shape);
    }
    let elem = x.dtype().size_in_bytes();
    let outer = numel(&x.shape()[..axis]);
    let inner = numel(&x.shape()[axis + 1..]) * elem;
    let mut out = Array::uninit(shape, x.dtype())?;
    let src = x.bytes();
    let dst = out.bytes_mut().unwrap();
    let mut at = 0;
    for o in 0..outer {
        for &i in &ids {
            let s = (o * dim + i as usize) * inner;
            dst[at..at + inner].copy_from_slice(&src[s..s + inner]);
            at += inner;
        }
    }
    Ok(out)
}

/// Rows of a block-quantised `x` gathered along `axis` (before the block
/// axis) and dequantised to f32: only the looked-up rows are touched.
fn gather_rows_quantized(
    x: &Array,
    format: BlockFormat,
    ids: &[i64],
    axis: usize,
    shape: &[usize],
) -> Result<Array> {
    let xs = x.shape();
    let (dim, last) = (xs[axis], xs[xs.len() - 1]);
    let outer = numel(&xs[..axis]);
    // One gathered entry: the rows of x[.., i, ..] (whole rows of blocks).
    let elems = numel(&xs[axis + 1..]);
    let bytes = DType::Quantized(format).storage_bytes(&xs[axis + 1..])?;
    let mut out = Array::uninit(shape, DType::F32)?;
    let (src, dst) = (x.bytes(), out.as_mut_slice::<f32>().expect("fresh array"));
    let mut at = 0;
    for o in 0..outer {
        for &i in ids {
            let s = (o * dim + i as usize) * bytes;
            dequantize_row(format, &src[s..s + bytes], &mut dst[at..at + elems])
                .map_err(|e| invalid("gather", format!("rows of {last}: {e}")))?;
            at += elems;
        }
    }
    Ok(out)
}

/// `target` with `update` written at the run-time `offset` along `axis`.
pub(crate) fn slice_update(
    target: Array,
    update: &Array,
    offset: &Array,
    axis: usize,
) -> Result<Array> {
    let off = indices_of(offset)[0];
    let (dim, len) = (target.shape()[axis], update.shape()[axis]);
    if off < 0 || off as usize + len > dim {
        return Err(invalid(
            "slice_update",
            format!("offset {off} + update length {len} exceeds axis {axis} of size {dim}"),
        ));
    }
    let shape = target.shape().to_vec();
    let mut out = match target.donate(&shape, update.dtype()) {
        Ok(a) => a,
        Err(t) => {
            let mut a = Array::uninit(&shape, t.dtype())?;
            a.bytes_mut().unwrap().copy_from_slice(t.bytes());
            a
        }
    };
    let ds = contiguous_strides(&shape);
    let us = contiguous_strides(update.shape());
    super::layout::strided_copy(
        update,
        0,
        &us,
        update.shape(),
        out.bytes_mut().unwrap(),
        off as usize * ds[axis],
        &ds,
    );
    Ok(out)
}

/// `target` with `updates` added at `idx` along `axis` (repeated indices
/// accumulate, in index order). Half types accumulate in f32.
pub(crate) fn scatter_add(
    target: Array,
    idx: &Array,
    updates: &Array,
    axis: usize,
) -> Result<Array> {
    let ids = indices_of(idx);
    let dim = target.shape()[axis];
    if let Some(bad) = ids.iter().find(|&&i| i < 0 || i as usize >= dim) {
        return Err(invalid(
            "scatter_add",
            format!("index {bad} out of range for axis {axis} of size {dim}"),
        ));
    }
    let shape = target.shape().to_vec();
    let dtype = target.dtype();
    let outer = numel(&shape[..axis]);
    let inner = numel(&shape[axis + 1..]);
    let lay = ScatterLayout {
        ids: &ids,
        outer,
        dim,
        inner,
    };
    Ok(match dtype {
        DType::F16 | DType::BF16 => {
            let t = super::convert(&target, DType::F32)?;
            drop(target);
            let out = lay.run::<f32>(t, &super::convert(updates, DType::F32)?)?;
            super::convert(&out, dtype)?
        }
        DType::F32 => lay.run::<f32>(target, updates)?,
        DType::F64 => lay.run::<f64>(target, updates)?,
        DType::I32 => lay.run::<i32>(target, updates)?,
        DType::I64 => lay.run::<i64>(target, updates)?,
        DType::U8 => lay.run::<u8>(target, updates)?,
        DType::Bool | DType::Quantized(_) => {
            unreachable!("{dtype} scatter_add rejected at build")
        }
    })
}

/// The index arithmetic of a scatter-add.
struct ScatterLayout<'a> {
    ids: &'a [i64],
    outer: usize,
    dim: usize,
    inner: usize,
}

impl ScatterLayout<'_> {
    fn run<T: crate::Element + Copy + std::ops::AddAssign>(
        &self,
        target: Array,
        updates: &Array,
    ) -> Result<Array> {
        let shape = target.shape().to_vec();
        let mut out = match target.donate(&shape, T::DTYPE) {
            Ok(a) => a,
            Err(t) => {
                let mut a = Array::uninit(&shape, T::DTYPE)?;
                a.bytes_mut().unwrap().copy_from_slice(t.bytes());
                a
            }
        };
        let dst = out.as_mut_slice::<T>().expect("unique output");
        let src = updates.as_slice::<T>();
        let n = self.ids.len();
        for o in 0..self.outer {
            for (j, &i) in self.ids.iter().enumerate() {
                let d = (o * self.dim + i as usize) * self.inner;
                let s = (o * n + j) * self.inner;
                for (a, &b) in dst[d..d + self.inner]
                    .iter_mut()
                    .zip(&src[s..s + self.inner])
                {
                    *a += b;
                }
            }
        }
        Ok(out)
    }
}
