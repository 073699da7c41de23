//! Devices a tensor can live on.

use crate::error::{invalid, Error, Result};

/// Where a tensor's buffer lives and which backend computes it.
///
/// Every tensor belongs to one device; an op whose inputs live on different
/// devices is an error (move data with [`crate::Tensor::to_device`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory, computed by the SIMD + threads CPU backend.
    #[default]
    Cpu,
    /// Host memory owned by the reference backend: plain scalar loops with
    /// f64 accumulation, the oracle the other backends are tested against.
    Reference,
    /// The NVIDIA GPU of this ordinal (CUDA backend, feature `cuda`): device
    /// memory, kernels compiled at run time, GEMM through cuBLAS. Without the
    /// feature, or without a driver, every op on it is an [`Error::Backend`].
    Cuda(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Reference => f.write_str("reference"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = Error;

    /// `cpu`, `reference`, `cuda` (ordinal 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Device> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "reference" => Ok(Device::Reference),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| {
                    invalid(
                        "device",
                        format!("unknown device {s:?} (expected cpu, reference, cuda or cuda:N)"),
                    )
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Device;

    #[test]
    fn devices_parse_and_print() {
        for d in [
            Device::Cpu,
            Device::Reference,
            Device::Cuda(0),
            Device::Cuda(3),
        ] {
            assert_eq!(d.to_string().parse::<Device>().unwrap(), d);
        }
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        let e = "tpu".parse::<Device>().unwrap_err().to_string();
        assert!(e.contains("unknown device \"tpu\""), "{e}");
        assert!("cuda:x".parse::<Device>().is_err());
    }
}
