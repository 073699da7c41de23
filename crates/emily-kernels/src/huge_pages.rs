//! Zero-initialised buffers on transparent huge pages, for weights a decode
//! step streams whole every token.
//!
//! A buffer from the global allocator sits on 4 KiB pages (transparent huge
//! pages are only given where `madvise` asks for them): streaming it walks a
//! page every 64 cache lines, and the hardware prefetchers stop at every page
//! boundary. [`HugePageSlice`] maps its memory itself, from a 2 MiB boundary,
//! and advises `MADV_HUGEPAGE` before the first write:
//! - a buffer of [`HUGE_MIN`] bytes or more gets a mapping of its own (the
//!   tail past its last 2 MiB boundary stays on 4 KiB pages: nothing is
//!   resident beyond its length rounded up to a 4 KiB page);
//! - a buffer of [`SHARED_MIN`] bytes up to that is cut from a shared
//!   mapping of [`SHARED_SPAN`] bytes, one after another (a decoder's
//!   per-layer matrices, 147 KB to 1 MB each, then share huge pages); the
//!   mapping goes when its last buffer does. At most the huge page the
//!   cuts have reached is resident beyond what the buffers hold.
//!
//! Smaller buffers, and every buffer off Linux, come from the global
//! allocator.

use std::ops::{Deref, DerefMut};
#[cfg(target_os = "linux")]
use std::sync::{Arc, Mutex};

/// Buffers of at least this many bytes get a mapping of their own.
pub const HUGE_MIN: usize = 1 << 21;

/// Buffers of at least this many bytes (and below [`HUGE_MIN`]) are cut from
/// a shared mapping.
pub const SHARED_MIN: usize = 64 << 10;

/// Bytes of one shared mapping.
pub const SHARED_SPAN: usize = 8 << 20;

/// The huge page size the mappings align to.
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 1 << 21;

/// Alignment of the buffers cut from a shared mapping.
#[cfg(target_os = "linux")]
const CUT_ALIGN: usize = 4096;

/// A fixed-length slice of `T`, zero-initialised, on transparent huge pages
/// from [`SHARED_MIN`] bytes (see the module doc).
pub struct HugePageSlice<T: Copy> {
    store: Store<T>,
}

enum Store<T> {
    /// From the global allocator.
    Heap(Vec<T>),
    /// `len` values at `ptr`, inside `region` (kept mapped while used).
    #[cfg(target_os = "linux")]
    Mapped {
        #[allow(dead_code)] // held for its drop: the unmapping
        region: Arc<Region>,
        ptr: std::ptr::NonNull<T>,
        len: usize,
    },
}

/// One anonymous mapping, unmapped on drop.
#[cfg(target_os = "linux")]
struct Region {
    start: std::ptr::NonNull<u8>,
    bytes: usize,
}

// SAFETY: a plain block of memory; who reads or writes which part is up to
// the buffers cut from it (disjoint).
#[cfg(target_os = "linux")]
unsafe impl Send for Region {}
// SAFETY: as above; the region itself is never accessed through `&Region`.
#[cfg(target_os = "linux")]
unsafe impl Sync for Region {}

#[cfg(target_os = "linux")]
impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made by `map_huge`, no buffer left in it.
        unsafe { libc::munmap(self.start.as_ptr().cast(), self.bytes) };
    }
}

/// The shared mapping buffers are being cut from and the bytes cut so far.
#[cfg(target_os = "linux")]
static OPEN: Mutex<Option<(Arc<Region>, usize)>> = Mutex::new(None);

