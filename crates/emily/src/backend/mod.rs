//! Backends implement the op catalogue on a device. They know nothing of the
//! compiler or of each other.
//!
//! The seam a backend plugs into: it owns the buffers of its device (see
//! [`crate::storage`]: pooled host memory for the CPU, a [`BackendBuffer`]
//! of its own otherwise), imports host data ([`Backend::upload`]), runs
//! ops on arrays of its device ([`Backend::execute`], rejecting inputs from
//! any other device), and answers the compiler's questions: which fast ops
//! have a fused kernel ([`Backend::supports_fast`]) and which elementwise
//! ops it can fuse into one pass ([`Backend::can_fuse`]).
//!
//! [`BackendBuffer`]: crate::storage::BackendBuffer

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod matmul_dims;
pub mod reference;

pub(crate) use matmul_dims::MatmulDims;

use crate::error::{Error, Result};
use crate::fast::FastOp;
use crate::ops::{FusedProgram, Op};
use crate::{Array, DType, Device};

use std::sync::Arc;

/// A device's implementation of the op catalogue.
pub trait Backend: Send + Sync {
    /// The device this backend runs.
    fn device(&self) -> Device;

    /// An array of this device holding `bytes` (little-endian, row-major host
    /// data of exactly `dtype.storage_bytes(shape)` bytes).
    fn upload(&self, bytes: &[u8], shape: &[usize], dtype: DType) -> Result<Array>;

    /// Computes `op` on materialised inputs, producing an array of `shape`/`dtype`.
    /// Inputs are passed by value: a uniquely owned input buffer may be reused
    /// for the output. An input on another device is an [`Error::Device`].
    fn execute(&self, op: &Op, inputs: Vec<Array>, shape: &[usize], dtype: DType) -> Result<Array>;

    /// Whether a fused kernel handles `op` for inputs of these shapes/dtypes;
    /// `Err(reason)` makes the op fall back to its decomposition.
    fn supports_fast(
        &self,
        op: &FastOp,
        inputs: &[(&[usize], DType)],
    ) -> std::result::Result<(), String>;

    /// Whether the elementwise `op` (unary, binary, where or cast) with
    /// inputs of `inputs` dtypes and an `output` dtype may join a fused
    /// elementwise program ([`Op::Fused`]) that this backend runs in one pass.
    fn can_fuse(&self, op: &Op, inputs: &[DType], output: DType) -> bool;

    /// Most outputs (its main one and [`FusedProgram::extra_outputs`]) one
    /// fused elementwise program may write on this backend. 1, the default:
    /// the compiler never forms programs with extra outputs for it.
    fn max_fused_outputs(&self) -> usize {
        1
    }

    /// Runs a fused program with extra outputs over materialised inputs in
    /// one pass: its main output (`shape`/`dtype`), then each extra output
    /// (same shape, its own dtype), in order. Only backends whose
    /// [`Backend::max_fused_outputs`] admits the program run it; the
    /// default runs programs without extra outputs only.
    fn execute_fused(
        &self,
        program: &Arc<FusedProgram>,
        inputs: Vec<Array>,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Vec<Array>> {
        program.check_one_output()?;
        Ok(vec![self.execute(
            &Op::Fused(program.clone()),
            inputs,
            shape,
            dtype,
        )?])
    }

    /// Whether this backend runs [`Op::MlpInt8Then`] (two int8 products
    /// with epilogues, by row blocks).
    fn can_fuse_int8_mlp(&self) -> bool {
        false
    }

    /// Whether this backend runs [`Op::MatmulThen`] (a product with an
    /// elementwise program applied as its output is written) for an int8
    /// product (`int8`) or a matmul of `a` and `b` dtypes.
    fn can_fuse_product_epilogue(&self, _int8: bool, _a: DType, _b: DType) -> bool {
        false
    }
}

/// The backend of a device.
pub fn get(device: Device) -> &'static dyn Backend {
    match device {
        Device::Cpu => &cpu::CpuBackend,
        Device::Reference => &reference::ReferenceBackend,
        #[cfg(feature = "cuda")]
        Device::Cuda(n) => cuda::backend(n),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(n) => no_cuda(n),
    }
}

/// The first input of `op` that does not live on `device`, as an
/// [`Error::Device`] naming the op and both devices.
pub(crate) fn check_inputs(op: &Op, device: Device, inputs: &[Array]) -> Result<()> {
    match inputs.iter().find(|a| a.device() != device) {
        Some(a) => Err(Error::Device {
            op: op.name(),
            device,
            found: a.device(),
        }),
        None => Ok(()),
    }
}

/// The backend of `Device::Cuda(n)` in a build without the `cuda` feature:
/// every use is an error saying how to get one.
#[cfg(not(feature = "cuda"))]
fn no_cuda(n: usize) -> &'static dyn Backend {
    static NO_CUDA: std::sync::OnceLock<std::sync::Mutex<Vec<&'static NoCuda>>> =
        std::sync::OnceLock::new();
    let mut all = NO_CUDA
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(b) = all.iter().find(|b| b.0 == n) {
        return *b;
    }
    let b: &'static NoCuda = Box::leak(Box::new(NoCuda(n)));
    all.push(b);
    b
}

#[cfg(not(feature = "cuda"))]
struct NoCuda(usize);

#[cfg(not(feature = "cuda"))]
impl NoCuda {
    fn error(&self, op: &'static str) -> Error {
        Error::Backend {
            op,
            device: Device::Cuda(self.0),
            msg: "this build has no CUDA backend (build emily with feature `cuda`)".into(),
        }
    }
}

#[cfg(not(feature = "cuda"))]
impl Backend for NoCuda {
    fn device(&self) -> Device {
        Device::Cuda(self.0)
    }

    fn upload(&self, _bytes: &[u8], _shape: &[usize], _dtype: DType) -> Result<Array> {
        Err(self.error("upload"))
    }

    fn execute(
        &self,
        op: &Op,
        _inputs: Vec<Array>,
        _shape: &[usize],
        _dtype: DType,
    ) -> Result<Array> {
        Err(self.error(op.name()))
    }

    fn supports_fast(
        &self,
        _op: &FastOp,
        _inputs: &[(&[usize], DType)],
    ) -> std::result::Result<(), String> {
        Err(self.error("fast").to_string())
    }

    fn can_fuse(&self, _op: &Op, _inputs: &[DType], _output: DType) -> bool {
        false
    }
}
