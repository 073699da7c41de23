//! [`super::FastOp::SoftmaxLogSumExp`] composed: each row's softmax and
//! log-sum-exp over the last axis, as the compiler's cross-entropy rewrite
//! replaces them (`compile/softmax_lse.rs`).

use crate::error::Result;
use crate::Tensor;

/// `exp(x - lse)` (times the per-row scale `inputs[1]`, when given)
/// flattened, followed by `lse = logsumexp(x)` over the last axis (one per
/// row), as one 1-D tensor.
pub(super) fn decompose(inputs: &[Tensor]) -> Result<Tensor> {
    let x = &inputs[0];
    let lse = x.logsumexp(&[-1], true)?;
    let mut probs = x.sub(&lse)?.exp()?;
    if let Some(scale) = inputs.get(1) {
        probs = scale.reshape_to(lse.shape())?.mul(&probs)?;
    }
    Tensor::concat(&[&probs.flatten()?, &lse.flatten()?], 0)
}
