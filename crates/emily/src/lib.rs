//! Emily core: lazy tensors, the op catalogue, fused transformer kernels, a
//! compiler that traces, fuses and replays, and the backends that run them.
//!
//! ```
//! use emily::{DType, Tensor};
//! let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
//! let y = x.mul_scalar(2.0)?.add(&x)?.sum(&[-1], false)?; // lazy: nothing computed yet
//! assert_eq!(y.to_vec::<f32>()?, vec![9.0, 21.0]);        // reading evaluates
//! # Ok::<(), emily::Error>(())
//! ```

#![deny(missing_docs)]

pub mod array;
pub mod backend;
pub mod compile;
pub mod device;
pub mod dtype;
pub mod error;
mod eval;
pub mod fast;
pub mod grad;
pub mod memory;
pub mod ops;
pub mod shape;
pub mod storage;
pub mod telemetry;
mod tensor;

pub use array::Array;
pub use compile::{compile, compile_with, CompileOptions, Compiled, PlanCacheLimits};
pub use device::Device;
pub use dtype::{Bool, DType, Element};
pub use emily_kernels::quant::BlockFormat;
pub use error::{Error, Result};
pub use fast::Kernels;
pub use tensor::{eval_all, Tensor};
