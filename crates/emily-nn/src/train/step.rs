//! The training step: forward, loss and backward of a model traced into one
//! compiled plan whose arguments are the parameters, the inputs, the dropout
//! seed and the targets. The backward is built by `emily::grad` on the traced
//! graph, so it is fused and replayed like the forward.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use emily::{grad, Compiled, DType, Tensor};

use crate::build::{mix, seed_tensor, Forward, Mode, Outputs};
use crate::error::{Error, Result};
use crate::exec::{ExtraKind, Supplied};
use crate::params::ParamStore;

/// A loss over a forward's outputs and the step's targets (a one-element
/// tensor).
pub type LossFn = Arc<dyn Fn(&Outputs, &[Tensor]) -> emily::Result<Tensor> + Send + Sync>;

type TracedFn = Arc<dyn Fn(&[Tensor]) -> emily::Result<Vec<Tensor>> + Send + Sync>;
type Traced = Box<dyn Fn(&[Tensor]) -> emily::Result<Vec<Tensor>> + Send + Sync>;

thread_local! {
    static TRACE_ERROR: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// The dtype the forward and backward compute in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Everything in the parameters' own dtype (f32 masters; f64 for
    /// reference checks).
    Full,
    /// The original's mixed-precision recipe: bf16 copies of the f32 master
    /// parameters (and of float inputs) for the forward and backward, the
    /// loss multiplied by a dynamic scale before the backward and the f32
    /// gradients divided by it again.
    MixedBf16,
}

/// What one training step computed (lazy values, evaluated together).
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// The loss (unscaled; f32, or the parameters' dtype in full precision).
    pub loss: Tensor,
    /// The gradient of the loss for every parameter (f32, unscaled, keyed
    /// like the parameters).
    pub grads: ParamStore,
    /// `Σ g²` over all gradients (f32): the squared global norm, not finite
    /// when a gradient overflowed.
    pub grad_sq_norm: Tensor,
}

impl StepOutput {
    /// The global gradient norm `√Σ g²`.
    pub fn grad_norm(&self) -> Result<f64> {
        Ok((self.grad_sq_norm.to_scalar::<f32>()? as f64).sqrt())
    }
}

/// A compiled training step; see [`Forward::train_step`].
pub struct TrainStep {
    forward: Forward,
    traced: TracedFn,
    compiled: Compiled<Traced>,
    precision: Precision,
    seed: AtomicU64,
    calls: AtomicU64,
}

impl Forward {
    /// The training step of this training-mode forward: `loss(outputs,
    /// targets)` and its gradient for every parameter, traced into one plan
    /// (compiled once per input signature, then replayed).
    pub fn train_step<L>(self, loss: L, precision: Precision) -> Result<TrainStep>
    where
        L: Fn(&Outputs, &[Tensor]) -> emily::Result<Tensor> + Send + Sync + 'static,
    {
        if self.mode() != Mode::Train {
            return Err(Error::Mode(
                "a training step needs a forward built with Mode::Train",
            ));
        }
        let loss: LossFn = Arc::new(loss);
        let program = self.program().clone();
        let np = program.params.len();
        let n = program.inputs.len();
        let names: Vec<String> = program
            .model
            .outputs()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let scaled = precision == Precision::MixedBf16;
        let lead = usize::from(scaled);
        let traced: TracedFn = Arc::new(move |args: &[Tensor]| {
            let scale = scaled.then(|| args[0].clone());
            let params = &args[lead..lead + np];
            let inputs = &args[lead + np..lead + np + n];
            let rest = &args[lead + np + n..];
            let run = |ps: &[Tensor]| -> emily::Result<Vec<Tensor>> {
                let (ps, xs) = match precision {
                    Precision::Full => (ps.to_vec(), inputs.to_vec()),
                    Precision::MixedBf16 => (
                        ps.iter()
                            .map(|p| p.cast(DType::BF16))
                            .collect::<emily::Result<_>>()?,
                        inputs
                            .iter()
                            .map(|x| {
                                if x.dtype().is_float() {
                                    x.cast(DType::BF16)
                                } else {
                                    Ok(x.clone())
                                }
                            })
                            .collect::<emily::Result<_>>()?,
                    ),
                };
                let mut supplied = Supplied::new(rest);
                let outs = program
                    .run_with(&program.locals_with(&ps), &xs, &mut supplied)
                    .map_err(|e| {
                        let msg = e.to_string();
                        TRACE_ERROR.with(|c| *c.borrow_mut() = Some(e));
                        emily::Error::Invalid {
                            op: "emily-nn",
                            msg,
                        }
                    })?;
                let targets = &rest[supplied.consumed()..];
                let outputs = Outputs::new(names.clone(), outs);
                let l = loss(&outputs, targets)?;
                let l = match precision {
                    Precision::Full => l,
                    Precision::MixedBf16 => l.cast(DType::F32)?,
                };
                Ok(match &scale {
                    Some(s) => vec![l.mul(s)?, l],
                    None => vec![l],
                })
            };
            let (values, grads) = grad::value_and_grad(run, &(0..np).collect::<Vec<_>>())(params)?;
            let loss = values.last().expect("the loss").clone();
            let grads = match &scale {
                Some(s) => {
                    let inv = Tensor::scalar(1.0, DType::F32, s.device()).div(s)?;
                    grads
                        .iter()
                        .map(|g| g.mul(&inv))
                        .collect::<emily::Result<Vec<_>>>()?
                }
                None => grads,
            };
            let sq = Tensor::sum_of_squares(&grads)?.cast(DType::F32)?;
            Ok([loss, sq].into_iter().chain(grads).collect())
        });
        let f = traced.clone();
        let boxed: Traced = Box::new(move |args: &[Tensor]| f(args));
        Ok(TrainStep {
            forward: self,
            traced,
            compiled: emily::compile(boxed),
            precision,
            seed: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        })
    }
}

