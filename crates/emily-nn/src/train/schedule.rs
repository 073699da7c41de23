//! Learning-rate schedules: a rate per optimizer step.

/// A learning rate as a function of the step (0-based).
pub trait Schedule: Send + Sync {
    /// The rate for `step`.
    fn lr(&self, step: u64) -> f64;
}

/// The same rate at every step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Constant(pub f64);

impl Schedule for Constant {
    fn lr(&self, _step: u64) -> f64 {
        self.0
    }
}

/// Linear warmup from `peak / warmup` to `peak` over `warmup` steps, then a
/// half-cosine decay to `floor` at step `total` (and `floor` after).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupCosine {
    /// The rate at the end of the warmup.
    pub peak: f64,
    /// The final rate.
    pub floor: f64,
    /// Steps of linear warmup.
    pub warmup: u64,
    /// The step at which the decay reaches `floor`.
    pub total: u64,
}

impl WarmupCosine {
    /// Warmup over `warmup` steps to `peak`, cosine to zero at `total`.
    pub fn new(peak: f64, warmup: u64, total: u64) -> WarmupCosine {
        WarmupCosine {
            peak,
            floor: 0.0,
            warmup,
            total,
        }
    }

    /// The same schedule ending at `floor` instead of zero.
    pub fn floor(mut self, floor: f64) -> WarmupCosine {
        self.floor = floor;
        self
    }
}

impl Schedule for WarmupCosine {
    fn lr(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        if step >= self.total {
            return self.floor;
        }
        let span = (self.total - self.warmup).max(1) as f64;
        let t = (step - self.warmup) as f64 / span;
        self.floor + 0.5 * (self.peak - self.floor) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}
