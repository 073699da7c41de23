//! Timing: warm up, then the median of repeated timed batches.

use std::time::Instant;

/// Median seconds per call of `f` (after a warm-up), with at least `min_secs`
/// of total timing spread over 7 batches.
pub fn median_secs(min_secs: f64, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let one = t.elapsed().as_secs_f64().max(1e-7);
    let per_batch = ((min_secs / 7.0 / one).ceil() as usize).max(1);
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_secs_f64() / per_batch as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[3]
}

/// Per-call timings of one measured function: wall-clock spread over the
/// timed windows, process CPU time, and what the machine took from us.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    /// Median wall seconds per call over the windows.
    pub median: f64,
    /// Fastest window's seconds per call.
    pub min: f64,
    /// Slowest window's seconds per call.
    pub max: f64,
    /// Process CPU seconds (user + system, all threads) per call.
    pub cpu: f64,
    /// Share of the machine's CPU time stolen by the hypervisor while timing
    /// (`/proc/stat`; 0 where unreadable): a neighbouring VM slowing us.
    pub steal: f64,
    /// Minor page faults per call (fresh memory touched while timing; ~0
    /// once buffers are pooled).
    pub faults: f64,
    /// Calls the warm-up ran before timing.
    pub warmup_calls: usize,
}

/// Times `f` robustly: warms up until the per-call time settles (at least
/// three calls and 0.2 s, at most 3 s: plans compiled, buffers pooled, pages
/// faulted in), then runs 7 windows of at least `min_secs / 7` each and
/// reports the median with the spread, CPU time and steal beside it.
pub fn spread_secs(min_secs: f64, mut f: impl FnMut()) -> Spread {
    let warm = Instant::now();
    let mut last = f64::INFINITY;
    let mut warmup_calls = 0;
    loop {
        let t = Instant::now();
        f();
        let dt = t.elapsed().as_secs_f64();
        warmup_calls += 1;
        let settled = (dt - last).abs() <= 0.1 * last;
        last = dt;
        let elapsed = warm.elapsed().as_secs_f64();
        if (warmup_calls >= 3 && elapsed >= 0.2 && settled) || elapsed >= 3.0 {
            break;
        }
    }
    let per_window = ((min_secs / 7.0 / last.max(1e-7)).ceil() as usize).max(1);
    let ((cpu0, faults0), stat0) = (process_usage(), machine_ticks());
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_window {
                f();
            }
            t.elapsed().as_secs_f64() / per_window as f64
        })
        .collect();
    let calls = (7 * per_window) as f64;
    let (cpu1, faults1) = process_usage();
    let cpu = (cpu1 - cpu0) / calls;
    let faults = faults1.saturating_sub(faults0) as f64 / calls;
    let steal = match (stat0, machine_ticks()) {
        (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => (s1 - s0) as f64 / (t1 - t0) as f64,
        _ => 0.0,
    };
    times.sort_by(f64::total_cmp);
    Spread {
        median: times[3],
        min: times[0],
        max: times[6],
        cpu,
        steal,
        faults,
        warmup_calls,
    }
}

/// User + system CPU seconds (all threads) and minor page faults of this
/// process so far.
pub fn process_usage() -> (f64, u64) {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return (0.0, 0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (
        secs(u.ru_utime) + secs(u.ru_stime),
        u.ru_minflt.max(0) as u64,
    )
}

/// The machine's (steal, total) CPU ticks from `/proc/stat`'s `cpu` line.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    let steal = *fields.get(7)?;
    Some((steal, fields.iter().take(8).sum()))
}
