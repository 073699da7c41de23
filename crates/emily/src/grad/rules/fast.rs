//! Fast ops differentiate through their decomposition: the forward ran the
//! fused kernel, the backward is the composed graph's VJP. RoPE is the
//! exception: a rotation's transpose is the rotation by the opposite angle,
//! so its gradient is the same fused kernel with the position scale negated.

use crate::error::Result;
use crate::fast::{FastOp, Kernels};
use crate::Tensor;

/// The gradients of a fast op: RoPE's by the inverse rotation (when only `x`
/// needs one), every other op's by its decomposition rebuilt on the same
/// inputs, then walked back to them.
pub(super) fn vjp(
    op: &FastOp,
    inputs: &[Tensor],
    g: &Tensor,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    if let FastOp::Rope { scale, .. } = op {
        if !needs[1..].iter().any(|&n| n) {
            return rope_vjp(op, *scale, inputs, g, needs.len());
        }
    }
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

/// `x̄ = R(θ)ᵀ·ȳ = R(−θ)·ȳ`: RoPE of the cotangent with the angle's scale
/// negated (cos is even, sin odd), over the same positions and frequencies;
/// features past `dims` pass through in both directions.
fn rope_vjp(
    op: &FastOp,
    scale: f32,
    inputs: &[Tensor],
    g: &Tensor,
    n: usize,
) -> Result<Vec<Option<Tensor>>> {
    let FastOp::Rope {
        dims,
        traditional,
        base,
        positions,
        has_freqs,
        ..
    } = op.clone()
    else {
        unreachable!("rope_vjp called with {op:?}")
    };
    let inverse = FastOp::Rope {
        dims,
        traditional,
        base,
        scale: -scale,
        positions,
        has_freqs,
    };
    let mut ins = inputs.to_vec();
    ins[0] = g.cast(inputs[0].dtype())?;
    let shape = inputs[0].shape().to_vec();
    let dtype = inputs[0].dtype();
    let gx = crate::fast::build(Kernels::Fused, inverse, ins, shape, dtype)?;
    Ok(std::iter::once(Some(gx))
        .chain(std::iter::repeat(None))
        .take(n)
        .collect())
}
