//! The one thread pool every kernel uses, and the size threshold below which
//! work stays on the calling thread.

use std::sync::OnceLock;

/// Elements (of f32-sized work) below which a kernel does not split across threads:
/// below this the fork/join overhead (~2-5 µs) exceeds the gain.
pub const MIN_PARALLEL_ELEMS: usize = 1 << 15;

/// The global pool, sized by `EMILY_NUM_THREADS` (default: available cores).
pub fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let n = std::env::var("EMILY_NUM_THREADS")
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            });
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("emily-{i}"))
            .build()
            .expect("failed to build the emily thread pool")
    })
}

/// Number of threads in [`pool`].
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// How many chunks to split `work` units into: 1 below the threshold, else up to
/// 4 per thread so uneven rows balance.
pub fn chunks_for(work: usize) -> usize {
    if work < MIN_PARALLEL_ELEMS {
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
