//! One optimisation step end to end: the compiled step, overflow handling
//! with the loss scaler, gradient clipping, the schedule's rate and the
//! optimizer update.

use emily::Tensor;

use super::checkpoint::Checkpoint;
use super::optim::{clip_factor, Optimizer};
use super::scaler::LossScaler;
use super::schedule::Schedule;
use super::step::{Precision, TrainStep};
use crate::error::Result;
use crate::params::ParamStore;

/// What one [`Trainer::step`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// The step's loss.
    pub loss: f64,
    /// The global gradient norm before clipping (inf/NaN on overflow).
    pub grad_norm: f64,
    /// The learning rate used.
    pub lr: f64,
    /// True if the gradients were not finite and no update was applied.
    pub skipped: bool,
    /// The loss scale the step ran with (1 in f32).
    pub loss_scale: f64,
}

/// A training loop's state: the compiled step, the optimizer, the learning
/// rate schedule, optional clipping and (in mixed precision) the loss scaler.
pub struct Trainer {
    step_fn: TrainStep,
    optimizer: Box<dyn Optimizer>,
    schedule: Box<dyn Schedule>,
    clip: Option<f64>,
    scaler: Option<LossScaler>,
    steps: u64,
}

impl Trainer {
    /// A trainer; mixed-precision steps get a default [`LossScaler`].
    pub fn new(
        step_fn: TrainStep,
        optimizer: impl Optimizer + 'static,
        schedule: impl Schedule + 'static,
    ) -> Trainer {
        let scaler = (step_fn.precision() == Precision::MixedBf16).then(LossScaler::default);
        Trainer {
            step_fn,
            optimizer: Box::new(optimizer),
            schedule: Box::new(schedule),
            clip: None,
            scaler,
            steps: 0,
        }
    }

    /// Clips gradients to a global norm of `max_norm`.
    pub fn clip_grad_norm(mut self, max_norm: f64) -> Trainer {
        self.clip = Some(max_norm);
        self
    }

    /// Replaces the loss scaler (mixed precision only).
    pub fn loss_scaler(mut self, scaler: LossScaler) -> Trainer {
        if self.scaler.is_some() {
            self.scaler = Some(scaler);
        }
        self
    }

    /// The compiled step.
    pub fn step_fn(&self) -> &TrainStep {
        &self.step_fn
    }

    /// Steps taken so far (skipped ones included).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The loss scaler, in mixed precision.
    pub fn scaler(&self) -> Option<&LossScaler> {
        self.scaler.as_ref()
    }

    /// Computes the loss and gradients and, unless they overflowed, clips
    /// them and updates `params`.
    pub fn step(
        &mut self,
        params: &mut ParamStore,
        inputs: &[(&str, &Tensor)],
        targets: &[&Tensor],
    ) -> Result<StepReport> {
        let loss_scale = self.scaler.as_ref().map_or(1.0, |s| s.scale());
        let out = self.step_fn.run(params, inputs, targets, loss_scale)?;
        let grad_norm = out.grad_norm()?;
        let finite = grad_norm.is_finite();
        let apply = match &mut self.scaler {
            Some(s) => s.update(finite),
            None => finite,
        };
        let lr = self.schedule.lr(self.steps);
        self.steps += 1;
        let loss = out.loss.to_f64_vec()?[0];
        if apply {
            // Clipping's factor is applied inside the optimizer's pass
            // (what `clip_grad_norm` would do to the gradients first).
            let scale = match self.clip {
                Some(max) => clip_factor(max, grad_norm),
                None => 1.0,
            };
            self.optimizer.step_scaled(params, &out.grads, lr, scale)?;
        }
        Ok(StepReport {
            loss,
            grad_norm,
            lr,
            skipped: !apply,
            loss_scale,
        })
    }

    /// A checkpoint of `params` and this trainer's state.
    pub fn checkpoint(&self, params: &ParamStore) -> Checkpoint {
        Checkpoint {
            params: params.clone(),
            optimizer: Some(self.optimizer.state()),
            step: self.steps,
            loss_scale: self.scaler.as_ref().map(|s| (s.scale(), s.clean_steps())),
        }
    }

    /// Restores the optimizer, step count and loss scale from `ckpt` and
    /// returns its parameters.
    pub fn restore(&mut self, ckpt: Checkpoint) -> Result<ParamStore> {
        if let Some(o) = ckpt.optimizer {
            self.optimizer.load_state(o)?;
        }
        if let (Some(s), Some((scale, clean))) = (&mut self.scaler, ckpt.loss_scale) {
            s.restore(scale, clean);
        }
        self.steps = ckpt.step;
        Ok(ckpt.params)
    }
}
