//! Dynamic loss scaling for half-precision training: the loss is multiplied
//! by a scale before the backward so small gradients survive bf16/f16; the
//! gradients are divided by it again in f32. A step whose gradients
//! overflowed (inf or NaN) is skipped and the scale halved; after
//! `growth_interval` clean steps in a row the scale doubles.

/// The loss scale and its update rule.
#[derive(Clone, Debug, PartialEq)]
pub struct LossScaler {
    scale: f64,
    growth_interval: u64,
    clean_steps: u64,
    min_scale: f64,
    max_scale: f64,
}

impl LossScaler {
    /// Starts at `initial` (a power of two keeps scaling exact), doubling
    /// after `growth_interval` clean steps.
    pub fn new(initial: f64, growth_interval: u64) -> LossScaler {
        LossScaler {
            scale: initial,
            growth_interval: growth_interval.max(1),
            clean_steps: 0,
            min_scale: 1.0,
            max_scale: 2f64.powi(24),
        }
    }

    /// The current scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Clean steps since the last change of scale.
    pub fn clean_steps(&self) -> u64 {
        self.clean_steps
    }

    /// Records a step's outcome; returns whether its update should be
    /// applied (`false` when the gradients were not finite).
    pub fn update(&mut self, grads_finite: bool) -> bool {
        if !grads_finite {
            self.scale = (self.scale * 0.5).max(self.min_scale);
            self.clean_steps = 0;
            return false;
        }
        self.clean_steps += 1;
        if self.clean_steps >= self.growth_interval {
            self.scale = (self.scale * 2.0).min(self.max_scale);
            self.clean_steps = 0;
        }
        true
    }

    /// Restores a scaler from a checkpoint's scale and clean-step count.
    pub fn restore(&mut self, scale: f64, clean_steps: u64) {
        self.scale = scale;
        self.clean_steps = clean_steps;
    }
}

impl Default for LossScaler {
    /// 2^16, growing every 2000 clean steps (the usual recipe).
    fn default() -> LossScaler {
        LossScaler::new(65536.0, 2000)
    }
}
