//! Device memory: a caching allocator and the buffer type of the backend.
//!
//! Buffers come from per-size-class free lists ([`crate::memory::size_class`],
//! at most 25% slack), so a step that allocates the same temporaries as the
//! last one calls no `cuMemAlloc`. Every kernel of a device runs on its one
//! stream, so a buffer dropped by the host while kernels that read it are
//! still queued may be handed to a later kernel: the stream runs them in
//! order. When the device refuses an allocation the free lists are released
//! and the allocation tried once more. With `EMILY_CUDA_POISON=1` every
//! buffer handed out is first filled with `0xff` bytes (NaN in every float
//! type), so a kernel that leaves an element unwritten is caught by tests.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{result as cu, sys};

use super::context::Gpu;
use crate::error::{Error, Result};
use crate::memory::size_class;
use crate::storage::BackendBuffer;
use crate::Device;

/// The free lists of one device: size class -> device pointers.
#[derive(Default)]
pub(crate) struct Pool {
    free: Mutex<HashMap<usize, Vec<sys::CUdeviceptr>>>,
}

impl Pool {
    /// Releases every cached block to the driver.
    pub(crate) fn release(&self, gpu: &Gpu) {
        let blocks: Vec<sys::CUdeviceptr> = {
            let mut f = self.free.lock().unwrap_or_else(|e| e.into_inner());
            f.drain().flat_map(|(_, v)| v).collect()
        };
        if blocks.is_empty() {
            return;
        }
        // Queued kernels may still use blocks freed to the lists.
        let _ = gpu.stream.synchronize();
        for p in blocks {
            // SAFETY: allocated by cuMemAlloc, owned by the pool, no longer queued.
            let _ = unsafe { cu::free_sync(p) };
        }
    }

    fn take(&self, class: usize) -> Option<sys::CUdeviceptr> {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&class)
            .and_then(|v| v.pop())
    }

    fn put(&self, class: usize, ptr: sys::CUdeviceptr) {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(class)
            .or_default()
            .push(ptr);
    }
}

/// A block of device memory holding one array (row-major, little-endian,
/// the same bytes as its host form).
pub struct CudaBuffer {
    pub(crate) gpu: Arc<Gpu>,
    pub(crate) ptr: sys::CUdeviceptr,
    len: usize,
    class: usize,
}

impl CudaBuffer {
    /// A buffer of `len` bytes on `gpu` (contents undefined, or `0xff` when
    /// poisoning is on).
    pub(crate) fn alloc(gpu: &Arc<Gpu>, len: usize) -> Result<CudaBuffer> {
        let class = size_class(len.max(1));
        let ptr = match gpu.pool.take(class) {
            Some(p) => p,
            None => {
                gpu.bind()?;
                // SAFETY: plain allocation in the bound context.
                match unsafe { cu::malloc_sync(class) } {
                    Ok(p) => p,
                    Err(_) => {
                        gpu.pool.release(gpu);
                        // SAFETY: as above.
                        unsafe { cu::malloc_sync(class) }
                            .map_err(|_| Error::OutOfMemory { bytes: class })?
                    }
                }
            }
        };
        if gpu.poison {
            // SAFETY: `ptr` holds `class` bytes; the memset is stream-ordered.
            unsafe { cu::memset_d8_async(ptr, 0xff, class, gpu.stream.cu_stream()) }
                .map_err(|e| gpu.err("alloc", e))?;
        }
        Ok(CudaBuffer {
            gpu: gpu.clone(),
            ptr,
            len,
            class,
        })
    }
}

impl Drop for CudaBuffer {
    fn drop(&mut self) {
        self.gpu.pool.put(self.class, self.ptr);
    }
}

impl BackendBuffer for CudaBuffer {
    fn device(&self) -> Device {
        Device::Cuda(self.gpu.ordinal)
    }

    fn len_bytes(&self) -> usize {
        self.len
    }

    fn to_host(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.len];
        if self.len > 0 {
            self.gpu.bind()?;
            // SAFETY: `out` holds `len` bytes and outlives the synchronisation below.
            unsafe { cu::memcpy_dtoh_async(&mut out, self.ptr, self.gpu.stream.cu_stream()) }
                .map_err(|e| self.gpu.err("to_host", e))?;
        }
        self.gpu.synchronize("to_host")?;
        Ok(out)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
