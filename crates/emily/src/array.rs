//! Materialised data: a contiguous row-major buffer with a shape and dtype.

use std::sync::Arc;

use crate::error::{invalid, Result};
use crate::memory::HostBuffer;
use crate::shape::{checked_bytes, numel};
use crate::{DType, Element};

/// Bytes owned by something else (a memory map, a loaded file) that a tensor
/// can read without copying.
pub type ExternalBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Where an array's bytes live.
pub enum Storage {
    /// A pooled host buffer.
    Host(HostBuffer),
    /// Borrowed bytes (e.g. memory-mapped weights), read-only, at a byte offset.
    External {
        /// The owner of the bytes.
        owner: ExternalBytes,
        /// Byte offset of the array's first element.
        offset: usize,
        /// Length in bytes.
        len: usize,
    },
}

impl Storage {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Storage::Host(b) => b.bytes(),
            Storage::External { owner, offset, len } => {
                &(**owner).as_ref()[*offset..*offset + *len]
            }
        }
    }
}

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
        write!(f, "Array({:?}, {})", self.shape, self.dtype)
    }
}

impl Array {
    /// A new host array with uninitialised contents: the caller must write
    /// every element before anything reads it (crate-private for that reason;
    /// kernels use it so outputs are not zeroed twice). An error when the shape
    /// is too large or the memory is refused.
    pub(crate) fn uninit(shape: &[usize], dtype: DType) -> Result<Array> {
        let bytes = checked_bytes("alloc", shape, dtype)?;
        Ok(Array {
            storage: Arc::new(Storage::Host(HostBuffer::new(bytes)?)),
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

    /// An array reading `shape`'s bytes of `owner` at `offset` without copying
    /// (copied into a host buffer if the bytes are misaligned for `dtype`). An
    /// error when the range does not lie inside `owner`.
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
            storage: Arc::new(Storage::External { owner, offset, len }),
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

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// The raw bytes, mutably, if this array is the only owner of a host buffer.
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match Arc::get_mut(&mut self.storage)? {
            Storage::Host(b) => Some(b.bytes_mut()),
            Storage::External { .. } => None,
        }
    }

    /// The elements as `T` (panics if `T` is not this array's dtype: callers
    /// dispatch on dtype first).
    pub fn as_slice<T: Element>(&self) -> &[T] {
        assert_eq!(T::DTYPE, self.dtype, "array dtype mismatch");
        bytemuck::cast_slice(self.bytes())
    }

    /// The elements as `&mut [T]` if this array is uniquely owned.
    pub fn as_mut_slice<T: Element>(&mut self) -> Option<&mut [T]> {
        assert_eq!(T::DTYPE, self.dtype, "array dtype mismatch");
        self.bytes_mut().map(bytemuck::cast_slice_mut)
    }

    /// True if no other handle shares this array's buffer (so it can be written in place).
    pub fn is_unique(&mut self) -> bool {
        Arc::get_mut(&mut self.storage).is_some_and(|s| matches!(s, Storage::Host(_)))
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
        let same_bytes =
            numel(shape) * dtype.size_in_bytes() == self.numel() * self.dtype.size_in_bytes();
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

    /// The value of a one-element array as f64 (`None` for larger arrays).
    pub fn scalar_f64(&self) -> Option<f64> {
        if self.numel() != 1 {
            return None;
        }
        Some(match self.dtype {
            DType::F32 => self.as_slice::<f32>()[0] as f64,
            DType::F64 => self.as_slice::<f64>()[0],
            DType::F16 => self.as_slice::<half::f16>()[0].to_f64(),
            DType::BF16 => self.as_slice::<half::bf16>()[0].to_f64(),
            DType::I32 => self.as_slice::<i32>()[0] as f64,
            DType::I64 => self.as_slice::<i64>()[0] as f64,
            DType::U8 | DType::Bool => self.bytes()[0] as f64,
        })
    }

    /// Identity of the underlying buffer (for tests of buffer reuse).
    pub fn buffer_id(&self) -> usize {
        Arc::as_ptr(&self.storage) as *const u8 as usize
    }
}
