//! The weights a decode step streams every token, copied from the GGUF file
//! onto transparent huge pages.
//!
//! A memory-mapped file sits on 4 KiB page-cache pages: streaming Gemma 3's
//! 178 MB `Q8_0` output matrix walks ~43,000 pages per token, and the
//! hardware prefetchers stop at every page boundary. A private anonymous
//! copy advised `MADV_HUGEPAGE` is read from 2 MiB pages instead. Only the
//! tensors a matrix product reads whole are copied: a gather-only table (the
//! token embedding when the file has its own output matrix) stays mapped, so
//! the pages of rows never looked up stay off the resident set. The copy goes
//! in chunks through a mapping of its own whose pages are dropped
//! (`MADV_DONTNEED`) as soon as they are copied, so the resident set never
//! holds both copies of a tensor.

use std::collections::HashMap;
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};

use crate::gguf::{FileBytes, GgufError, GgufFile};

/// Bytes copied per step before the step's file pages are dropped.
const CHUNK: usize = 8 << 20;

/// Where each copied tensor starts in the copy (a cache line apart at least).
const ALIGN: usize = 64;

/// Named tensors of a GGUF file copied into one anonymous mapping.
pub(crate) struct HugePageCopy {
    bytes: FileBytes,
    offsets: HashMap<String, usize>,
}

impl HugePageCopy {
    /// Copies the tensors `names` of `file` (read from the file at its
    /// path, which must be the bytes `file` was parsed from).
    pub(crate) fn new(file: &GgufFile, names: &[&str]) -> Result<HugePageCopy, GgufError> {
        let path = file.path();
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let overflow = || GgufError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("the copied tensors' sizes overflow"),
        };
        let mut offsets = HashMap::new();
        let mut ranges = Vec::new();
        let mut len = 0usize;
        for &name in names {
            if offsets.contains_key(name) {
                continue;
            }
            let info = file.tensor(name)?;
            let start = file.tensor_file_offset(info);
            offsets.insert(name.to_string(), len);
            ranges.push((start, info.size, len));
            len = len
                .checked_add(info.size)
                .and_then(|l| l.checked_next_multiple_of(ALIGN))
                .ok_or_else(overflow)?;
        }
        let source = std::fs::File::open(path).map_err(io)?;
        // SAFETY: read-only; like every mmap-based loader we rely on the file
        // not being truncated while it is open (here: while it is copied).
        let src = unsafe { Mmap::map(&source) }.map_err(io)?;
        if src.len() != file.bytes().as_ref().as_ref().len() {
            return Err(io(std::io::Error::other(
                "the file changed size since it was parsed",
            )));
        }
        let mut dst = MmapOptions::new().len(len.max(1)).map_anon().map_err(io)?;
        #[cfg(target_os = "linux")]
        {
            // Hints: a kernel without them still gets a correct (4 KiB) copy.
            let _ = dst.advise(memmap2::Advice::HugePage);
            let _ = src.advise(memmap2::Advice::Sequential);
        }
        for (start, size, at) in ranges {
            let mut done = 0;
            while done < size {
                let step = CHUNK.min(size - done);
                let (from, to) = (start + done, at + done);
                dst[to..to + step].copy_from_slice(&src[from..from + step]);
                #[cfg(target_os = "linux")]
                // SAFETY: `src` is this function's own private read-only
                // file mapping: dropping its pages only makes a later read
                // fault them back in from the page cache.
                unsafe {
                    let _ =
                        src.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, step);
                }
                done += step;
            }
        }
        Ok(HugePageCopy {
            bytes: Arc::new(dst.make_read_only().map_err(io)?),
            offsets,
        })
    }

    /// The copy and the offset of tensor `name` in it, if it was copied.
    pub(crate) fn find(&self, name: &str) -> Option<(&FileBytes, usize)> {
        self.offsets.get(name).map(|&at| (&self.bytes, at))
    }
}
