//! Zero-initialised buffers on transparent huge pages, for weights a decode
//! step streams whole every token.
//!
//! A buffer from the global allocator sits on 4 KiB pages (transparent huge
//! pages are only given where `madvise` asks for them): streaming it walks a
//! page every 64 cache lines, and the hardware prefetchers stop at every page
//! boundary. [`HugePageSlice`] maps its memory itself, from a 2 MiB boundary,
//! and advises `MADV_HUGEPAGE` before the first write, so its whole 2 MiB
//! stretches are huge pages (the tail past the last boundary stays on 4 KiB
//! pages: nothing is resident beyond the length asked for, rounded up to a
//! 4 KiB page). Buffers below [`HUGE_MIN`] bytes, and every buffer off Linux,
//! come from the global allocator.

use std::ops::{Deref, DerefMut};

/// Buffers of at least this many bytes are mapped on huge pages.
pub const HUGE_MIN: usize = 1 << 21;

/// The huge page size the mapping aligns to.
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 1 << 21;

/// A fixed-length slice of `T`, zero-initialised, on transparent huge pages
/// from [`HUGE_MIN`] bytes (see the module doc).
pub struct HugePageSlice<T: Copy> {
    store: Store<T>,
}

enum Store<T> {
    /// From the global allocator.
    Heap(Vec<T>),
    /// `len` values at `ptr`, the start of a mapping of `bytes` bytes.
    #[cfg(target_os = "linux")]
    Mapped {
        ptr: std::ptr::NonNull<T>,
        len: usize,
        bytes: usize,
    },
}

// SAFETY: the mapping is owned exclusively, like a `Vec<T>`.
unsafe impl<T: Copy + Send> Send for HugePageSlice<T> {}
// SAFETY: shared access only reads, like `&[T]`.
unsafe impl<T: Copy + Sync> Sync for HugePageSlice<T> {}

impl<T: Copy> HugePageSlice<T> {
    /// `len` values whose bytes are all zero.
    ///
    /// # Safety
    /// The all-zero bit pattern is a valid `T`.
    pub unsafe fn zeroed(len: usize) -> HugePageSlice<T> {
        let bytes = len.saturating_mul(std::mem::size_of::<T>());
        #[cfg(target_os = "linux")]
        if bytes >= HUGE_MIN && std::mem::align_of::<T>() <= HUGE_PAGE {
            if let Some(ptr) = map_huge(bytes) {
                return HugePageSlice {
                    store: Store::Mapped {
                        ptr: ptr.cast(),
                        len,
                        bytes,
                    },
                };
            }
        }
        // SAFETY: the caller's contract (zero bytes are a valid `T`).
        let heap = (0..len).map(|_| unsafe { std::mem::zeroed() }).collect();
        HugePageSlice {
            store: Store::Heap(heap),
        }
    }

    /// Whether the values are mapped on huge pages (a buffer of at least
    /// [`HUGE_MIN`] bytes on Linux, unless the mapping was refused).
    pub fn is_mapped(&self) -> bool {
        !matches!(self.store, Store::Heap(_))
    }
}

/// A fresh anonymous mapping of `bytes` bytes starting on a 2 MiB boundary,
/// advised `MADV_HUGEPAGE` (`None` when the system refuses it).
#[cfg(target_os = "linux")]
fn map_huge(bytes: usize) -> Option<std::ptr::NonNull<u8>> {
    let span = bytes.checked_add(HUGE_PAGE)?;
    // SAFETY: a new anonymous private mapping (no file, no fixed address).
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return None;
    }
    let addr = base as usize;
    let start = addr.next_multiple_of(HUGE_PAGE);
    let end = (start + bytes).next_multiple_of(4096);
    // SAFETY: unmapping the parts of our own fresh mapping outside
    // `start..end` (page-aligned: mmap returns a page-aligned base).
    unsafe {
        if start > addr {
            libc::munmap(base, start - addr);
        }
        if addr + span > end {
            libc::munmap(end as *mut libc::c_void, addr + span - end);
        }
        // Failure only means 4 KiB pages.
        libc::madvise(start as *mut libc::c_void, bytes, libc::MADV_HUGEPAGE);
    }
    std::ptr::NonNull::new(start as *mut u8)
}

impl<T: Copy> Deref for HugePageSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.store {
            Store::Heap(v) => v,
            // SAFETY: `len` initialised (zero or written) values in the mapping.
            #[cfg(target_os = "linux")]
            Store::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
        }
    }
}

impl<T: Copy> DerefMut for HugePageSlice<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.store {
            Store::Heap(v) => v,
            // SAFETY: as in `deref`, borrowed exclusively.
            #[cfg(target_os = "linux")]
            Store::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts_mut(ptr.as_ptr(), *len)
            },
        }
    }
}

impl<T: Copy> Clone for HugePageSlice<T> {
    fn clone(&self) -> Self {
        // SAFETY: every value is overwritten by a valid `T` below before use;
        // zero bytes are never read as a `T`.
        let mut copy = HugePageSlice {
            store: match &self.store {
                Store::Heap(v) => Store::Heap(v.clone()),
                #[cfg(target_os = "linux")]
                Store::Mapped { .. } => match map_huge(self.len() * std::mem::size_of::<T>()) {
                    Some(ptr) => Store::Mapped {
                        ptr: ptr.cast(),
                        len: self.len(),
                        bytes: self.len() * std::mem::size_of::<T>(),
                    },
                    None => Store::Heap(self.to_vec()),
                },
            },
        };
        copy.copy_from_slice(self);
        copy
    }
}

impl<T: Copy> Drop for HugePageSlice<T> {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Store::Mapped { ptr, bytes, .. } = self.store {
            // SAFETY: the mapping made by `map_huge` (rounded up to a page
            // by the kernel), not used afterwards.
            unsafe { libc::munmap(ptr.as_ptr().cast(), bytes) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_buffers_read_back_what_was_written() {
        for len in [0usize, 1, 7, 1000, (HUGE_MIN / 8) + 77, 3 * HUGE_MIN / 8] {
            // SAFETY: zero is a valid u64.
            let mut s = unsafe { HugePageSlice::<u64>::zeroed(len) };
            assert_eq!(s.len(), len);
            assert!(s.iter().all(|&v| v == 0));
            assert_eq!(
                s.is_mapped(),
                cfg!(target_os = "linux") && len * 8 >= HUGE_MIN
            );
            for (i, v) in s.iter_mut().enumerate() {
                *v = i as u64 * 3 + 1;
            }
            let c = s.clone();
            drop(s);
            assert!(c.iter().enumerate().all(|(i, &v)| v == i as u64 * 3 + 1));
            if c.is_mapped() {
                assert_eq!(c.as_ptr() as usize % (1 << 21), 0, "2 MiB aligned");
            }
        }
    }
}
