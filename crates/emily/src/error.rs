//! The one error type of the core crate.

use crate::{DType, Device};

/// Everything that can go wrong building or evaluating tensors. Messages name
/// the op and the shapes/dtypes involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Shapes that an op cannot combine, e.g. `[add] cannot broadcast [2, 3] with [4]`.
    #[error("[{op}] {msg}")]
    Shape {
        /// The op that rejected its inputs.
        op: &'static str,
        /// What was wrong, with the shapes.
        msg: String,
    },
    /// A dtype an op does not accept.
    #[error("[{op}] unsupported dtype {dtype}{detail}")]
    DType {
        /// The op that rejected the dtype.
        op: &'static str,
        /// The offending dtype.
        dtype: DType,
        /// Extra context (may be empty).
        detail: String,
    },
    /// Any other invalid argument (axis out of range, bad option).
    #[error("[{op}] {msg}")]
    Invalid {
        /// The op or function that rejected the argument.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// A fast op had to fall back to its composed form while fallbacks are errors.
    #[error("[{op}] fallback to the composed implementation is disabled (strict mode): {reason}")]
    Fallback {
        /// The fast op.
        op: &'static str,
        /// Why the fused kernel could not be used.
        reason: String,
    },
    /// An op was handed an input that lives on another device than the
    /// backend running it (move it first with `Tensor::to_device`).
    #[error("[{op}] input on device {found}, but the op runs on {device} (use to_device)")]
    Device {
        /// The op.
        op: &'static str,
        /// The device whose backend runs the op.
        device: Device,
        /// The device the offending input lives on.
        found: Device,
    },
    /// A backend could not run: its driver or libraries are missing, the
    /// device refused a call, or a kernel reported bad input (e.g. `CUDA
    /// driver not found`, a kernel that failed to compile, an index out of
    /// range found on the device).
    #[error("[{op}] {device}: {msg}")]
    Backend {
        /// The op or call that failed.
        op: &'static str,
        /// The device whose backend failed.
        device: Device,
        /// What went wrong.
        msg: String,
    },
    /// A buffer could not be allocated (the system refused the memory).
    #[error("cannot allocate a buffer of {bytes} bytes")]
    OutOfMemory {
        /// The bytes requested.
        bytes: usize,
    },
    /// Reading data of a symbolic tensor while tracing for `compile`.
    #[error("cannot evaluate a traced (symbolic) tensor inside a compiled function")]
    Traced,
}

/// Result alias for the core crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error::Shape`].
pub(crate) fn shape_err(op: &'static str, msg: impl Into<String>) -> Error {
    Error::Shape {
        op,
        msg: msg.into(),
    }
}

/// Builds an [`Error::Invalid`].
pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> Error {
    Error::Invalid {
        op,
        msg: msg.into(),
    }
}

/// Builds an [`Error::DType`].
pub(crate) fn dtype_err(op: &'static str, dtype: DType, detail: impl Into<String>) -> Error {
    Error::DType {
        op,
        dtype,
        detail: detail.into(),
    }
}
