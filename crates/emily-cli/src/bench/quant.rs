//! Quantized-weight kernels (issue 9): decode GEMV bandwidth per format
//! against the copy floor, and prefill GEMM throughput per format against the
//! f32 `gemm` crate at the LLM shapes.

use anyhow::Result;
use emily_kernels::quant::{
    gemm_f32, gemm_q8, gemv_q8, quantize, BlockFormat, Q8Activations, QuantIsa,
};

use super::floor::{copy_bandwidth_gbs, gemm_f32 as f32_gemm};
use super::timer::median_secs;

/// Deterministic pseudo-random values in [-1, 1) (cheap, no RNG state).
pub(super) fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// The matrices of a decoder step (an MLP up, down and a QKV projection, with
/// depths that every block format divides): `layers` copies of each (n, k),
/// so the weights are far larger than the caches and stream from memory.
const DECODE_SHAPES: [(usize, usize); 3] = [(4864, 1024), (1024, 4864), (1280, 1024)];

/// One decode row per format: every layer's matrices times one activation
/// row, weight bytes per second, and that as a share of the copy floor.
fn gemv_rows(floor: f64) -> Result<()> {
    let layers = 12;
    println!(
        "decode GEMV, m=1, {} matrices ({layers} layers of {DECODE_SHAPES:?} as n x k), kernels: {}",
        layers * DECODE_SHAPES.len(),
        QuantIsa::detected().name()
    );
    for format in BlockFormat::ALL {
        let mut mats = Vec::new();
        for layer in 0..layers {
            for (i, &(n, k)) in DECODE_SHAPES.iter().enumerate() {
                let w = quantize(format, &values(n * k, (layer * 8 + i) as u64))?;
                let act = Q8Activations::quantize(&values(k, 99), 1, k);
                mats.push((n, w, act, vec![0f32; n]));
            }
        }
        let bytes: usize = mats.iter().map(|(_, w, _, _)| w.len()).sum();
        let secs = median_secs(1.0, || {
            for (n, w, act, out) in mats.iter_mut() {
                gemv_q8(format, w, *n, act, out).unwrap();
            }
        });
        let gbs = bytes as f64 / secs / 1e9;
        println!(
            "  {:9} {:6.1} MB of weights: {:7.2} ms, {:5.1} GB/s = {:3.0}% of copy floor",
            format.name(),
            bytes as f64 / 1e6,
            secs * 1e3,
            gbs,
            100.0 * gbs / floor
        );
    }
    Ok(())
}

/// Prefill GEMM at m = 128 for one (n, k): every format that divides k,
/// with f32 activations (`gemm_f32`) and with 8-bit activations (`gemm_q8`,
/// quantizing the activations included), against the f32 `gemm` crate at
/// the same sizes.
fn gemm_row(n: usize, k: usize) -> Result<()> {
    let m = 128;
    let x = values(m * k, 1);
    let wf = values(n * k, 2);
    let mut out = vec![0f32; m * n];
    let flop = 2.0 * (m * n * k) as f64;
    let f32_secs = median_secs(0.5, || f32_gemm(m, k, n, &x, &wf, &mut out));
    let f32_rate = flop / f32_secs / 1e9;
    let mut line = format!("  {m}x{k} . ({n}x{k})T: f32 gemm {f32_rate:5.0} GFLOP/s |");
    for format in BlockFormat::ALL {
        if !k.is_multiple_of(format.block_elems())
            || format.is_affine() && format.block_elems() == 32
        {
            continue;
        }
        let w = quantize(format, &wf)?;
        let secs = median_secs(0.5, || gemm_f32(format, &w, n, k, &x, m, &mut out).unwrap());
        let q8_secs = median_secs(0.5, || {
            let act = Q8Activations::quantize(&x, m, k);
            gemm_q8(format, &w, n, &act, &mut out).unwrap()
        });
        let (rate, q8_rate) = (flop / secs / 1e9, flop / q8_secs / 1e9);
        line += &format!(
            " {} {rate:.0}/{q8_rate:.0} ({:.2}x/{:.2}x)",
            format.name(),
            rate / f32_rate,
            q8_rate / f32_rate
        );
    }
    println!("{line}");
    Ok(())
}

/// Runs the quantized-kernel suite.
/// `EMILY_BENCH_QUANT=models` runs only the per-format rows at model shapes.
pub fn run() -> Result<()> {
    if std::env::var("EMILY_BENCH_QUANT").as_deref() == Ok("models") {
        return super::quant_models::run();
    }
    let floor = copy_bandwidth_gbs();
    println!("copy bandwidth floor: {floor:.1} GB/s (read + write)");
    gemv_rows(floor)?;
    super::quant_models::run()?;
    println!("prefill GEMM, m=128, GFLOP/s with f32/8-bit activations (ratios to the f32 gemm):");
    for (n, k) in [(1536, 576), (576, 1536), (4864, 896), (896, 4864)] {
        gemm_row(n, k)?;
    }
    Ok(())
}
