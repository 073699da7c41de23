//! Per-op cost of small elementwise ops in a compiled plan (a decoder step's
//! bias adds and residuals on `[1, 1, d]`), next to layer norms of the same
//! size: the interpreter's fixed cost per call.
//!
//! `cargo run --release -p emily --example small_ops_probe -- [d] [ops] [reps]`

use std::time::Instant;

use emily::fast::layer_norm;
use emily::{compile, DType, Result, Tensor};

fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let d = args.first().copied().unwrap_or(384);
    let ops = args.get(1).copied().unwrap_or(32);
    let reps = args.get(2).copied().unwrap_or(2000);
    let x = Tensor::rand_uniform(&[1, 1, d], -1.0, 1.0, 1, DType::F32)?.eval()?;
    let b = Tensor::rand_uniform(&[d], -1.0, 1.0, 2, DType::F32)?.eval()?;
    let (b1, b2) = (b.clone(), b.clone());
    // Each add's result is an output, so the compiler cannot fuse the chain.
    let adds = compile(move |xs: &[Tensor]| {
        let mut y = xs[0].clone();
        let mut outs = Vec::new();
        for _ in 0..ops {
            y = y.add(&b1)?;
            outs.push(y.clone());
        }
        Ok(outs)
    });
    let norms = compile(move |xs: &[Tensor]| {
        let mut y = xs[0].clone();
        let mut outs = Vec::new();
        for _ in 0..ops {
            y = layer_norm(&y, Some(&b2), Some(&b2), 1e-5)?;
            outs.push(y.clone());
        }
        Ok(outs)
    });
    let w = Tensor::rand_uniform(&[d, d], -0.05, 0.05, 3, DType::F32)?.eval()?;
    let b3 = b.clone();
    // A GEMV before each add, as in a decoder step (the add's input was
    // just written, split over the pool's threads).
    let linears = compile(move |xs: &[Tensor]| {
        let mut y = xs[0].clone();
        let mut outs = Vec::new();
        for _ in 0..ops {
            y = y.matmul(&w.transpose(0, 1)?)?.add(&b3)?;
            outs.push(y.clone());
        }
        Ok(outs)
    });
    let time = |f: &dyn Fn() -> Result<()>| -> Result<f64> {
        f()?;
        let t = Instant::now();
        for _ in 0..reps {
            f()?;
        }
        Ok(t.elapsed().as_secs_f64() * 1e6 / (reps * ops) as f64)
    };
    let input = [x];
    for round in 0..3 {
        let ta = time(&|| adds.call(&input).map(|_| ()))?;
        let tn = time(&|| norms.call(&input).map(|_| ()))?;
        emily::telemetry::set_profiling(true);
        let tl = time(&|| linears.call(&input).map(|_| ()))?;
        emily::telemetry::set_profiling(false);
        let prof = emily::telemetry::take_op_profile();
        let per: Vec<String> = prof
            .iter()
            .map(|(op, s, n)| format!("{op} {:.3} µs", s * 1e6 / *n as f64))
            .collect();
        println!(
            "round {round}: [1,1,{d}] add {ta:.3} µs/op, layer_norm {tn:.3} µs/op, \
             matmul + add {tl:.3} µs/pair (profiled: {})",
            per.join(", ")
        );
    }
    Ok(())
}
