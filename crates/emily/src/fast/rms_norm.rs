//! RMSNorm: `x / sqrt(mean(x²) + eps) * weight` over the last axis.

use super::{build, to_compute, FastOp, Kernels};
use crate::error::{dtype_err, shape_err, Result};
use crate::Tensor;

/// RMS normalisation over the last axis, with an optional weight of the last
/// axis's size. Computed in f32 for half inputs; output has `x`'s dtype.
pub fn rms_norm(x: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    build_rms_norm(Kernels::Fused, x, weight, eps)
}

pub(super) fn build_rms_norm(
    kernels: Kernels,
    x: &Tensor,
    weight: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    if !x.dtype().is_float() || x.rank() == 0 {
        return Err(dtype_err(
            "rms_norm",
            x.dtype(),
            format!(" or rank-0 input {:?}", x.shape()),
        ));
    }
    let d = x.shape()[x.rank() - 1];
    let mut inputs = vec![x.clone()];
    if let Some(w) = weight {
        if w.numel() != d || w.rank() != 1 {
            return Err(shape_err(
                "rms_norm",
                format!("weight has shape {:?}, x's last axis is {d}", w.shape()),
            ));
        }
        if w.dtype() != x.dtype() {
            return Err(dtype_err(
                "rms_norm",
                w.dtype(),
                format!(" for the weight, x is {}", x.dtype()),
            ));
        }
        inputs.push(w.clone());
    }
    build(
        kernels,
        FastOp::RmsNorm {
            eps,
            has_weight: weight.is_some(),
        },
        inputs,
        x.shape().to_vec(),
        x.dtype(),
    )
}

pub(super) fn decompose(eps: f32, inputs: &[Tensor]) -> Result<Tensor> {
    let x = to_compute(&inputs[0])?;
    let ms = x.square()?.mean(&[-1], true)?;
    let mut y = x.mul(&ms.add_scalar(eps as f64)?.rsqrt()?)?;
    if let Some(w) = inputs.get(1) {
        y = y.mul(&to_compute(w)?)?;
    }
    y.cast(inputs[0].dtype())
}

/// [`super::FastOp::RmsNormGrad`] composed: the vector-Jacobian product of
/// [`decompose`] for `[x, weight?]` given `d_out` (the sum of its
/// `dy_parts` inputs; x's plus the residual input, when there is one),
/// flattened and concatenated.
pub(super) fn decompose_grad(
    eps: f32,
    has_weight: bool,
    dy_parts: usize,
    has_residual: bool,
    inputs: &[Tensor],
) -> Result<Tensor> {
    let n = 1 + has_weight as usize;
    let mut d_out = inputs[n].clone();
    for part in &inputs[n + 1..n + dy_parts] {
        d_out = d_out.add(part)?;
    }
    let norm = |a: &[Tensor]| Ok(vec![decompose(eps, a)?]);
    let (_, mut grads) = crate::grad::vjp(norm, &inputs[..n], &[d_out])?;
    if has_residual {
        grads[0] = grads[0].add(&inputs[n + dy_parts])?;
    }
    let flat = grads
        .iter()
        .map(|g| g.flatten())
        .collect::<Result<Vec<_>>>()?;
    Tensor::concat(&flat.iter().collect::<Vec<_>>(), 0)
}
