//! Probe: the int8 linear layer as a compiled plan runs it (`x · wᵀ + b`
//! with f32 activations quantized per call, a packed int8 weight), at the
//! Whisper encoder's shapes: wall time per replay on the pool's threads.
//!
//! `cargo run --release -p emily --example int8_linear_probe -- [m] [n] [k] [reps] [fused_n]`
//! (`fused_n`: also time one product of `fused_n` columns, e.g. q/k/v as one).

use std::time::Instant;

use emily::{compile, DType, Result, Tensor};

/// `mode`: `plain` (`x · wᵀ + b`), `bf16` (the same, rounded to bf16 as the
/// encoder's q/k/v are) or `qkv` (three such bf16 products of one input:
/// the time is per product).
fn time_linear(m: usize, n: usize, k: usize, reps: usize, mode: &str) -> Result<f64> {
    // Eight inputs in turn (18 MB at the encoder's shapes): each call reads
    // activations another call left in cache, as a model's layers do.
    let xs: Vec<Tensor> = (0..8)
        .map(|i| Tensor::rand_uniform(&[1, m, k], -1.0, 1.0, 10 + i, DType::F32)?.eval())
        .collect::<Result<_>>()?;
    let x = xs[0].clone();
    let w = Tensor::rand_uniform(&[n, k], -0.1, 0.1, 2, DType::F32)?
        .eval()?
        .pack_int8_weight(true)?
        .eval()?;
    let b = Tensor::rand_uniform(&[n], -0.1, 0.1, 3, DType::F32)?.eval()?;
    let ws: Vec<Tensor> = (0..3)
        .map(|i| {
            Tensor::rand_uniform(&[n, k], -0.1, 0.1, 4 + i, DType::F32)?
                .eval()?
                .pack_int8_weight(true)?
                .eval()
        })
        .collect::<Result<_>>()?;
    let mode = mode.to_string();
    let per = if mode == "qkv" { 3.0 } else { 1.0 };
    let f = compile(move |xs: &[Tensor]| {
        let lin = |w: &Tensor| xs[0].matmul_int8(&w.transpose(1, 0)?)?.add(&b);
        match mode.as_str() {
            "plain" => Ok(vec![lin(&w)?]),
            "bf16" => Ok(vec![lin(&w)?.cast(DType::BF16)?]),
            _ => ws.iter().map(|w| lin(w)?.cast(DType::BF16)).collect(),
        }
    });
    f.call(std::slice::from_ref(&x))?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        for r in 0..reps {
            f.call(&[xs[r % xs.len()].clone()])?;
        }
        best = best.min(t.elapsed().as_secs_f64() / reps as f64 / per);
    }
    Ok(best)
}

fn main() -> Result<()> {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("a number"))
        .collect();
    let arg = |i: usize, d: usize| a.get(i).copied().unwrap_or(d);
    let (m, n, k, reps) = (arg(0, 1500), arg(1, 384), arg(2, 384), arg(3, 48));
    let gops = |n: usize, s: f64| 2.0 * (m * n * k) as f64 / s / 1e9;
    for mode in ["plain", "bf16", "qkv"] {
        let s = time_linear(m, n, k, reps, mode)?;
        println!(
            "int8 linear {m}x{n}x{k} {mode}: {:.3} ms a product, {:.0} GOP/s",
            s * 1e3,
            gops(n, s)
        );
    }
    if let Some(&fused) = a.get(4) {
        let s = time_linear(m, fused, k, reps, "plain")?;
        println!(
            "int8 linear {m}x{fused}x{k}: {:.3} ms, {:.0} GOP/s",
            s * 1e3,
            gops(fused, s)
        );
    }
    Ok(())
}
