//! Optimizers over a [`ParamStore`]: SGD with momentum, Adam and AdamW.
//!
//! Each update is one compiled plan over every parameter (traced once for
//! the set of parameter shapes; a few fused passes per parameter, one call
//! per step), its scalars (learning rate, bias corrections, the clipping
//! factor) passed as tensors so a new rate replays the same plan. The
//! parameters and their state are handed over by value, so their buffers are
//! updated in place. Parameters and state are f32 masters whatever the
//! compute dtype of the forward.

use std::collections::BTreeMap;

use emily::{compile, Compiled, DType, Tensor};

use crate::error::{Error, Result};
use crate::params::ParamStore;

type Update = Compiled<Box<dyn Fn(&[Tensor]) -> emily::Result<Vec<Tensor>> + Send + Sync>>;

/// An optimizer's state for checkpoints: its kind, the step count and
/// named tensors (`"{slot}.{param}"`, e.g. `"exp_avg.fc.weight"`).
#[derive(Clone, Debug, Default)]
pub struct OptimizerState {
    /// `"sgd"`, `"adam"` or `"adamw"`.
    pub kind: String,
    /// Updates applied so far.
    pub step: u64,
    /// The state tensors.
    pub tensors: BTreeMap<String, Tensor>,
}

/// Updates parameters from gradients.
pub trait Optimizer: Send {
    /// Applies one update at learning rate `lr` to every parameter that has
    /// a gradient (same key, shape and dtype).
    fn step(&mut self, params: &mut ParamStore, grads: &ParamStore, lr: f64) -> Result<()> {
        self.step_scaled(params, grads, lr, 1.0)
    }
    /// [`Optimizer::step`] with every gradient first multiplied by
    /// `grad_scale` (gradient clipping's factor), inside the update's own
    /// pass: the same values as scaling the gradients beforehand.
    fn step_scaled(
        &mut self,
        params: &mut ParamStore,
        grads: &ParamStore,
        lr: f64,
        grad_scale: f64,
    ) -> Result<()>;
    /// The state, for a checkpoint.
    fn state(&self) -> OptimizerState;
    /// Restores the state from a checkpoint (kind and shapes checked).
    fn load_state(&mut self, state: OptimizerState) -> Result<()>;
}

/// The `(param, grad)` pairs of an update, checked.
fn pairs(params: &ParamStore, grads: &ParamStore) -> Result<Vec<(String, Tensor)>> {
    grads
        .iter()
        .map(|(k, g)| {
            let p = params.get(k).ok_or_else(|| Error::Train {
                what: "optimizer",
                msg: format!("gradient `{k}` has no parameter"),
            })?;
            if p.shape() != g.shape() || p.dtype() != DType::F32 || g.dtype() != DType::F32 {
                return Err(Error::Train {
                    what: "optimizer",
                    msg: format!(
                        "`{k}`: parameter {:?} {} and gradient {:?} {} must be f32 of one shape",
                        p.shape(),
                        p.dtype(),
                        g.shape(),
                        g.dtype()
                    ),
                });
            }
            Ok((k.to_string(), g.clone()))
        })
        .collect()
}

fn scalar(v: f64) -> emily::Result<Tensor> {
    Tensor::from_slice(&[v as f32], &[])
}

fn state_slot(slots: &mut BTreeMap<String, Tensor>, key: &str, like: &Tensor) -> Result<Tensor> {
    match slots.remove(key) {
        Some(t) => Ok(t),
        None => Ok(Tensor::zeros(like.shape(), DType::F32)?),
    }
}

/// Checks and installs loaded state tensors for `slots` of `params`.
fn load_slots(
    kind: &str,
    state: OptimizerState,
    slots: &[&str],
) -> Result<(u64, BTreeMap<String, Tensor>)> {
    if state.kind != kind {
        return Err(Error::Train {
            what: "optimizer state",
            msg: format!("is for `{}`, this optimizer is `{kind}`", state.kind),
        });
    }
    for (k, t) in &state.tensors {
        let known = slots.iter().any(|s| k.starts_with(&format!("{s}.")));
        if !known || t.dtype() != DType::F32 {
            return Err(Error::Train {
                what: "optimizer state",
                msg: format!(
                    "unexpected tensor `{k}` ({:?} {}) for `{kind}`",
                    t.shape(),
                    t.dtype()
                ),
            });
        }
    }
    Ok((state.step, state.tensors))
}

