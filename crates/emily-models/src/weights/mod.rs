//! A named store of weight tensors, loaded from disk without the tensor engine.
//!
//! Every loader in this crate produces a [`Weights`]: a map from a tensor name to a
//! [`TensorRecord`] (shape, [`DType`] and the raw little-endian bytes). Bytes are
//! borrowed from a memory map of the weight file whenever possible, so loading is
//! cheap and several model instances can share one mapping; records are cheap to
//! clone (`Arc` inside).

mod dtype;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

/// Bytes per chunk of [`TensorRecord::copy_releasing_pages`].
pub const COPY_CHUNK: usize = 2 << 20;

/// A pooled buffer's bytes, as a tensor's external owner.
struct PooledBytes(emily::memory::HostBuffer);

impl AsRef<[u8]> for PooledBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

pub(crate) use dtype::widen_to_f32;
pub use dtype::DType;

/// Errors when looking up or building tensors in a [`Weights`] store.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// A tensor the caller asked for is not in the store.
    #[error("{source_file}: no tensor named `{tensor}`")]
    Missing {
        /// Requested tensor name.
        tensor: String,
        /// The weight file the store was loaded from.
        source_file: PathBuf,
    },
    /// A tensor exists but has an unexpected shape.
    #[error("{source_file}: tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// Tensor name.
        tensor: String,
        /// The weight file the store was loaded from.
        source_file: PathBuf,
        /// The shape the caller expected.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// Tensors disagree with each other or with the model's settings.
    #[error("{source_file}: {reason}")]
    Inconsistent {
        /// The weight file the store was loaded from.
        source_file: PathBuf,
        /// What is inconsistent.
        reason: String,
    },
    /// A byte buffer does not match the size implied by a shape and dtype.
    #[error("tensor `{tensor}`: {len} bytes do not hold shape {shape:?} of {dtype}")]
    ByteLength {
        /// Tensor name.
        tensor: String,
        /// Shape claimed for the bytes.
        shape: Vec<usize>,
        /// Element type claimed for the bytes.
        dtype: DType,
        /// Actual byte length.
        len: usize,
    },
    /// A row range outside a tensor's first dimension was requested.
    #[error("tensor `{tensor}` of shape {shape:?}: rows {start}..{end} are out of range")]
    Rows {
        /// Tensor name.
        tensor: String,
        /// Shape of the tensor being sliced.
        shape: Vec<usize>,
        /// First requested row.
        start: usize,
        /// One past the last requested row.
        end: usize,
    },
}

/// Where a tensor's bytes live.
#[derive(Clone)]
enum Storage {
    /// A byte range of a shared memory map.
    Mapped { map: Arc<Mmap>, range: Range<usize> },
    /// Bytes owned by the record (built in memory).
    Owned(Arc<[u8]>),
}

/// One stored tensor: shape, element type and little-endian row-major bytes.
#[derive(Clone)]
pub struct TensorRecord {
    shape: Vec<usize>,
    dtype: DType,
    storage: Storage,
}

/// Number of elements of `shape` and its byte size for `dtype`, or `None` on overflow.
pub(crate) fn byte_size(shape: &[usize], dtype: DType) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))?
        .checked_mul(dtype.size_in_bytes())
}

impl TensorRecord {
    /// A record viewing `range` of a memory map. The caller has checked that the range
    /// lies inside the map and matches `shape` and `dtype`.
    pub(crate) fn mapped(
        map: Arc<Mmap>,
        range: Range<usize>,
        shape: Vec<usize>,
        dtype: DType,
    ) -> Self {
        debug_assert!(range.end <= map.len());
        debug_assert_eq!(byte_size(&shape, dtype), Some(range.len()));
        TensorRecord {
            shape,
            dtype,
            storage: Storage::Mapped { map, range },
        }
    }

    /// A record owning `bytes` (little endian, row-major). `name` is only used in the
    /// error when the byte count does not match `shape` and `dtype`.
    pub fn from_bytes(
        name: &str,
        shape: Vec<usize>,
        dtype: DType,
        bytes: Vec<u8>,
    ) -> Result<Self, WeightsError> {
        if byte_size(&shape, dtype) != Some(bytes.len()) {
            return Err(WeightsError::ByteLength {
                tensor: name.to_string(),
                shape,
                dtype,
                len: bytes.len(),
            });
        }
        Ok(TensorRecord {
            shape,
            dtype,
            storage: Storage::Owned(bytes.into()),
        })
    }

