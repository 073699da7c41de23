//! Indexing rules: gather ↔ scatter-add, and the dynamic slice update.

use crate::error::Result;
use crate::{DType, Tensor};

/// The gradient of `gather(x, idx, axis)`: `g` added back at the gathered rows.
pub(super) fn gather(x: &Tensor, idx: &Tensor, axis: usize, g: &Tensor) -> Result<Tensor> {
    Tensor::full(x.shape(), 0.0, x.dtype(), x.device())?.scatter_add(idx, g, axis as isize)
}

/// The gradients of `scatter_add(target, idx, updates, axis)`: `g` for the
/// target, `g` gathered at `idx` for the updates.
pub(super) fn scatter_add(
    idx: &Tensor,
    axis: usize,
    g: &Tensor,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let gu = needs[2].then(|| g.gather(idx, axis as isize)).transpose()?;
    Ok(vec![Some(g.clone()), None, gu])
}

/// The gradients of `slice_update(target, update, offset, axis)`: `g` with
/// the overwritten window zeroed for the target, that window for the update.
pub(super) fn slice_update(
    inputs: &[Tensor],
    axis: usize,
    g: &Tensor,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let (update, offset) = (&inputs[1], &inputs[2]);
    let a = axis as isize;
    let gt = needs[0]
        .then(|| {
            let zeros = Tensor::full(update.shape(), 0.0, g.dtype(), g.device())?;
            g.slice_update(&zeros, offset, a)
        })
        .transpose()?;
    let gu = needs[1]
        .then(|| {
            let start = offset.cast(DType::I64)?.reshape_to(&[])?;
            let rows =
                Tensor::arange_on(update.shape()[axis], DType::I64, g.device())?.add(&start)?;
            g.gather(&rows, a)
        })
        .transpose()?;
    Ok(vec![gt, gu, None])
}
