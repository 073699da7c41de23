//! CPU kernels for Emily.
//!
//! Everything here works on plain slices and knows nothing of tensors, graphs
//! or compilation: the `emily` crate's CPU backend calls these functions after
//! it has resolved shapes, strides and dtypes. Kernels compute in `f32` (f16 and
//! bf16 are widened by the caller or per row), pick their instruction set at run
//! time through [`simd`], and split work over the global `rayon` pool only above
//! a size threshold ([`parallel`]).

#![deny(missing_docs)]

pub mod awake_workers;
pub mod binary;
pub mod cast;
pub mod fast;
pub mod gemm;
pub mod gemv;
pub mod gemv_i8;
pub mod huge_pages;
pub mod math;
pub mod parallel;
mod prefetch;
pub mod quant;
pub mod reduce;
pub mod silu_grad;
pub mod simd;
pub mod softmax;
pub mod softmax_lse;
mod thread_flag;
pub mod unary;
