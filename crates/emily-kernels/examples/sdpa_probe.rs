//! Probe: the causal attention strips' forward and backward at the byte
//! LM's training shape (B16 H4 kv2 T64 D16 by default), thread CPU time per
//! call, best of `windows` windows of 20 calls.
//! `EMILY_NUM_THREADS=1 sdpa_probe [fwd|bwd|both] [D] [windows] [T]` (with
//! more pool threads the work leaves the measured thread).
use emily_kernels::fast::{sdpa_causal_backward_f32, sdpa_f32, Mask, SdpaParams};
use rand::{rngs::StdRng, Rng, SeedableRng};

#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::thread_cpu as cpu;

fn best(windows: usize, calls: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..windows)
        .map(|_| {
            let t = cpu();
            for _ in 0..calls {
                f();
            }
            (cpu() - t) / calls as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let what = a.get(1).map(String::as_str).unwrap_or("both");
    let d: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let windows: usize = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(15);
    let t: usize = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(64);
    let b = (16 * 64 / t).max(1);
    let (h, hk) = (4, 2);
    let mut rng = StdRng::seed_from_u64(1);
    let mut r = |n: usize| {
        (0..n)
            .map(|_| rng.gen_range(-1.0f32..1.0))
            .collect::<Vec<_>>()
    };
    let q = r(b * h * t * d);
    let k = r(b * hk * t * d);
    let v = r(b * hk * t * d);
    let dout = r(b * h * t * d);
    let p = SdpaParams {
        mask: Mask::Causal,
        ..SdpaParams::new(b, h, hk, t, t, d)
    };
    let mut out = vec![0.0; q.len()];
    let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]);
    if what != "bwd" {
        let s = best(windows, 20, || sdpa_f32(&q, &k, &v, &mut out, &p));
        println!("fwd D{d}: {:.1} us", s * 1e6);
    }
    if what != "fwd" {
        let s = best(windows, 20, || {
            sdpa_causal_backward_f32(&q, &k, &v, &dout, &mut dq, &mut dk, &mut dv, &p)
        });
        println!("bwd D{d}: {:.1} us", s * 1e6);
    }
    let cs: f64 = out
        .iter()
        .chain(&dq)
        .chain(&dk)
        .chain(&dv)
        .map(|x| *x as f64)
        .sum();
    println!("checksum {cs:.6}");
}
