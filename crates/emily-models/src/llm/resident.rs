//! A GGUF file's bytes copied into anonymous memory on transparent huge
//! pages, for the weights a decode step streams every token.
//!
//! A memory-mapped file sits on 4 KiB page-cache pages: streaming a
//! 178 MB `Q8_0` matrix walks ~43,000 pages per token, and the hardware
//! prefetchers stop at every page boundary. A private anonymous copy
//! advised `MADV_HUGEPAGE` is read from 2 MiB pages instead. The file is
//! copied in chunks, each chunk's file pages dropped from this process
//! (`MADV_DONTNEED`) as soon as it is copied, so the resident set never holds
//! both copies: it stays the file's size, as with the plain mapping.

use std::path::Path;
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};

use crate::gguf::{FileBytes, GgufError};

/// Bytes copied per step before the step's file pages are dropped.
const CHUNK: usize = 8 << 20;

/// The whole file at `path` as anonymous (huge-page where the kernel allows)
/// memory; an empty file stays an empty mapping.
pub(crate) fn read_to_huge_pages(path: &Path) -> Result<FileBytes, GgufError> {
    let io = |source| GgufError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: read-only; like every mmap-based loader we rely on the file
    // not being truncated while it is open (here: while it is copied).
    let src = unsafe { Mmap::map(&file) }.map_err(io)?;
    let len = src.len();
    if len == 0 {
        return Ok(Arc::new(src));
    }
    let mut dst = MmapOptions::new().len(len).map_anon().map_err(io)?;
    #[cfg(target_os = "linux")]
    {
        // Hints: a kernel without them still gets a correct (4 KiB) copy.
        let _ = dst.advise(memmap2::Advice::HugePage);
        let _ = src.advise(memmap2::Advice::Sequential);
    }
    let mut start = 0;
    while start < len {
        let end = (start + CHUNK).min(len);
        dst[start..end].copy_from_slice(&src[start..end]);
        #[cfg(target_os = "linux")]
        // SAFETY: `src` is a private read-only file mapping whose bytes in
        // `start..end` are not read again: dropping its pages only lets a
        // later read fault them back in from the page cache.
        unsafe {
            let _ =
                src.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start);
        }
        start = end;
    }
    Ok(Arc::new(dst.make_read_only().map_err(io)?))
}
