//! RMS normalisation: `x / sqrt(mean(x²) + eps) · weight` over one axis.

use emily::Tensor;

use super::layer_norm::along;
use super::{upcast, Ctx};
use crate::params::{ParamInit, ParamSpec};

/// Options of an RMS norm. Parameter: `weight` `(dim)`.
#[derive(Clone, Debug, PartialEq)]
pub struct RmsNormOptions {
    /// Size of the normalised axis.
    pub dim: usize,
    /// Added to the mean square.
    pub eps: f32,
    /// The normalised axis (negative counts from the end). Only the last
    /// axis has a fused form.
    pub axis: isize,
    /// Whether a `weight` multiplies the result.
    pub weight: bool,
}

impl RmsNormOptions {
    /// Over the last axis, eps 1e-6, with a weight.
    pub fn new(dim: usize) -> RmsNormOptions {
        RmsNormOptions {
            dim,
            eps: 1e-6,
            axis: -1,
            weight: true,
        }
    }

    /// Sets eps.
    pub fn eps(mut self, eps: f32) -> RmsNormOptions {
        self.eps = eps;
        self
    }

    /// Sets the normalised axis.
    pub fn axis(mut self, axis: isize) -> RmsNormOptions {
        self.axis = axis;
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
        if self.weight {
            vec![ParamSpec::new("weight", vec![self.dim], ParamInit::Gain)]
        } else {
            Vec::new()
        }
    }

    pub(crate) fn forward(&self, ctx: &mut Ctx<'_>) -> emily::Result<Tensor> {
        let x = &ctx.inputs[0];
        let w = ctx.local_opt("weight", self.weight)?;
        let axis = emily::shape::normalize_axis("rms_norm", self.axis, x.rank())?;
        if ctx.fused && axis + 1 == x.rank() {
            return emily::fast::rms_norm(x, w, self.eps);
        }
        // Llama's RMSNorm: variance = x².mean; x · rsqrt(variance + eps); weight · x.
        let xf = upcast(x)?;
        let ax = [axis as isize];
        let variance = xf.square()?.mean(&ax, true)?;
        let y = xf
            .mul(&variance.add_scalar(self.eps as f64)?.rsqrt()?)?
            .cast(x.dtype())?;
        match w {
            Some(w) => along(w, axis, x.rank())?.mul(&y),
            None => Ok(y),
        }
    }
}
