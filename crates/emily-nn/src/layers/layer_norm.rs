//! Layer normalisation: `(x − mean) / sqrt(var + eps) · weight + bias` over
//! one axis (biased variance).

use emily::Tensor;

use super::{upcast, Ctx};
use crate::params::{ParamInit, ParamSpec};

/// Options of a layer norm. Parameters: `weight` and `bias`, `(dim)` each.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNormOptions {
    /// Size of the normalised axis.
    pub dim: usize,
    /// Added to the variance.
    pub eps: f32,
    /// The normalised axis (negative counts from the end). Only the last
    /// axis has a fused form.
    pub axis: isize,
    /// Whether a `weight` multiplies the result.
    pub weight: bool,
    /// Whether a `bias` is added.
    pub bias: bool,
}

impl LayerNormOptions {
    /// Over the last axis, eps 1e-5, with weight and bias.
    pub fn new(dim: usize) -> LayerNormOptions {
        LayerNormOptions {
            dim,
            eps: 1e-5,
            axis: -1,
            weight: true,
            bias: true,
        }
    }

    /// Sets eps.
    pub fn eps(mut self, eps: f32) -> LayerNormOptions {
        self.eps = eps;
        self
    }

    /// Sets the normalised axis.
    pub fn axis(mut self, axis: isize) -> LayerNormOptions {
        self.axis = axis;
        self
    }

    /// Drops the bias.
    pub fn without_bias(mut self) -> LayerNormOptions {
        self.bias = false;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.dim == 0 || self.eps.is_nan() || self.eps < 0.0 {
            return Err(format!(
                "dim must be positive and eps non-negative, got {} and {}",
                self.dim, self.eps
            ));
        }
        Ok(())
    }

    pub(crate) fn specs(&self) -> Vec<ParamSpec> {
        let mut s = Vec::new();
        if self.weight {
            s.push(ParamSpec::new("weight", vec![self.dim], ParamInit::Gain));
        }
        if self.bias {
            s.push(ParamSpec::new("bias", vec![self.dim], ParamInit::Bias));
        }
        s
    }

    pub(crate) fn forward(&self, ctx: &mut Ctx<'_>) -> emily::Result<Tensor> {
        let x = &ctx.inputs[0];
        let w = ctx.local_opt("weight", self.weight)?;
        let b = ctx.local_opt("bias", self.bias)?;
        let axis = emily::shape::normalize_axis("layer_norm", self.axis, x.rank())?;
        if ctx.fused && axis + 1 == x.rank() {
            return emily::fast::layer_norm(x, w, b, self.eps);
        }
        composed(x, w, b, self.eps, axis)
    }
}

/// Mean, centred variance, rsqrt — as a model library writes it.
fn composed(
    x: &Tensor,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    eps: f32,
    axis: usize,
) -> emily::Result<Tensor> {
    let xf = upcast(x)?;
    let ax = [axis as isize];
    let mean = xf.mean(&ax, true)?;
    let centred = xf.sub(&mean)?;
    let var = centred.square()?.mean(&ax, true)?;
    let mut y = centred.mul(&var.add_scalar(eps as f64)?.rsqrt()?)?;
    if let Some(w) = w {
        y = y.mul(&along(&upcast(w)?, axis, x.rank())?)?;
    }
    if let Some(b) = b {
        y = y.add(&along(&upcast(b)?, axis, x.rank())?)?;
    }
    y.cast(x.dtype())
}

/// A `(dim)` vector shaped to broadcast along `axis` of a rank-`rank` tensor.
pub(crate) fn along(v: &Tensor, axis: usize, rank: usize) -> emily::Result<Tensor> {
    let mut shape = vec![v.numel()];
    shape.extend(std::iter::repeat_n(1, rank - axis - 1));
    v.reshape_to(&shape)
}
