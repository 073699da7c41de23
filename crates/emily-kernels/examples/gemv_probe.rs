//! Probe: one-row f16 GEMVs of a decoder step's sizes, over enough distinct
//! matrices (`total_mb`) that they come from memory, run as a plan's replay
//! runs them (on a pool thread, the others kept awake). Prints the time per
//! product and the read rate: how far a short product sits from the
//! streaming rate (the fork, the join and each thread's cold start).
//! `EMILY_NUM_THREADS=T gemv_probe [n] [k] [total_mb] [rounds]`
use std::time::Instant;

use emily_kernels::gemv::gemv_f16;
use emily_kernels::huge_pages::HugePageSlice;
use emily_kernels::parallel;
use half::f16;
use rand::{rngs::StdRng, Rng, SeedableRng};

#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::process_cpu as cpu;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (n, k, total_mb, rounds) = (arg(1, 512), arg(2, 512), arg(3, 128), arg(4, 20));
    let count = ((total_mb << 20) / (n * k * 2)).max(1);
    let mut rng = StdRng::seed_from_u64(1);
    // All matrices in one huge-page buffer, as the weights of a layer sit
    // in the pool's huge-page classes.
    // SAFETY: zero bytes are a valid f16.
    let mut w = unsafe { HugePageSlice::<f16>::zeroed(count * n * k) };
    w.iter_mut()
        .for_each(|v| *v = f16::from_f32(rng.gen_range(-1.0f32..1.0)));
    let x: Vec<f32> = (0..k).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let mut out = vec![0f32; n];
    let mut times = Vec::new();
    let mut cpu_s = 0.0;
    for _ in 0..rounds {
        let (c0, t0) = (cpu(), Instant::now());
        parallel::pool().install(|| {
            emily_kernels::awake_workers::with_workers_awake(|| {
                for m in w.chunks_exact(n * k) {
                    gemv_f16(m, n, k, &x, 1, &mut out);
                }
            })
        });
        times.push(t0.elapsed().as_secs_f64() / count as f64);
        cpu_s += (cpu() - c0) / count as f64;
    }
    times.sort_by(f64::total_cmp);
    let per = times[times.len() / 2];
    println!(
        "{n} x {k} f16, {count} matrices, threads={}: {:.1} µs per product, {:.1} GB/s, process CPU {:.1} µs [{}]",
        parallel::num_threads(),
        per * 1e6,
        (n * k * 2) as f64 / per / 1e9,
        cpu_s / rounds as f64 * 1e6,
        out[0]
    );
}
