//! Gather along an axis and the dynamic slice update.

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
