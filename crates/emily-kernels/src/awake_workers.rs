//! Keeps the pool's other threads awake while one of them replays a plan.
//!
//! A replay runs on one pool thread and hands half of each parallel kernel
//! to the others through `rayon::join`. A decoding step is some fifty short
//! kernels; between them an idle rayon thread spins a few dozen
//! `sched_yield`s and then sleeps, and waking it again (a futex and, in a
//! virtual machine, an inter-processor interrupt) can take longer than the
//! kernel's half. While a replay runs, [`with_workers_awake`] therefore
//! leaves one job on every other thread that keeps taking pending work
//! (`rayon::yield_now`) and spins between, until the replay ends.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::parallel;

/// How long a kept-awake thread spins with nothing to run before it gives
/// up and lets rayon put it to sleep: longer than any serial stretch
/// between a step's parallel kernels, short enough that a thread which
/// picked the job up while waiting inside other work is not held from it
/// for long.
const MAX_IDLE_SPIN: Duration = Duration::from_micros(500);

thread_local! {
    /// Whether this thread is running [`with_workers_awake`]'s `f`: it then
    /// neither keeps others awake again nor spins for anyone else's replay
    /// (two replays spinning for each other would each hold the other up).
    static REPLAYING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, and while it runs keeps every other thread of
/// [`parallel::pool`] spinning for work instead of sleeping. Off that
/// pool's threads (another pool's included), on a one-thread pool, or
/// nested, it just runs `f`.
pub fn with_workers_awake<R>(f: impl FnOnce() -> R) -> R {
    let Some(me) = parallel::pool().current_thread_index() else {
        return f();
    };
    if parallel::num_threads() < 2 || REPLAYING.with(Cell::get) {
        return f();
    }
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    parallel::pool().spawn_broadcast(move |ctx| {
        if ctx.index() != me && !REPLAYING.with(Cell::get) {
            spin_until(&flag);
        }
    });
    /// Marks the replay over (and this thread free) however `f` ends.
    struct Over(Arc<AtomicBool>);
    impl Drop for Over {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
            REPLAYING.with(|r| r.set(false));
        }
    }
    REPLAYING.with(|r| r.set(true));
    let _over = Over(done);
    f()
}

/// Runs pending pool work until `done`, or until nothing came for
/// [`MAX_IDLE_SPIN`].
fn spin_until(done: &AtomicBool) {
    let mut last_work = Instant::now();
    while !done.load(Ordering::Acquire) {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => last_work = Instant::now(),
            _ if last_work.elapsed() > MAX_IDLE_SPIN => return,
            _ => std::hint::spin_loop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_inside_runs_and_returns_its_value_on_any_pool() {
        // Off the pool: a plain call.
        assert_eq!(with_workers_awake(|| 6 * 7), 42);
        // On the pool, with parallel work inside and a nested call.
        let sum = parallel::pool().install(|| {
            with_workers_awake(|| {
                let mut total = 0u64;
                for round in 0..50u64 {
                    let (a, b) = rayon::join(
                        || (0..1000u64).map(|i| i * round).sum::<u64>(),
                        || with_workers_awake(|| (0..1000u64).sum::<u64>()),
                    );
                    total += a + b;
                }
                total
            })
        });
        let expect: u64 = (0..50u64).map(|r| 499_500 * r + 499_500).sum();
        assert_eq!(sum, expect);
    }

    #[test]
    fn concurrent_replays_do_not_hold_each_other() {
        // Two replays at once on the pool (as two served requests are):
        // each must finish, whichever thread picks up whose spinner.
        let results: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2u64)
                .map(|k| {
                    s.spawn(move || {
                        parallel::pool().install(|| {
                            with_workers_awake(|| {
                                (0..200u64)
                                    .map(|i| {
                                        let (a, b) = rayon::join(|| i + k, || i * 2);
                                        a + b
                                    })
                                    .sum::<u64>()
                            })
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (k, r) in results.iter().enumerate() {
            let expect: u64 = (0..200u64).map(|i| 3 * i + k as u64).sum();
            assert_eq!(*r, expect);
        }
    }
}
