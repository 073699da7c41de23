//! Host buffers from a size-bucketed pool, and memory statistics.
//!
//! Every tensor buffer on the CPU comes from here, in eager and compiled mode
//! alike. Freed buffers go back to a per-size-class free list instead of the
//! system allocator, so a temporary of the same size on the next call reuses a
//! warm, already-faulted page instead of mmap'ing fresh zero pages (which can
//! cost 10x the kernel itself). Size classes are 2^k·{1, 1.25, 1.5, 1.75}, so at
//! most 25% of a buffer is slack. The cache holds at most [`CACHE_LIMIT`] bytes.
//!
//! With [`bound_footprint`] on, the pool's footprint (live plus parked bytes)
//! never exceeds the most bytes ever live at once: a request that finds its class empty first returns
//! parked buffers of other classes (largest first) to the system allocator
//! until the new buffer fits under that high-water mark. Without this, phases
//! that use different sizes (Whisper's encoder scratch, then the decoder's
//! keys and values) each keep their own buffers, and the resident set grows
//! to the sum of the phases instead of the larger one. A buffer the bound
//! trimmed that is asked for again raises the bound by its size: the process
//! cycles through those phases (a second window, a second file, a server's
//! next request), and keeping what cycles costs less than re-faulting it on
//! every cycle (~20 ms per warm Whisper tiny.en run). A one-shot run keeps
//! the smaller footprint; a cycling one pays the re-faults once.

use std::alloc::Layout;
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

#[cfg(target_os = "linux")]
use emily_kernels::huge_pages::HugePageSlice;

use crate::error::{Error, Result};

/// Alignment of every buffer (one cache line; enough for AVX-512 loads).
pub const ALIGN: usize = 64;
/// Upper bound on bytes kept in the free lists.
pub const CACHE_LIMIT: usize = 2 << 30;

static ACTIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
/// The most bytes ever live at once (never reset, unlike [`PEAK_BYTES`]):
/// with [`CYCLING_BYTES`], the bound on live plus parked bytes.
static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);
/// Bytes of trimmed buffers that were asked for again: added to the bound.
static CYCLING_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);
static ACTIVE_BUFFERS: AtomicUsize = AtomicUsize::new(0);
static CACHED_BYTES: AtomicUsize = AtomicUsize::new(0);
static SYSTEM_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static PLAN_CACHE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PLAN_CACHE_ENTRIES: AtomicUsize = AtomicUsize::new(0);

/// Parked buffers by size class, and how many buffers of each class the
/// footprint bound has returned to the system (to notice them coming back).
#[derive(Default)]
struct FreeLists {
    parked: HashMap<usize, Vec<NonNull<u8>>>,
    trimmed: HashMap<usize, usize>,
}
// SAFETY: the pointers are owned allocations with no thread affinity.
unsafe impl Send for FreeLists {}

impl FreeLists {
    /// A parked buffer of exactly `class` bytes.
    fn take(&mut self, class: usize) -> Option<NonNull<u8>> {
        self.parked.get_mut(&class).and_then(|v| v.pop())
    }
}

static FREE: Mutex<Option<FreeLists>> = Mutex::new(None);

/// A snapshot of buffer memory use (like MLX's active/peak/cache memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes held by live buffers (rounded up to their size class).
    pub active_bytes: usize,
    /// The highest `active_bytes` since start or the last [`reset_peak`].
    pub peak_bytes: usize,
    /// Number of live buffers.
    pub active_buffers: usize,
    /// Bytes parked in the pool's free lists.
    pub cached_bytes: usize,
    /// Buffers taken from the system allocator since start (pool misses:
    /// each costs fresh page faults when first written).
    pub system_allocations: usize,
    /// Bytes of compiled plans held by every compiled function's plan cache
    /// (see [`crate::compile::PlanCacheLimits`]).
    pub plan_cache_bytes: usize,
    /// Number of compiled plans held by the plan caches.
    pub plan_cache_entries: usize,
}

/// Current memory statistics.
pub fn stats() -> MemoryStats {
    MemoryStats {
        active_bytes: ACTIVE_BYTES.load(Ordering::Relaxed),
        peak_bytes: PEAK_BYTES.load(Ordering::Relaxed),
        active_buffers: ACTIVE_BUFFERS.load(Ordering::Relaxed),
        cached_bytes: CACHED_BYTES.load(Ordering::Relaxed),
        system_allocations: SYSTEM_ALLOCATIONS.load(Ordering::Relaxed),
        plan_cache_bytes: PLAN_CACHE_BYTES.load(Ordering::Relaxed),
        plan_cache_entries: PLAN_CACHE_ENTRIES.load(Ordering::Relaxed),
    }
}

