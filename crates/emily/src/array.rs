//! Materialised data: a contiguous row-major buffer with a shape and dtype.
//! The buffer belongs to a backend (see [`crate::storage`]); only that
//! backend reads it in place, everyone else reads a host copy.

use std::borrow::Cow;
use std::sync::{Arc, Weak};

use crate::error::{invalid, Result};
use crate::memory::HostBuffer;
use crate::shape::{checked_bytes, numel};
pub use crate::storage::{BackendBuffer, ExternalBytes, Storage};
use crate::{DType, Device, Element};

mod rows;
pub(crate) use rows::moves_down_below;

/// A materialised tensor value: contiguous, row-major, immutable once shared.
/// Cloning is cheap (an `Arc`).
#[derive(Clone)]
pub struct Array {
    storage: Arc<Storage>,
    shape: Arc<[usize]>,
    dtype: DType,
}

impl std::fmt::Debug for Array {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Array({:?}, {}, {})",
            self.shape,
            self.dtype,
            self.device()
        )
    }
}

impl Array {
    /// A new host array with uninitialised contents: the caller must write
    /// every element before anything reads it (crate-private for that reason;
    /// kernels use it so outputs are not zeroed twice). An error when the shape
    /// is too large or the memory is refused.
    pub(crate) fn uninit(shape: &[usize], dtype: DType) -> Result<Array> {
        Self::host(shape, dtype, HostBuffer::new)
    }

    /// A host array of zero bytes (every element 0, `false` or +0.0), from
    /// [`HostBuffer::zeroed`]: fresh pages are not written.
    pub(crate) fn zeroed(shape: &[usize], dtype: DType) -> Result<Array> {
        Self::host(shape, dtype, HostBuffer::zeroed)
    }

    /// A host array of `shape` on the buffer `alloc` gives for its bytes.
    fn host(
        shape: &[usize],
        dtype: DType,
        alloc: impl FnOnce(usize) -> Result<HostBuffer>,
    ) -> Result<Array> {
        let bytes = checked_bytes("alloc", shape, dtype)?;
        Ok(Array {
            storage: Arc::new(Storage::Host(alloc(bytes)?)),
            shape: shape.into(),
            dtype,
        })
    }

    /// A host array holding a copy of `data` (an error when `data` does not
    /// have `shape`'s element count).
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Array> {
        Array::from_bytes(bytemuck::cast_slice(data), shape, T::DTYPE)
    }

    /// A host array holding a copy of `bytes`, little-endian elements of
    /// `dtype` (an error when the length does not match the shape).
    pub fn from_bytes(bytes: &[u8], shape: &[usize], dtype: DType) -> Result<Array> {
        let want = checked_bytes("from_bytes", shape, dtype)?;
        if bytes.len() != want {
            return Err(invalid(
                "from_bytes",
                format!(
                    "{} bytes cannot hold {shape:?} of {dtype} ({want} bytes)",
                    bytes.len()
                ),
            ));
        }
        let mut a = Array::uninit(shape, dtype)?;
        a.bytes_mut().expect("fresh array").copy_from_slice(bytes);
        Ok(a)
    }

