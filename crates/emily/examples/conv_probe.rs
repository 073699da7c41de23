//! Time of Whisper's two encoder convolutions (bf16 weights, f32 input) as
//! one op each, eager: the im2col packing, the bf16 GEMM and the output.
//!
//! `cargo run --release -p emily --example conv_probe -- [reps]`

use std::time::Instant;

use emily::{DType, Result, Tensor};

fn main() -> Result<()> {
    let reps: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("reps"))
        .unwrap_or(200);
    // (c_in, length, stride): conv1 (80 mels, 3000 frames), conv2 (d 384, stride 2).
    for (cin, l, stride) in [(80usize, 3000usize, 1usize), (384, 3000, 2)] {
        let x = Tensor::rand_uniform(&[1, cin, l], -1.0, 1.0, 1, DType::F32)?.eval()?;
        let w = Tensor::rand_uniform(&[384, cin, 3], -0.1, 0.1, 2, DType::F32)?
            .cast(DType::BF16)?
            .eval()?;
        let run = || x.conv1d(&w, stride, 1, 1, 1).and_then(|y| y.eval());
        run()?;
        let t = Instant::now();
        for _ in 0..reps {
            run()?;
        }
        let secs = t.elapsed().as_secs_f64() / reps as f64;
        let lout = l / stride;
        let flop = 2.0 * (384 * lout * cin * 3) as f64;
        println!(
            "conv1d [1, {cin}, {l}] stride {stride}: {:.3} ms, {:.0} GFLOP/s",
            secs * 1e3,
            flop / secs / 1e9
        );
    }
    Ok(())
}