/// Counts a plan of `bytes` entering a plan cache.
pub(crate) fn plan_cache_added(bytes: usize) {
    PLAN_CACHE_BYTES.fetch_add(bytes, Ordering::Relaxed);
    PLAN_CACHE_ENTRIES.fetch_add(1, Ordering::Relaxed);
}

/// Counts a plan of `bytes` leaving a plan cache.
pub(crate) fn plan_cache_removed(bytes: usize) {
    PLAN_CACHE_BYTES.fetch_sub(bytes, Ordering::Relaxed);
    PLAN_CACHE_ENTRIES.fetch_sub(1, Ordering::Relaxed);
}

/// Resets the peak to the current active bytes.
pub fn reset_peak() {
    PEAK_BYTES.store(ACTIVE_BYTES.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Returns every cached buffer to the system allocator.
pub fn clear_cache() {
    let mut guard = FREE.lock().unwrap();
    if let Some(lists) = guard.as_mut() {
        for (&class, ptrs) in lists.parked.iter_mut() {
            for p in ptrs.drain(..) {
                // SAFETY: a parked buffer of this class, from `sys_alloc`.
                unsafe { sys_free(p, class) };
                CACHED_BYTES.fetch_sub(class, Ordering::Relaxed);
            }
        }
    }
}

/// Whether a pool miss trims parked buffers to the high-water mark.
static BOUNDED: AtomicBool = AtomicBool::new(false);

/// Turns the footprint bound on or off for the whole process. On suits
/// inference whose phases use different sizes once each (Whisper: encoder
/// scratch, then the decoder's caches): the resident set stays at the larger
/// phase. Off (the default) suits loops that cycle through many sizes every
/// step (training, LLM decoding): there a trimmed buffer comes back as fresh
/// page faults on the next step (a byte-LM training step took 4,700 faults
/// and 60 % more CPU with the bound on). Buffers the bound trimmed that are
/// asked for again raise it by their size (see the module docs).
pub fn bound_footprint(on: bool) {
    BOUNDED.store(on, Ordering::Relaxed);
}

/// The footprint bound in bytes when it is on: the most bytes ever live at
/// once plus the trimmed buffers that were asked for again.
pub fn footprint_bound() -> Option<usize> {
    BOUNDED.load(Ordering::Relaxed).then(|| {
        HIGH_WATER
            .load(Ordering::Relaxed)
            .saturating_add(CYCLING_BYTES.load(Ordering::Relaxed))
    })
}

/// Before a fresh allocation of `class` bytes: returns parked buffers
/// (largest classes first) to the system allocator until live, parked and
/// the new bytes together stay within the footprint bound (or nothing is
/// parked). A buffer of a class trimmed before first raises the bound by its
/// size: that class cycles.
fn trim_for(lists: &mut FreeLists, class: usize, bound: usize) {
    if let Some(n) = lists.trimmed.get_mut(&class).filter(|n| **n > 0) {
        *n -= 1;
        CYCLING_BYTES.fetch_add(class, Ordering::Relaxed);
        return;
    }
    let active = ACTIVE_BYTES.load(Ordering::Relaxed);
    let bound = bound.max(active.saturating_add(class));
    let over = |cached: usize| active.saturating_add(cached).saturating_add(class) > bound;
    if !over(CACHED_BYTES.load(Ordering::Relaxed)) {
        return;
    }
    let mut classes: Vec<usize> = lists
        .parked
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(&c, _)| c)
        .collect();
    classes.sort_unstable_by(|a, b| b.cmp(a));
    for c in classes {
        let ptrs = lists.parked.get_mut(&c).expect("a listed class");
        while over(CACHED_BYTES.load(Ordering::Relaxed)) {
            let Some(p) = ptrs.pop() else { break };
            // SAFETY: a parked buffer of this class, from `sys_alloc`.
            unsafe { sys_free(p, c) };
            CACHED_BYTES.fetch_sub(c, Ordering::Relaxed);
            *lists.trimmed.entry(c).or_default() += 1;
        }
        if !over(CACHED_BYTES.load(Ordering::Relaxed)) {
            return;
        }
    }
}

/// The size class (bytes actually allocated) for a request.
pub fn size_class(bytes: usize) -> usize {
    if bytes <= 256 {
        return 256;
    }
    let pow = usize::BITS - 1 - (bytes - 1).leading_zeros();
    let base = 1usize << pow;
    let quarter = (base / 4).max(1);
    bytes.div_ceil(quarter) * quarter
}

/// Buffers of at least this size start at a rotating offset ("colour") inside
/// a slightly larger allocation, so that large same-sized arrays (which the
/// allocator would place at the same address modulo 4 KiB) do not alias in
/// the caches and the load/store unit: streaming several of them at once, as a
/// fused elementwise kernel does, would otherwise stall on 4K aliasing.
const COLOR_MIN: usize = 64 << 10;
/// Extra bytes allocated for colouring; colours are multiples of 256 below it.
const COLOR_SPAN: usize = 4096;

/// Classes of at least this size are mapped from the kernel directly, so a
/// buffer the pool returns leaves the resident set at once. Through
/// `malloc`, glibc raises its mapping threshold to the size of every mapping
/// freed, after which big buffers come from heaps whose freed middles stay
/// resident (Whisper tiny.en: 8–20 MB more peak RSS, run to run).
const MAP_MIN: usize = 256 << 10;

/// Classes above 256 KiB and below [`HUGE_MAX`] come from
/// [`HugePageSlice`]'s transparent huge pages (cut, one after another,
/// from its shared 2 MiB-aligned mappings, so no buffer rounds up to a whole
/// huge page of its own; from 2 MiB a mapping of its own where that leaves
/// only a short tail on 4 KiB pages, or where the buffer was asked for
/// zeroed — a cache its first user may fill only in part, see
/// [`HugePageSlice::sparse`] and `huge_pages::own_mapping`, which also
/// gives the Xeon's figures for 3 MB buffers). A buffer a decoder step
/// streams whole every token — Whisper's cross keys and values (1.15–1.5
/// MB per layer in f16, 2.3–3 MB in f32), the f16 matrices of its layers
/// (0.3–2 MB) — then walks no page table and restarts no prefetcher every
/// 4 KiB. Zen 2, classes 1–2 MiB only: the base int8 step's decode
/// attention 1.64–2.10 →
/// 1.47–1.51 ms, the whole step (one thread) tiny.en int8 / auto −8 / −9 %,
/// base −6 / −4 %, for 2–8 MB more peak RSS on JFK; there the 1 MiB class
/// made base's f32 step 2–3 % slower at 2 threads. The Xeon with AMX,
/// classes 256 KiB–4 MiB (from 1–2 MiB): the base decoder step at 1 thread
/// f32 10.4–11.0 → 8.8–9.2 ms, auto 4.0–5.2 → 3.9–4.7 ms (its f16 matrices
/// and f32 cross keys and values came off 4 KiB pages), tiny.en unchanged;
/// peak RSS on JFK +1 to +9 MB (base f32 335 → 345 MB).
const HUGE_MIN: usize = MAP_MIN + 1;
/// The end of the classes on [`HugePageSlice`]'s mappings (see
/// [`HUGE_MIN`]). Larger ones get plain mappings of their own, advised from
/// [`ADVISE_MIN`] (on Zen 2, 2 MiB-aligned huge pages for 2–4 MiB buffers
/// did not help, session 13; on the Xeon they did, for the f32 cross keys
/// and values): the huge-page classes end where the advised ones begin.
const HUGE_MAX: usize = ADVISE_MIN;

/// Mapped buffers of at least this size ask for transparent huge pages: one
/// page fault per 2 MiB instead of 512 when a fresh buffer is first written.
const ADVISE_MIN: usize = 4 << 20;

/// The huge-page buffers [`sys_alloc`] handed out, by address: each holds
/// its part of a mapping until [`sys_free`] drops it.
#[cfg(target_os = "linux")]
static HUGE_BUFFERS: Mutex<Option<HashMap<usize, HugePageSlice<u8>>>> = Mutex::new(None);

/// A fresh allocation for `class` with layout `lay` (`None` when refused);
/// `sparse` when its first user may write only part of it (a zeroed
/// buffer: see [`HugePageSlice::sparse`]).
fn sys_alloc(class: usize, lay: Layout, sparse: bool) -> Option<NonNull<u8>> {
    #[cfg(target_os = "linux")]
    if (HUGE_MIN..HUGE_MAX).contains(&class) {
        // SAFETY: zero bytes are valid `u8`s.
        let mut buf = unsafe {
            if sparse {
                HugePageSlice::<u8>::sparse(lay.size())
            } else {
                HugePageSlice::<u8>::zeroed(lay.size())
            }
        };
        if !buf.is_mapped() {
            return None;
        }
        let p = NonNull::new(buf.as_mut_ptr())?;
        let mut table = HUGE_BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
        table
            .get_or_insert_with(HashMap::new)
            .insert(p.as_ptr() as usize, buf);
        return Some(p);
    }
    #[cfg(unix)]
    if class >= MAP_MIN {
        // SAFETY: a new anonymous private mapping (no file, no fixed address);
        // page alignment exceeds `ALIGN`.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                lay.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        #[cfg(target_os = "linux")]
        if lay.size() >= ADVISE_MIN {
            // SAFETY: advice on our own fresh mapping; failure only means no huge pages.
            unsafe { libc::madvise(p, lay.size(), libc::MADV_HUGEPAGE) };
        }
        return NonNull::new(p.cast());
    }
    // SAFETY: the layout of a class has a non-zero size.
    NonNull::new(unsafe { std::alloc::alloc(lay) })
}

/// Returns a buffer of `class` to the system.
///
/// # Safety
/// `p` came from [`sys_alloc`] for `class` and is not used afterwards.
unsafe fn sys_free(p: NonNull<u8>, class: usize) {
    let lay = layout(class);
    #[cfg(target_os = "linux")]
    if (HUGE_MIN..HUGE_MAX).contains(&class) {
        let mut table = HUGE_BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
        let buf = table
            .as_mut()
            .and_then(|t| t.remove(&(p.as_ptr() as usize)));
        drop(table);
        debug_assert!(buf.is_some(), "a huge-page buffer sys_alloc made");
        // Its pages go back now: the shared mapping it was cut from stays
        // while other buffers use it (and a cut is never handed out twice).
        // SAFETY: the buffer's own page-aligned cut, read by nobody after this.
        unsafe {
            libc::madvise(
                p.as_ptr().cast(),
                lay.size().next_multiple_of(4096),
                libc::MADV_DONTNEED,
            )
        };
        return;
    }
    #[cfg(unix)]
    if class >= MAP_MIN {
        // SAFETY: the whole mapping made by `sys_alloc` (caller's contract).
        unsafe { libc::munmap(p.as_ptr().cast(), lay.size()) };
        return;
    }
    // SAFETY: allocated by `std::alloc::alloc` with this layout.
    unsafe { std::alloc::dealloc(p.as_ptr(), lay) };
}

/// The allocation layout of a size class (`None` when it exceeds what an
/// allocation can hold).
fn try_layout(class: usize) -> Option<Layout> {
    let slack = if class >= COLOR_MIN { COLOR_SPAN } else { 0 };
    Layout::from_size_align(class.checked_add(slack)?, ALIGN).ok()
}

/// The layout of a class that was allocated (so it is valid).
fn layout(class: usize) -> Layout {
    try_layout(class).expect("a class that was allocated has a valid layout")
}

/// The next colour offset for a buffer of `class` bytes.
fn color(class: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    if class < COLOR_MIN {
        0
    } else {
        (NEXT.fetch_add(1, Ordering::Relaxed) % (COLOR_SPAN / 256)) * 256 + 64 * (class % 3)
    }
}

/// An aligned, pooled host allocation of at least `len` bytes. Outside the
/// crate a buffer is only made by [`HostBuffer::zeroed`]; inside, kernels take
/// uninitialised ones from `HostBuffer::new` and always write their whole
/// output before anything reads it.
pub struct HostBuffer {
    /// Start of the allocation (what the pool and the allocator see).
    base: NonNull<u8>,
    /// Start of the data: `base` plus the colour offset.
    ptr: NonNull<u8>,
    len: usize,
    class: usize,
}

// SAFETY: a HostBuffer owns its allocation; access goes through &/&mut.
unsafe impl Send for HostBuffer {}
unsafe impl Sync for HostBuffer {}

impl HostBuffer {
    /// Takes a buffer of `len` bytes from the pool (or the allocator), with
    /// uninitialised contents: the caller must write every byte before reading
    /// (crate-private for that reason). An error when the system refuses the
    /// memory or `len` exceeds `isize::MAX`.
    pub(crate) fn new(len: usize) -> Result<HostBuffer> {
        Ok(HostBuffer::take(len, false)?.0)
    }

    /// [`HostBuffer::new`], and whether the buffer is a fresh mapping from
    /// the system, whose pages read as zero until written; `sparse` when
    /// the caller may write only part of it (see [`sys_alloc`]).
    fn take(len: usize, sparse: bool) -> Result<(HostBuffer, bool)> {
        let oom = || Error::OutOfMemory { bytes: len };
        if len > isize::MAX as usize {
            return Err(oom());
        }
        let class = size_class(len);
        let lay = try_layout(class).ok_or_else(oom)?;
        let reused = {
            let mut guard = FREE.lock().unwrap();
            let lists = guard.get_or_insert_with(FreeLists::default);
            let reused = lists.take(class);
            if let (None, Some(bound)) = (reused, footprint_bound()) {
                trim_for(lists, class, bound);
            }
            reused
        };
        let ptr = match reused {
            Some(p) => {
                CACHED_BYTES.fetch_sub(class, Ordering::Relaxed);
                p
            }
            None => {
                SYSTEM_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
                sys_alloc(class, lay, sparse).ok_or_else(oom)?
            }
        };
        let active = ACTIVE_BYTES.fetch_add(class, Ordering::Relaxed) + class;
        PEAK_BYTES.fetch_max(active, Ordering::Relaxed);
        HIGH_WATER.fetch_max(active, Ordering::Relaxed);
        ACTIVE_BUFFERS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the allocation has COLOR_SPAN bytes of slack for every colour.
        let data = unsafe { NonNull::new_unchecked(ptr.as_ptr().add(color(class))) };
        let buffer = HostBuffer {
            base: ptr,
            ptr: data,
            len,
            class,
        };
        // On Unix, classes from `MAP_MIN` on are anonymous mappings (or
        // never-written cuts of one, see `sys_alloc`): zero until written.
        Ok((buffer, reused.is_none() && class >= MAP_MIN && cfg!(unix)))
    }

    /// A zero-filled buffer of `len` bytes (an error when the memory is
    /// refused). A fresh mapping from the system is zero already and is not
    /// written: its pages stay untouched until used, so a cache sized for a
    /// whole context holds only the pages a run fills (JFK with tiny.en:
    /// peak RSS 148 → 139 MB in one sample; no change in time measured).
    pub fn zeroed(len: usize) -> Result<HostBuffer> {
        let (mut b, zero) = HostBuffer::take(len, true)?;
        if !zero {
            fill_zero(b.bytes_mut());
        }
        Ok(b)
    }

    /// Length in bytes as requested.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr is valid for `class >= len` bytes for our lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, mutably.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Keeps only the first `len` bytes (no-op when `len` is not smaller):
    /// the allocation and its size class stay, so the pool takes it back as
    /// before. For a prefix that reuses its whole buffer instead of copying.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Bytes the allocation holds from the data's start (its size class):
    /// how far [`HostBuffer::extend`] can grow the buffer in place.
    pub(crate) fn capacity(&self) -> usize {
        self.class
    }

    /// Grows the buffer to `len` bytes inside its allocation; false (and
    /// nothing changes) when `len` exceeds [`HostBuffer::capacity`]. The new
    /// bytes hold whatever the allocation held: the caller writes them
    /// before anything reads them, as for [`HostBuffer::new`].
    pub(crate) fn extend(&mut self, len: usize) -> bool {
        if len > self.class {
            return false;
        }
        self.len = self.len.max(len);
        true
    }
}

impl Drop for HostBuffer {
    fn drop(&mut self) {
        ACTIVE_BYTES.fetch_sub(self.class, Ordering::Relaxed);
        ACTIVE_BUFFERS.fetch_sub(1, Ordering::Relaxed);
        if CACHED_BYTES.load(Ordering::Relaxed) + self.class <= CACHE_LIMIT {
            let mut guard = FREE.lock().unwrap();
            let lists = guard.get_or_insert_with(FreeLists::default);
            lists.parked.entry(self.class).or_default().push(self.base);
            CACHED_BYTES.fetch_add(self.class, Ordering::Relaxed);
        } else {
            // SAFETY: this buffer came from `sys_alloc` for its class.
            unsafe { sys_free(self.base, self.class) };
        }
    }
}

/// Buffers from this size on are zeroed on the kernels' pool: one core's
/// stores fill ~10 GB/s, and a language model's generation asks for its
/// whole context's caches zeroed (SmolLM2-135M at 4,096 positions: sixty
/// 1.5 MB buffers, ~10 ms on one core).
const PARALLEL_ZERO_MIN: usize = 1 << 20;

/// Zeroes `bytes`, in 256 KiB pieces on the pool from [`PARALLEL_ZERO_MIN`].
fn fill_zero(bytes: &mut [u8]) {
    use rayon::prelude::*;
    if bytes.len() < PARALLEL_ZERO_MIN {
        bytes.fill(0);
        return;
    }
    emily_kernels::parallel::pool()
        .install(|| bytes.par_chunks_mut(256 << 10).for_each(|c| c.fill(0)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_bound_slack_to_a_quarter() {
        for bytes in [
            1,
            255,
            257,
            1000,
            4096,
            4097,
            1 << 20,
            (1 << 20) + 1,
            123_456_789,
        ] {
            let c = size_class(bytes);
            assert!(c >= bytes);
            assert!(c <= bytes.max(256) + bytes / 4 + 1, "{bytes} -> {c}");
        }
    }

    #[test]
    fn freed_buffers_are_reused() {
        let a = HostBuffer::new(777_777).unwrap();
        let p = a.base;
        drop(a);
        let b = HostBuffer::new(777_000).unwrap();
        assert_eq!(b.base, p, "same size class should reuse the freed buffer");
        assert_eq!(
            b.ptr.as_ptr() as usize % ALIGN,
            0,
            "colours keep the alignment"
        );
    }

    /// The huge-page buffer `sys_alloc` recorded at `p`, by its length.
    #[cfg(target_os = "linux")]
    fn huge_cut(p: NonNull<u8>) -> Option<usize> {
        let table = HUGE_BUFFERS.lock().unwrap();
        let buf = table.as_ref()?.get(&(p.as_ptr() as usize))?;
        assert!(buf.is_mapped());
        Some(buf.len())
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_huge_page_classes_are_cut_from_huge_page_mappings_and_released() {
        let classes = [
            size_class(HUGE_MIN - 1),
            HUGE_MIN,
            size_class(600_000),
            size_class(1_152_000),
            size_class(1_536_000),
            size_class(3_072_000),
            size_class(HUGE_MAX - 1),
            HUGE_MAX,
        ];
        let mut held = Vec::new();
        for (round, class) in classes
            .into_iter()
            .cycle()
            .take(3 * classes.len())
            .enumerate()
        {
            let lay = layout(class);
            let p = sys_alloc(class, lay, round % 3 == 1).unwrap();
            let huge = (HUGE_MIN..HUGE_MAX).contains(&class);
            assert_eq!(huge_cut(p), huge.then_some(lay.size()), "class {class}");
            assert_eq!(p.as_ptr() as usize % 4096, 0, "page aligned");
            // SAFETY: the fresh allocation of `lay.size()` bytes.
            let bytes = unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), lay.size()) };
            assert!(bytes.iter().all(|&v| v == 0), "fresh mappings are zero");
            for (i, v) in bytes.iter_mut().enumerate() {
                *v = (i * 7 + round) as u8;
            }
            if round % 2 == 0 {
                // SAFETY: allocated above for `class`, not used after.
                unsafe { sys_free(p, class) };
                assert_eq!(huge_cut(p), None, "a freed buffer leaves the table");
            } else {
                held.push((round, class, p));
            }
        }
        // Buffers cut beside freed ones keep their bytes.
        for (round, class, p) in held {
            let n = layout(class).size();
            // SAFETY: still allocated, `n` bytes written above.
            let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), n) };
            assert!(bytes
                .iter()
                .enumerate()
                .all(|(i, &v)| v == (i * 7 + round) as u8));
            // SAFETY: allocated for `class`, not used after.
            unsafe { sys_free(p, class) };
        }
    }

    #[test]
    fn refused_memory_is_an_error() {
        for len in [usize::MAX, isize::MAX as usize, 1 << 60] {
            assert!(
                matches!(HostBuffer::new(len), Err(Error::OutOfMemory { bytes }) if bytes == len),
                "{len}"
            );
        }
        assert!(HostBuffer::zeroed(1000)
            .unwrap()
            .bytes()
            .iter()
            .all(|&b| b == 0));
    }

    /// Zeroed buffers read zero whether they are fresh mappings (not
    /// written) or dirty buffers the pool hands back (filled), at every kind
    /// of class: heap, huge-page cut, own mapping.
    #[test]
    fn zeroed_buffers_are_zero_fresh_or_reused() {
        for len in [1000, 300 << 10, 3 << 20, 6 << 20] {
            for _ in 0..3 {
                let b = HostBuffer::zeroed(len).unwrap();
                assert!(b.bytes().iter().all(|&v| v == 0), "{len}");
                let mut dirty = b;
                dirty.bytes_mut().fill(0xa5);
                // Back to the pool dirty: the next zeroed one may be it.
            }
        }
    }
}
