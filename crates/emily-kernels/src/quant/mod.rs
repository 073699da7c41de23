//! Block-quantized weights: the storage formats, their reference
//! (de)quantizers, and matrix products with quantized weights.
//!
//! Rows of a weight matrix are stored as consecutive blocks of a
//! [`BlockFormat`]: GGML's `Q8_0`, `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `Q4_K`,
//! `Q5_K` and `Q6_K`, byte-exact with a GGUF file's tensor data, and the
//! affine group formats `int8`/`int4` with groups of 32 or 64 (f16 scale and
//! bias per group). [`dequantize_row`] and [`quantize_row`] convert whole
//! blocks; [`quantize`] and [`dequantize`] do the same for large inputs over
//! the thread pool.

mod activation;
mod affine;
mod bytes;
mod error;
mod format;
mod gemm;
mod gemm_q8;
mod gemv;
mod isa;
mod kquants;
mod legacy;
mod matmul;
mod portable;
mod precision;
mod row;
mod send_ptr;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use activation::Q8Activations;
pub use error::QuantError;
pub use format::{BlockFormat, QK_K};
pub(crate) use gemm::gemm_dequantized;
pub use gemm::gemm_f32;
pub use gemm_q8::{gemm_q8, gemm_q8_with};
pub use gemv::{gemv_q8, gemv_q8_with};
pub use isa::QuantIsa;
pub use matmul::{matmul, matmul_quantized, quantizes_activations, GEMV_MAX_ROWS};
pub use precision::{exact_products, with_exact_products};
pub use row::{dequantize, dequantize_into, dequantize_row, quantize, quantize_into, quantize_row};
