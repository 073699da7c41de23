//! The one thread pool every kernel uses, and the size threshold below which
//! work stays on the calling thread.

use std::sync::OnceLock;

/// Elements (of f32-sized work) below which a kernel does not split across threads:
/// below this the fork/join overhead (~2-5 µs) exceeds the gain.
pub const MIN_PARALLEL_ELEMS: usize = 1 << 15;

/// Most threads per available core a pool may have: more only adds context
/// switches to compute-bound kernels (1000 threads on 2 cores ran Whisper 38×
/// slower), so larger requests are clamped to this many per core.
pub const MAX_THREADS_PER_CORE: usize = 4;

/// The environment variable that sizes the pool.
pub const THREADS_ENV: &str = "EMILY_NUM_THREADS";

/// A thread count that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThreadsError {
    /// Zero threads requested.
    #[error("{origin}: 0 threads requested; use at least 1")]
    Zero {
        /// Where the count came from (`--threads`, `EMILY_NUM_THREADS`).
        origin: &'static str,
    },
    /// A value that is not a positive integer.
    #[error("{origin}: `{value}` is not a thread count (a positive integer)")]
    Unparsable {
        /// Where the value came from.
        origin: &'static str,
        /// The value as given.
        value: String,
    },
    /// The pool already runs with another size.
    #[error(
        "the thread pool already runs {running} threads; set {requested} before any tensor work"
    )]
    AlreadyStarted {
        /// Threads the pool has.
        running: usize,
        /// Threads requested.
        requested: usize,
    },
}

/// A validated pool size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadCount {
    /// Threads the pool gets.
    pub threads: usize,
    /// The larger count that was asked for, when it was clamped to
    /// [`MAX_THREADS_PER_CORE`] × cores.
    pub clamped_from: Option<usize>,
}

/// Cores this process may use (1 if unknown).
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Checks a requested thread count against `cores`: 0 is an error, more than
/// [`MAX_THREADS_PER_CORE`] × `cores` is clamped to that.
pub fn validate_threads(
    requested: usize,
    origin: &'static str,
    cores: usize,
) -> Result<ThreadCount, ThreadsError> {
    if requested == 0 {
        return Err(ThreadsError::Zero { origin });
    }
    let limit = MAX_THREADS_PER_CORE.saturating_mul(cores.max(1));
    Ok(if requested > limit {
        ThreadCount {
            threads: limit,
            clamped_from: Some(requested),
        }
    } else {
        ThreadCount {
            threads: requested,
            clamped_from: None,
        }
    })
}

/// Parses and checks a thread count given as text (an environment value).
pub fn parse_threads(
    value: &str,
    origin: &'static str,
    cores: usize,
) -> Result<ThreadCount, ThreadsError> {
    let n = value
        .trim()
        .parse::<u128>()
        .map_err(|_| ThreadsError::Unparsable {
            origin,
            value: value.to_string(),
        })?;
    validate_threads(usize::try_from(n).unwrap_or(usize::MAX), origin, cores)
}

/// The pool size `requested` (e.g. a `--threads` flag) asks for, else
/// `EMILY_NUM_THREADS` if set, else one thread per available core; checked
/// by [`validate_threads`] / [`parse_threads`].
pub fn threads_for(requested: Option<usize>) -> Result<ThreadCount, ThreadsError> {
    let cores = available_cores();
    if let Some(n) = requested {
        return validate_threads(n, "--threads", cores);
    }
    match std::env::var(THREADS_ENV) {
        Ok(v) => parse_threads(&v, THREADS_ENV, cores),
        Err(std::env::VarError::NotUnicode(v)) => Err(ThreadsError::Unparsable {
            origin: THREADS_ENV,
            value: v.to_string_lossy().into_owned(),
        }),
        Err(std::env::VarError::NotPresent) => validate_threads(cores, "cores", cores),
    }
}

static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();

fn build_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("emily-{i}"))
        .build()
        .expect("failed to build the emily thread pool")
}

/// Sizes the pool now (see [`threads_for`]); call it before any tensor work,
/// as the `emily` binary does with `--threads`. Returns the size, which may
/// have been clamped. An error for 0, an unparsable `EMILY_NUM_THREADS`, or
/// a pool already running with another size.
pub fn configure(requested: Option<usize>) -> Result<ThreadCount, ThreadsError> {
    let count = threads_for(requested)?;
    let pool = POOL.get_or_init(|| build_pool(count.threads));
    if pool.current_num_threads() != count.threads {
        return Err(ThreadsError::AlreadyStarted {
            running: pool.current_num_threads(),
            requested: count.threads,
        });
    }
    Ok(count)
}

