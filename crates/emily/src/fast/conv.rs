//! Channels-last 1-D convolution ([`FastOp::Conv1dChannelsLast`]).

use super::{build, FastOp, Kernels};
use crate::error::Result;
use crate::Tensor;

/// The head and sequence axes of a rank-3 tensor swapped.
const SWAP: [usize; 3] = [0, 2, 1];

/// 1-D convolution of channels-last input `x` `(N, L, C_in)` with `weight`
/// `(C_out, C_in, K)` (as [`Tensor::conv1d`] takes it), giving `(N, L',
/// C_out)`: the same values as `conv1d` on `x` transposed to `(N, C_in, L)`,
/// transposed back. For models whose activations are time-major (a
/// Transformer after its convolutional front end): the CPU kernel reads each
/// output's window as `K·C_in` contiguous values of `x`, so it needs neither
/// an im2col copy nor the transposes. Shapes and dtypes are checked as
/// `conv1d` checks them (with dilation and groups 1).
pub fn conv1d_channels_last(
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    build_conv1d_channels_last(Kernels::Fused, x, weight, stride, padding)
}

pub(super) fn build_conv1d_channels_last(
    kernels: Kernels,
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let inputs = vec![x.clone(), weight.clone()];
    // The decomposition validates (it is lazy: nothing is computed).
    let composed = decompose(stride, padding, &inputs)?;
    let op = FastOp::Conv1dChannelsLast { stride, padding };
    let (shape, dtype) = (composed.shape().to_vec(), composed.dtype());
    build(kernels, op, inputs, shape, dtype)
}

/// Composed [`FastOp::Conv1dChannelsLast`]: `conv1d` between the transposes.
pub(super) fn decompose(stride: usize, padding: usize, inputs: &[Tensor]) -> Result<Tensor> {
    if inputs[0].rank() != 3 {
        return Err(crate::error::shape_err(
            "conv1d_channels_last",
            format!("expected input (N, L, C_in), got {:?}", inputs[0].shape()),
        ));
    }
    inputs[0]
        .permute(&SWAP)?
        .conv1d(&inputs[1], stride, padding, 1, 1)?
        .permute(&SWAP)
}
