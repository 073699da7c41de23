//! Dropout: identity in inference; in training, zeroes elements with
//! probability `rate` and scales the rest by `1/(1-rate)`.

use emily::Tensor;

use super::Ctx;
use crate::build::Mode;

/// Dropout options.
#[derive(Clone, Debug, PartialEq)]
pub struct DropoutOptions {
    /// Probability of zeroing an element, in `[0, 1)`.
    pub rate: f32,
}

impl DropoutOptions {
    pub(crate) fn validate(&self) -> Result<(), String> {
        check_rate(self.rate)
    }

    pub(crate) fn forward(&self, ctx: &mut Ctx<'_>) -> emily::Result<Tensor> {
        let x = ctx.inputs[0].clone();
        if ctx.mode == Mode::Inference || self.rate == 0.0 {
            return Ok(x);
        }
        let noise = ctx.noise(x.shape())?;
        apply(&x, &noise, self.rate)
    }
}

/// `rate` must be in `[0, 1)`.
pub(crate) fn check_rate(rate: f32) -> Result<(), String> {
    if !(0.0..1.0).contains(&rate) {
        return Err(format!("dropout rate {rate} is not in [0, 1)"));
    }
    Ok(())
}

/// `x · (noise ≥ rate) / (1 − rate)` with `noise` uniform in `[0, 1)`.
pub(crate) fn apply(x: &Tensor, noise: &Tensor, rate: f32) -> emily::Result<Tensor> {
    let keep = noise.ge_scalar(rate as f64)?;
    let scale = x.scalar_like(1.0 / (1.0 - rate as f64));
    let zero = x.scalar_like(0.0);
    x.mul(&Tensor::where_cond(&keep, &scale, &zero)?)
}
