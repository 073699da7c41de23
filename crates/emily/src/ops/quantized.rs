//! Where block-quantised tensors may go: the one rule every op's node obeys.
//!
//! A [`DType::Quantized`] tensor holds weights in blocks, not elements, so
//! only three ops take one: `matmul` as the transposed right operand
//! (`x · wᵀ`, the Dense layer's form), `gather` along an axis before the last
//! (an embedding lookup: rows come out f32), and `cast` (to a float type to
//! dequantise, or from one to quantise). A `permute` swapping the last two
//! axes exists only as `matmul`'s view of `wᵀ` and is never computed on its
//! own. Every other op refuses such tensors when its node is built.

use super::Op;
use crate::error::{dtype_err, Result};
use crate::{DType, Tensor};

/// What a quantised tensor is for, for error messages.
const USES: &str = ": block-quantised tensors only enter matmul (as the weight w of x · wᵀ), gather along a leading axis, and cast";

/// Checks a node of `op` over `inputs` producing `dtype` against the rule above.
pub(crate) fn check_node(op: &Op, inputs: &[Tensor], dtype: DType) -> Result<()> {
    let quant_in = inputs.iter().map(|t| t.dtype()).find(|d| d.is_quantized());
    let Some(q) = quant_in.or(dtype.is_quantized().then_some(dtype)) else {
        return Ok(());
    };
    let allowed = match op {
        // The builders check operand positions and dtypes in detail.
        Op::Matmul { .. } | Op::Gather { .. } => !dtype.is_quantized(),
        Op::Cast => {
            let from = inputs[0].dtype();
            (from.is_quantized() && dtype.is_float()) || (from.is_float() && dtype.is_quantized())
        }
        Op::Permute { perm } => is_last_two_swap(perm) && dtype.is_quantized(),
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(dtype_err(op.name(), q, USES))
    }
}

/// Whether `perm` swaps the last two axes and keeps the others.
pub(crate) fn is_last_two_swap(perm: &[usize]) -> bool {
    let r = perm.len();
    r >= 2
        && perm[r - 2] == r - 1
        && perm[r - 1] == r - 2
        && perm[..r - 2].iter().enumerate().all(|(i, &p)| i == p)
}

impl Tensor {
    /// This tensor quantised to `format` (a `cast` to [`DType::Quantized`]):
    /// the original's quantise-on-load for f32/f16/bf16 weights, and how
    /// `emily quantize` makes GGUF blocks. The last axis must be a multiple
    /// of the format's block; NaN, infinity or a range too large for f16
    /// scales is an error when the cast runs. Read the blocks back with
    /// `array()?.to_host_bytes()`.
    pub fn quantize(&self, format: crate::BlockFormat) -> Result<Tensor> {
        self.cast(DType::Quantized(format))
    }
}
