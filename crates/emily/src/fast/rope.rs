//! Rotary position embedding over the last axis of `(…, T, D)`.

use super::{build, to_compute, FastOp, Kernels, PositionsKind};
use crate::error::{dtype_err, invalid, shape_err, Result};
use crate::{DType, Tensor};

/// Where RoPE positions come from.
#[derive(Clone, Debug)]
pub enum RopeOffset {
    /// Positions `offset..offset+T` with a constant offset.
    Static(usize),
    /// Positions `offset..offset+T` with the offset in a one-element integer
    /// tensor (a KV-cache position that changes per decode step without
    /// changing the graph).
    Scalar(Tensor),
    /// One integer position per token, shape `(T,)`.
    Positions(Tensor),
}

/// RoPE options.
#[derive(Clone, Debug)]
pub struct RopeOptions {
    /// Leading features that rotate (even, ≤ D); the rest pass through.
    pub dims: usize,
    /// Interleaved pairs (2i, 2i+1) (GPT-J, MLX `traditional`) instead of split
    /// halves (i, i + dims/2) (Llama/GPT-NeoX "rotate half").
    pub traditional: bool,
    /// Frequency base: inverse frequency i is `base^(-2i/dims)`.
    pub base: f32,
    /// Position multiplier (linear scaling uses 1/factor).
    pub scale: f32,
    /// Positions.
    pub offset: RopeOffset,
}

impl RopeOptions {
    /// Split-half RoPE over `dims` features, base 10000, scale 1, offset 0.
    pub fn new(dims: usize) -> RopeOptions {
        RopeOptions {
            dims,
            traditional: false,
            base: 10000.0,
            scale: 1.0,
            offset: RopeOffset::Static(0),
        }
    }
}

/// Rotates `x` `(…, T, D)` by angle `position · scale · base^(-2i/dims)`.
pub fn rope(x: &Tensor, opts: RopeOptions) -> Result<Tensor> {
    build_rope(Kernels::Fused, x, None, opts)
}

/// RoPE with precomputed inverse frequencies `freqs` (`dims/2` of them; Llama-3,
/// linear or dynamic scaling); `opts.base` is ignored.
pub fn rope_with_freqs(x: &Tensor, freqs: &Tensor, opts: RopeOptions) -> Result<Tensor> {
    build_rope(Kernels::Fused, x, Some(freqs), opts)
}

pub(super) fn build_rope(
    kernels: Kernels,
    x: &Tensor,
    freqs: Option<&Tensor>,
    opts: RopeOptions,
) -> Result<Tensor> {
    if !x.dtype().is_float() {
        return Err(dtype_err("rope", x.dtype(), ", expected a float type"));
    }
    if x.rank() < 2 {
        return Err(shape_err(
            "rope",
            format!("x must be (…, T, D), got {:?}", x.shape()),
        ));
    }
    let (t, d) = (x.shape()[x.rank() - 2], x.shape()[x.rank() - 1]);
    if opts.dims == 0 || !opts.dims.is_multiple_of(2) || opts.dims > d {
        return Err(invalid(
            "rope",
            format!(
                "dims {} must be even, positive and <= the last axis {d}",
                opts.dims
            ),
        ));
    }
    let mut inputs = vec![x.clone()];
    let positions = match &opts.offset {
        RopeOffset::Static(o) => PositionsKind::Offset(*o),
        RopeOffset::Scalar(o) => {
            if o.numel() != 1 || !matches!(o.dtype(), DType::I32 | DType::I64) {
                return Err(shape_err(
                    "rope",
                    format!(
                        "offset must be a one-element i32/i64 tensor, got {:?} {}",
                        o.shape(),
                        o.dtype()
                    ),
                ));
            }
            inputs.push(o.clone());
            PositionsKind::OffsetTensor
        }
        RopeOffset::Positions(p) => {
            if p.shape() != [t] || !matches!(p.dtype(), DType::I32 | DType::I64) {
                return Err(shape_err(
                    "rope",
                    format!(
                        "positions must be i32/i64 of shape [{t}], got {:?} {}",
                        p.shape(),
                        p.dtype()
                    ),
                ));
            }
            inputs.push(p.clone());
            PositionsKind::PerToken
        }
    };
    if let Some(f) = freqs {
        if f.shape() != [opts.dims / 2] || !f.dtype().is_float() {
            return Err(shape_err(
                "rope",
                format!(
                    "freqs must be float of shape [{}], got {:?} {}",
                    opts.dims / 2,
                    f.shape(),
                    f.dtype()
                ),
            ));
        }
        inputs.push(f.clone());
    }
    let op = FastOp::Rope {
        dims: opts.dims,
        traditional: opts.traditional,
        base: opts.base,
        scale: opts.scale,
        positions,
        has_freqs: freqs.is_some(),
    };
    build(kernels, op, inputs, x.shape().to_vec(), x.dtype())
}

