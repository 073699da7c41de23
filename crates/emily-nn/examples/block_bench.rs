//! Block-level benchmark: one Llama-style decoder block (d=576, 9 query / 3
//! kv heads, seq 128) and one Whisper-style encoder block (d=384, 6 heads,
//! seq 1500), each as built (composed norms, RoPE and attention) and after
//! `fast_kernels::apply`, with the same parameters and inputs. Prints
//! ms/call, the speedup, the outputs' max abs difference and kernels per plan.
//!
//! `cargo run -p emily-nn --release --example block_bench -- [--iters N] [--seconds S]`

#[path = "../tests/common/blocks.rs"]
mod blocks;

use std::time::Instant;

use blocks::{llama_layer, whisper_encoder_layer, Dims};
use emily::{DType, Tensor};
use emily_nn::{fast_kernels, Forward, Mode, Model, ParamStore};

struct Args {
    iters: usize,
    seconds: f64,
}

fn args() -> Args {
    let mut a = Args {
        iters: 20,
        seconds: 3.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--iters" => a.iters = value.parse().expect("--iters N"),
            "--seconds" => a.seconds = value.parse().expect("--seconds S"),
            other => panic!("unknown flag {other} (use --iters N, --seconds S)"),
        }
    }
    a
}

/// Mean ms/call over up to `iters` calls (stopping after `seconds`), after
/// one warm-up call that traces and compiles.
fn time(f: &Forward, x: &Tensor, out: &str, args: &Args) -> (f64, Tensor) {
    let y = f.call(&[("hidden_states", x)]).unwrap()[out]
        .clone()
        .eval()
        .unwrap();
    let start = Instant::now();
    let mut n = 0;
    while n < args.iters && (n == 0 || start.elapsed().as_secs_f64() < args.seconds) {
        f.call(&[("hidden_states", x)]).unwrap()[out]
            .clone()
            .eval()
            .unwrap();
        n += 1;
    }
    (start.elapsed().as_secs_f64() * 1e3 / n as f64, y)
}

fn bench(label: &str, model: &Model, out: &str, shape: &[usize], args: &Args) {
    let params = ParamStore::random(model, 0, DType::F32).unwrap();
    let fast = fast_kernels::apply(model).unwrap();
    let x = Tensor::randn(shape, 0.0, 1.0, 1, DType::F32)
        .unwrap()
        .eval()
        .unwrap();
    let base = model.build(&params, Mode::Inference).unwrap();
    let fused = fast.model.build(&params, Mode::Inference).unwrap();
    let (k0, k1) = (
        base.num_kernels(&[("hidden_states", &x)]).unwrap(),
        fused.num_kernels(&[("hidden_states", &x)]).unwrap(),
    );
    let (t0, y0) = time(&base, &x, out, args);
    let (t1, y1) = time(&fused, &x, out, args);
    let diff = y0
        .sub(&y1)
        .unwrap()
        .abs()
        .unwrap()
        .max(&[], false)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    println!(
        "{label:<34} {t0:>10.2} {t1:>10.2} {:>8.2}x {diff:>10.1e} {:>8}/{:<6}",
        t0 / t1,
        k0,
        k1
    );
}

fn main() {
    let args = args();
    println!(
        "threads: {}  (base = composed norms/RoPE/attention, fast = after fast_kernels::apply)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<34} {:>10} {:>10} {:>9} {:>10} {:>15}",
        "block", "base ms", "fast ms", "speedup", "max|diff|", "kernels b/f"
    );
    let llama = Dims {
        hidden: 576,
        heads: 9,
        kv_heads: 3,
        ffn: 1536,
    };
    let model = llama_layer(llama, None, 2048).unwrap();
    bench(
        "llama block d576 9/3h T128",
        &model,
        "model.layers.0.mlp_residual",
        &[1, 128, 576],
        &args,
    );
    let whisper = Dims {
        hidden: 384,
        heads: 6,
        kv_heads: 6,
        ffn: 1536,
    };
    let model = whisper_encoder_layer(whisper).unwrap();
    bench(
        "whisper enc block d384 6h T1500",
        &model,
        "encoder.layers.0.residual2",
        &[1, 1500, 384],
        &args,
    );
}
