//! Probe: nanoseconds per element of the unary kernels on one thread, from
//! L1-resident buffers (thread CPU time), so the math's own cost shows.
//! `unary_probe [n] [reps] [lo] [hi]`: inputs uniform in `[lo, hi)` (default
//! -4 .. 4; the encoder's fc1 puts ~10 % of GELU inputs below -13).
use emily_kernels::unary::{unary_f32, UnaryOp};
use rand::{rngs::StdRng, Rng, SeedableRng};

#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::thread_cpu;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (n, reps) = (arg(1, 4096), arg(2, 20_000));
    let real = |i: usize, default: f32| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (lo, hi) = (real(3, -4.0), real(4, 4.0));
    let mut rng = StdRng::seed_from_u64(7);
    let x: Vec<f32> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
    let mut out = vec![0.0f32; n];
    let ops = [
        UnaryOp::GeluErf,
        UnaryOp::GeluTanh,
        UnaryOp::Exp,
        UnaryOp::Erf,
        UnaryOp::Silu,
        UnaryOp::Tanh,
    ];
    for round in 0..3 {
        for op in ops {
            let t0 = thread_cpu();
            for _ in 0..reps {
                unary_f32(op, &x, &mut out);
                std::hint::black_box(&mut out);
            }
            let ns = (thread_cpu() - t0) * 1e9 / (n * reps) as f64;
            println!("round {round} {op:?}: {ns:.3} ns/elem");
        }
    }
}