/// Composed RoPE. Angles, cosines and sines are computed in f64 then rounded
/// to f32, so large positions stay accurate.
pub(super) fn decompose(op: &FastOp, inputs: &[Tensor]) -> Result<Tensor> {
    let FastOp::Rope {
        dims,
        traditional,
        base,
        scale,
        positions,
        has_freqs,
    } = *op
    else {
        unreachable!("rope::decompose called with {op:?}")
    };
    let x0 = &inputs[0];
    let x = to_compute(x0)?;
    let r = x.rank();
    let (t, d) = (x.shape()[r - 2], x.shape()[r - 1]);
    let half = dims / 2;
    let arange_t = Tensor::arange_on(t, DType::F64, x.device())?;
    let pos = match positions {
        PositionsKind::Offset(o) => arange_t.add_scalar(o as f64)?,
        PositionsKind::OffsetTensor => {
            arange_t.add(&inputs[1].cast(DType::F64)?.reshape_to(&[])?)?
        }
        PositionsKind::PerToken => inputs[1].cast(DType::F64)?,
    };
    let inv = if has_freqs {
        inputs[inputs.len() - 1].cast(DType::F64)?
    } else {
        let k = -2.0 * (base as f64).ln() / dims as f64;
        Tensor::arange_on(half, DType::F64, x.device())?
            .mul_scalar(k)?
            .exp()?
    };
    let angle = pos
        .reshape_to(&[t, 1])?
        .mul_scalar(scale as f64)?
        .mul(&inv.reshape_to(&[1, half])?)?;
    let cos = angle.cos()?.cast(x.dtype())?;
    let sin = angle.sin()?.cast(x.dtype())?;
    let xr = if dims < d {
        x.narrow(-1, 0, dims)?
    } else {
        x.clone()
    };
    let rotated = if traditional {
        let mut pairs_shape = xr.shape().to_vec();
        pairs_shape[r - 1] = half;
        pairs_shape.push(2);
        let pairs = xr.reshape_to(&pairs_shape)?;
        let xe = pairs.narrow(-1, 0, 1)?.squeeze(&[-1])?;
        let xo = pairs.narrow(-1, 1, 1)?.squeeze(&[-1])?;
        let oe = xe.mul(&cos)?.sub(&xo.mul(&sin)?)?;
        let oo = xo.mul(&cos)?.add(&xe.mul(&sin)?)?;
        Tensor::stack(&[&oe, &oo], -1)?.reshape_to(xr.shape())?
    } else {
        let x1 = xr.narrow(-1, 0, half)?;
        let x2 = xr.narrow(-1, half, half)?;
        let o1 = x1.mul(&cos)?.sub(&x2.mul(&sin)?)?;
        let o2 = x2.mul(&cos)?.add(&x1.mul(&sin)?)?;
        Tensor::concat(&[&o1, &o2], -1)?
    };
    let out = if dims < d {
        Tensor::concat(&[&rotated, &x.narrow(-1, dims, d - dims)?], -1)?
    } else {
        rotated
    };
    out.cast(x0.dtype())
}

/// Composed [`FastOp::RopeHeads`]: the `(0, 2, 1, 3)` permute before
/// (`to_heads`) or after the rotation.
pub(super) fn decompose_heads(
    base: f32,
    scale: f32,
    to_heads: bool,
    inputs: &[Tensor],
) -> Result<Tensor> {
    const SWAP: [usize; 4] = [0, 2, 1, 3];
    let x = &inputs[0];
    let rope = FastOp::Rope {
        dims: *x.shape().last().unwrap_or(&0),
        traditional: false,
        base,
        scale,
        positions: PositionsKind::Offset(0),
        has_freqs: false,
    };
    if to_heads {
        decompose(&rope, &[x.permute(&SWAP)?])
    } else {
        decompose(&rope, inputs)?.permute(&SWAP)
    }
}
