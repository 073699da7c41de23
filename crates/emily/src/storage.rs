//! Where an array's bytes live, and which backend owns them.
//!
//! Three kinds of storage sit behind an [`crate::Array`]:
//!
//! - [`Storage::Host`]: a pooled host buffer of the CPU backend;
//! - [`Storage::Mapped`]: borrowed host bytes (memory-mapped weights), read
//!   in place by the CPU backend and never written;
//! - [`Storage::Backend`]: a [`BackendBuffer`] owned by some backend (the
//!   reference backend's buffers today; device memory and repacked
//!   block-quantised weights later). Only the owning backend reads it, by
//!   downcasting through [`BackendBuffer::as_any`]; everyone else gets a host
//!   copy through [`BackendBuffer::to_host`].
//!
//! A new kind of buffer plugs in by implementing [`BackendBuffer`]: ops,
//! the compiler and `Tensor` never look inside a buffer.

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;

use crate::error::Result;
use crate::memory::HostBuffer;
use crate::Device;

/// Bytes owned by something else (a memory map, a loaded file) that a tensor
/// can read without copying.
pub type ExternalBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// A buffer that belongs to a backend. Implementations hold the bytes of one
/// array in whatever layout the backend wants (device memory, repacked
/// blocks); the array's shape and dtype live beside it in the `Array`.
pub trait BackendBuffer: Send + Sync + 'static {
    /// The device whose backend owns (and alone reads) this buffer.
    fn device(&self) -> Device;
    /// Size in bytes (for a plain layout, `dtype.storage_bytes(shape)`).
    fn len_bytes(&self) -> usize;
    /// The bytes as little-endian row-major host data (a device→host copy
    /// where the buffer lives elsewhere).
    fn to_host(&self) -> Result<Vec<u8>>;
    /// The buffer as `Any`, so the owning backend can downcast to its type.
    fn as_any(&self) -> &dyn Any;
    /// The buffer as mutable `Any` (the owning backend writing in place into
    /// a buffer nobody else holds).
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// Where an array's bytes live.
pub enum Storage {
    /// A pooled host buffer (CPU backend).
    Host(HostBuffer),
    /// Borrowed host bytes (e.g. memory-mapped weights), read-only, at a byte
    /// offset of their owner (CPU backend).
    Mapped {
        /// The owner of the bytes.
        owner: ExternalBytes,
        /// Byte offset of the array's first element.
        offset: usize,
        /// Length in bytes.
        len: usize,
    },
    /// A buffer owned by a backend.
    Backend(Box<dyn BackendBuffer>),
}

impl Storage {
    /// The device whose backend owns these bytes.
    pub fn device(&self) -> Device {
        match self {
            Storage::Host(_) | Storage::Mapped { .. } => Device::Cpu,
            Storage::Backend(b) => b.device(),
        }
    }

    /// Size in bytes.
    pub fn len_bytes(&self) -> usize {
        match self {
            Storage::Host(b) => b.len(),
            Storage::Mapped { len, .. } => *len,
            Storage::Backend(b) => b.len_bytes(),
        }
    }

    /// The bytes in place, for storage that is plain host memory (`None` for
    /// a backend buffer).
    pub fn host_bytes(&self) -> Option<&[u8]> {
        match self {
            Storage::Host(b) => Some(b.bytes()),
            Storage::Mapped { owner, offset, len } => {
                Some(&(**owner).as_ref()[*offset..*offset + *len])
            }
            Storage::Backend(_) => None,
        }
    }

    /// The bytes as host data: borrowed where they are host memory, copied
    /// out by the owning backend otherwise.
    pub fn to_host(&self) -> Result<Cow<'_, [u8]>> {
        match (self, self.host_bytes()) {
            (Storage::Backend(b), _) => Ok(Cow::Owned(b.to_host()?)),
            (_, bytes) => Ok(Cow::Borrowed(bytes.unwrap_or_default())),
        }
    }
}
