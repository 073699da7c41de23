//! Fused transformer kernels, each one graph node that owns its composed fallback.
//!
//! `rms_norm`, `layer_norm`, `rope` and `scaled_dot_product_attention` validate
//! their inputs when called (errors are prefixed with the op name) and add one
//! [`FastOp`] node. If the device's backend has a fused kernel for the shapes,
//! that kernel runs at eval; otherwise the node is replaced right away by its
//! [`FastOp::decompose`] — the same math from primitive ops, which is also the
//! numerics spec (reductions and softmax in f32 for half inputs) — and a
//! fallback event is emitted (an error in strict mode, see [`crate::telemetry`]).
//! There is no global switch: [`composed`] builds the decompositions eagerly,
//! and [`crate::compile_with`] with [`Kernels::Composed`] lowers every fast
//! node of a compiled function to its decomposition.

pub mod composed;
mod conv;
mod kernels;
mod layer_norm;
mod rms_norm;
mod rope;
mod sdpa;
mod softmax_lse;

pub use conv::conv1d_channels_last;
pub use kernels::Kernels;
pub use layer_norm::layer_norm;
pub use rms_norm::rms_norm;
pub use rope::{rope, rope_with_freqs, RopeOffset, RopeOptions};
pub use sdpa::{
    scaled_dot_product_attention, scaled_dot_product_attention_int8, SdpaMask, SdpaOptions,
};

use crate::error::Result;
use crate::ops::Op;
use crate::{backend, telemetry, DType, Tensor};

/// Which mask an attention node applies (the mask tensor, if any, is an input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaskKind {
    /// Every key visible.
    None,
    /// Query i sees keys j <= i + (kv_len - q_len) (aligned to the end).
    Causal,
    /// A float bias added to the scores.
    Additive,
    /// A Bool keep-mask (true = attend).
    Boolean,
    /// Query i sees keys `offset + i - window < j <= offset + i`, the offset a
    /// scalar integer input (a static KV cache); no window = plain causal.
    CausalBand {
        /// Keys each query sees, ending at its own position.
        window: Option<usize>,
    },
}

/// How a RoPE node gets its positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PositionsKind {
    /// `offset + t` with a constant offset.
    Offset(usize),
    /// `offset + t` with the offset a scalar integer tensor input.
    OffsetTensor,
    /// One position per token, an integer tensor input of shape (T,).
    PerToken,
}

/// Which operands of a [`FastOp::SdpaSeqMajor`] are sequence-major
/// `(B, T, H, D)`; the others are head-major `(B, H, T, D)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqMajor {
    /// The queries.
    pub q: bool,
    /// The keys.
    pub k: bool,
    /// The values.
    pub v: bool,
    /// The output.
    pub out: bool,
}

