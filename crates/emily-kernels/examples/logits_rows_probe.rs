//! Probe: the int8-row GEMV at Whisper's token-table shape (51,865 × 384 for
//! tiny.en) for 1..8 activation rows (greedy, a served batch, beam 5): time
//! per call, the table read rate, and the cost per row.
//! `EMILY_NUM_THREADS=T cargo run --release -p emily-kernels --example logits_rows_probe [n k]`
use std::time::Instant;

use emily_kernels::gemv_i8::I8Rows;
use rand::{rngs::StdRng, Rng, SeedableRng};

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let (n, k) = (
        a.first().copied().unwrap_or(51_865),
        a.get(1).copied().unwrap_or(384),
    );
    let mut rng = StdRng::seed_from_u64(1);
    let w: Vec<f32> = (0..n * k).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let rows = I8Rows::quantize(&w, n, k);
    drop(w);
    for m in [1usize, 2, 4, 5, 8] {
        let x: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let mut out = vec![0f32; m * n];
        emily_kernels::parallel::pool().install(|| {
            for _ in 0..3 {
                rows.gemv(&x, m, &mut out);
            }
            let reps = 40;
            let t = Instant::now();
            for _ in 0..reps {
                rows.gemv(&x, m, &mut out);
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "m {m}: {:.3} ms a call, {:.3} ms a row, table {:.1} GB/s",
                s * 1e3,
                s * 1e3 / m as f64,
                (n * k) as f64 / s / 1e9
            );
        });
    }
}
