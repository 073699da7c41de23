//! Tuning probe for the AMX path: the tile unit's register-only peak, then
//! bf16 and int8 GEMM GFLOP/s on the best engine at the Whisper / LLM
//! shapes (best of 7 timed batches: the probe is for tuning on shared hosts),
//! timed on a pool thread with the others kept awake as `emily bench core`
//! times them: bf16 with bf16 and with f32 activations, int8 with rows
//! quantized beforehand (the bench's column) and quantizing them per call.
//! Threads: `EMILY_NUM_THREADS`.
//! `cargo run --release --example amx_tune [MxNxK ...]` (default: the bench's shapes);
//! `AMX_PROFILE_SECS=s` first runs the bf16 product for `s` seconds (for `perf record`).

use std::time::Instant;

use rand::{rngs::StdRng, Rng, SeedableRng};

use emily_kernels::gemm::{
    gemm_bf16_on, gemm_int8_on, gemm_int8_quantized_then, peak_ops_per_sec, Engine, MatRef,
    PackedBf16, PackedInt8, PeakOp, Precision, QuantizedRows,
};

/// [`best_secs_here`] on a thread of the pool with its other threads kept
/// awake, as a compiled plan's replay runs its products.
fn best_secs(f: impl FnMut() + Send) -> f64 {
    emily_kernels::parallel::pool()
        .install(|| emily_kernels::awake_workers::with_workers_awake(|| best_secs_here(f)))
}

fn best_secs_here(mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let one = t.elapsed().as_secs_f64().max(1e-7);
    let per = ((0.1 / one).ceil() as usize).max(1);
    let v: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per {
                f();
            }
            t.elapsed().as_secs_f64() / per as f64
        })
        .collect();
    v.into_iter().fold(f64::INFINITY, f64::min)
}

/// `n` uniform values in `[-scale, scale)` from a seeded generator.
fn data(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(-scale..scale)).collect()
}

fn main() {
    let threads = emily_kernels::parallel::num_threads();
    let peak = |op| peak_ops_per_sec(op).map_or("-".into(), |x| format!("{:.0}", x / 1e9));
    println!(
        "threads {threads} engines bf16 {} int8 {}; peaks GFLOP/s: amx bf16 {} amx int8 {} avx512 bf16 {} int8 {}",
        Engine::best(Precision::Bf16).name(),
        Engine::best(Precision::Int8).name(),
        peak(PeakOp::AmxBf16),
        peak(PeakOp::AmxInt8),
        peak(PeakOp::Bf16Dot),
        peak(PeakOp::Int8Dot),
    );
    // Shapes from the arguments (`1500x1536x384 ...`), else the bench's.
    let mut shapes: Vec<(usize, usize, usize)> = std::env::args()
        .skip(1)
        .filter_map(|s| {
            let v: Vec<usize> = s.split('x').filter_map(|x| x.parse().ok()).collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .collect();
    if shapes.is_empty() {
        shapes = vec![
            (1500, 1536, 384),
            (1500, 384, 1536),
            (2048, 2048, 2048),
            (128, 1536, 576),
            (128, 4864, 896),
        ];
    }
    // `AMX_PROFILE_SECS=s`: run the bf16 product (bf16 A) for s seconds (for perf).
    let profile: f64 = std::env::var("AMX_PROFILE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    for (m, n, k) in shapes {
        let a = data(m * k, 1, 1.0);
        let ab: Vec<half::bf16> = a.iter().map(|&x| half::bf16::from_f32(x)).collect();
        let w = data(n * k, 2, 0.05);
        let view = MatRef::transposed(&w, k, n);
        let (pb, pi) = (PackedBf16::from_f32(view), PackedInt8::quantize(view));
        let mut cbuf = vec![0f32; m * n + 16];
        let off = cbuf.as_ptr().align_offset(64);
        let c = &mut cbuf[off..off + m * n];
        let flop = 2.0 * (m * n * k) as f64;
        let (eb, ei) = (Engine::best(Precision::Bf16), Engine::best(Precision::Int8));
        if profile > 0.0 {
            let t = Instant::now();
            while t.elapsed().as_secs_f64() < profile {
                gemm_bf16_on(eb, MatRef::row_major(&ab, m, k), &pb, c);
            }
        }
        let sb = best_secs(|| gemm_bf16_on(eb, MatRef::row_major(&ab, m, k), &pb, c));
        let sf = best_secs(|| gemm_bf16_on(eb, MatRef::row_major(&a, m, k), &pb, c));
        let si = best_secs(|| gemm_int8_on(ei, MatRef::row_major(&a, m, k), &pi, c));
        let rows = QuantizedRows::quantize_on(ei, MatRef::row_major(&a, m, k), &pi);
        let sq = best_secs(|| gemm_int8_quantized_then(&rows, &pi, None, None, c));
        println!(
            "{m}x{n}x{k}: bf16 {:.0} (f32 A {:.0}) int8 {:.0} (quantizing A {:.0}) GFLOP/s (int8/bf16 {:.2})",
            flop / sb / 1e9,
            flop / sf / 1e9,
            flop / sq / 1e9,
            flop / si / 1e9,
            sb / sq
        );
    }
}
