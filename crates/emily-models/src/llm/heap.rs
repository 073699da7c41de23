//! Handing the loader's freed heap back to the system.
//!
//! Building a tokenizer from GGUF metadata makes hundreds of thousands of
//! short-lived strings (the metadata arrays, the `tokenizers` crate's merge
//! list: half a million pairs for Gemma's 262,144 tokens); once freed they
//! stay in glibc's heap as scattered free chunks that count in the resident
//! set for the life of the process (about 75 MB for Gemma 3).

/// Returns the free pages of the C heap to the system (glibc's
/// `malloc_trim`); a no-op elsewhere.
pub(crate) fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks the allocator's own free lists; it
    // touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}
