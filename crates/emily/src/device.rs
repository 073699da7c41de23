//! Devices a tensor can live on.

/// Where a tensor's buffer lives and which backend computes it.
///
/// Every tensor belongs to one device; an op whose inputs live on different
/// devices is an error (move data with [`crate::Tensor::to_device`]).
/// `Cuda(ordinal)` joins with the CUDA backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory, computed by the SIMD + threads CPU backend.
    #[default]
    Cpu,
    /// Host memory owned by the reference backend: plain scalar loops with
    /// f64 accumulation, the oracle the other backends are tested against.
    Reference,
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Reference => f.write_str("reference"),
        }
    }
}
