//! Observability: `tracing` events for evals, compiles, cache hits/misses and
//! fallbacks, plus a strict mode that turns fallbacks into errors.
//!
//! Targets: `emily::eval` (span per eval), `emily::compile` (trace time,
//! kernels before/after fusion, cache hit/miss), `emily::fallback` (a fast op
//! lowered to its decomposition). Strict mode is on when `EMILY_FALLBACK=error`
//! is set or after [`set_strict_fallbacks`]`(true)`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use crate::error::{Error, Result};

static STRICT: AtomicU8 = AtomicU8::new(2); // 0 off, 1 on, 2 read env
static FALLBACKS: AtomicU64 = AtomicU64::new(0);
static COMPILE_HITS: AtomicU64 = AtomicU64::new(0);
static COMPILE_MISSES: AtomicU64 = AtomicU64::new(0);
static WARNED: AtomicBool = AtomicBool::new(false);

/// Makes every fallback an error (`true`) or an event (`false`).
pub fn set_strict_fallbacks(strict: bool) {
    STRICT.store(strict as u8, Ordering::Relaxed);
}

/// Whether fallbacks are errors.
pub fn strict_fallbacks() -> bool {
    match STRICT.load(Ordering::Relaxed) {
        0 => false,
        1 => true,
        _ => {
            let on = std::env::var("EMILY_FALLBACK").is_ok_and(|v| v.eq_ignore_ascii_case("error"));
            STRICT.store(on as u8, Ordering::Relaxed);
            on
        }
    }
}

/// Records a fallback of `op` to its composed form; an error in strict mode.
pub(crate) fn fallback(op: &'static str, reason: &str) -> Result<()> {
    if strict_fallbacks() {
        return Err(Error::Fallback {
            op,
            reason: reason.to_string(),
        });
    }
    FALLBACKS.fetch_add(1, Ordering::Relaxed);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::debug!(target: "emily::fallback", op, reason, "first fallback to a composed implementation");
    }
    tracing::trace!(target: "emily::fallback", op, reason, "fallback");
    Ok(())
}

/// Records a compile-cache lookup.
pub(crate) fn compile_lookup(hit: bool) {
    if hit {
        COMPILE_HITS.fetch_add(1, Ordering::Relaxed);
    } else {
        COMPILE_MISSES.fetch_add(1, Ordering::Relaxed);
    }
    tracing::trace!(target: "emily::compile", hit, "plan cache lookup");
}

/// Counters since process start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Fast ops lowered to their decomposition.
    pub fallbacks: u64,
    /// Compiled calls that replayed a cached plan.
    pub compile_hits: u64,
    /// Compiled calls that traced and built a plan.
    pub compile_misses: u64,
}

/// The current counters.
pub fn counters() -> Counters {
    Counters {
        fallbacks: FALLBACKS.load(Ordering::Relaxed),
        compile_hits: COMPILE_HITS.load(Ordering::Relaxed),
        compile_misses: COMPILE_MISSES.load(Ordering::Relaxed),
    }
}
