//! Software prefetch of weight streams that are read once per call.
//!
//! A decode step reads every weight byte once, then reads its small working
//! set — the attention's cached keys and values, the activations, the
//! interpreter's own data — again and again. Weight lines requested with the
//! non-temporal hint (`prefetchnta`) do not displace that working set from
//! L2 and L3, so it is still there for the next op and the next step.
//! Measured on Zen 2 (T0 → NTA in the AVX2 GEMVs, interleaved runs):
//! Whisper tiny.en decoder step at 2 threads f32 2.90 → 2.13 ms, int8
//! 1.66 → 1.43 ms; at 1 thread f32 5.0 → 4.4 ms. The AVX-512 f32/f16 GEMV
//! asks for the next block of a multi-row walk with `prefetcht0`
//! ([`Hint::Keep`]): on the Xeon with AMX neither the non-temporal hint nor
//! a longer lead changed that; its one-row walk (a decoding step) streams
//! with [`stream_line`] like the others. On AMD hosts with AVX-512 both are
//! unmeasured.
//!
//! On Intel cores the non-temporal hint is the wrong one: a Xeon with AMX
//! (2 vCPUs) decoded SmolLM2 Q4_1 at 52 tok/s with `prefetchnta` — no
//! faster than with no software prefetch at all (49–51) — and at 98–100
//! tok/s with `prefetcht0` (88 with `prefetcht1`); the Whisper base int8
//! decoder step took 2.39 → 1.95 ms. There [`stream_line`] asks for the
//! line into every level, as [`Hint::Keep`] does.

/// Requests the cache line at `p` for a read that will not be repeated soon
/// (a weight stream). A hint: any address is allowed, nothing faults.
#[inline(always)]
pub(crate) fn stream_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults; SSE is part of x86-64.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_NTA, _MM_HINT_T0};
        if non_temporal_streams() {
            _mm_prefetch::<_MM_HINT_NTA>(p.cast());
        } else {
            _mm_prefetch::<_MM_HINT_T0>(p.cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Whether weight streams are prefetched with the non-temporal hint: every
/// x86 vendor but Intel (see the module notes); detected once.
#[cfg(target_arch = "x86_64")]
fn non_temporal_streams() -> bool {
    static NTA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NTA.get_or_init(|| {
        let id = std::arch::x86_64::__cpuid(0);
        !is_intel(id.ebx, id.edx, id.ecx)
    })
}

/// Whether CPUID leaf 0's vendor registers spell `GenuineIntel`.
#[cfg(target_arch = "x86_64")]
fn is_intel(ebx: u32, edx: u32, ecx: u32) -> bool {
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&edx.to_le_bytes());
    vendor[8..].copy_from_slice(&ecx.to_le_bytes());
    &vendor == b"GenuineIntel"
}

/// How far ahead of its reads a weight stream asks for lines, given the
/// distance tuned with the non-temporal hint: four times that on Intel
/// cores, whose `prefetcht0` requests need the longer lead (the Xeon with
/// AMX: SmolLM2 Q4_1 decode at 1 KiB / 2 / 4 / 8 KiB ahead 84–86 / 93–96 /
/// 96–97 / – tok/s on 1 thread, 131–132 / – / 160–171 / 159–165 on 2).
pub(crate) fn stream_ahead(bytes: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if !non_temporal_streams() {
        return 4 * bytes;
    }
    bytes
}

/// How a kernel asks for the lines of a stream it reads ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hint {
    /// Into every level (data the next op or step may read again).
    Keep,
    /// Non-temporal ([`stream_line`]): read once, then let it go.
    Stream,
    /// With intent to write (`prefetchw`): the line is owned when the
    /// store comes, so the store waits for no other cache.
    Write,
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
        Hint::Write => {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: prefetching never faults, and x86 CPUs without
            // `prefetchw` execute its encoding as a no-op. (Through
            // `_mm_prefetch` it would need the `prfchw` target feature at
            // compile time; without it LLVM emits `prefetcht0`.)
            unsafe {
                std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, readonly, preserves_flags));
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

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vendor_registers_spell_the_vendor() {
        // "Genu" "ineI" "ntel" in EBX, EDX, ECX; AMD's "Auth" "enti" "cAMD".
        let word = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap());
        assert!(is_intel(word(b"Genu"), word(b"ineI"), word(b"ntel")));
        assert!(!is_intel(word(b"Auth"), word(b"enti"), word(b"cAMD")));
        assert!(!is_intel(word(b"Genu"), word(b"ntel"), word(b"ineI")));
    }
}
