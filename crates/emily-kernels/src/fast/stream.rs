//! Non-temporal (streaming) stores for outputs too large to stay in cache.
//!
//! A normal store first reads the destination line (read-for-ownership), so a
//! kernel that reads `n` bytes and writes `n` moves `3n` through memory; a copy
//! (`memcpy`'s `rep movsb`) moves `2n`. Writing large outputs with
//! non-temporal stores brings the fused kernels to the copy floor. Below
//! [`STREAM_MIN_BYTES`] the output is left in cache for its consumer.

/// Output sizes from which kernels stream their stores.
pub(crate) const STREAM_MIN_BYTES: usize = 16 << 20;

/// Whether an output of `elems` `f32`s should be streamed.
pub(crate) fn should_stream(elems: usize) -> bool {
    elems.saturating_mul(4) >= STREAM_MIN_BYTES
}

/// Copies `src` into `dst` (same length), with non-temporal stores for the
/// 16-byte-aligned middle on x86-64 (SSE, so every x86-64 CPU has them).
/// Call [`fence`] before the data is handed to another thread.
#[inline]
pub(crate) fn copy_nt(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_loadu_ps, _mm_stream_ps};
        let n = dst.len();
        let head = ((dst.as_ptr() as usize).wrapping_neg() / 4 % 4).min(n);
        dst[..head].copy_from_slice(&src[..head]);
        let body_end = head + (n - head) / 4 * 4;
        let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
        for i in (head..body_end).step_by(4) {
            // SAFETY: `i + 4 <= n` for both slices, and `d + i` is 16-byte aligned.
            unsafe { _mm_stream_ps(d.add(i), _mm_loadu_ps(s.add(i))) };
        }
        dst[body_end..].copy_from_slice(&src[body_end..]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

/// Orders this thread's earlier non-temporal stores before its later stores
/// (and so before the pool's completion signal).
#[inline]
pub(crate) fn fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `sfence` is part of SSE, present on every x86-64 CPU.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

/// Fills `block` (whole rows of `cols`) through a small cache-resident buffer:
/// `f(first_row, buf)` writes rows `first_row..` of the block into `buf` (a
/// whole number of rows, about 16 KiB), which is then streamed out. Ends with
/// a [`fence`].
pub(crate) fn stream_rows(block: &mut [f32], cols: usize, mut f: impl FnMut(usize, &mut [f32])) {
    let rows_per = (4096 / cols.max(1)).max(1);
    let rows = block.len() / cols.max(1);
    let mut buf = vec![0.0f32; rows_per.min(rows) * cols];
    let mut r = 0;
    while r < rows {
        let n = rows_per.min(rows - r);
        let b = &mut buf[..n * cols];
        f(r, b);
        copy_nt(&mut block[r * cols..(r + n) * cols], b);
        r += n;
    }
    fence();
}