/// A fused op and its parameters. Inputs, in order:
/// RmsNorm `[x, weight?]`; LayerNorm `[x, weight?, bias?]`;
/// Rope `[x, offset/positions?, freqs?]`; Sdpa `[q, k, v, mask or offset?, sinks?]`.
#[derive(Clone, Debug, PartialEq)]
pub enum FastOp {
    /// `x / sqrt(mean(x²) + eps) * weight` over the last axis.
    RmsNorm {
        /// Added to the mean square.
        eps: f32,
        /// Whether input 1 is a weight.
        has_weight: bool,
    },
    /// `(x - mean) / sqrt(var + eps) * weight + bias` over the last axis.
    LayerNorm {
        /// Added to the variance.
        eps: f32,
        /// Whether a weight input is present.
        has_weight: bool,
        /// Whether a bias input is present.
        has_bias: bool,
    },
    /// Rotary position embedding over the last axis of (…, T, D).
    Rope {
        /// Leading features rotated (even, ≤ D).
        dims: usize,
        /// Interleaved pairs (2i, 2i+1) instead of split halves (i, i + dims/2).
        traditional: bool,
        /// Frequency base (ignored when inverse frequencies are an input).
        base: f32,
        /// Position multiplier.
        scale: f32,
        /// Where positions come from.
        positions: PositionsKind,
        /// Whether precomputed inverse frequencies are an input.
        has_freqs: bool,
    },
    /// Scaled dot-product attention on (B, H, T, D).
    Sdpa {
        /// Score multiplier (usually 1/sqrt(D)).
        scale: f32,
        /// The mask applied.
        mask: MaskKind,
        /// Whether per-head sinks are an input.
        has_sinks: bool,
        /// Whether a bf16 kernel may compute both products on int8 codes
        /// ([`scaled_dot_product_attention_int8`]); the decomposition
        /// and kernels without int8 products compute as without it.
        int8_products: bool,
    },
    /// [`FastOp::Sdpa`] with the `(0, 2, 1, 3)` head transposes around it
    /// folded into the kernel's strides: each operand `seq_major` flags is
    /// sequence-major `(B, T, H, D)` (as the projections leave it, and as
    /// the output projection reads it) instead of `(B, H, T, D)`. The
    /// compiler chooses it for attention next to those permutes, which it
    /// saves (it has no public constructor).
    SdpaSeqMajor {
        /// Score multiplier (usually 1/sqrt(D)).
        scale: f32,
        /// The mask applied.
        mask: MaskKind,
        /// Whether per-head sinks are an input.
        has_sinks: bool,
        /// As [`FastOp::Sdpa`]'s.
        int8_products: bool,
        /// Which operands are sequence-major.
        seq_major: SeqMajor,
    },
    /// 1-D convolution over channels-last (time-major) input, as MLX lays it
    /// out: inputs `[x (N, L, C_in), weight (C_out, C_in, K)]` (the weight as
    /// [`Tensor::conv1d`] stores it), output `(N, L', C_out)`; no dilation,
    /// no groups. Each output row's window is `K·C_in` contiguous input
    /// values, so the CPU kernel multiplies overlapping rows of `x` in place
    /// (no im2col copy) and no transpose is needed on either side.
    Conv1dChannelsLast {
        /// Step between windows.
        stride: usize,
        /// Zeros added at each end of the time axis.
        padding: usize,
    },
    /// Rotary embedding fused with the head transpose around it: split
    /// halves, every feature, positions `0..T`, f32. With `to_heads` the
    /// input is `(B, T, H, D)` (as the projections leave it) and the output
    /// the rotated `(B, H, T, D)`; otherwise the input is `(B, H, T, D)` and
    /// the output the rotated `(B, T, H, D)`. The compiler chooses it for a
    /// RoPE next to a `(0, 2, 1, 3)` permute, which it saves (it has no
    /// public constructor).
    RopeHeads {
        /// Frequency base.
        base: f32,
        /// Position multiplier (−1 rotates back: RoPE's gradient).
        scale: f32,
        /// Whether the input is sequence-major and the output head-major
        /// (else the reverse).
        to_heads: bool,
    },
    /// `Σ x²` over every element of every input (f32), as an f32 scalar:
    /// the squared global norm of a list of tensors (gradient clipping)
    /// without concatenating them first. The compiler chooses it for
    /// `sum(square(concat(parts)))` (it has no public constructor).
    SumSquares,
    /// The gradient of causal attention (aligned to the end, no sinks) on
    /// f32 `(B, H, T, D)` tensors: inputs `[q, k, v, d_out]`, output dQ, dK
    /// and dV flattened and concatenated into one 1-D tensor. The compiler
    /// chooses it for a composed causal attention's backward (it has no
    /// public constructor).
    SdpaCausalGrad {
        /// Score multiplier.
        scale: f32,
    },
    /// The gradient of [`FastOp::RmsNorm`] over the last axis on f32
    /// tensors: inputs `[x, weight?, d_out…, residual?]` (`d_out` as the
    /// parts of a sum), output dx (plus the residual, x's other cotangent,
    /// when given) and (with a weight) the weight's gradient, flattened and
    /// concatenated into one 1-D tensor.
    /// The compiler chooses it for a composed RMSNorm's backward (it has no
    /// public constructor).
    RmsNormGrad {
        /// Added to the mean square.
        eps: f32,
        /// Whether input 1 is a weight (and the output ends with its gradient).
        has_weight: bool,
        /// How many inputs (at least one) sum to the output's cotangent.
        dy_parts: usize,
        /// Whether the last input (shaped like x) is added to dx.
        has_residual: bool,
    },
    /// Softmax and log-sum-exp of each row of an f32 tensor over its last
    /// axis: inputs `[x, scale?]` (`scale`: one multiplier per row),
    /// output `exp(x - lse)` (times the row's scale) flattened, followed by
    /// `lse` (one per row), as one 1-D tensor, computed with one exp per
    /// element. The compiler chooses it where a traced graph computes both
    /// (a cross-entropy loss and its gradient; it has no public
    /// constructor).
    SoftmaxLogSumExp {
        /// Whether input 1 scales each row's probabilities.
        scaled: bool,
    },
}

