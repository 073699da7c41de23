//! Probe: the parallel structure of a Whisper base int8 decoder step —
//! per layer six 512 × 512 and one 2048 × 512 int8 GEMV and one 512 × 2048,
//! each followed by a little serial work, over fresh weights (88 MB in all, so
//! they come from memory). Times `steps` such steps, `rounds` times, printing
//! wall and process CPU per step; or, given `n k`, one `n × k` product alone
//! (copies of it exceeding the caches), printing its time and read rate.
//! `EMILY_NUM_THREADS=T step_fork_probe [steps] [rounds] [serial_us] [n k]`
use std::time::Instant;

use emily_kernels::gemv_i8::I8Rows;
use emily_kernels::parallel;
use rand::{rngs::StdRng, Rng, SeedableRng};

#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::process_cpu as cpu;

fn matrix(n: usize, k: usize, rng: &mut StdRng) -> I8Rows {
    let w: Vec<f32> = (0..n * k).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    I8Rows::quantize(&w, n, k)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (steps, rounds, serial_us) = (arg(1, 100), arg(2, 5), arg(3, 3));
    let mut rng = StdRng::seed_from_u64(1);
    if let (Some(n), Some(k)) = (
        a.get(4).and_then(|s| s.parse::<usize>().ok()),
        a.get(5).and_then(|s| s.parse::<usize>().ok()),
    ) {
        // One n × k product alone, copies enough to exceed the caches.
        let copies = (96_000_000 / (n * k)).max(2);
        let ms: Vec<I8Rows> = (0..copies).map(|_| matrix(n, k, &mut rng)).collect();
        let x: Vec<f32> = (0..k).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let mut o = vec![0f32; n];
        let bytes = ms[0].bytes() as f64;
        for _ in 0..rounds {
            let (c0, t0) = (cpu(), Instant::now());
            let reps = steps * copies;
            parallel::pool().install(|| {
                for i in 0..reps {
                    ms[i % copies].gemv(&x, 1, &mut o);
                }
            });
            let (wall, c) = (t0.elapsed().as_secs_f64(), cpu() - c0);
            println!(
                "{n}x{k}: {:.2} us/product, {:.1} GB/s, cpu {:.2} us",
                wall * 1e6 / reps as f64,
                bytes * reps as f64 / wall / 1e9,
                c * 1e6 / reps as f64
            );
        }
        return;
    }
    // Four copies of the 6 layers' weights (~88 MB) so each step reads from memory.
    let sets: Vec<Vec<(I8Rows, I8Rows, Vec<I8Rows>)>> = (0..4)
        .map(|_| {
            (0..6)
                .map(|_| {
                    let small = (0..6).map(|_| matrix(512, 512, &mut rng)).collect();
                    (
                        matrix(2048, 512, &mut rng),
                        matrix(512, 2048, &mut rng),
                        small,
                    )
                })
                .collect()
        })
        .collect();
    let x512: Vec<f32> = (0..512).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let x2048: Vec<f32> = (0..2048).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let serial = |v: &mut [f32]| {
        let t = Instant::now();
        while t.elapsed().as_secs_f64() * 1e6 < serial_us as f64 {
            let s: f32 = v.iter().map(|x| x * x).sum();
            v.iter_mut().for_each(|x| *x = *x / (1.0 + s.sqrt()) + 0.5);
        }
    };
    let step = |set: &Vec<(I8Rows, I8Rows, Vec<I8Rows>)>| {
        let mut o512 = vec![0f32; 512];
        let mut o2048 = vec![0f32; 2048];
        for (fc1, fc2, small) in set {
            for m in small {
                m.gemv(&x512, 1, &mut o512);
                serial(&mut o512);
            }
            fc1.gemv(&x512, 1, &mut o2048);
            serial(&mut o2048);
            fc2.gemv(&x2048, 1, &mut o512);
            serial(&mut o512);
        }
    };
    println!("threads {}", parallel::num_threads());
    for r in 0..rounds {
        {
            let (c0, t0) = (cpu(), Instant::now());
            for s in 0..steps {
                let set = &sets[s % sets.len()];
                parallel::pool().install(|| step(set));
            }
            let (wall, c) = (t0.elapsed().as_secs_f64(), cpu() - c0);
            println!(
                "round {r} wall {:.3} ms/step, cpu {:.3} ms/step",
                wall * 1e3 / steps as f64,
                c * 1e3 / steps as f64
            );
        }
    }
}
