//! Backends implement the op catalogue on a device. They know nothing of the
//! compiler or of each other.

pub mod cpu;

use crate::error::Result;
use crate::fast::FastOp;
use crate::ops::Op;
use crate::{Array, DType, Device};

/// A device's implementation of the op catalogue.
pub trait Backend: Send + Sync {
    /// Computes `op` on materialised inputs, producing an array of `shape`/`dtype`.
    /// Inputs are passed by value: a uniquely owned input buffer may be reused
    /// for the output.
    fn execute(&self, op: &Op, inputs: Vec<Array>, shape: &[usize], dtype: DType) -> Result<Array>;

    /// Whether a fused kernel handles `op` for inputs of these shapes/dtypes;
    /// `Err(reason)` makes the op fall back to its decomposition.
    fn supports_fast(
        &self,
        op: &FastOp,
        inputs: &[(&[usize], DType)],
    ) -> std::result::Result<(), String>;
}

/// The backend of a device.
pub fn get(device: Device) -> &'static dyn Backend {
    match device {
        Device::Cpu => &cpu::CpuBackend,
    }
}