impl FastOp {
    /// Whether only the compiler builds this op (a gradient or a fusion
    /// with layout ops): f32 kernels, no reference or CUDA kernel, so those
    /// backends decline it and the graph keeps its composed form.
    pub fn compiler_only(&self) -> bool {
        matches!(
            self,
            FastOp::RopeHeads { .. }
                | FastOp::SdpaSeqMajor { .. }
                | FastOp::SumSquares
                | FastOp::SdpaCausalGrad { .. }
                | FastOp::RmsNormGrad { .. }
                | FastOp::SoftmaxLogSumExp { .. }
        )
    }

    /// Whether only the CPU backend has a kernel for this op (the
    /// compiler's fusions and the channels-last convolution): the reference
    /// and CUDA backends decline it, so the graph keeps its composed form.
    pub fn cpu_only(&self) -> bool {
        self.compiler_only() || matches!(self, FastOp::Conv1dChannelsLast { .. })
    }

    /// The op's name.
    pub fn name(&self) -> &'static str {
        match self {
            FastOp::RmsNorm { .. } => "rms_norm",
            FastOp::LayerNorm { .. } => "layer_norm",
            FastOp::Rope { .. } => "rope",
            FastOp::Conv1dChannelsLast { .. } => "conv1d_channels_last",
            FastOp::RopeHeads { .. } => "rope_heads",
            FastOp::SumSquares => "sum_squares",
            FastOp::Sdpa { .. } => "scaled_dot_product_attention",
            FastOp::SdpaSeqMajor { .. } => "scaled_dot_product_attention_seq_major",
            FastOp::SdpaCausalGrad { .. } => "scaled_dot_product_attention_causal_grad",
            FastOp::RmsNormGrad { .. } => "rms_norm_grad",
            FastOp::SoftmaxLogSumExp { .. } => "softmax_logsumexp",
        }
    }

    /// The same computation built from primitive ops (the composed fallback
    /// and the numerics spec).
    pub fn decompose(&self, inputs: &[Tensor]) -> Result<Tensor> {
        match self {
            FastOp::RmsNorm { eps, .. } => rms_norm::decompose(*eps, inputs),
            FastOp::LayerNorm {
                eps,
                has_weight,
                has_bias,
            } => layer_norm::decompose(*eps, *has_weight, *has_bias, inputs),
            FastOp::Rope { .. } => rope::decompose(self, inputs),
            FastOp::Conv1dChannelsLast { stride, padding } => {
                conv::decompose(*stride, *padding, inputs)
            }
            FastOp::RopeHeads {
                base,
                scale,
                to_heads,
            } => rope::decompose_heads(*base, *scale, *to_heads, inputs),
            FastOp::SumSquares => Tensor::sum_of_squares(inputs),
            FastOp::Sdpa {
                scale,
                mask,
                has_sinks,
                ..
            } => sdpa::decompose(*scale, *mask, *has_sinks, inputs),
            FastOp::SdpaSeqMajor {
                scale,
                mask,
                has_sinks,
                seq_major,
                ..
            } => sdpa::decompose_seq_major(*scale, *mask, *has_sinks, *seq_major, inputs),
            FastOp::SdpaCausalGrad { scale } => sdpa::decompose_causal_grad(*scale, inputs),
            FastOp::RmsNormGrad {
                eps,
                has_weight,
                dy_parts,
                has_residual,
            } => rms_norm::decompose_grad(*eps, *has_weight, *dy_parts, *has_residual, inputs),
            FastOp::SoftmaxLogSumExp { .. } => softmax_lse::decompose(inputs),
        }
    }
}

/// Adds a fast node (for [`Kernels::Fused`]) or its decomposition (for
/// [`Kernels::Composed`], or when the backend has no fused kernel for these
/// inputs: a fallback).
pub(crate) fn build(
    kernels: Kernels,
    op: FastOp,
    inputs: Vec<Tensor>,
    shape: Vec<usize>,
    dtype: DType,
) -> Result<Tensor> {
    let device = crate::ops::common_device(op.name(), &inputs.iter().collect::<Vec<_>>())?;
    if kernels == Kernels::Composed {
        return op.decompose(&inputs);
    }
    let shapes: Vec<(&[usize], DType)> = inputs.iter().map(|t| (t.shape(), t.dtype())).collect();
    match backend::get(device).supports_fast(&op, &shapes) {
        Ok(()) => Tensor::from_op(Op::Fast(op), inputs, shape, dtype, device),
        Err(reason) => {
            telemetry::fallback(op.name(), &reason)?;
            op.decompose(&inputs)
        }
    }
}

/// Upcasts half types to f32 (the decompositions' compute type).
pub(crate) fn to_compute(t: &Tensor) -> Result<Tensor> {
    match t.dtype() {
        DType::F16 | DType::BF16 => t.cast(DType::F32),
        _ => Ok(t.clone()),
    }
}
