//! Probe: a Whisper decoder step's cross-attention alone — one query row per
//! head over `layers` windows of f16 keys and values (`[1, H, 1500, 64]`
//! each), with a 64 MB read between steps so the keys and values come from
//! memory as in a real step. Prints the time of one step's calls and the
//! rate they read at (`huge`: the buffers on transparent huge pages). Each
//! step runs as a plan's replay does: on a pool thread, the others kept
//! awake. `F32=1`: f32 keys and values (the f32 compute type's);
//! `CONTIGUOUS=1` with it: all layers cut from one buffer; `READ_ONLY=1`: a
//! plain sum over the same bytes instead of attention.
//! `EMILY_NUM_THREADS=T decode_attn_probe [H] [layers] [steps] [huge 0/1] [flush 1/0]`
//!
//! The Xeon with AMX, 24 layers (147 MB f32, from memory), one thread:
//! attention 11.3–11.6 GB/s on a 3 MB mapping per buffer, 12.7–13.1 on one
//! contiguous buffer; the plain sum 11.0–11.6 and 17.3–18.8 GB/s. A 3 MB
//! mapping has its last 1 MB on 4 KiB pages; rounding every mapping up to
//! whole huge pages read 13.6 (1 t) / 22.6–25.8 GB/s (2 t) but raised
//! JFK's peak RSS 7–21 % (tiny.en int8 past whisper.cpp q8_0's), so not kept.
//! Since session 24 a 3 MB buffer written whole is cut from a shared
//! huge-page mapping instead (`huge_pages::own_mapping`): 10.4–11.1 →
//! 12.6–12.7 GB/s on the separate buffers, one thread.
use std::time::Instant;

use emily_kernels::fast::{sdpa_f32, sdpa_f32_f16_kv, SdpaParams};
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
    // `F32=1`: f32 keys and values (the f32 compute type's), on huge pages.
    let kv32: Option<Vec<(HugePageSlice<f32>, HugePageSlice<f32>)>> =
        (std::env::var("F32").as_deref() == Ok("1")).then(|| {
            kv.iter()
                .map(|(k, v)| {
                    let widen = |b: &Buf| {
                        // SAFETY: zero bytes are a valid f32.
                        let mut w = unsafe { HugePageSlice::<f32>::zeroed(b.len()) };
                        w.iter_mut()
                            .zip(b.iter())
                            .for_each(|(o, x)| *o = x.to_f32());
                        w
                    };
                    (widen(k), widen(v))
                })
                .collect()
        });
    // `CONTIGUOUS=1` (with `F32=1`): every layer's keys and values cut from
    // one buffer instead of a 3 MB mapping each.
    let contiguous: Option<HugePageSlice<f32>> =
        (kv32.is_some() && std::env::var("CONTIGUOUS").as_deref() == Ok("1")).then(|| {
            // SAFETY: zero bytes are a valid f32.
            let mut b = unsafe { HugePageSlice::<f32>::zeroed(layers * 2 * h * t * d) };
            b.iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = (i % 7) as f32 - 3.0);
            b
        });
    // `READ_ONLY=1`: a plain sum over the same bytes instead of attention
    // (the rate the buffers can be read at).
    let read_only = std::env::var("READ_ONLY").as_deref() == Ok("1");
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
        // As a plan's replay runs a step: on a pool thread, the others awake.
        parallel::pool().install(|| {
            emily_kernels::awake_workers::with_workers_awake(|| {
                if let Some(kv32) = &kv32 {
                    let pairs: Vec<(&[f32], &[f32])> = match &contiguous {
                        Some(c) => c
                            .chunks_exact(2 * h * t * d)
                            .map(|kv| kv.split_at(h * t * d))
                            .collect(),
                        None => kv32.iter().map(|(k, v)| (&k[..], &v[..])).collect(),
                    };
                    for (k, v) in pairs {
                        if read_only {
                            out[0] += plain_sum(k) + plain_sum(v);
                        } else {
                            sdpa_f32(&q, k, v, &mut out, &p);
                        }
                    }
                } else {
                    for (k, v) in &kv {
                        sdpa_f32_f16_kv(&q, k, v, &mut out, &p);
                    }
                }
            })
        });
        wall.push(t0.elapsed().as_secs_f64());
        cpu_s += cpu() - c0;
        sink += out[0];
    }
    wall.sort_by(f64::total_cmp);
    let bytes = (layers * 2 * h * t * d * if kv32.is_some() { 4 } else { 2 }) as f64;
    let med = wall[wall.len() / 2];
    println!(
        "H{h} x{layers} huge={huge} threads={}: attention {:.3} ms median ({:.1} GB/s), {:.3} ms process CPU per step [{sink:e}]",
        parallel::num_threads(),
        med * 1e3,
        bytes / med / 1e9,
        cpu_s / steps as f64 * 1e3,
    );
}

/// The sum of `c` with 32 partial sums (a streaming read, as the bench's floor).
fn plain_sum(c: &[f32]) -> f32 {
    let mut acc = [0f32; 32];
    for block in c.chunks_exact(32) {
        for (a, x) in acc.iter_mut().zip(block) {
            *a += x;
        }
    }
    acc.iter().sum()
}