/// The global pool. Unless [`configure`] sized it first, it is sized on first
/// use by `EMILY_NUM_THREADS` (default: available cores); a bad value there
/// cannot be returned as an error from a kernel, so it is reported on stderr
/// once and the default is used (the `emily` binary refuses it up front).
pub fn pool() -> &'static rayon::ThreadPool {
    POOL.get_or_init(|| {
        let count = threads_for(None).unwrap_or_else(|e| {
            eprintln!("emily: {e}; using one thread per core");
            let cores = available_cores();
            ThreadCount {
                threads: cores,
                clamped_from: None,
            }
        });
        if let Some(asked) = count.clamped_from {
            eprintln!(
                "emily: {THREADS_ENV}={asked} clamped to {} threads ({MAX_THREADS_PER_CORE} per core)",
                count.threads
            );
        }
        build_pool(count.threads)
    })
}

thread_local! {
    /// Set while [`on_this_thread`] runs: every kernel then runs inline.
    static ALONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every kernel it calls on the calling thread alone
/// ([`num_threads`] reads 1 inside): for work that is already split
/// across the pool one level up (each thread's own block of rows), whose
/// inner products should not be cut again.
pub fn on_this_thread<R>(f: impl FnOnce() -> R) -> R {
    crate::thread_flag::with_flag(&ALONE, true, f)
}

/// Number of threads in [`pool`] (1 inside [`on_this_thread`]).
pub fn num_threads() -> usize {
    if ALONE.with(|a| a.get()) {
        return 1;
    }
    pool().current_num_threads()
}

/// CPU nanoseconds the calling thread has run so far (`None` where the
/// clock is unavailable). With a one-thread pool every kernel runs inline,
/// so the difference around a kernel is its CPU time, unaffected by
/// preemption on a loaded machine.
#[cfg(target_os = "linux")]
pub fn thread_cpu_nanos() -> Option<u64> {
    // SAFETY: clock_gettime fills the zeroed timespec it is given.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return None;
    }
    Some((t.tv_sec.max(0) as u64) * 1_000_000_000 + t.tv_nsec.max(0) as u64)
}

/// CPU nanoseconds the calling thread has run so far: not available here.
#[cfg(not(target_os = "linux"))]
pub fn thread_cpu_nanos() -> Option<u64> {
    None
}

/// How many chunks to split `work` units into: 1 below the threshold or with
/// a one-thread pool (splitting would only hand the work to the pool's one
/// worker and wait for it: a futex wake and sleep per kernel), else up to 4
/// per thread so uneven rows balance.
pub fn chunks_for(work: usize) -> usize {
    if work < MIN_PARALLEL_ELEMS || num_threads() == 1 {
        1
    } else {
        (work / (MIN_PARALLEL_ELEMS / 4)).clamp(1, num_threads() * 4)
    }
}

/// Runs `f(start, end)` over `0..rows` split into contiguous ranges, in parallel on
/// [`pool`] when `rows * cost_per_row` is large enough, else inline.
pub fn for_each_range(rows: usize, cost_per_row: usize, f: impl Fn(usize, usize) + Sync) {
    let n = chunks_for(rows.saturating_mul(cost_per_row.max(1))).min(rows.max(1));
    if n <= 1 {
        f(0, rows);
        return;
    }
    let per = rows.div_ceil(n);
    pool().install(|| {
        rayon::scope(|s| {
            let f = &f;
            for c in 0..n {
                let start = c * per;
                let end = ((c + 1) * per).min(rows);
                if start < end {
                    s.spawn(move |_| f(start, end));
                }
            }
        })
    });
}

/// Runs `f(start, end)` over `0..rows` cut into one contiguous range per
/// thread of [`pool`] (row counts differing by at most one), in parallel
/// when `rows * cost_per_row` is large enough (as [`for_each_range`]), else
/// inline. For kernels that stream memory at a uniform cost per row — the
/// decode GEMVs: each thread then reads one run of the weights front to
/// back, where [`for_each_range`]'s four ranges per thread restart the
/// prefetchers at every range and pay a spawn each (a 512 × 512 int8 GEMV
/// at two threads: 14.4 → 11.8 µs, 2048 × 512: 39.5 → 35.9 µs, quiet).
pub fn for_each_even_range(rows: usize, cost_per_row: usize, f: impl Fn(usize, usize) + Sync) {
    let parts = if chunks_for(rows.saturating_mul(cost_per_row.max(1))) <= 1 {
        1
    } else {
        num_threads().min(rows)
    };
    if parts <= 1 {
        f(0, rows);
        return;
    }
    pool().install(|| split_even(0, rows, parts, &f));
}

