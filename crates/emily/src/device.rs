//! Devices a tensor can live on.

/// Where a tensor's buffer lives and which backend computes it.
///
/// Only the CPU exists today; `Cuda(ordinal)` joins with the CUDA backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory, computed by the SIMD + threads CPU backend.
    #[default]
    Cpu,
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
        }
    }
}