/// Stochastic gradient descent with momentum and (L2) weight decay:
/// `b = μ·b + g + λ·p; p −= lr·b`.
pub struct Sgd {
    momentum: f64,
    weight_decay: f64,
    step: u64,
    buffers: BTreeMap<String, Tensor>,
    update: Update,
}

impl Sgd {
    /// SGD with `momentum` (0 for plain SGD) and no weight decay.
    pub fn new(momentum: f64) -> Sgd {
        let update: Update = compile(Box::new(|a: &[Tensor]| {
            // a: lr, momentum, weight_decay, grad_scale, then (p, g, buf) per parameter
            let (lr, mu, wd, gs) = (&a[0], &a[1], &a[2], &a[3]);
            let mut out = Vec::with_capacity(a.len() - 4);
            for t in a[4..].chunks(3) {
                let (p, g, b) = (&t[0], &t[1], &t[2]);
                let b = b.mul(mu)?.add(&g.mul(gs)?)?.add(&p.mul(wd)?)?;
                out.push(p.sub(&b.mul(lr)?)?);
                out.push(b);
            }
            Ok(out)
        }));
        Sgd {
            momentum,
            weight_decay: 0.0,
            step: 0,
            buffers: BTreeMap::new(),
            update,
        }
    }

    /// Adds L2 weight decay `λ`.
    pub fn weight_decay(mut self, wd: f64) -> Sgd {
        self.weight_decay = wd;
        self
    }
}

impl Optimizer for Sgd {
    fn step_scaled(
        &mut self,
        params: &mut ParamStore,
        grads: &ParamStore,
        lr: f64,
        grad_scale: f64,
    ) -> Result<()> {
        let pairs = pairs(params, grads)?;
        let mut args = vec![
            scalar(lr)?,
            scalar(self.momentum)?,
            scalar(self.weight_decay)?,
            scalar(grad_scale)?,
        ];
        let mut slots = Vec::with_capacity(pairs.len());
        for (k, g) in pairs {
            let p = params.remove(&k).expect("checked");
            let slot = format!("momentum_buffer.{k}");
            let b = state_slot(&mut self.buffers, &slot, &p)?;
            args.extend([p, g, b]);
            slots.push((k, slot));
        }
        let mut out = self.update.call_owned(args)?.into_iter();
        for (k, slot) in slots {
            params.insert(k, out.next().expect("two outputs per parameter"));
            self.buffers
                .insert(slot, out.next().expect("two outputs per parameter"));
        }
        self.step += 1;
        Ok(())
    }

    fn state(&self) -> OptimizerState {
        OptimizerState {
            kind: "sgd".into(),
            step: self.step,
            tensors: self.buffers.clone(),
        }
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        (self.step, self.buffers) = load_slots("sgd", state, &["momentum_buffer"])?;
        Ok(())
    }
}

/// Adam, or AdamW with decoupled weight decay:
/// `m = β₁m + (1−β₁)g; v = β₂v + (1−β₂)g²;
/// p −= lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)` and, for AdamW, `p −= lr·λ·p`
/// first (Adam adds `λ·p` to the gradient instead).
pub struct Adam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    step: u64,
    moments: BTreeMap<String, Tensor>,
    update: Update,
}

impl Adam {
    /// Adam with β = (0.9, 0.999), ε = 1e-8, no weight decay.
    pub fn new() -> Adam {
        let update: Update = compile(Box::new(|a: &[Tensor]| {
            // a: step_size, inv_bc2_sqrt, decay, l2, b1, b2, eps, grad_scale,
            // then (p, g, m, v) per parameter
            let (step, inv_bc2, decay, l2) = (&a[0], &a[1], &a[2], &a[3]);
            let (b1, b2, eps, gs) = (&a[4], &a[5], &a[6], &a[7]);
            let one = Tensor::scalar(1.0, DType::F32, a[0].device());
            let (c1, c2) = (one.sub(b1)?, one.sub(b2)?);
            let mut out = Vec::with_capacity((a.len() - 8) / 4 * 3);
            for t in a[8..].chunks(4) {
                let (p, g, m, v) = (&t[0], &t[1], &t[2], &t[3]);
                let g = g.mul(gs)?.add(&p.mul(l2)?)?;
                let m = m.mul(b1)?.add(&g.mul(&c1)?)?;
                let v = v.mul(b2)?.add(&g.square()?.mul(&c2)?)?;
                let denom = v.sqrt()?.mul(inv_bc2)?.add(eps)?;
                out.push(p.mul(decay)?.sub(&m.div(&denom)?.mul(step)?)?);
                out.push(m);
                out.push(v);
            }
            Ok(out)
        }));
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            step: 0,
            moments: BTreeMap::new(),
            update,
        }
    }

    /// AdamW: decoupled weight decay `λ`.
    pub fn adamw(weight_decay: f64) -> Adam {
        let mut a = Adam::new();
        a.weight_decay = weight_decay;
        a.decoupled = true;
        a
    }

    /// Sets β₁, β₂.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Adam {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Sets ε.
    pub fn eps(mut self, eps: f64) -> Adam {
        self.eps = eps;
        self
    }

    /// Sets the weight decay (L2 for Adam, decoupled for AdamW).
    pub fn weight_decay(mut self, wd: f64) -> Adam {
        self.weight_decay = wd;
        self
    }

    fn kind(&self) -> &'static str {
        if self.decoupled {
            "adamw"
        } else {
            "adam"
        }
    }
}

