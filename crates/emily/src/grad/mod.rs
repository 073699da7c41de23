//! Reverse-mode automatic differentiation on the lazy graph.
//!
//! A function of tensors builds pending nodes; [`backward`] walks them from
//! the outputs back to the inputs being differentiated and builds, for each
//! node, the vector-Jacobian product of its op from ordinary ops. The
//! backward is therefore itself a lazy graph: evaluate it together with the
//! forward ([`crate::eval_all`]) so shared values are computed once, or trace
//! the whole thing with [`crate::compile()`], which fuses and replays the
//! backward like any other graph.
//!
//! ```
//! use emily::{compile, grad, DType, Tensor};
//! // loss(w, x) = sum(tanh(x · w))
//! let loss = |a: &[Tensor]| Ok(vec![a[1].matmul(&a[0])?.tanh()?.sum(&[], false)?]);
//! let w = Tensor::randn(&[3, 2], 0.0, 1.0, 1, DType::F32)?;
//! let x = Tensor::randn(&[4, 3], 0.0, 1.0, 2, DType::F32)?;
//!
//! let (values, grads) = grad::value_and_grad(loss, &[0])(&[w.clone(), x.clone()])?;
//! assert_eq!(grads[0].shape(), &[3, 2]);
//!
//! // The same, traced once and replayed: forward and backward in one plan.
//! let vg = grad::value_and_grad(loss, &[0]);
//! let step = compile(move |a: &[Tensor]| {
//!     let (v, g) = vg(a)?;
//!     Ok(v.into_iter().chain(g).collect())
//! });
//! let out = step.call(&[w, x])?;
//! assert_eq!(out[1].to_vec::<f32>()?, grads[0].to_vec::<f32>()?);
//! assert_eq!(out[0].to_vec::<f32>()?, values[0].to_vec::<f32>()?);
//! # Ok::<(), emily::Error>(())
//! ```
//!
//! Every differentiable op of the catalogue has a rule (see `rules/`); fast
//! ops differentiate through their [`crate::fast::FastOp::decompose`], so the
//! forward runs the fused kernel and the backward is composed — except RoPE,
//! whose gradient is the fused kernel again, rotating by the opposite angle. Ops whose
//! output is discrete — comparisons, logical ops, argmax/argmin, rounding,
//! sign, casts to integer types, random numbers — carry no gradient: a path
//! through them contributes nothing (as `x * (x > 0)` differentiates to the
//! step function), and an input that reaches the output *only* through such
//! ops is an error naming the op, never a silent zero.
//!
//! The graph must still be pending when it is differentiated: evaluating an
//! intermediate inside the function (reading its data) cuts the graph there.

mod rules;
mod tape;

pub use tape::backward;

use crate::error::{invalid, Result};
use crate::ops::Op;
use crate::Tensor;

/// A fresh node equal to `t`: the handle the walk stops at, distinct from
/// every other use of `t` (so passing one tensor twice still gives two
/// gradients).
fn leaf(t: &Tensor) -> Result<Tensor> {
    Tensor::from_op(
        Op::Reshape,
        vec![t.clone()],
        t.shape().to_vec(),
        t.dtype(),
        t.device(),
    )
}

/// Calls `f` on `primals` and returns its outputs and the vector-Jacobian
/// product: the cotangent of each primal given one cotangent per output
/// (shaped and typed like that output).
pub fn vjp<F>(f: F, primals: &[Tensor], cotangents: &[Tensor]) -> Result<(Vec<Tensor>, Vec<Tensor>)>
where
    F: FnOnce(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let leaves = primals.iter().map(leaf).collect::<Result<Vec<_>>>()?;
    let outputs = f(&leaves)?;
    let grads = backward(&outputs, cotangents, &leaves)?;
    Ok((outputs, grads))
}

/// Wraps `f` (whose first output is a one-element loss; further outputs are
/// carried along) into a function returning `f`'s outputs and the gradient of
/// the loss with respect to each argument listed in `argnums`.
pub fn value_and_grad<F>(
    f: F,
    argnums: &[usize],
) -> impl Fn(&[Tensor]) -> Result<(Vec<Tensor>, Vec<Tensor>)>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let argnums = argnums.to_vec();
    move |args: &[Tensor]| {
        let mut inputs = args.to_vec();
        let mut leaves = Vec::with_capacity(argnums.len());
        for &k in &argnums {
            let t = inputs.get(k).ok_or_else(|| {
                invalid(
                    "grad",
                    format!("argnum {k} out of range for {} arguments", args.len()),
                )
            })?;
            let l = leaf(t)?;
            inputs[k] = l.clone();
            leaves.push(l);
        }
        let outputs = f(&inputs)?;
        let loss = outputs
            .first()
            .ok_or_else(|| invalid("grad", "the function returned no outputs"))?;
        if loss.numel() != 1 {
            return Err(invalid(
                "grad",
                format!(
                    "the first output must be a one-element loss, got shape {:?}",
                    loss.shape()
                ),
            ));
        }
        let seed = Tensor::full(loss.shape(), 1.0, loss.dtype(), loss.device())?;
        let grads = backward(&outputs[..1], &[seed], &leaves)?;
        Ok((outputs, grads))
    }
}

/// Wraps `f` (first output a one-element loss) into a function returning the
/// gradient of the loss with respect to each argument in `argnums`.
pub fn grad<F>(f: F, argnums: &[usize]) -> impl Fn(&[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let vg = value_and_grad(f, argnums);
    move |args: &[Tensor]| Ok(vg(args)?.1)
}
