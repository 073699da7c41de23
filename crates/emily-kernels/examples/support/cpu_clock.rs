//! CPU clocks for the probes, included by each with `#[path]` (Cargo builds
//! only `examples/*.rs` and `examples/*/main.rs` as examples, so this
//! folder is not one).
#![allow(dead_code)]

/// Seconds of CPU time on `clock` (a `CLOCK_*_CPUTIME_ID`).
fn cpu_seconds(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// CPU seconds of the calling thread (work moved to pool threads is not in it).
pub fn thread_cpu() -> f64 {
    cpu_seconds(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU seconds of the whole process, every thread.
pub fn process_cpu() -> f64 {
    cpu_seconds(libc::CLOCK_PROCESS_CPUTIME_ID)
}
