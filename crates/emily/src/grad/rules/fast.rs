//! Fast ops differentiate through their decomposition: the forward ran the
//! fused kernel, the backward is the composed graph's VJP.

use crate::error::Result;
use crate::fast::FastOp;
use crate::Tensor;

/// The gradients of a fast op: its decomposition rebuilt on the same inputs,
/// then walked back to them.
pub(super) fn vjp(
    op: &FastOp,
    inputs: &[Tensor],
    g: &Tensor,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let composed = op.decompose(inputs)?;
    let wrt: Vec<Tensor> = inputs
        .iter()
        .zip(needs)
        .filter(|(_, &n)| n)
        .map(|(t, _)| t.clone())
        .collect();
    let mut grads = super::super::backward(&[composed], std::slice::from_ref(g), &wrt)?.into_iter();
    Ok(needs
        .iter()
        .map(|&n| if n { grads.next() } else { None })
        .collect())
}
