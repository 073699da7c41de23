//! Fused transformer kernels: RMSNorm, LayerNorm, rotary embeddings (RoPE) and
//! scaled-dot-product attention (flash style).
//!
//! Each kernel works on plain `f32` slices (f16/bf16 entry points widen rows into
//! `f32` scratch and narrow the result), runs its inner loops through the
//! run-time ISA dispatch of [`crate::simd`], and spreads rows / attention blocks
//! over the global pool of [`crate::parallel`] above a size threshold.
//!
//! Layout conventions shared by RoPE and attention are in [`HeadStrides`]: a
//! 4-D `(batch, head, seq, feature)` tensor whose feature axis is contiguous and
//! whose other three axes have arbitrary element strides, so both `(B, H, T, D)`
//! and `(B, T, H, D)` buffers are accepted without a copy.
//!
//! Numerics are specified against float64 references (see the `fast_*` tests):
//! reductions and softmax accumulate in `f32`; RoPE angles are formed and
//! range-reduced in `f64`; a fully masked attention row returns zeros.

mod attention;
mod attention_grad;
mod lanes;
mod layer_norm;
mod layout;
mod rms_norm;
mod rms_norm_grad;
mod rope;
mod stream;
mod widen;

pub use attention::{
    sdpa_bf16, sdpa_bf16_f32_out, sdpa_f16, sdpa_f32, sdpa_f32_f16_kv, sdpa_f32_wants_head_major,
    Mask, MaskStrides, SdpaParams,
};
pub use attention_grad::sdpa_causal_backward_f32;
pub use layer_norm::{layer_norm_bf16, layer_norm_f16, layer_norm_f32};
pub use layout::HeadStrides;
pub use rms_norm::{rms_norm_bf16, rms_norm_f16, rms_norm_f32};
pub use rms_norm_grad::{rms_norm_backward_f32, rms_norm_backward_plus_f32};
pub use rope::{rope_bf16, rope_f16, rope_f32, Positions, RopeParams};
