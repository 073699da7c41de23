//! Core-engine benchmarks (issue: core engine): matmul through emily vs the
//! gemm crate directly; the bf16 and int8 matrix engines next to f32 at the
//! Whisper and LLM-prefill shapes, with PyTorch as a peer; a fused
//! elementwise chain vs eager, and the byte LM's fused programs one by one;
//! softmax rows; the overhead of replaying a cached plan.

use anyhow::Result;
use emily::{compile, DType, Tensor};

use super::floor::{copy_bandwidth_gbs, gemm_f32};
use super::timer::median_secs;

fn matmul_row(m: usize, k: usize, n: usize) -> Result<()> {
    let a = Tensor::randn(&[m, k], 0.0, 1.0, 1, DType::F32)?.eval()?;
    let b = Tensor::randn(&[k, n], 0.0, 1.0, 2, DType::F32)?.eval()?;
    let (av, bv) = (a.to_vec::<f32>()?, b.to_vec::<f32>()?);
    let mut c = vec![0f32; m * n];
    let flop = 2.0 * (m * n * k) as f64;
    let direct = median_secs(1.0, || gemm_f32(m, k, n, &av, &bv, &mut c));
    let ours = median_secs(1.0, || {
        a.matmul(&b).unwrap().eval().unwrap();
    });
    println!(
        "matmul {m}x{k} @ {k}x{n}: emily {:.1} GFLOP/s, gemm direct {:.1} GFLOP/s, ratio {:.1}%",
        flop / ours / 1e9,
        flop / direct / 1e9,
        100.0 * direct / ours
    );
    Ok(())
}

fn elementwise_row(floor: f64) -> Result<()> {
    let n = 4 << 20;
    let x = Tensor::randn(&[n], 0.0, 1.0, 3, DType::F32)?.eval()?;
    let w = Tensor::randn(&[n], 0.0, 1.0, 4, DType::F32)?.eval()?;
    let b = Tensor::randn(&[n], 0.0, 1.0, 5, DType::F32)?.eval()?;
    let f = |xs: &[Tensor]| Ok(vec![xs[0].mul(&xs[1])?.add(&xs[2])?.gelu()?]);
    let c = compile(f);
    let args = [x.clone(), w.clone(), b.clone()];
    let eager = median_secs(1.0, || {
        f(&args).unwrap()[0].clone().eval().unwrap();
    });
    let fused = median_secs(1.0, || {
        c.call(&args).unwrap();
    });
    let bytes = 4.0 * (n * 4) as f64;
    let gbs = bytes / fused / 1e9;
    println!(
        "gelu(x*w+b) 4M f32: eager {:.2} ms, compiled+fused {:.2} ms, speedup {:.2}x; fused {:.1} GB/s = {:.0}% of copy floor",
        eager * 1e3,
        fused * 1e3,
        eager / fused,
        gbs,
        100.0 * gbs / floor
    );
    Ok(())
}

fn softmax_row(floor: f64) -> Result<()> {
    let x = Tensor::randn(&[1500, 1500], 0.0, 1.0, 6, DType::F32)?.eval()?;
    let secs = median_secs(1.0, || {
        x.softmax(-1).unwrap().eval().unwrap();
    });
    let gbs = 2.0 * (1500 * 1500 * 4) as f64 / secs / 1e9;
    println!(
        "softmax rows 1500x1500 f32: {:.3} ms, {:.1} GB/s = {:.0}% of copy floor",
        secs * 1e3,
        gbs,
        100.0 * gbs / floor
    );
    Ok(())
}

fn replay_row() -> Result<()> {
    let x = Tensor::randn(&[4, 8], 0.0, 1.0, 7, DType::F32)?.eval()?;
    // 200 nodes that fuse into one kernel.
    let chain = compile(|xs: &[Tensor]| {
        let mut t = xs[0].clone();
        for i in 0..100 {
            t = t.mul_scalar(1.0001)?.add_scalar(i as f64 * 1e-4)?;
        }
        Ok(vec![t])
    });
    // 200 nodes that do not fuse (a reduction every other node).
    let unfused = compile(|xs: &[Tensor]| {
        let mut t = xs[0].clone();
        for _ in 0..100 {
            t = t.sub(&t.max(&[-1], true)?)?;
        }
        Ok(vec![t])
    });
    let args = [x];
    let a = median_secs(0.5, || {
        chain.call(&args).unwrap();
    });
    let b = median_secs(0.5, || {
        unfused.call(&args).unwrap();
    });
    println!(
        "plan replay, 200-node graph on a 4x8 tensor: fused chain {:.1} us/call ({} kernel), unfused {:.1} us/call ({} kernels)",
        a * 1e6,
        chain.plan(&args)?.num_steps(),
        b * 1e6,
        unfused.plan(&args)?.num_steps()
    );
    Ok(())
}

/// Runs the core suite (`EMILY_BENCH_CORE=fused`: only the copy floor and
/// the byte LM's fused programs).
pub fn run() -> Result<()> {
    let floor = copy_bandwidth_gbs();
    println!("copy bandwidth floor: {floor:.1} GB/s");
    if std::env::var("EMILY_BENCH_CORE").is_ok_and(|v| v == "fused") {
        return super::fused_programs::run(floor);
    }
    matmul_row(1024, 1024, 1024)?;
    matmul_row(1500, 384, 1536)?;
    super::engines::run()?;
    elementwise_row(floor)?;
    super::fused_programs::run(floor)?;
    softmax_row(floor)?;
    replay_row()
}
