//! Probe: the f32 GEMM `out = a · bᵀ` (b stored (n, k), as the encoder's
//! linear layers) at Whisper base's shapes, split over the pool three ways:
//! the `gemm` crate's own threading, rows of `a` split across the pool's
//! threads (each a single-threaded GEMM), and one thread. Prints wall and
//! process CPU per call, best of `windows`.
//! `gemm_split_probe [m] [n] [k] [windows] [calls]`
use std::time::Instant;

use gemm::Parallelism;
use rand::{rngs::StdRng, Rng, SeedableRng};

#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::process_cpu as cpu;

/// `out[rows] = a[rows] · bᵀ` on the calling thread or with `par`.
fn gemm_rows(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    par: Parallelism,
) {
    // SAFETY: a is (m, k), b (n, k), out (m, n), all row-major.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// A named way to run the product into its output.
type Way<'a> = (&'static str, Box<dyn Fn(&mut [f32]) + 'a>);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (m, n, k) = (arg(1, 1500), arg(2, 512), arg(3, 512));
    let (windows, calls) = (arg(4, 5), arg(5, 5));
    let mut rng = StdRng::seed_from_u64(1);
    let mut r = |len: usize| {
        (0..len)
            .map(|_| rng.gen_range(-1.0f32..1.0))
            .collect::<Vec<_>>()
    };
    let (a, b) = (r(m * k), r(n * k));
    let mut out = vec![0.0f32; m * n];
    let pool = emily_kernels::parallel::pool();
    let threads = pool.current_num_threads();
    let split_rows = |out: &mut [f32], parts: usize| {
        let per = m.div_ceil(parts).div_ceil(8) * 8;
        pool.install(|| {
            rayon::scope(|s| {
                for (i, o) in out.chunks_mut(per * n).enumerate() {
                    let rows = o.len() / n;
                    let a = &a[i * per * k..(i * per + rows) * k];
                    let b = &b;
                    s.spawn(move |_| gemm_rows(a, b, o, rows, n, k, Parallelism::None));
                }
            })
        })
    };
    let ways: Vec<Way> = vec![
        (
            "gemm crate Rayon",
            Box::new(|o: &mut [f32]| {
                pool.install(|| gemm_rows(&a, &b, o, m, n, k, Parallelism::Rayon(threads)))
            }),
        ),
        (
            "rows split / threads",
            Box::new(|o: &mut [f32]| split_rows(o, threads)),
        ),
        (
            "rows split / 2 threads x2",
            Box::new(|o: &mut [f32]| split_rows(o, threads * 2)),
        ),
        (
            "one thread",
            Box::new(|o: &mut [f32]| gemm_rows(&a, &b, o, m, n, k, Parallelism::None)),
        ),
    ];
    let flop = 2.0 * (m * n * k) as f64;
    let mut best = vec![(f64::INFINITY, f64::INFINITY); ways.len()];
    for _ in 0..windows {
        for (i, (_, f)) in ways.iter().enumerate() {
            let (t0, c0) = (Instant::now(), cpu());
            for _ in 0..calls {
                f(&mut out);
            }
            let w = t0.elapsed().as_secs_f64() / calls as f64;
            let c = (cpu() - c0) / calls as f64;
            best[i] = (best[i].0.min(w), best[i].1.min(c));
        }
    }
    for (i, (name, _)) in ways.iter().enumerate() {
        println!(
            "[{m}x{n}x{k}] {name:<28} wall {:7.3} ms ({:6.1} GFLOP/s)  CPU {:7.3} ms",
            best[i].0 * 1e3,
            flop / best[i].0 / 1e9,
            best[i].1 * 1e3
        );
    }
}