    /// An f32 record owning a copy of `data`.
    pub fn from_f32(name: &str, shape: Vec<usize>, data: &[f32]) -> Result<Self, WeightsError> {
        let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        Self::from_bytes(name, shape, DType::F32, bytes)
    }

    /// The shape (row-major; empty for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped { map, range } => &map[range.clone()],
            Storage::Owned(bytes) => bytes,
        }
    }

    /// The owner of the bytes and their range in it, so a tensor can read
    /// them in place (the memory map itself for mapped records).
    pub fn shared_bytes(&self) -> (Arc<dyn AsRef<[u8]> + Send + Sync>, Range<usize>) {
        match &self.storage {
            Storage::Mapped { map, range } => (map.clone(), range.clone()),
            Storage::Owned(bytes) => (Arc::new(bytes.clone()), 0..bytes.len()),
        }
    }

    /// Whether the bytes are borrowed from a memory-mapped file (no copy was made).
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped { .. })
    }

    /// Drops the pages of a mapped record from this process's resident set
    /// (whole pages, so a neighbour's edge page may go too), for a record
    /// whose values were copied or converted: the file's pages it touched
    /// would otherwise stay resident beside the copy. Reading the record
    /// again faults them back in from the file. Owned records are left alone;
    /// an advice the kernel refuses is ignored (it only costs memory).
    pub fn release_pages(&self) {
        self.release_pages_of(0..usize::MAX);
    }

    /// [`TensorRecord::release_pages`] for the bytes `part` of the record
    /// only (clamped to its length), e.g. the rows already converted while
    /// the rest is still being read.
    pub fn release_pages_of(&self, part: Range<usize>) {
        #[cfg(unix)]
        if let Storage::Mapped { map, range } = &self.storage {
            let end = part.end.min(range.len());
            if part.start >= end {
                return;
            }
            // SAFETY: `Mmap` maps the file read-only and privately and this
            // crate never writes through it, so there are no private
            // modifications for MADV_DONTNEED to discard: later reads see the
            // file's bytes, as before. The range lies inside the map.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    range.start + part.start,
                    end - part.start,
                )
            };
        }
        #[cfg(not(unix))]
        let _ = part;
    }

    /// The bytes copied into a buffer of the tensor pool (aligned, and on
    /// transparent huge pages when large, as every pooled buffer: the f16
    /// logits table streamed ~30 % slower from plain 4 KiB pages, 2.2 → 2.9
    /// ms a step for tiny.en, loaded), [`COPY_CHUNK`] bytes at a time, each
    /// chunk's file pages released once copied
    /// ([`TensorRecord::release_pages_of`]): a large record's pages and its
    /// copy are never resident together (whole, a misaligned f16 token table
    /// was a 40 MB transient at load for tiny.en, 53 MB for base: tiny.en
    /// `auto`'s peak RSS). Owned records are copied as they are. An error
    /// when the memory is refused.
    pub fn copy_releasing_pages(&self) -> emily::Result<Arc<dyn AsRef<[u8]> + Send + Sync>> {
        let bytes = self.bytes();
        let mut copy = PooledBytes(emily::memory::HostBuffer::zeroed(bytes.len())?);
        let dst = copy.0.bytes_mut();
        let mut start = 0;
        while start < bytes.len() {
            let end = (start + COPY_CHUNK).min(bytes.len());
            dst[start..end].copy_from_slice(&bytes[start..end]);
            self.release_pages_of(start..end);
            start = end;
        }
        Ok(Arc::new(copy))
    }

    /// The values as f32, widening f16/bf16 exactly and converting integers.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.numel());
        widen_to_f32(self.dtype, self.bytes(), &mut out);
        out
    }

    /// The first element as an integer, for CTranslate2's scalar settings
    /// (`num_heads` and flags). `None` for an empty tensor.
    pub fn first_as_i64(&self) -> Option<i64> {
        let b = self.bytes();
        let size = self.dtype.size_in_bytes();
        if b.len() < size {
            return None;
        }
        let mut one = Vec::with_capacity(1);
        widen_to_f32(self.dtype, &b[..size], &mut one);
        Some(one[0] as i64)
    }

    /// A zero-copy view of rows `start..end` of the first dimension. `name` is only
    /// used in the error for an out-of-range request.
    pub fn rows(&self, name: &str, start: usize, end: usize) -> Result<TensorRecord, WeightsError> {
        let rows = self.shape.first().copied().unwrap_or(0);
        if start > end || end > rows {
            return Err(WeightsError::Rows {
                tensor: name.to_string(),
                shape: self.shape.clone(),
                start,
                end,
            });
        }
        let row_bytes = self.bytes().len() / rows.max(1);
        let (lo, hi) = (start * row_bytes, end * row_bytes);
        let storage = match &self.storage {
            Storage::Mapped { map, range } => Storage::Mapped {
                map: map.clone(),
                range: range.start + lo..range.start + hi,
            },
            Storage::Owned(bytes) => Storage::Owned(bytes[lo..hi].into()),
        };
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Ok(TensorRecord {
            shape,
            dtype: self.dtype,
            storage,
        })
    }
}