/// `f` over `start..end` cut into `parts` contiguous ranges, halves by
/// `rayon::join` (the first on this thread, the second left for another).
fn split_even(start: usize, end: usize, parts: usize, f: &(impl Fn(usize, usize) + Sync)) {
    if parts <= 1 {
        if start < end {
            f(start, end);
        }
        return;
    }
    let left = parts / 2;
    let mid = start + (end - start) * left / parts;
    rayon::join(
        || split_even(start, mid, left, f),
        || split_even(mid, end, parts - left, f),
    );
}

/// Splits `out` into blocks of whole rows (`row_len` elements each) and runs
/// `f(first_row, block)` on each block, in parallel when the work is large enough.
pub fn for_each_row_block_mut<T: Send>(
    out: &mut [T],
    row_len: usize,
    cost_per_row: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let row_len = row_len.max(1);
    let rows = out.len() / row_len;
    let n = chunks_for(rows.saturating_mul(cost_per_row.max(1))).min(rows.max(1));
    if n <= 1 {
        f(0, out);
        return;
    }
    let per = rows.div_ceil(n);
    pool().install(|| {
        rayon::scope(|s| {
            let f = &f;
            for (c, block) in out.chunks_mut(per * row_len).enumerate() {
                s.spawn(move |_| f(c * per, block));
            }
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_this_thread_nests_and_ends_even_by_a_panic() {
        let outside = num_threads();
        on_this_thread(|| {
            assert_eq!(num_threads(), 1);
            on_this_thread(|| assert_eq!(num_threads(), 1));
            assert_eq!(num_threads(), 1);
        });
        assert_eq!(num_threads(), outside);
        let caught = std::panic::catch_unwind(|| on_this_thread(|| panic!("inside")));
        assert!(caught.is_err());
        assert_eq!(num_threads(), outside);
    }

    #[test]
    fn thread_counts_are_validated() {
        let ok = |n| ThreadCount {
            threads: n,
            clamped_from: None,
        };
        assert_eq!(validate_threads(1, "t", 2), Ok(ok(1)));
        assert_eq!(validate_threads(8, "t", 2), Ok(ok(8)));
        assert_eq!(
            validate_threads(9, "t", 2),
            Ok(ThreadCount {
                threads: 8,
                clamped_from: Some(9)
            })
        );
        assert_eq!(
            validate_threads(usize::MAX, "t", 2).unwrap().threads,
            8,
            "usize::MAX once started 65,535 threads"
        );
        assert_eq!(
            validate_threads(0, "--threads", 2),
            Err(ThreadsError::Zero {
                origin: "--threads"
            })
        );
        assert_eq!(parse_threads(" 3 ", "e", 2), Ok(ok(3)));
        assert_eq!(parse_threads("1000", "e", 2).unwrap().threads, 8);
        assert_eq!(
            parse_threads("99999999999999999999999", "e", 2)
                .unwrap()
                .threads,
            8
        );
        for bad in ["abc", "", "-1", "2.5", "0x4"] {
            let e = parse_threads(bad, THREADS_ENV, 2).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("EMILY_NUM_THREADS: `{bad}` is not a thread count (a positive integer)")
            );
        }
        assert!(matches!(
            parse_threads("0", THREADS_ENV, 2),
            Err(ThreadsError::Zero { .. })
        ));
    }

    #[test]
    fn even_ranges_cover_every_row_once() {
        use std::sync::Mutex;
        for rows in [0, 1, 2, 3, 7, 77, 1000] {
            for parts in 1..=5 {
                let seen = Mutex::new(Vec::new());
                split_even(0, rows, parts, &|a, b| seen.lock().unwrap().push((a, b)));
                let mut ranges = seen.into_inner().unwrap();
                ranges.sort();
                assert!(
                    ranges.len() <= parts,
                    "{rows} rows, {parts} parts: {ranges:?}"
                );
                let mut next = 0;
                for &(a, b) in &ranges {
                    assert!(a == next && a < b, "{rows} rows, {parts} parts: {ranges:?}");
                    let (lo, hi) = (rows / parts, rows.div_ceil(parts));
                    assert!((lo..=hi).contains(&(b - a)), "uneven: {ranges:?}");
                    next = b;
                }
                assert_eq!(next, rows);
            }
            // Through the pool, whatever its size: every row exactly once.
            let hits: Vec<_> = (0..rows)
                .map(|_| std::sync::atomic::AtomicUsize::new(0))
                .collect();
            for_each_even_range(rows, MIN_PARALLEL_ELEMS, |a, b| {
                for h in &hits[a..b] {
                    h.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
            assert!(hits
                .iter()
                .all(|h| h.load(std::sync::atomic::Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn a_running_pool_refuses_another_size() {
        let running = num_threads();
        assert_eq!(configure(Some(running)).unwrap().threads, running);
        let other = if running == 1 { 2 } else { 1 };
        assert_eq!(
            configure(Some(other)),
            Err(ThreadsError::AlreadyStarted {
                running,
                requested: other
            })
        );
    }
}