// SAFETY: the buffer is owned exclusively, like a `Vec<T>` (a shared
// mapping's other buffers are disjoint).
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
        if bytes >= SHARED_MIN && std::mem::align_of::<T>() <= CUT_ALIGN {
            let place = if bytes >= HUGE_MIN {
                map_huge(bytes).map(|r| (Arc::new(r), 0))
            } else {
                cut_shared(bytes)
            };
            if let Some((region, offset)) = place {
                let ptr = std::ptr::NonNull::new(region.start.as_ptr().wrapping_add(offset))
                    .expect("inside a mapping")
                    .cast();
                return HugePageSlice {
                    store: Store::Mapped { region, ptr, len },
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
    /// [`SHARED_MIN`] bytes on Linux, unless the mapping was refused).
    pub fn is_mapped(&self) -> bool {
        !matches!(self.store, Store::Heap(_))
    }
}

/// `bytes` (below [`SHARED_MIN`]'s ceiling, [`HUGE_MIN`]) cut from the open
/// shared mapping, a new one opened when it is full: the mapping and the
/// offset of the cut, never written before (so zero).
#[cfg(target_os = "linux")]
fn cut_shared(bytes: usize) -> Option<(Arc<Region>, usize)> {
    let size = bytes.next_multiple_of(CUT_ALIGN);
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    match open.as_mut() {
        Some((region, used)) if *used + size <= region.bytes => {
            let at = *used;
            *used += size;
            Some((region.clone(), at))
        }
        _ => {
            let region = Arc::new(map_huge(SHARED_SPAN)?);
            *open = Some((region.clone(), size));
            Some((region, 0))
        }
    }
}

/// A fresh anonymous mapping of `bytes` bytes starting on a 2 MiB boundary,
/// advised `MADV_HUGEPAGE` (`None` when the system refuses it).
#[cfg(target_os = "linux")]
fn map_huge(bytes: usize) -> Option<Region> {
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
    Some(Region {
        start: std::ptr::NonNull::new(start as *mut u8)?,
        bytes: end - start,
    })
}

impl<T: Copy> Deref for HugePageSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.store {
            Store::Heap(v) => v,
            // SAFETY: `len` initialised (zero or written) values of this
            // buffer's own part of the mapping, which `region` keeps mapped.
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
            // SAFETY: as in `deref`, borrowed exclusively (no other buffer
            // overlaps this part).
            #[cfg(target_os = "linux")]
            Store::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts_mut(ptr.as_ptr(), *len)
            },
        }
    }
}

impl<T: Copy> Clone for HugePageSlice<T> {
    fn clone(&self) -> Self {
        let mut copy = match &self.store {
            Store::Heap(v) => HugePageSlice {
                store: Store::Heap(v.clone()),
            },
            // SAFETY: zero bytes are never read as a `T`: every value is
            // overwritten by a valid one below.
            #[cfg(target_os = "linux")]
            Store::Mapped { .. } => unsafe { HugePageSlice::zeroed(self.len()) },
        };
        copy.copy_from_slice(self);
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_shared_and_own_buffers_read_back_what_was_written() {
        let sizes = [
            0usize,
            1,
            7,
            1000,
            SHARED_MIN / 8 + 77,
            SHARED_SPAN / 8 / 3,
            HUGE_MIN / 8 - 1,
            HUGE_MIN / 8 + 77,
            3 * HUGE_MIN / 8,
        ];
        let mut kept = Vec::new();
        for (round, len) in sizes.into_iter().cycle().take(3 * sizes.len()).enumerate() {
            // SAFETY: zero is a valid u64.
            let mut s = unsafe { HugePageSlice::<u64>::zeroed(len) };
            assert_eq!(s.len(), len);
            assert!(s.iter().all(|&v| v == 0), "fresh buffers are zero");
            assert_eq!(
                s.is_mapped(),
                cfg!(target_os = "linux") && len * 8 >= SHARED_MIN
            );
            for (i, v) in s.iter_mut().enumerate() {
                *v = (i * 3 + round) as u64;
            }
            let c = s.clone();
            // Every other buffer is dropped at once: a shared mapping
            // outlives its first buffers.
            if round % 2 == 0 {
                drop(s);
            } else {
                kept.push((round, s));
            }
            assert!(c
                .iter()
                .enumerate()
                .all(|(i, &v)| v == (i * 3 + round) as u64));
            if c.is_mapped() && len * 8 >= HUGE_MIN {
                assert_eq!(c.as_ptr() as usize % (1 << 21), 0, "2 MiB aligned");
            }
            kept.push((round, c));
        }
        for (round, s) in &kept {
            assert!(s
                .iter()
                .enumerate()
                .all(|(i, &v)| v == (i * 3 + round) as u64));
        }
    }
}