impl TrainStep {
    /// The forward (training mode) this step differentiates.
    pub fn forward(&self) -> &Forward {
        &self.forward
    }

    /// The compute precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Seeds the dropout noise of later steps.
    pub fn set_seed(&self, seed: u64) {
        self.seed.store(seed, Ordering::Relaxed);
        self.calls.store(0, Ordering::Relaxed);
    }

    /// Runs one step: the loss of the model on `inputs` against `targets`,
    /// and the gradients for `params` (f32 masters, keyed as at build).
    /// `loss_scale` multiplies the loss before the backward in
    /// [`Precision::MixedBf16`] (ignored in f32). Nothing is updated.
    pub fn run(
        &self,
        params: &ParamStore,
        inputs: &[(&str, &Tensor)],
        targets: &[&Tensor],
        loss_scale: f64,
    ) -> Result<StepOutput> {
        let args = self.args(params, inputs, targets, loss_scale)?;
        TRACE_ERROR.with(|c| c.borrow_mut().take());
        let out = self.compiled.call(&args).map_err(|e| {
            TRACE_ERROR
                .with(|c| c.borrow_mut().take())
                .unwrap_or(Error::Core(e))
        })?;
        Ok(self.unpack(out))
    }

    /// The compiled plan these arguments replay (traced on first use): its
    /// kernel counts say what compilation saves over [`TrainStep::run_eager`].
    pub fn plan(
        &self,
        params: &ParamStore,
        inputs: &[(&str, &Tensor)],
        targets: &[&Tensor],
    ) -> Result<Arc<emily::compile::Plan>> {
        let args = self.args(params, inputs, targets, 1.0)?;
        TRACE_ERROR.with(|c| c.borrow_mut().take());
        self.compiled.plan(&args).map_err(|e| {
            TRACE_ERROR
                .with(|c| c.borrow_mut().take())
                .unwrap_or(Error::Core(e))
        })
    }

    /// [`TrainStep::run`] without the compiler: the same forward, loss and
    /// backward graph built on the concrete tensors and evaluated op by op
    /// (the baseline the compiled plan is measured against).
    pub fn run_eager(
        &self,
        params: &ParamStore,
        inputs: &[(&str, &Tensor)],
        targets: &[&Tensor],
        loss_scale: f64,
    ) -> Result<StepOutput> {
        let args = self.args(params, inputs, targets, loss_scale)?;
        TRACE_ERROR.with(|c| c.borrow_mut().take());
        let out = (self.traced)(&args).map_err(|e| {
            TRACE_ERROR
                .with(|c| c.borrow_mut().take())
                .unwrap_or(Error::Core(e))
        })?;
        emily::eval_all(&out.iter().collect::<Vec<_>>())?;
        Ok(self.unpack(out))
    }

    /// The plan's arguments: scale, parameters, inputs, extras, targets.
    fn args(
        &self,
        params: &ParamStore,
        inputs: &[(&str, &Tensor)],
        targets: &[&Tensor],
        loss_scale: f64,
    ) -> Result<Vec<Tensor>> {
        let values = self.forward.param_values(params)?;
        let master =
            |d: DType| d == DType::F32 || (self.precision == Precision::Full && d == DType::F64);
        if let Some(t) = values.iter().find(|t| !master(t.dtype())) {
            return Err(Error::Train {
                what: "parameters",
                msg: format!("training needs f32 master parameters, got {}", t.dtype()),
            });
        }
        let inputs = self.forward.order_inputs(inputs)?;
        let specs = self.forward.extra_specs(&inputs)?;
        let mut args = Vec::new();
        if self.precision == Precision::MixedBf16 {
            args.push(Tensor::from_slice(&[loss_scale as f32], &[])?);
        }
        args.extend(values);
        args.extend(inputs);
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        for spec in specs.iter() {
            args.push(match &spec.kind {
                ExtraKind::State(_) => Tensor::zeros(&spec.shape, spec.dtype)?,
                ExtraKind::Seed => seed_tensor(mix(self.seed.load(Ordering::Relaxed), call))?,
            });
        }
        args.extend(targets.iter().map(|t| (*t).clone()));
        Ok(args)
    }

    fn unpack(&self, out: Vec<Tensor>) -> StepOutput {
        let mut it = out.into_iter();
        let loss = it.next().expect("loss");
        let grad_sq_norm = it.next().expect("norm");
        let grads = self
            .forward
            .program()
            .params
            .iter()
            .map(|s| s.key.clone())
            .zip(it)
            .collect();
        StepOutput {
            loss,
            grads,
            grad_sq_norm,
        }
    }
}