impl fmt::Debug for TensorRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TensorRecord")
            .field("shape", &self.shape)
            .field("dtype", &self.dtype)
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

/// A named collection of tensors loaded from one weight file.
///
/// Loaders for Whisper expose Hugging Face names (for example
/// `model.encoder.layers.0.self_attn.q_proj.weight`) whatever the file format.
#[derive(Clone, Debug)]
pub struct Weights {
    source_file: PathBuf,
    tensors: BTreeMap<String, TensorRecord>,
}

impl Weights {
    /// An empty store whose errors will name `source_file`.
    pub fn new(source_file: impl Into<PathBuf>) -> Self {
        Weights {
            source_file: source_file.into(),
            tensors: BTreeMap::new(),
        }
    }

    /// The file the tensors came from.
    pub fn source_file(&self) -> &Path {
        &self.source_file
    }

    /// Add or replace a tensor.
    pub fn insert(&mut self, name: impl Into<String>, record: TensorRecord) {
        self.tensors.insert(name.into(), record);
    }

    /// The tensor called `name`, or an error naming it and the source file.
    pub fn get(&self, name: &str) -> Result<&TensorRecord, WeightsError> {
        self.tensors.get(name).ok_or_else(|| WeightsError::Missing {
            tensor: name.to_string(),
            source_file: self.source_file.clone(),
        })
    }

    /// The tensor called `name`, checked to have shape `expected`.
    pub fn get_shaped(
        &self,
        name: &str,
        expected: &[usize],
    ) -> Result<&TensorRecord, WeightsError> {
        let record = self.get(name)?;
        if record.shape() != expected {
            return Err(WeightsError::Shape {
                tensor: name.to_string(),
                source_file: self.source_file.clone(),
                expected: expected.to_vec(),
                found: record.shape().to_vec(),
            });
        }
        Ok(record)
    }

    /// The tensor called `name` widened to f32.
    pub fn get_f32(&self, name: &str) -> Result<Vec<f32>, WeightsError> {
        Ok(self.get(name)?.to_f32_vec())
    }

    /// Whether a tensor called `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Tensor names in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// `(name, record)` pairs in sorted name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TensorRecord)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the store holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_zero_copy_slices() {
        let data: Vec<f32> = (0..12).map(|x| x as f32).collect();
        let rec = TensorRecord::from_f32("t", vec![4, 3], &data).unwrap();
        let mid = rec.rows("t", 1, 3).unwrap();
        assert_eq!(mid.shape(), &[2, 3]);
        assert_eq!(mid.to_f32_vec(), vec![3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        assert!(rec.rows("t", 2, 5).is_err());
    }

    #[test]
    fn lookups_name_tensor_and_file() {
        let mut w = Weights::new("/x/model.bin");
        w.insert(
            "a",
            TensorRecord::from_f32("a", vec![2], &[1.0, 2.0]).unwrap(),
        );
        let e = w.get("b").unwrap_err().to_string();
        assert!(e.contains("/x/model.bin") && e.contains("`b`"), "{e}");
        let e = w.get_shaped("a", &[3]).unwrap_err().to_string();
        assert!(e.contains("[2]") && e.contains("[3]"), "{e}");
        assert!(TensorRecord::from_bytes("c", vec![3], DType::F16, vec![0; 4]).is_err());
    }
}
