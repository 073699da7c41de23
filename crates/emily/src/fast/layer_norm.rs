//! LayerNorm: `(x - mean) / sqrt(var + eps) * weight + bias` over the last axis.

use super::{build, to_compute, FastOp, Kernels};
use crate::error::{dtype_err, shape_err, Result};
use crate::Tensor;

/// Layer normalisation over the last axis (biased variance), with optional
/// weight and bias of the last axis's size. Computed in f32 for half inputs.
pub fn layer_norm(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    build_layer_norm(Kernels::Fused, x, weight, bias, eps)
}

pub(super) fn build_layer_norm(
    kernels: Kernels,
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    if !x.dtype().is_float() || x.rank() == 0 {
        return Err(dtype_err(
            "layer_norm",
            x.dtype(),
            format!(" or rank-0 input {:?}", x.shape()),
        ));
    }
    let d = x.shape()[x.rank() - 1];
    let mut inputs = vec![x.clone()];
    for (name, t) in [("weight", weight), ("bias", bias)] {
        if let Some(t) = t {
            if t.numel() != d || t.rank() != 1 {
                return Err(shape_err(
                    "layer_norm",
                    format!("{name} has shape {:?}, x's last axis is {d}", t.shape()),
                ));
            }
            if t.dtype() != x.dtype() {
                return Err(dtype_err(
                    "layer_norm",
                    t.dtype(),
                    format!(" for the {name}, x is {}", x.dtype()),
                ));
            }
            inputs.push(t.clone());
        }
    }
    let op = FastOp::LayerNorm {
        eps,
        has_weight: weight.is_some(),
        has_bias: bias.is_some(),
    };
    build(kernels, op, inputs, x.shape().to_vec(), x.dtype())
}

pub(super) fn decompose(
    eps: f32,
    has_weight: bool,
    has_bias: bool,
    inputs: &[Tensor],
) -> Result<Tensor> {
    let x = to_compute(&inputs[0])?;
    let xc = x.sub(&x.mean(&[-1], true)?)?;
    let var = xc.square()?.mean(&[-1], true)?;
    let mut y = xc.mul(&var.add_scalar(eps as f64)?.rsqrt()?)?;
    let mut next = 1;
    if has_weight {
        y = y.mul(&to_compute(&inputs[next])?)?;
        next += 1;
    }
    if has_bias {
        y = y.add(&to_compute(&inputs[next])?)?;
    }
    y.cast(inputs[0].dtype())
}
