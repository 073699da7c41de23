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
