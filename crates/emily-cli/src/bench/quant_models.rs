//! The decode GEMVs of real models, one row per weight format: each format's
//! matrices at the shapes and counts one Gemma 3 270M or Qwen2.5 0.5B token
//! streams, timed alone, as GB/s of weight bytes next to the streaming-read
//! rate of the same kind of memory (4 KiB pages, and transparent huge pages
//! as the LLM loader places its weights).

use anyhow::Result;
use emily_kernels::parallel;
use emily_kernels::quant::{gemv_q8, quantize, BlockFormat, Q8Activations};
use rayon::prelude::*;

use super::timer::median_secs;

/// One format's share of a model's decode step: `(n, k, matrices)` shapes.
struct FormatShare {
    model: &'static str,
    format: BlockFormat,
    shapes: &'static [(usize, usize, usize)],
}

/// Gemma 3 270M Q4_K_M and Qwen2.5-Coder 0.5B, as their GGUF files store
/// them (out × in, matrices per token).
const SHARES: [FormatShare; 8] = [
    FormatShare {
        model: "Gemma 3",
        format: BlockFormat::Q8_0,
        shapes: &[(262_144, 640, 1)],
    },
    FormatShare {
        model: "Gemma 3",
        format: BlockFormat::Q5_0,
        shapes: &[(1024, 640, 18), (256, 640, 27), (2048, 640, 36)],
    },
    FormatShare {
        model: "Gemma 3",
        format: BlockFormat::Q4K,
        shapes: &[(640, 1024, 18), (640, 2048, 9)],
    },
    FormatShare {
        model: "Gemma 3",
        format: BlockFormat::Q6K,
        shapes: &[(640, 2048, 9)],
    },
    FormatShare {
        model: "Qwen2.5",
        format: BlockFormat::Q8_0,
        shapes: &[(151_936, 896, 1)],
    },
    FormatShare {
        model: "Qwen2.5",
        format: BlockFormat::Q5_0,
        shapes: &[(896, 896, 48), (128, 896, 36), (4864, 896, 48)],
    },
    FormatShare {
        model: "Qwen2.5",
        format: BlockFormat::Q4K,
        shapes: &[(896, 4864, 12)],
    },
    FormatShare {
        model: "Qwen2.5",
        format: BlockFormat::Q6K,
        shapes: &[(896, 4864, 12)],
    },
];

/// Weight rows quantized from random values; larger matrices repeat them.
const DISTINCT_ROWS: usize = 1024;

/// Bytes a timed pass streams at least (several times the last-level cache).
const STREAMED_BYTES: usize = 128 << 20;

/// Anonymous memory, optionally advised onto transparent huge pages.
struct Region {
    ptr: *mut u8,
    len: usize,
}

