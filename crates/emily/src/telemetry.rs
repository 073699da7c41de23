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

static PROFILE: AtomicU8 = AtomicU8::new(2); // 0 off, 1 on, 2 read env

/// Whether per-op kernel timing is on (`EMILY_PROFILE=1` or [`set_profiling`]):
/// every kernel a compiled plan replays or eager evaluation runs adds to
/// [`take_op_profile`] (CPU time of the calling thread with a one-thread
/// pool, wall time otherwise).
pub fn profiling() -> bool {
    match PROFILE.load(Ordering::Relaxed) {
        0 => false,
        1 => true,
        _ => {
            let on = std::env::var("EMILY_PROFILE").is_ok_and(|v| v == "1");
            PROFILE.store(on as u8, Ordering::Relaxed);
            on
        }
    }
}

/// Turns per-op kernel timing on or off.
pub fn set_profiling(on: bool) {
    PROFILE.store(on as u8, Ordering::Relaxed);
}

static OP_TIMES: std::sync::Mutex<Vec<(&'static str, u64, u64)>> =
    std::sync::Mutex::new(Vec::new());

/// A kernel's start for the per-op profile: with a one-thread pool (kernels
/// run inline on the caller) the calling thread's CPU clock, so a loaded
/// machine's preemptions are not counted; with more threads, wall time.
#[derive(Clone, Copy, Debug)]
pub(crate) enum OpClock {
    /// Thread CPU nanoseconds at the start.
    Cpu(u64),
    /// Wall-clock start.
    Wall(std::time::Instant),
}

impl OpClock {
    /// Starts timing one kernel.
    pub(crate) fn start() -> OpClock {
        match emily_kernels::parallel::thread_cpu_nanos() {
            Some(t) if emily_kernels::parallel::num_threads() == 1 => OpClock::Cpu(t),
            _ => OpClock::Wall(std::time::Instant::now()),
        }
    }

    /// Records the kernel of `op` started at `self` in the profile.
    pub(crate) fn record(self, op: &'static str) {
        let nanos = match self {
            OpClock::Cpu(t0) => {
                emily_kernels::parallel::thread_cpu_nanos().map_or(0, |t| t.saturating_sub(t0))
            }
            OpClock::Wall(t0) => t0.elapsed().as_nanos() as u64,
        };
        record_op(op, nanos);
    }
}

/// Adds one kernel run of `op` taking `nanos` to the profile.
pub(crate) fn record_op(op: &'static str, nanos: u64) {
    let mut t = OP_TIMES.lock().unwrap();
    match t.iter_mut().find(|e| e.0 == op) {
        Some(e) => {
            e.1 += nanos;
            e.2 += 1;
        }
        None => t.push((op, nanos, 1)),
    }
}

/// Per-op totals since the last call: (op, total seconds, runs), slowest first.
pub fn take_op_profile() -> Vec<(&'static str, f64, u64)> {
    let mut t: Vec<_> = std::mem::take(&mut *OP_TIMES.lock().unwrap())
        .into_iter()
        .map(|(op, ns, n)| (op, ns as f64 * 1e-9, n))
        .collect();
    t.sort_by(|a, b| b.1.total_cmp(&a.1));
    t
}