    /// An array reading the bytes of `owner` at byte `offset` in place (a
    /// memory-mapped weight file: no copy). The bytes are copied into a host
    /// buffer only if they are misaligned for `dtype`. Errors if the range
    /// lies outside `owner`.
    pub fn from_external(
        owner: ExternalBytes,
        offset: usize,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Array> {
        let len = checked_bytes("from_external", shape, dtype)?;
        let all = (*owner).as_ref();
        let bytes = offset
            .checked_add(len)
            .and_then(|end| all.get(offset..end))
            .ok_or_else(|| {
                invalid(
                    "from_external",
                    format!(
                        "{len} bytes at offset {offset} exceed the {} bytes owned",
                        all.len()
                    ),
                )
            })?;
        if !(bytes.as_ptr() as usize).is_multiple_of(dtype.size_in_bytes()) {
            return Array::from_bytes(bytes, shape, dtype);
        }
        Ok(Array {
            storage: Arc::new(Storage::Mapped { owner, offset, len }),
            shape: shape.into(),
            dtype,
        })
    }

    /// An array over a backend's own buffer, which must hold
    /// `dtype.storage_bytes(shape)` bytes.
    pub fn from_buffer(
        buffer: Box<dyn BackendBuffer>,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Array> {
        let want = checked_bytes("from_buffer", shape, dtype)?;
        if buffer.len_bytes() != want {
            return Err(invalid(
                "from_buffer",
                format!(
                    "a {}-byte {} buffer cannot hold {shape:?} of {dtype} ({want} bytes)",
                    buffer.len_bytes(),
                    buffer.device()
                ),
            ));
        }
        Ok(Array {
            storage: Arc::new(Storage::Backend(buffer)),
            shape: shape.into(),
            dtype,
        })
    }

    /// Shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// The device whose backend owns the buffer.
    pub fn device(&self) -> Device {
        self.storage.device()
    }

    /// The storage behind this array.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Size of the buffer in bytes.
    pub fn len_bytes(&self) -> usize {
        self.storage.len_bytes()
    }

    /// The bytes in place when the buffer is plain host memory (pooled or
    /// mapped); `None` for a backend's own buffer.
    pub fn host_bytes(&self) -> Option<&[u8]> {
        self.storage.host_bytes()
    }

    /// The bytes as little-endian row-major host data, read through the
    /// owning backend (borrowed for host memory, a copy otherwise).
    pub fn to_host_bytes(&self) -> Result<Cow<'_, [u8]>> {
        self.storage.to_host()
    }

    /// The backend buffer of type `B` behind this array, if it is one (how a
    /// backend reads its own buffers).
    pub fn buffer<B: BackendBuffer>(&self) -> Option<&B> {
        match &*self.storage {
            Storage::Backend(b) => b.as_any().downcast_ref(),
            _ => None,
        }
    }

    /// The backend buffer of type `B`, mutably, if this array is its only
    /// holder (in-place updates by the owning backend).
    pub fn buffer_mut<B: BackendBuffer>(&mut self) -> Option<&mut B> {
        match Arc::get_mut(&mut self.storage)? {
            Storage::Backend(b) => b.as_any_mut().downcast_mut(),
            _ => None,
        }
    }

    /// The host bytes of a CPU array (pooled or mapped). The CPU backend
    /// checks at entry that every input is one, so this never fails there.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.storage
            .host_bytes()
            .expect("CPU kernels only see host arrays (checked at backend entry)")
    }