impl Region {
    fn new(len: usize, huge: bool) -> Result<Region> {
        let len = len.max(1);
        // SAFETY: a fresh private anonymous mapping; checked for failure.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        anyhow::ensure!(ptr != libc::MAP_FAILED, "mmap of {len} bytes failed");
        if huge {
            // SAFETY: advice on the mapping just made (a hint).
            unsafe { libc::madvise(ptr, len, libc::MADV_HUGEPAGE) };
        }
        Ok(Region {
            ptr: ptr.cast(),
            len,
        })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes mapped read-write for this value's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn words(&self) -> &[u64] {
        // SAFETY: the mapping is page-aligned; whole words within `len`.
        unsafe { std::slice::from_raw_parts(self.ptr.cast(), self.len / 8) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `bytes`, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Read rate of `words` in GB/s: eight independent u64 sums per chunk (the
/// loads, not the adds, the limit), chunks split over the pool.
fn read_gbs(words: &[u64]) -> f64 {
    let chunk = (words.len() / (parallel::num_threads() * 4)).max(8);
    let mut total = 0u64;
    let secs = median_secs(1.0, || {
        total = total.wrapping_add(parallel::pool().install(|| {
            words
                .par_chunks(chunk)
                .map(|c| {
                    let mut acc = [0u64; 8];
                    for block in c.chunks_exact(8) {
                        for (a, v) in acc.iter_mut().zip(block) {
                            *a = a.wrapping_add(*v);
                        }
                    }
                    acc.iter().fold(0, |s, &a| s ^ a)
                })
                .reduce(|| 0, |a, b| a ^ b)
        }));
    });
    std::hint::black_box(total);
    words.len() as f64 * 8.0 / secs / 1e9
}

/// One format's matrices laid out back to back in `huge` or 4 KiB memory
/// (the token's set repeated up to [`STREAMED_BYTES`]); returns (bytes per
/// token, GB/s of one pass over all of them at m = 1).
fn share_gbs(share: &FormatShare, huge: bool) -> Result<(usize, f64)> {
    let format = share.format;
    let mut per_token = 0usize;
    for &(n, k, count) in share.shapes {
        per_token += count * n * format.row_bytes(k)?;
    }
    // A small share repeats so that a pass streams from memory, not L3.
    let repeats = STREAMED_BYTES.div_ceil(per_token.max(1));
    let mut mats = Vec::new(); // (offset, n, k)
    let mut total = 0usize;
    for _ in 0..repeats {
        for &(n, k, count) in share.shapes {
            for _ in 0..count {
                mats.push((total, n, k));
                total += n * format.row_bytes(k)?;
            }
        }
    }
    let mut region = Region::new(total, huge)?;
    for (seed, &(n, k, _)) in (1..).zip(share.shapes) {
        let rows = n.min(DISTINCT_ROWS);
        let block = quantize(format, &random_values(rows * k, seed))?;
        for &(at, _, _) in mats.iter().filter(|m| (m.1, m.2) == (n, k)) {
            let dst = &mut region.bytes_mut()[at..at + n * format.row_bytes(k)?];
            for piece in dst.chunks_mut(block.len()) {
                piece.copy_from_slice(&block[..piece.len()]);
            }
        }
    }
    let acts: Vec<(usize, Q8Activations)> = share
        .shapes
        .iter()
        .map(|&(_, k, _)| (k, Q8Activations::quantize(&random_values(k, 99), 1, k)))
        .collect();
    let widest = share.shapes.iter().map(|s| s.0).max().unwrap_or(0);
    let mut out = vec![0f32; widest];
    let w = region.bytes();
    let secs = median_secs(1.0, || {
        for &(at, n, k) in &mats {
            let act = &acts
                .iter()
                .find(|a| a.0 == k)
                .expect("an activation per depth")
                .1;
            let bytes = &w[at..at + n * format.row_bytes(k).expect("checked above")];
            gemv_q8(format, bytes, n, act, &mut out[..n]).expect("sizes checked above");
        }
    });
    Ok((per_token, total as f64 / secs / 1e9))
}

/// Deterministic pseudo-random values in [-1, 1).
fn random_values(len: usize, seed: u64) -> Vec<f32> {
    super::quant::values(len, seed)
}

/// Prints the per-format rows of both models, 4 KiB and huge pages.
pub fn run() -> Result<()> {
    let probe = 256 << 20;
    let mut rates = [0.0; 2];
    for (rate, huge) in rates.iter_mut().zip([false, true]) {
        let mut r = Region::new(probe, huge)?;
        r.bytes_mut().fill(1);
        *rate = read_gbs(r.words());
    }
    println!(
        "decode GEMV per format at model shapes, m=1, {} threads; streaming read of 256 MiB: \
         {:.1} GB/s on 4 KiB pages, {:.1} GB/s on huge pages",
        parallel::num_threads(),
        rates[0],
        rates[1]
    );
    for share in &SHARES {
        let mut line = String::new();
        let mut mb = 0.0;
        for (rate, huge) in rates.iter().zip([false, true]) {
            let (bytes, gbs) = share_gbs(share, huge)?;
            mb = bytes as f64 / 1e6;
            line += &format!(" | {:5.1} GB/s = {:3.0}% of read", gbs, 100.0 * gbs / rate);
        }
        println!(
            "  {:8} {:5} {:6.1} MB per token{line}  (4 KiB pages | huge pages)",
            share.model,
            share.format.name(),
            mb
        );
    }
    Ok(())
}