impl Default for Adam {
    fn default() -> Adam {
        Adam::new()
    }
}

impl Optimizer for Adam {
    fn step_scaled(
        &mut self,
        params: &mut ParamStore,
        grads: &ParamStore,
        lr: f64,
        grad_scale: f64,
    ) -> Result<()> {
        let pairs = pairs(params, grads)?;
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        let (decay, l2) = if self.decoupled {
            (1.0 - lr * self.weight_decay, 0.0)
        } else {
            (1.0, self.weight_decay)
        };
        let mut args = [
            lr / bc1,
            1.0 / bc2.sqrt(),
            decay,
            l2,
            self.beta1,
            self.beta2,
            self.eps,
            grad_scale,
        ]
        .into_iter()
        .map(scalar)
        .collect::<emily::Result<Vec<_>>>()?;
        let mut slots = Vec::with_capacity(pairs.len());
        for (k, g) in pairs {
            let p = params.remove(&k).expect("checked");
            let (mk, vk) = (format!("exp_avg.{k}"), format!("exp_avg_sq.{k}"));
            let m = state_slot(&mut self.moments, &mk, &p)?;
            let v = state_slot(&mut self.moments, &vk, &p)?;
            args.extend([p, g, m, v]);
            slots.push((k, mk, vk));
        }
        let mut out = self.update.call_owned(args)?.into_iter();
        for (k, mk, vk) in slots {
            params.insert(k, out.next().expect("three outputs per parameter"));
            self.moments
                .insert(mk, out.next().expect("three outputs per parameter"));
            self.moments
                .insert(vk, out.next().expect("three outputs per parameter"));
        }
        Ok(())
    }

    fn state(&self) -> OptimizerState {
        OptimizerState {
            kind: self.kind().into(),
            step: self.step,
            tensors: self.moments.clone(),
        }
    }

    fn load_state(&mut self, state: OptimizerState) -> Result<()> {
        (self.step, self.moments) = load_slots(self.kind(), state, &["exp_avg", "exp_avg_sq"])?;
        Ok(())
    }
}

/// The global L2 norm of all gradients, `√Σ g²` (inf or NaN if any
/// gradient is not finite).
pub fn global_norm(grads: &ParamStore) -> Result<f64> {
    let mut total: Option<Tensor> = None;
    for (_, g) in grads.iter() {
        let s = g.cast(DType::F32)?.square()?.sum(&[], false)?;
        total = Some(match total {
            Some(t) => t.add(&s)?,
            None => s,
        });
    }
    Ok(match total {
        Some(t) => (t.to_scalar::<f32>()? as f64).sqrt(),
        None => 0.0,
    })
}

/// The factor gradient clipping multiplies every gradient by: `max_norm /
/// (norm + 1e-6)` when the global norm `norm` exceeds `max_norm`, else 1.
pub fn clip_factor(max_norm: f64, norm: f64) -> f64 {
    if norm.is_finite() && norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

/// Scales every gradient by [`clip_factor`] (when their global norm `norm`
/// exceeds `max_norm`); returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut ParamStore, max_norm: f64, norm: f64) -> Result<f64> {
    let factor = clip_factor(max_norm, norm);
    if factor != 1.0 {
        let keys: Vec<String> = grads.iter().map(|(k, _)| k.to_string()).collect();
        for k in keys {
            let g = grads.remove(&k).expect("listed");
            grads.insert(k, g.mul_scalar(factor)?.eval()?);
        }
    }
    Ok(norm)
}
