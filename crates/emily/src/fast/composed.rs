//! The fast ops in their composed form, eagerly: the same validation and the
//! same math as [`crate::fast`]'s fused ops, built from primitive ops (each
//! op's [`crate::fast::FastOp::decompose`]). Use these to compare fused and
//! composed results side by side; inside `compile`, pick with
//! [`crate::CompileOptions::kernels`] instead.

use super::{Kernels, RopeOptions, SdpaOptions};
use crate::error::Result;
use crate::Tensor;

/// Composed [`crate::fast::rms_norm`].
pub fn rms_norm(x: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    super::rms_norm::build_rms_norm(Kernels::Composed, x, weight, eps)
}

/// Composed [`crate::fast::layer_norm`].
pub fn layer_norm(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    super::layer_norm::build_layer_norm(Kernels::Composed, x, weight, bias, eps)
}

/// Composed [`crate::fast::rope`].
pub fn rope(x: &Tensor, opts: RopeOptions) -> Result<Tensor> {
    super::rope::build_rope(Kernels::Composed, x, None, opts)
}

/// Composed [`crate::fast::rope_with_freqs`].
pub fn rope_with_freqs(x: &Tensor, freqs: &Tensor, opts: RopeOptions) -> Result<Tensor> {
    super::rope::build_rope(Kernels::Composed, x, Some(freqs), opts)
}

/// Composed [`crate::fast::scaled_dot_product_attention`].
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: SdpaOptions,
) -> Result<Tensor> {
    super::sdpa::build_sdpa(Kernels::Composed, q, k, v, opts, false)
}

/// Composed [`crate::fast::conv1d_channels_last`].
pub fn conv1d_channels_last(
    x: &Tensor,
    weight: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    super::conv::build_conv1d_channels_last(Kernels::Composed, x, weight, stride, padding)
}
