//! Probe: the attention kernel at the Whisper encoder's self-attention
//! shape (`[1, H, T, D]`, no mask; tiny.en H6 T1500 D64 by default), thread
//! CPU time per call, best of `windows` windows. `kind` picks the entry
//! point: `f32` (`sdpa_f32`), `bf16` (`sdpa_bf16`) or `int8` (`sdpa_bf16`
//! with int8 scores and values: the encoder's `auto` path on AMX / VNNI).
//! `EMILY_NUM_THREADS=1 whisper_attn_probe [H] [T] [D] [windows] [calls] [kind]`
//! (with more pool threads the work leaves the measured thread).
use emily_kernels::fast::{sdpa_bf16, sdpa_f32, SdpaParams};
use half::bf16;
use rand::{rngs::StdRng, Rng, SeedableRng};

#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::thread_cpu as cpu;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (h, t, d) = (arg(1, 6), arg(2, 1500), arg(3, 64));
    let (windows, calls) = (arg(4, 5), arg(5, 3));
    let kind = a.get(6).map_or("f32", String::as_str);
    let mut rng = StdRng::seed_from_u64(1);
    let mut r = |n: usize| {
        (0..n)
            .map(|_| rng.gen_range(-2.0f32..2.0))
            .collect::<Vec<_>>()
    };
    let (q, k, v) = (r(h * t * d), r(h * t * d), r(h * t * d));
    let mut p = SdpaParams::new(1, h, h, t, t, d);
    let mut call: Box<dyn FnMut() -> f64> = match kind {
        "f32" => {
            let mut out = vec![0.0; q.len()];
            Box::new(move || {
                sdpa_f32(&q, &k, &v, &mut out, &p);
                out.iter().map(|x| *x as f64).sum()
            })
        }
        "bf16" | "int8" => {
            p.int8_scores = kind == "int8";
            p.int8_values = kind == "int8";
            let b = |x: &[f32]| x.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>();
            let (q, k, v) = (b(&q), b(&k), b(&v));
            let mut out = vec![bf16::ZERO; q.len()];
            Box::new(move || {
                sdpa_bf16(&q, &k, &v, &mut out, &p);
                out.iter().map(|x| x.to_f64()).sum()
            })
        }
        other => panic!("kind {other}: f32, bf16 or int8"),
    };
    let mut cs = call();
    let best = (0..windows)
        .map(|_| {
            let t0 = cpu();
            for _ in 0..calls {
                cs = call();
            }
            (cpu() - t0) / calls as f64
        })
        .fold(f64::INFINITY, f64::min);
    let flop = 4.0 * (h * t * t * d) as f64;
    println!(
        "sdpa {kind} [1, {h}, {t}, {d}]: {:.2} ms thread CPU, {:.1} GFLOP/s per thread (checksum {cs:.6})",
        best * 1e3,
        flop / best / 1e9
    );
}