    /// The raw bytes, mutably, if this array is the only owner of a host buffer.
    pub(crate) fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        self.host_buffer_mut().map(HostBuffer::bytes_mut)
    }

    /// The host buffer, if this array is its only owner.
    pub(crate) fn host_buffer_mut(&mut self) -> Option<&mut HostBuffer> {
        match Arc::get_mut(&mut self.storage)? {
            Storage::Host(b) => Some(b),
            _ => None,
        }
    }

    /// The host elements as `T` (panics if `T` is not this array's dtype:
    /// callers dispatch on dtype first).
    pub(crate) fn as_slice<T: Element>(&self) -> &[T] {
        assert_eq!(T::DTYPE, self.dtype, "array dtype mismatch");
        bytemuck::cast_slice(self.bytes())
    }

    /// The host elements as `&mut [T]` if this array is uniquely owned.
    pub(crate) fn as_mut_slice<T: Element>(&mut self) -> Option<&mut [T]> {
        assert_eq!(T::DTYPE, self.dtype, "array dtype mismatch");
        self.bytes_mut().map(bytemuck::cast_slice_mut)
    }

    /// True if no other handle shares this array's buffer and the buffer is
    /// writable (so it can be updated in place; mapped bytes never are).
    pub fn is_unique(&mut self) -> bool {
        Arc::get_mut(&mut self.storage).is_some_and(|s| !matches!(s, Storage::Mapped { .. }))
    }

    /// A weak handle on this array's buffer that identifies it
    /// ([`Array::has_storage`]) for as long as the handle lives. While it
    /// lives the buffer is never written in place (in-place updates need
    /// the only handle, weak ones included), so what was read from it stays
    /// valid.
    pub(crate) fn storage_handle(&self) -> Weak<Storage> {
        Arc::downgrade(&self.storage)
    }

    /// Whether this array's buffer is the one `handle` was taken from.
    pub(crate) fn has_storage(&self, handle: &Weak<Storage>) -> bool {
        std::ptr::eq(Arc::as_ptr(&self.storage), handle.as_ptr())
    }

    /// The same buffer viewed with another shape of equal element count.
    pub fn reshaped(&self, shape: &[usize]) -> Array {
        debug_assert_eq!(numel(shape), self.numel());
        Array {
            storage: self.storage.clone(),
            shape: shape.into(),
            dtype: self.dtype,
        }
    }

    /// Reuses this array's buffer for an output of `shape`/`dtype` if it is unique
    /// and the byte sizes match (buffer donation for in-place kernels); gives the
    /// array back otherwise.
    pub fn donate(mut self, shape: &[usize], dtype: DType) -> std::result::Result<Array, Array> {
        let same_bytes = dtype
            .storage_bytes(shape)
            .is_ok_and(|b| b == self.storage.len_bytes());
        if same_bytes && self.is_unique() {
            Ok(Array {
                storage: self.storage,
                shape: shape.into(),
                dtype,
            })
        } else {
            Err(self)
        }
    }

    /// This array's leading elements as an array of `shape` (same dtype) in
    /// its own buffer, without copying: when nobody else holds the buffer,
    /// it is host memory, and the prefix keeps at least half of its bytes
    /// (so a small prefix does not pin a large allocation). The
    /// array comes back unchanged otherwise.
    pub(crate) fn into_prefix(mut self, shape: &[usize]) -> std::result::Result<Array, Array> {
        let Ok(bytes) = self.dtype.storage_bytes(shape) else {
            return Err(self);
        };
        let len = self.storage.len_bytes();
        if bytes > len || 2 * bytes < len || !self.is_unique() {
            return Err(self);
        }
        match Arc::get_mut(&mut self.storage) {
            Some(Storage::Host(b)) => {
                b.truncate(bytes);
                Ok(Array {
                    storage: self.storage,
                    shape: shape.into(),
                    dtype: self.dtype,
                })
            }
            _ => Err(self),
        }
    }

    /// The value of a one-element array as f64 (`None` for larger arrays or
    /// a buffer its backend cannot read back).
    pub fn scalar_f64(&self) -> Option<f64> {
        if self.numel() != 1 {
            return None;
        }
        let bytes = self.to_host_bytes().ok()?;
        let b = bytes.get(..self.dtype.size_in_bytes())?;
        Some(match self.dtype {
            DType::F32 => f32::from_le_bytes(b.try_into().ok()?) as f64,
            DType::F64 => f64::from_le_bytes(b.try_into().ok()?),
            DType::F16 => half::f16::from_le_bytes(b.try_into().ok()?).to_f64(),
            DType::BF16 => half::bf16::from_le_bytes(b.try_into().ok()?).to_f64(),
            DType::I32 => i32::from_le_bytes(b.try_into().ok()?) as f64,
            DType::I64 => i64::from_le_bytes(b.try_into().ok()?) as f64,
            DType::U8 | DType::Bool => b[0] as f64,
            DType::Quantized(_) => return None,
        })
    }

    /// Bytes of host memory only this array keeps alive (0 when the buffer is
    /// shared with another array or borrowed): what a compiled plan holding
    /// it as a constant costs.
    pub(crate) fn sole_host_bytes(&self) -> usize {
        match &*self.storage {
            Storage::Host(b) if Arc::strong_count(&self.storage) == 1 => b.len(),
            _ => 0,
        }
    }

    /// A weak handle on this array's buffer. It identifies the buffer while
    /// the buffer lives (caches of derived forms, such as packed GEMM weights,
    /// key on it) and, while held, keeps in-place writes off the buffer.
    pub(crate) fn buffer_handle(&self) -> std::sync::Weak<Storage> {
        Arc::downgrade(&self.storage)
    }

    /// Identity of the underlying buffer (for tests of buffer reuse).
    pub fn buffer_id(&self) -> usize {
        Arc::as_ptr(&self.storage) as *const u8 as usize
    }
}
