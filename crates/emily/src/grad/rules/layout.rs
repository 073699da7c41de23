//! Layout rules: permute, slice, concat and pad (reshape and broadcast are
//! one-liners in the dispatcher).

use crate::error::Result;
use crate::Tensor;

/// The inverse permutation applied to `g`.
pub(super) fn permute(perm: &[usize], g: &Tensor) -> Result<Tensor> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    g.permute(&inv)
}

/// `g` (length `n` along `axis`) with `step − 1` zeros after every element
/// but the last: length `(n − 1)·step + 1`. `n` must be positive.
pub(super) fn dilate(g: &Tensor, axis: usize, step: usize) -> Result<Tensor> {
    if step == 1 {
        return Ok(g.clone());
    }
    let n = g.shape()[axis];
    let mut split = g.shape().to_vec();
    split.insert(axis + 1, 1);
    let mut pads = vec![(0, 0); split.len()];
    pads[axis + 1] = (0, step - 1);
    let mut joined = g.shape().to_vec();
    joined[axis] = n * step;
    g.reshape_to(&split)?
        .pad(&pads, 0.0)?
        .reshape_to(&joined)?
        .narrow(axis as isize, 0, (n - 1) * step + 1)
}

/// The gradient of a strided slice: `g` spread back to its positions, zeros
/// elsewhere.
pub(super) fn slice(x: &Tensor, starts: &[usize], steps: &[usize], g: &Tensor) -> Result<Tensor> {
    if g.numel() == 0 {
        return Tensor::full(x.shape(), 0.0, x.dtype(), x.device());
    }
    let mut spread = g.clone();
    let mut pads = Vec::with_capacity(x.rank());
    for axis in 0..x.rank() {
        spread = dilate(&spread, axis, steps[axis])?;
        let covered = spread.shape()[axis];
        pads.push((starts[axis], x.shape()[axis] - starts[axis] - covered));
    }
    spread.pad(&pads, 0.0)
}

/// The gradients of a concatenation: `g`'s pieces along `axis`.
pub(super) fn concat(inputs: &[Tensor], axis: usize, g: &Tensor) -> Result<Vec<Tensor>> {
    let mut at = 0;
    inputs
        .iter()
        .map(|t| {
            let len = t.shape()[axis];
            let piece = g.narrow(axis as isize, at, len);
            at += len;
            piece
        })
        .collect()
}

/// The gradient of a constant pad: the unpadded window of `g`.
pub(super) fn pad(x: &Tensor, pads: &[(usize, usize)], g: &Tensor) -> Result<Tensor> {
    let starts: Vec<usize> = pads.iter().map(|p| p.0).collect();
    let ends: Vec<usize> = starts.iter().zip(x.shape()).map(|(s, d)| s + d).collect();
    g.slice(&starts, &ends, &vec![1; x.rank()])
}
