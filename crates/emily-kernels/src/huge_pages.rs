//! Zero-initialised buffers on transparent huge pages, for weights a decode
//! step streams whole every token.
//!
//! A buffer from the global allocator sits on 4 KiB pages (transparent huge
//! pages are only given where `madvise` asks for them): streaming it walks a
//! page every 64 cache lines, and the hardware prefetchers stop at every page
//! boundary. [`HugePageSlice`] maps its memory itself, from a 2 MiB boundary,
//! and advises `MADV_HUGEPAGE` before the first write:
//! - a buffer of [`SHARED_MIN`] bytes up to [`SHARED_MAX`] is cut from a
//!   shared mapping of [`SHARED_SPAN`] bytes, one after another (a
//!   decoder's per-layer matrices, 147 KB to 1 MB each, then share huge
//!   pages); the mapping goes when its last buffer does. At most the huge
//!   page the cuts have reached is resident beyond what the buffers hold;
//! - a larger buffer, or one of [`HUGE_MIN`] bytes or more that may be
//!   written only in part ([`HugePageSlice::sparse`]) or whose tail past
//!   its last 2 MiB boundary is short, gets a mapping of its own (see
//!   [`own_mapping`]): the tail stays on 4 KiB pages, and nothing is
//!   resident beyond its length rounded up to a 4 KiB page.
//!
//! Smaller buffers, and every buffer off Linux, come from the global
//! allocator.

use std::ops::{Deref, DerefMut};
#[cfg(target_os = "linux")]
use std::sync::{Arc, Mutex};

/// Buffers of at least this many bytes may get a mapping of their own
/// (see [`own_mapping`]).
pub const HUGE_MIN: usize = 1 << 21;

/// Buffers of at least this many bytes always get a mapping of their own.
pub const SHARED_MAX: usize = 4 << 20;

/// Buffers of at least this many bytes are cut from a shared mapping unless
/// they get their own.
pub const SHARED_MIN: usize = 64 << 10;

/// Whether a buffer of `bytes` (at least [`SHARED_MIN`]) gets a mapping of
/// its own rather than a cut of a shared one; `sparse` when its user may
/// write only part of it ([`HugePageSlice::sparse`]).
///
/// From [`HUGE_MIN`] bytes an own mapping leaves the tail past the last
/// 2 MiB boundary on 4 KiB pages. That suits a sparse buffer (of its tail
/// only the pages written become resident: Whisper tiny.en's beam-5
/// self-attention caches, 3.4 MB each and a few slots filled per head on
/// JFK, cost 12–16 MB more peak memory cut from shared mappings) and a
/// buffer whose tail is short (at most a quarter of it: cut, a 2.5 MiB size
/// class holding 2.3 MB — tiny.en's encoder activations — keeps its
/// rounding slack resident inside huge pages, +9 MB peak). A buffer written
/// whole with a longer tail is cut, so it sits on huge pages throughout: a
/// 3 MB one would have its last third on 4 KiB pages — Whisper base's f32
/// cross-attention keys or values of one layer, which a decoder step
/// streams whole every token (the Xeon with AMX, `decode_attn_probe`, f32,
/// 24 layers, one thread: 10.4–11.1 → 12.6–12.7 GB/s).
pub fn own_mapping(bytes: usize, sparse: bool) -> bool {
    let short_tail = 4 * (bytes % HUGE_MIN) <= bytes;
    bytes >= SHARED_MAX || (bytes >= HUGE_MIN && (sparse || short_tail))
}

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
    /// `len` values whose bytes are all zero, for a buffer that is written
    /// whole (see the module doc).
    ///
    /// # Safety
    /// The all-zero bit pattern is a valid `T`.
    pub unsafe fn zeroed(len: usize) -> HugePageSlice<T> {
        // SAFETY: forwarded.
        unsafe { HugePageSlice::place(len, false) }
    }

    /// [`Self::zeroed`] for a buffer that may be written only in part: from
    /// [`HUGE_MIN`] bytes it gets a mapping of its own, whose tail past the
    /// last 2 MiB boundary holds only the 4 KiB pages written (see
    /// [`own_mapping`]).
    ///
    /// # Safety
    /// As [`Self::zeroed`].
    pub unsafe fn sparse(len: usize) -> HugePageSlice<T> {
        // SAFETY: forwarded.
        unsafe { HugePageSlice::place(len, true) }
    }

    /// `len` zero values: a mapping of its own ([`own_mapping`]), a cut of a
    /// shared mapping from [`SHARED_MIN`] bytes, else the global allocator.
    ///
    /// # Safety
    /// As [`Self::zeroed`].
    unsafe fn place(len: usize, sparse: bool) -> HugePageSlice<T> {
        let bytes = len.saturating_mul(std::mem::size_of::<T>());
        #[cfg(target_os = "linux")]
        if bytes >= SHARED_MIN && std::mem::align_of::<T>() <= CUT_ALIGN {
            let place = if own_mapping(bytes, sparse) {
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
        #[cfg(not(target_os = "linux"))]
        let _ = sparse;
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

/// `bytes` (below [`SHARED_MAX`]) cut from the open shared mapping, a new
/// one opened when it is full: the mapping and the offset of the cut, never
/// written before (so zero).
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

    /// Dense and sparse buffers of every placement (heap, cut, own mapping)
    /// read back what was written, also after buffers cut from the same
    /// mapping are dropped; own mappings start on a huge page.
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
            5 * HUGE_MIN / 32,
            3 * HUGE_MIN / 16,
            SHARED_MAX / 8 + 1,
        ];
        for sparse in [false, true] {
            let make = |len: usize| {
                // SAFETY: zero is a valid u64.
                unsafe {
                    if sparse {
                        HugePageSlice::<u64>::sparse(len)
                    } else {
                        HugePageSlice::<u64>::zeroed(len)
                    }
                }
            };
            let mut kept = Vec::new();
            for (round, len) in sizes.into_iter().cycle().take(3 * sizes.len()).enumerate() {
                let mut s = make(len);
                assert_eq!(s.len(), len);
                assert!(s.iter().all(|&v| v == 0), "fresh buffers are zero");
                assert_eq!(
                    s.is_mapped(),
                    cfg!(target_os = "linux") && len * 8 >= SHARED_MIN
                );
                if s.is_mapped() && own_mapping(len * 8, sparse) {
                    assert_eq!(s.as_ptr() as usize % (1 << 21), 0, "2 MiB aligned");
                }
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

    /// Own mappings for sparse buffers from 2 MiB, for dense ones from 2 MiB
    /// where the 4 KiB-page tail is at most a quarter, for all from 4 MiB.
    #[test]
    fn own_mappings_where_the_small_page_tail_is_cheap() {
        let mib = 1usize << 20;
        for sparse in [false, true] {
            assert!(!own_mapping(SHARED_MIN, sparse));
            assert!(!own_mapping(HUGE_MIN - 1, sparse));
            assert!(own_mapping(HUGE_MIN, sparse));
            assert!(own_mapping(5 * mib / 2 + 4096, sparse), "a 2.5 MiB class");
            assert!(own_mapping(SHARED_MAX, sparse));
            assert!(own_mapping(11 * mib / 2, sparse), "from 4 MiB, any tail");
        }
        assert!(
            !own_mapping(3 * mib + 4096, false),
            "a 3 MiB class, written whole"
        );
        assert!(own_mapping(3 * mib + 4096, true), "a 3 MiB class, sparse");
        assert!(!own_mapping(SHARED_MAX - 1, false));
    }
}
