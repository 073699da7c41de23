//! One GPU: its context, stream, cuBLAS handle, loaded kernels and the
//! word through which kernels report bad input.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use cudarc::cublas::{result as blas, sys as blas_sys};
use cudarc::driver::{result as cu, sys, CudaContext, CudaFunction, CudaStream};
use cudarc::nvrtc::Ptx;

use super::compiler::{self, Arch};
use super::memory::Pool;
use super::sources::Kernel;
use crate::error::{Error, Result};
use crate::Device;

/// A cuBLAS handle bound to the device's stream.
pub(crate) struct Blas(pub(crate) blas_sys::cublasHandle_t);
// SAFETY: the handle is used under the `Gpu::blas` mutex only.
unsafe impl Send for Blas {}

/// Everything the backend holds for one device.
pub struct Gpu {
    pub(crate) ordinal: usize,
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) arch: Arch,
    pub(crate) sm_count: u32,
    pub(crate) blas: Mutex<Blas>,
    pub(crate) pool: Pool,
    pub(crate) poison: bool,
    functions: Mutex<HashMap<String, CudaFunction>>,
    /// Eight words: the first error code a kernel reported, and its details.
    pub(crate) err_flag: sys::CUdeviceptr,
}

// SAFETY: the raw handles are used under locks or are thread-safe driver
// objects; the context is bound to the calling thread before each use.
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

/// Whether the CUDA driver library can be opened (cudarc panics on a
/// missing library, so this is asked before any driver call).
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the library.
    unsafe { sys::is_culib_present() }
}

impl Gpu {
    /// Opens device `ordinal`: context, stream, cuBLAS, the error word.
    pub(crate) fn open(ordinal: usize) -> std::result::Result<Arc<Gpu>, String> {
        if !driver_present() {
            return Err("CUDA driver not found (libcuda.so could not be opened)".into());
        }
        // SAFETY: as above.
        if !unsafe { blas_sys::is_culib_present() } {
            return Err("cuBLAS not found (libcublas.so.13 could not be opened)".into());
        }
        compiler::nvrtc_available()?;
        cu::init().map_err(|e| format!("cuInit failed: {e:?}"))?;
        let count = CudaContext::device_count().map_err(|e| format!("{e:?}"))?;
        if ordinal >= count.max(0) as usize {
            return Err(format!("no CUDA device {ordinal} ({count} present)"));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| format!("{e:?}"))?;
        let (major, minor) = ctx.compute_capability().map_err(|e| format!("{e:?}"))?;
        let sm_count = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(|e| format!("{e:?}"))? as u32;
        let stream = ctx.new_stream().map_err(|e| format!("{e:?}"))?;
        let handle = blas::create_handle().map_err(|e| format!("cublasCreate: {e:?}"))?;
        // SAFETY: a fresh handle and a live stream.
        unsafe { blas::set_stream(handle, stream.cu_stream() as _) }
            .map_err(|e| format!("cublasSetStream: {e:?}"))?;
        // SAFETY: 32 bytes, zeroed before any kernel can report.
        let err_flag = unsafe {
            let p = cu::malloc_sync(32).map_err(|e| format!("{e:?}"))?;
            cu::memset_d8_sync(p, 0, 32).map_err(|e| format!("{e:?}"))?;
            p
        };
        let poison = std::env::var("EMILY_CUDA_POISON").is_ok_and(|v| v == "1");
        tracing::debug!(target: "emily::cuda", ordinal, major, minor, sm_count, "cuda device opened");
        Ok(Arc::new(Gpu {
            ordinal,
            ctx,
            stream,
            arch: (major as u32, minor as u32),
            sm_count,
            blas: Mutex::new(Blas(handle)),
            pool: Pool::default(),
            poison,
            functions: Mutex::new(HashMap::new()),
            err_flag,
        }))
    }

    /// The device.
    pub fn device(&self) -> Device {
        Device::Cuda(self.ordinal)
    }

    /// An [`Error::Backend`] for a failed driver call of `op`.
    pub(crate) fn err(&self, op: &'static str, e: impl std::fmt::Debug) -> Error {
        Error::Backend {
            op,
            device: self.device(),
            msg: format!("{e:?}"),
        }
    }

