//! Probe: a Whisper decoder step's cross-attention alone — one query row per
//! head over `layers` windows of f16 keys and values (`[1, H, 1500, 64]`
//! each), with a 64 MB read between steps so the keys and values come from
//! memory as in a real step. Prints the time of one step's calls and the
//! rate they read at (`huge`: the buffers on transparent huge pages).
//! `EMILY_NUM_THREADS=T decode_attn_probe [H] [layers] [steps] [huge 0/1] [flush 1/0]`
use std::time::Instant;

use emily_kernels::fast::{sdpa_f32_f16_kv, SdpaParams};
use emily_kernels::huge_pages::HugePageSlice;
use emily_kernels::parallel;
use half::f16;
use rand::{rngs::StdRng, Rng, SeedableRng};

#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::process_cpu as cpu;

enum Buf {
    Heap(Vec<f16>),
    Huge(HugePageSlice<f16>),
}

impl std::ops::Deref for Buf {
    type Target = [f16];
    fn deref(&self) -> &[f16] {
        match self {
            Buf::Heap(v) => v,
            Buf::Huge(h) => h,
        }
    }
}

fn buffer(n: usize, huge: bool, rng: &mut StdRng) -> Buf {
    let vals = (0..n).map(|_| f16::from_f32(rng.gen_range(-2.0f32..2.0)));
    if huge {
        // SAFETY: zero bytes are a valid f16.
        let mut b = unsafe { HugePageSlice::<f16>::zeroed(n) };
        b.iter_mut().zip(vals).for_each(|(d, v)| *d = v);
        Buf::Huge(b)
    } else {
        Buf::Heap(vals.collect())
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: usize| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (h, layers, steps, huge) = (arg(1, 8), arg(2, 6), arg(3, 200), arg(4, 0) == 1);
    // 0: no read between steps (the keys and values stay in cache when they fit).
    let flush_between = arg(5, 1) == 1;
    let (t, d) = (1500, 64);
    let mut rng = StdRng::seed_from_u64(1);
    let kv: Vec<(Buf, Buf)> = (0..layers)
        .map(|_| {
            (
                buffer(h * t * d, huge, &mut rng),
                buffer(h * t * d, huge, &mut rng),
            )
        })
        .collect();
    let q: Vec<f32> = (0..h * d).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let flush = vec![1u8; 64 << 20];
    let mut out = vec![0f32; h * d];
    let p = SdpaParams::new(1, h, h, 1, t, d);
    let mut sink = 0f32;
    let (mut wall, mut cpu_s) = (Vec::new(), 0.0);
    for _ in 0..steps {
        if flush_between {
            sink += flush.iter().step_by(64).map(|&b| b as f32).sum::<f32>();
        }
        let (c0, t0) = (cpu(), Instant::now());
        for (k, v) in &kv {
            sdpa_f32_f16_kv(&q, k, v, &mut out, &p);
        }
        wall.push(t0.elapsed().as_secs_f64());
        cpu_s += cpu() - c0;
        sink += out[0];
    }
    wall.sort_by(f64::total_cmp);
    let bytes = (layers * 2 * h * t * d * 2) as f64;
    let med = wall[wall.len() / 2];
    println!(
        "H{h} x{layers} huge={huge} threads={}: attention {:.3} ms median ({:.1} GB/s), {:.3} ms process CPU per step [{sink:e}]",
        parallel::num_threads(),
        med * 1e3,
        bytes / med / 1e9,
        cpu_s / steps as f64 * 1e3,
    );
}
