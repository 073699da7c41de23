//! Training: losses, a compiled forward + backward step, optimizers,
//! learning-rate schedules, mixed precision with dynamic loss scaling, and
//! checkpoints.
//!
//! A model built with [`crate::Mode::Train`] takes its parameters as plan
//! arguments; [`crate::Forward::train_step`] adds a loss and traces forward,
//! loss and backward (built by `emily::grad`) into one compiled plan. A
//! [`Trainer`] runs it, skips overflowed steps in mixed precision, clips, and
//! applies the optimizer at the schedule's rate.
//!
//! ```
//! use emily::{DType, Tensor};
//! use emily_nn::train::{cross_entropy, Adam, Precision, Trainer, WarmupCosine};
//! use emily_nn::{DenseOptions, Mode, ModelBuilder, ParamStore};
//!
//! let mut b = ModelBuilder::new();
//! let x = b.input("x", &[None, Some(4)], DType::F32)?;
//! let h = b.dense("fc1", &x, DenseOptions::new(4, 16))?;
//! let h = b.relu("act", &h)?;
//! let y = b.dense("fc2", &h, DenseOptions::new(16, 3))?;
//! b.output(&y)?;
//! let model = b.build()?;
//!
//! let mut params = ParamStore::random(&model, 0, DType::F32)?;
//! let step = model
//!     .build(&params, Mode::Train)?
//!     .train_step(|out, t| cross_entropy(&out["fc2"], &t[0]), Precision::Full)?;
//! let mut trainer = Trainer::new(step, Adam::adamw(0.01), WarmupCosine::new(0.05, 5, 100));
//! let xs = Tensor::randn(&[8, 4], 0.0, 1.0, 1, DType::F32)?;
//! let ys = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2, 0, 1], &[8])?;
//! let first = trainer.step(&mut params, &[("x", &xs)], &[&ys])?.loss;
//! let mut last = first;
//! for _ in 0..30 {
//!     last = trainer.step(&mut params, &[("x", &xs)], &[&ys])?.loss;
//! }
//! assert!(last < first);
//! # Ok::<(), emily_nn::Error>(())
//! ```

mod checkpoint;
mod loss;
mod optim;
mod scaler;
mod schedule;
mod step;
mod trainer;

pub use checkpoint::{load_checkpoint, load_params, save_checkpoint, save_params, Checkpoint};
pub use loss::{accuracy, cross_entropy, cross_entropy_with_probs, mse};
pub use optim::{clip_factor, clip_grad_norm, global_norm, Adam, Optimizer, OptimizerState, Sgd};
pub use scaler::LossScaler;
pub use schedule::{Constant, Schedule, WarmupCosine};
pub use step::{LossFn, Precision, StepOutput, TrainStep};
pub use trainer::{StepReport, Trainer};
