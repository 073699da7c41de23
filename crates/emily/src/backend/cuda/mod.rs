//! The CUDA backend (feature `cuda`): device memory from a caching
//! allocator, one stream per device, kernels written as CUDA C templates
//! ([`sources`]) or generated from fused programs ([`codegen`]) and compiled
//! at run time by NVRTC for the device's architecture ([`compiler`]), GEMM
//! through cuBLAS.
//!
//! Nothing from NVIDIA is needed to build: libcuda, libnvrtc and libcublas
//! are opened when a CUDA device is first used. A missing library or device
//! makes every op on `Device::Cuda(n)` an [`Error::Backend`] saying so.
//! Work is queued on the device's stream and runs asynchronously; reading a
//! result back ([`crate::storage::BackendBuffer::to_host`]) waits for it and
//! reports bad input the kernels found (an index out of range ...).

mod codegen;
pub mod compiler;
mod context;
mod elementwise;
mod fast;
mod layout;
mod linalg;
mod memory;
mod reduce;
pub mod sources;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub use context::{driver_present, Gpu};
pub use memory::CudaBuffer;

use super::Backend;
use crate::error::{Error, Result};
use crate::fast::FastOp;
use crate::ops::Op;
use crate::shape::numel;
use crate::{Array, DType, Device};
use sources::Kernel;

/// The backend of one CUDA device, opened on first use.
pub struct CudaBackend {
    ordinal: usize,
    gpu: OnceLock<std::result::Result<Arc<Gpu>, String>>,
}

/// The backend of device `ordinal` (one per ordinal for the process).
pub fn backend(ordinal: usize) -> &'static CudaBackend {
    static ALL: OnceLock<Mutex<HashMap<usize, &'static CudaBackend>>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    all.entry(ordinal).or_insert_with(|| {
        Box::leak(Box::new(CudaBackend {
            ordinal,
            gpu: OnceLock::new(),
        }))
    })
}

impl CudaBackend {
    /// The opened device, or why it cannot be used.
    pub fn gpu(&self) -> Result<&Arc<Gpu>> {
        self.gpu
            .get_or_init(|| Gpu::open(self.ordinal))
            .as_ref()
            .map_err(|msg| Error::Backend {
                op: "cuda",
                device: Device::Cuda(self.ordinal),
                msg: msg.clone(),
            })
    }

    /// Waits until every queued kernel of the device has run (for timing),
    /// reporting bad input a kernel found.
    pub fn synchronize(&self) -> Result<()> {
        self.gpu()?.synchronize("synchronize")
    }
}

/// Whether CUDA device `ordinal` can be used, or why not.
pub fn available(ordinal: usize) -> Result<()> {
    backend(ordinal).gpu().map(|_| ())
}

/// Seconds per device-to-device copy of `bytes` bytes on device `ordinal`
/// (the median of 5 batches of `reps` copies, each batch timed from the
/// first enqueue to the stream going idle): the bandwidth ceiling that
/// memory-bound kernels are compared with.
pub fn time_device_copy(ordinal: usize, bytes: usize, reps: usize) -> Result<f64> {
    let gpu = backend(ordinal).gpu()?;
    let src = CudaBuffer::alloc(gpu, bytes)?;
    let dst = CudaBuffer::alloc(gpu, bytes)?;
    let copy = || -> Result<()> {
        // SAFETY: both buffers hold `bytes` bytes and outlive the stream sync below.
        unsafe {
            cudarc::driver::result::memcpy_dtod_async(
                dst.ptr,
                src.ptr,
                bytes,
                gpu.stream.cu_stream(),
            )
        }
        .map_err(|e| gpu.err("copy", e))
    };
    copy()?;
    gpu.synchronize("copy")?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        for _ in 0..reps.max(1) {
            copy()?;
        }
        gpu.synchronize("copy")?;
        times.push(t.elapsed().as_secs_f64() / reps.max(1) as f64);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[2])
}

/// A fresh device array of `shape`/`dtype` and its device pointer.
pub(crate) fn alloc(gpu: &Arc<Gpu>, shape: &[usize], dtype: DType) -> Result<(Array, u64)> {
    let bytes = dtype.storage_bytes(shape)?;
    let buf = CudaBuffer::alloc(gpu, bytes)?;
    let ptr = buf.ptr;
    Ok((Array::from_buffer(Box::new(buf), shape, dtype)?, ptr))
}

/// The device pointer of a CUDA array.
pub(crate) fn ptr(op: &'static str, a: &Array) -> Result<u64> {
    a.buffer::<CudaBuffer>()
        .map(|b| b.ptr)
        .ok_or_else(|| crate::error::invalid(op, "input is not a CUDA buffer"))
}

impl Backend for CudaBackend {
    fn device(&self) -> Device {
        Device::Cuda(self.ordinal)
    }

    fn upload(&self, bytes: &[u8], shape: &[usize], dtype: DType) -> Result<Array> {
        let gpu = self.gpu()?;
        let want = dtype.storage_bytes(shape)?;
        if bytes.len() != want {
            return Err(crate::error::invalid(
                "upload",
                format!(
                    "{} bytes for {shape:?} of {dtype} ({want} expected)",
                    bytes.len()
                ),
            ));
        }
        let (a, p) = alloc(gpu, shape, dtype)?;
        if !bytes.is_empty() {
            gpu.bind()?;
            // SAFETY: the buffer holds `bytes.len()` bytes; the stream is
            // synchronised before `bytes` can go away.
            unsafe { cudarc::driver::result::memcpy_htod_async(p, bytes, gpu.stream.cu_stream()) }
                .map_err(|e| gpu.err("upload", e))?;
            gpu.stream.synchronize().map_err(|e| gpu.err("upload", e))?;
        }
        Ok(a)
    }

