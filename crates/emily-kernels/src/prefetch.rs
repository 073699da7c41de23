//! Software prefetch of weight streams that are read once per call.
//!
//! A decode step reads every weight byte once, then reads its small working
//! set — the attention's cached keys and values, the activations, the
//! interpreter's own data — again and again. Weight lines requested with the
//! non-temporal hint (`prefetchnta`) do not displace that working set from
//! L2 and L3, so it is still there for the next op and the next step.
//! Measured on Zen 2 (T0 → NTA in the AVX2 GEMVs, interleaved runs):
//! Whisper tiny.en decoder step at 2 threads f32 2.90 → 2.13 ms, int8
//! 1.66 → 1.43 ms; at 1 thread f32 5.0 → 4.4 ms. The AVX-512 kernels keep
//! their own prefetches until measured on such a machine.

/// Requests the cache line at `p` for a read that will not be repeated soon
/// (a weight stream). A hint: any address is allowed, nothing faults.
#[inline(always)]
pub(crate) fn stream_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults; SSE is part of x86-64.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_NTA};
        _mm_prefetch::<_MM_HINT_NTA>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// How a kernel asks for the lines of a stream it reads ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hint {
    /// Into every level (data the next op or step may read again).
    Keep,
    /// Non-temporal ([`stream_line`]): read once, then let it go.
    Stream,
}

/// Requests the cache line at `p` with `hint` (any address is allowed).
#[inline(always)]
pub(crate) fn line(p: *const u8, hint: Hint) {
    match hint {
        Hint::Stream => stream_line(p),
        Hint::Keep => {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: prefetching never faults; SSE is part of x86-64.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>(p.cast());
            }
        }
    }
}

/// Bytes of this CPU's last-level cache (Linux's `index3` of cpu 0), or 32
/// MiB where the system does not say.
pub(crate) fn last_level_cache_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cache/index3/size")
            .ok()
            .and_then(|s| parse_cache_size(s.trim()))
            .unwrap_or(32 << 20)
    })
}

/// `"16384K"`, `"32M"` or a plain byte count, as sysfs writes cache sizes.
fn parse_cache_size(s: &str) -> Option<usize> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: usize = digits.parse().ok()?;
    let scale = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_sizes_parse_as_sysfs_writes_them() {
        assert_eq!(parse_cache_size("16384K"), Some(16 << 20));
        assert_eq!(parse_cache_size("32M"), Some(32 << 20));
        assert_eq!(parse_cache_size("1048576"), Some(1 << 20));
        assert_eq!(parse_cache_size("12X"), None);
        assert_eq!(parse_cache_size(""), None);
        assert!(last_level_cache_bytes() > 0);
    }
}