    /// Makes the device's context current on this thread.
    pub(crate) fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| self.err("bind", e))
    }

    /// The kernel `k`, compiled and loaded on first use.
    pub(crate) fn function(&self, op: &'static str, k: &Kernel) -> Result<CudaFunction> {
        if let Some(f) = self
            .functions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&k.name)
        {
            return Ok(f.clone());
        }
        self.load(op, &k.name, &k.source())
    }

    /// The function `name` of `source`, compiled and loaded on first use.
    pub(crate) fn load(&self, op: &'static str, name: &str, source: &str) -> Result<CudaFunction> {
        if let Some(f) = self
            .functions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(f.clone());
        }
        let image = compiler::compile(name, source, self.arch).map_err(|msg| Error::Backend {
            op,
            device: self.device(),
            msg,
        })?;
        self.bind()?;
        let module = self
            .ctx
            .load_module(Ptx::from_binary(image.as_ref().clone()))
            .map_err(|e| self.err(op, e))?;
        let f = module.load_function(name).map_err(|e| self.err(op, e))?;
        self.functions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), f.clone());
        Ok(f)
    }

    /// Launches `f` on the device's stream. `args` point at the kernel's
    /// parameters in order (see [`arg`]).
    pub(crate) fn launch(
        &self,
        op: &'static str,
        f: &CudaFunction,
        grid: (u32, u32, u32),
        block: u32,
        shared: u32,
        args: &mut [*mut c_void],
    ) -> Result<()> {
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 {
            return Ok(());
        }
        self.bind()?;
        if shared > 48 * 1024 {
            f.set_attribute(
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                shared as i32,
            )
            .map_err(|e| self.err(op, e))?;
        }
        // SAFETY: `args` match the kernel's parameter list (each caller builds
        // them from the kernel's signature) and point at live values.
        unsafe {
            cu::launch_kernel(
                f.cu_function(),
                grid,
                (block, 1, 1),
                shared,
                self.stream.cu_stream(),
                args,
            )
        }
        .map_err(|e| self.err(op, e))
    }

    /// Launches a grid-stride kernel over `n` items: a 1-D grid of
    /// `block`-thread blocks from [`Gpu::grid_for`], no dynamic shared memory.
    pub(crate) fn launch_over(
        &self,
        op: &'static str,
        f: &CudaFunction,
        n: usize,
        block: u32,
        args: &mut [*mut c_void],
    ) -> Result<()> {
        self.launch(op, f, (self.grid_for(n, block), 1, 1), block, 0, args)
    }

    /// A grid of `block`-thread blocks covering `n` items (grid-stride loops
    /// take the rest), at most a few waves.
    pub(crate) fn grid_for(&self, n: usize, block: u32) -> u32 {
        let want = n.div_ceil(block as usize).max(1);
        want.min(self.sm_count as usize * 32).min(u32::MAX as usize) as u32
    }

    /// Waits for the stream, then turns a bad input a kernel reported (an
    /// index out of range ...) into an error.
    pub(crate) fn synchronize(&self, op: &'static str) -> Result<()> {
        self.bind()?;
        self.stream.synchronize().map_err(|e| self.err(op, e))?;
        let mut words = [0u32; 8];
        // SAFETY: the flag holds 32 bytes; the stream is idle.
        unsafe { cu::memcpy_dtoh_sync(&mut words, self.err_flag) }.map_err(|e| self.err(op, e))?;
        if words[0] == 0 {
            return Ok(());
        }
        // SAFETY: as above.
        unsafe { cu::memset_d8_sync(self.err_flag, 0, 32) }.map_err(|e| self.err(op, e))?;
        let d = |i: usize| (words[2 + 2 * i] as u64 | ((words[3 + 2 * i] as u64) << 32)) as i64;
        let (what, msg) = match words[0] {
            1 => (
                "gather",
                format!("index {} out of range for axis of size {}", d(0), d(1)),
            ),
            2 => (
                "scatter_add",
                format!("index {} out of range for axis of size {}", d(0), d(1)),
            ),
            3 => (
                "slice_update",
                format!(
                    "offset {} + length {} exceeds the axis size {}",
                    d(0),
                    d(1),
                    d(2)
                ),
            ),
            4 => ("rope", format!("negative offset {}", d(0))),
            c => ("kernel", format!("device error code {c}")),
        };
        Err(Error::Backend {
            op: what,
            device: self.device(),
            msg,
        })
    }
}

/// A kernel parameter: a pointer to the value (which must outlive the launch call).
pub(crate) fn arg<T>(x: &T) -> *mut c_void {
    x as *const T as *mut c_void
}