    fn execute(&self, op: &Op, inputs: Vec<Array>, shape: &[usize], dtype: DType) -> Result<Array> {
        super::check_inputs(op, self.device(), &inputs)?;
        let gpu = self.gpu()?;
        let x = || &inputs[0];
        let quantized = inputs.iter().map(|a| a.dtype()).chain([dtype]);
        if let Some(q) = quantized.into_iter().find(|d| d.block_format().is_some()) {
            if !matches!(op, Op::Reshape) {
                return Err(Error::Backend {
                    op: op.name(),
                    device: self.device(),
                    msg: format!("block-quantised {q} data is not supported by the CUDA backend"),
                });
            }
        }
        if numel(shape) == 0
            && !matches!(
                op,
                Op::Gather { .. } | Op::SliceUpdate { .. } | Op::ScatterAdd { .. }
            )
        {
            return alloc(gpu, shape, dtype).map(|(a, _)| a);
        }
        match op {
            Op::Reshape => Ok(x().reshaped(shape)),
            Op::Full { value } => elementwise::full(gpu, *value, shape, dtype),
            Op::Iota { axis } => elementwise::iota(gpu, *axis, shape, dtype),
            Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast => {
                elementwise::eager(gpu, op, &inputs, shape, dtype)
            }
            Op::Fused(p) => {
                p.check_one_output()?;
                elementwise::fused(gpu, p, &inputs, shape, dtype)
            }
            Op::FusedOutput { .. } => Err(crate::ops::fused_output_error()),
            Op::Reduce { op, axes, .. } => reduce::reduce(gpu, *op, x(), axes, shape, dtype),
            Op::Softmax { axis } => reduce::softmax(gpu, x(), *axis, dtype),
            Op::Matmul {
                transpose_a,
                transpose_b,
            } => linalg::matmul(
                gpu,
                x(),
                &inputs[1],
                *transpose_a,
                *transpose_b,
                shape,
                dtype,
            ),
            // Computed exactly in f32 (within the op's stated int8 error bound).
            Op::MatmulInt8 { transpose_b } => {
                let w = elementwise::convert(gpu, &inputs[1], DType::F32)?;
                linalg::matmul(gpu, x(), &w, false, *transpose_b, shape, dtype)
            }
            Op::MatmulThen { .. } => Err(crate::error::invalid(
                op.name(),
                "formed only for backends that report can_fuse_product_epilogue",
            )),
            Op::ConvThen { .. } | Op::MlpInt8Then { .. } => Err(crate::error::invalid(
                op.name(),
                "formed only for the CPU backend",
            )),
            Op::Conv1d {
                stride,
                padding,
                dilation,
                groups,
            } => linalg::conv1d(
                gpu,
                x(),
                &inputs[1],
                [*stride, *padding, *dilation, *groups],
                shape,
                dtype,
            ),
            Op::Permute { perm } => layout::permute(gpu, x(), perm, shape),
            Op::Broadcast => layout::broadcast(gpu, x(), shape),
            Op::Slice { starts, steps } => layout::slice(gpu, x(), starts, steps, shape),
            Op::Concat { axis } => layout::concat(gpu, &inputs, *axis, shape, dtype),
            Op::Pad { pads, value } => layout::pad(gpu, x(), pads, *value, shape),
            Op::Gather { axis } => layout::gather(gpu, x(), &inputs[1], *axis, shape),
            Op::SliceUpdate { axis } => {
                let mut it = inputs.into_iter();
                let (t, u, o) = (it.next(), it.next(), it.next());
                match (t, u, o) {
                    (Some(t), Some(u), Some(o)) => layout::slice_update(gpu, t, &u, &o, *axis),
                    _ => Err(crate::error::invalid("slice_update", "expects 3 inputs")),
                }
            }
            Op::ScatterAdd { axis } => layout::scatter_add(gpu, x(), &inputs[1], &inputs[2], *axis),
            Op::RandomUniform { stream } => layout::random_uniform(gpu, x(), *stream, shape, dtype),
            Op::Fast(f) => fast::execute(gpu, f, &inputs, shape, dtype),
        }
    }

    fn supports_fast(
        &self,
        op: &FastOp,
        inputs: &[(&[usize], DType)],
    ) -> std::result::Result<(), String> {
        self.gpu().map_err(|e| e.to_string())?;
        fast::supports(op, inputs)
    }

    /// Every elementwise op fuses: the fused program becomes one generated
    /// kernel computing in f32 or f64 as the dtypes require.
    fn can_fuse(&self, op: &Op, _inputs: &[DType], _output: DType) -> bool {
        op.is_elementwise()
    }
}

/// Pushes one instantiation of every kernel template the backend launches
/// (every dtype and variant), for the NVRTC test.
pub(crate) fn kernels_catalogue(push: &mut dyn FnMut(Kernel)) {
    layout::catalogue(push);
    reduce::catalogue(push);
    fast::catalogue(push);
    linalg::catalogue(push);
}

#[cfg(test)]
mod tests;
