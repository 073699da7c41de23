//! Fast-kernel benchmarks (issue: emily::fast): compiled composed (the op's
//! decomposition, with the compiler's elementwise fusion) vs fused, ms/call,
//! speedup, and the fused kernel against the machine's floor: GB/s as % of copy
//! bandwidth for norms and RoPE, GFLOP/s as % of measured GEMM throughput for
//! attention.

use anyhow::Result;
use emily::fast::{self, RopeOptions, SdpaMask, SdpaOptions};
use emily::{compile_with, CompileOptions, DType, Kernels, Tensor};

use super::floor::{copy_bandwidth_gbs, gemm_gflops};
use super::timer::median_secs;

type Build = fn(&[Tensor]) -> emily::Result<Tensor>;

/// Times `build` compiled composed and with fused kernels; checks first that
/// the fused plan runs a fused kernel and the composed plan none.
fn pair(args: &[Tensor], build: Build) -> Result<(f64, f64, f32)> {
    let f = move |xs: &[Tensor]| Ok(vec![build(xs)?]);
    let with = |kernels| {
        let options = CompileOptions {
            kernels,
            ..Default::default()
        };
        compile_with(f, options)
    };
    let (composed, fused) = (with(Kernels::Composed), with(Kernels::Fused));
    let fast_ops = |c: &emily::Compiled<_>| -> Result<usize> { Ok(c.plan(args)?.num_fast_ops()) };
    anyhow::ensure!(
        fast_ops(&fused)? > 0 && fast_ops(&composed)? == 0,
        "the fused plan must run a fused kernel and the composed plan none"
    );
    let a = composed.call(args)?.remove(0);
    let b = fused.call(args)?.remove(0);
    let diff = a.sub(&b)?.abs()?.max(&[], false)?.to_scalar::<f32>()?;
    let tc = median_secs(1.0, || {
        composed.call(args).unwrap();
    });
    let tf = median_secs(1.0, || {
        fused.call(args).unwrap();
    });
    Ok((tc, tf, diff))
}

fn randn(shape: &[usize], seed: u64) -> Result<Tensor> {
    Ok(Tensor::randn(shape, 0.0, 1.0, seed, DType::F32)?.eval()?)
}

/// The floor a row is compared with: the measured copy bandwidth (work in
/// bytes) or the measured GEMM throughput (work in FLOP).
#[derive(Clone, Copy)]
enum Floor {
    Copy(f64),
    Gemm(f64),
}

fn row(name: &str, args: &[Tensor], work: f64, floor: Floor, build: Build) -> Result<()> {
    let (tc, tf, diff) = pair(args, build)?;
    let rate = work / tf / 1e9;
    let vs = match floor {
        Floor::Copy(f) => format!("{rate:>5.1} GB/s = {:>3.0}% of copy", 100.0 * rate / f),
        Floor::Gemm(f) => format!("{rate:>5.1} GFLOP/s = {:>3.0}% of GEMM", 100.0 * rate / f),
    };
    println!(
        "{name:<34} composed {:>8.3} ms  fused {:>8.3} ms  speedup {:>5.2}x  {vs}  max|diff| {diff:.1e}",
        tc * 1e3,
        tf * 1e3,
        tc / tf
    );
    Ok(())
}

/// Runs the kernels suite.
pub fn run() -> Result<()> {
    let floor = copy_bandwidth_gbs();
    let peak = gemm_gflops();
    println!("copy bandwidth floor {floor:.1} GB/s, f32 GEMM 1024^3 {peak:.1} GFLOP/s");
    for shape in [[4usize, 128, 1024], [1, 4096, 4096]] {
        let x = randn(&shape, 1)?;
        let d = shape[2];
        let w = randn(&[d], 2)?;
        let b = randn(&[d], 3)?;
        let bytes = 2.0 * x.numel() as f64 * 4.0;
        row(
            &format!("rms_norm {shape:?}"),
            &[x.clone(), w.clone()],
            bytes,
            Floor::Copy(floor),
            |a| fast::rms_norm(&a[0], Some(&a[1]), 1e-5),
        )?;
        row(
            &format!("layer_norm {shape:?}"),
            &[x, w, b],
            bytes,
            Floor::Copy(floor),
            |a| fast::layer_norm(&a[0], Some(&a[1]), Some(&a[2]), 1e-5),
        )?;
    }
    // Long context, a training batch (16 entries sharing positions), LLM prefill.
    let ropes: [(&str, [usize; 4], Build); 3] = [
        ("rope [1, 32, 2048, 128]", [1, 32, 2048, 128], |a| {
            fast::rope(&a[0], RopeOptions::new(128))
        }),
        ("rope [16, 4, 64, 16]", [16, 4, 64, 16], |a| {
            fast::rope(&a[0], RopeOptions::new(16))
        }),
        ("rope [1, 9, 128, 64]", [1, 9, 128, 64], |a| {
            fast::rope(&a[0], RopeOptions::new(64))
        }),
    ];
    for (name, shape, build) in ropes {
        let x = randn(&shape, 4)?;
        let bytes = 2.0 * x.numel() as f64 * 4.0;
        row(name, &[x], bytes, Floor::Copy(floor), build)?;
    }
    let sdpa: [(&str, [usize; 4], usize, usize, bool); 4] = [
        ("sdpa [2, 8, 128, 64]", [2, 8, 128, 64], 8, 128, false),
        ("sdpa [1, 6, 1500, 64]", [1, 6, 1500, 64], 6, 1500, false),
        (
            "sdpa [1, 8, 2048, 64] causal",
            [1, 8, 2048, 64],
            8,
            2048,
            true,
        ),
        (
            "sdpa decode [1,32,1,128] kv2048 gqa8",
            [1, 32, 1, 128],
            8,
            2048,
            false,
        ),
    ];
    for (name, q, kvh, kvl, causal) in sdpa {
        let qt = randn(&q, 5)?;
        let k = randn(&[q[0], kvh, kvl, q[3]], 6)?;
        let v = randn(&[q[0], kvh, kvl, q[3]], 7)?;
        let mut flop = 4.0 * (q[0] * q[1] * q[2] * kvl * q[3]) as f64;
        if causal {
            flop /= 2.0;
            row(name, &[qt, k, v], flop, Floor::Gemm(peak), |a| {
                fast::scaled_dot_product_attention(
                    &a[0],
                    &a[1],
                    &a[2],
                    SdpaOptions {
                        mask: SdpaMask::Causal,
                        ..Default::default()
                    },
                )
            })?;
        } else {
            row(name, &[qt, k, v], flop, Floor::Gemm(peak), |a| {
                fast::scaled_dot_product_attention(&a[0], &a[1], &a[2], SdpaOptions::default())
            })?;
        }
    }
    Ok(())
}
