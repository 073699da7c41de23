//! Glue from fast-op nodes to the fused CPU kernels in `emily-kernels::fast`.

use crate::error::{Error, Result};
use crate::fast::FastOp;
use crate::{Array, DType};

/// Whether a fused CPU kernel handles `op` for these inputs.
pub(crate) fn supports(op: &FastOp, _inputs: &[(&[usize], DType)]) -> std::result::Result<(), String> {
    Err(format!("no fused CPU kernel for {} yet", op.name()))
}

/// Runs a supported fast op.
pub(crate) fn execute(op: &FastOp, _inputs: &[Array], _shape: &[usize], _dtype: DType) -> Result<Array> {
    Err(Error::Unsupported { op: op.name().to_string(), device: "cpu".into() })
}
