//! Data movement, one raw element at a time: permute, broadcast, slice,
//! concat, pad, gather and the dynamic slice update.

use super::element::{offset, ravel, unravel};
use super::{Out, View};
use crate::error::{invalid, Result};
use crate::shape::{contiguous_strides, numel};
use crate::DType;

/// Copies every element of `shape` from `x` at `base + offset(strides)`.
fn gather_view(x: &View, base: usize, strides: &[usize], shape: &[usize]) -> Result<Out> {
    let mut out = Out::new(shape, x.dtype)?;
    for i in 0..numel(shape) {
        out.set_raw(i, x.raw(base + offset(i, shape, strides)));
    }
    Ok(out)
}

/// Output axis i is input axis `perm[i]`.
pub(super) fn permute(x: &View, perm: &[usize], shape: &[usize]) -> Result<Out> {
    let own = contiguous_strides(x.shape);
    let strides: Vec<usize> = perm.iter().map(|&p| own[p]).collect();
    gather_view(x, 0, &strides, shape)
}

/// Numpy broadcast to `shape`.
pub(super) fn broadcast(x: &View, shape: &[usize]) -> Result<Out> {
    gather_view(x, 0, &x.strides_for(shape), shape)
}

/// Strided slice starting at `starts` with `steps`.
pub(super) fn slice(x: &View, starts: &[usize], steps: &[usize], shape: &[usize]) -> Result<Out> {
    let own = contiguous_strides(x.shape);
    let base = ravel(starts, x.shape);
    let strides: Vec<usize> = steps.iter().zip(&own).map(|(s, o)| s * o).collect();
    gather_view(x, base, &strides, shape)
}

/// Concatenation along `axis`.
pub(super) fn concat(inputs: &[View], axis: usize, shape: &[usize], dtype: DType) -> Result<Out> {
    let mut out = Out::new(shape, dtype)?;
    let mut at = 0;
    for x in inputs {
        for i in 0..x.numel() {
            let mut idx = unravel(i, x.shape);
            idx[axis] += at;
            out.set_raw(ravel(&idx, shape), x.raw(i));
        }
        at += x.shape[axis];
    }
    Ok(out)
}

/// Constant padding, `(before, after)` per axis.
pub(super) fn pad(x: &View, pads: &[(usize, usize)], value: f64, shape: &[usize]) -> Result<Out> {
    let mut out = Out::new(shape, x.dtype)?;
    for i in 0..numel(shape) {
        out.set(i, value);
    }
    for i in 0..x.numel() {
        let idx: Vec<usize> = unravel(i, x.shape)
            .iter()
            .zip(pads)
            .map(|(i, (before, _))| i + before)
            .collect();
        out.set_raw(ravel(&idx, shape), x.raw(i));
    }
    Ok(out)
}

/// `x` indexed along `axis` by the integer tensor `idx`, into `dtype` (x's
/// own, or f32 for a block-quantised table: its rows are dequantised).
pub(super) fn gather(
    x: &View,
    idx: &View,
    axis: usize,
    shape: &[usize],
    dtype: DType,
) -> Result<Out> {
    let dim = x.shape[axis];
    let mut out = Out::new(shape, dtype)?;
    let k = idx.shape.len();
    for o in 0..numel(shape) {
        let oi = unravel(o, shape);
        // Output axes: x's axes before `axis`, idx's axes, x's axes after it.
        let p = ravel(&oi[axis..axis + k], idx.shape);
        let i = idx.index(p);
        if i < 0 || i as usize >= dim {
            return Err(invalid(
                "gather",
                format!("index {i} out of range for axis {axis} of size {dim}"),
            ));
        }
        let mut xi = oi[..axis].to_vec();
        xi.push(i as usize);
        xi.extend_from_slice(&oi[axis + k..]);
        let at = ravel(&xi, x.shape);
        if x.dtype.is_quantized() {
            out.set(o, x.get(at));
        } else {
            out.set_raw(o, x.raw(at));
        }
    }
    Ok(out)
}

/// `target` with `update` written at the run-time `offset` along `axis`.
pub(super) fn slice_update(
    target: &View,
    update: &View,
    offset: &View,
    axis: usize,
) -> Result<Out> {
    let off = offset.index(0);
    let (dim, len) = (target.shape[axis], update.shape[axis]);
    if off < 0 || off as usize + len > dim {
        return Err(invalid(
            "slice_update",
            format!("offset {off} + update length {len} exceeds axis {axis} of size {dim}"),
        ));
    }
    let mut out = Out::copy_of(target);
    for i in 0..update.numel() {
        let mut idx = unravel(i, update.shape);
        idx[axis] += off as usize;
        out.set_raw(ravel(&idx, target.shape), update.raw(i));
    }
    Ok(out)
}

/// `target` with `updates` added at `idx` along `axis` (repeated indices
/// accumulate), summed in f64 and rounded once.
pub(super) fn scatter_add(target: &View, idx: &View, updates: &View, axis: usize) -> Result<Out> {
    let dim = target.shape[axis];
    let k = idx.shape.len();
    let mut acc: Vec<f64> = (0..target.numel()).map(|i| target.get(i)).collect();
    for u in 0..updates.numel() {
        let ui = unravel(u, updates.shape);
        let i = idx.index(ravel(&ui[axis..axis + k], idx.shape));
        if i < 0 || i as usize >= dim {
            return Err(invalid(
                "scatter_add",
                format!("index {i} out of range for axis {axis} of size {dim}"),
            ));
        }
        let mut ti = ui[..axis].to_vec();
        ti.push(i as usize);
        ti.extend_from_slice(&ui[axis + k..]);
        acc[ravel(&ti, target.shape)] += updates.get(u);
    }
    let mut out = Out::new(target.shape, target.dtype)?;
    for (i, v) in acc.into_iter().enumerate() {
        out.set(i, v);
    }
    Ok(out)
}

/// Uniform `[0, 1)` samples: the catalogue's generator, element by element.
pub(super) fn random_uniform(
    key: &View,
    stream: u64,
    shape: &[usize],
    dtype: DType,
) -> Result<Out> {
    let k = crate::ops::random::stream_key(key.index(0), stream);
    let mut out = Out::new(shape, dtype)?;
    for i in 0..numel(shape) {
        out.set(i, crate::ops::random::uniform_value(k, i, dtype));
    }
    Ok(out)
}
