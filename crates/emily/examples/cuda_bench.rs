//! GPU benchmark of the fused kernels (feature `cuda`): fused vs composed on
//! the same device, as time per call, achieved bandwidth (norms) or FLOP/s
//! (attention), and the share of the device's measured copy bandwidth.
//! Prints one line per case; `bench/peers/torch_gpu.py` times PyTorch on the
//! same shapes for the side-by-side table in BENCHMARKS.md.
//!
//! `cargo run --release -p emily --features cuda --example cuda_bench`
//!
//! Timing: each measurement queues `reps` calls on the device's stream,
//! waits for the stream, and divides the wall time by `reps`; the median of
//! 7 such batches is reported, after warm-up (kernel compilation, plan
//! tracing, allocator). Inputs are random normal data, never zeros.

use std::sync::Arc;
use std::time::Instant;

use emily::backend::cuda;
use emily::fast::{self, SdpaMask, SdpaOptions};
use emily::{compile_with, CompileOptions, DType, Device, Kernels, Result, Tensor};

const DEV: Device = Device::Cuda(0);

fn sync() -> Result<()> {
    cuda::backend(0).synchronize()
}

/// Median seconds per call of `f`.
fn time(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    sync()?;
    let mut v = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..reps {
            f()?;
        }
        sync()?;
        v.push(t.elapsed().as_secs_f64() / reps as f64);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Ok(v[3])
}

fn randn(shape: &[usize], dtype: DType, seed: u64) -> Result<Tensor> {
    let key = Tensor::from_slice(&[seed as i64], &[1])?;
    // Box-Muller from two uniform draws: normal data on the host, then moved.
    let n: usize = shape.iter().product();
    let u1 = Tensor::random_uniform(&[n], &key, 1, DType::F64)?;
    let u2 = Tensor::random_uniform(&[n], &key, 2, DType::F64)?;
    let r = u1
        .mul_scalar(-1.0)?
        .add_scalar(1.0)?
        .log()?
        .mul_scalar(-2.0)?
        .sqrt()?;
    let z = r.mul(&u2.mul_scalar(std::f64::consts::TAU)?.cos()?)?;
    z.reshape_to(shape)?.cast(dtype)?.to_device(DEV)?.eval()
}

type Graph = Arc<dyn Fn(&[Tensor]) -> Result<Vec<Tensor>> + Send + Sync>;

/// `f` compiled with fused kernels and with every fast op composed.
#[allow(clippy::type_complexity)] // the compiled closure has no nameable type
fn both(f: Graph) -> [emily::Compiled<impl Fn(&[Tensor]) -> Result<Vec<Tensor>>>; 2] {
    let mk = |kernels| {
        let f = f.clone();
        compile_with(
            move |xs: &[Tensor]| f(xs),
            CompileOptions {
                kernels,
                ..Default::default()
            },
        )
    };
    [mk(Kernels::Fused), mk(Kernels::Composed)]
}

fn main() -> Result<()> {
    cuda::available(0)?;
    // The copy ceiling: a 1 GiB device-to-device copy (bytes read + written).
    let bytes = 1usize << 30;
    let copy_s = cuda::time_device_copy(0, bytes, 20)?;
    let copy_bw = 2.0 * bytes as f64 / copy_s;
    println!(
        "copy: {:.1} us for 1 GiB, {:.3} TB/s (read + write)",
        copy_s * 1e6,
        copy_bw / 1e12
    );
    println!(
        "case | fused us | composed us | fused/composed | fused TB/s or TFLOP/s | % of copy bw"
    );

    for dtype in [DType::F32, DType::BF16] {
        for (name, shape) in [("norm", [16usize, 2048, 1024]), ("seed", [4, 128, 1024])] {
            let x = randn(&shape, dtype, 1)?;
            let w = randn(&shape[2..], dtype, 2)?;
            let b = randn(&shape[2..], dtype, 3)?;
            let xs = [x, w, b];
            let nbytes = 2.0 * (shape.iter().product::<usize>() * dtype.size_in_bytes()) as f64;
            let rms = both(Arc::new(|t: &[Tensor]| {
                Ok(vec![fast::rms_norm(&t[0], Some(&t[1]), 1e-5)?])
            }));
            let ln = both(Arc::new(|t: &[Tensor]| {
                Ok(vec![fast::layer_norm(
                    &t[0],
                    Some(&t[1]),
                    Some(&t[2]),
                    1e-5,
                )?])
            }));
            for (op, [fused, composed]) in [("rms_norm", rms), ("layer_norm", ln)] {
                let tf = time(50, || fused.call(&xs).map(|_| ()))?;
                let tc = time(20, || composed.call(&xs).map(|_| ()))?;
                let bw = nbytes / tf;
                println!(
                    "{op} {shape:?} {dtype} ({name}) | {:.1} | {:.1} | {:.2}x | {:.3} TB/s | {:.0}%",
                    tf * 1e6,
                    tc * 1e6,
                    tc / tf,
                    bw / 1e12,
                    100.0 * bw / copy_bw
                );
            }
        }
    }

    for (dtype, shape) in [
        (DType::BF16, [8usize, 16, 2048, 128]),
        (DType::F32, [2, 8, 128, 64]),
        (DType::BF16, [2, 8, 128, 64]),
    ] {
        let q = randn(&shape, dtype, 4)?;
        let k = randn(&shape, dtype, 5)?;
        let v = randn(&shape, dtype, 6)?;
        let xs = [q, k, v];
        for causal in [false, true] {
            let [fused, composed] = both(Arc::new(move |t: &[Tensor]| {
                let opts = SdpaOptions {
                    scale: None,
                    mask: if causal {
                        SdpaMask::Causal
                    } else {
                        SdpaMask::None
                    },
                    sinks: None,
                };
                Ok(vec![fast::scaled_dot_product_attention(
                    &t[0], &t[1], &t[2], opts,
                )?])
            }));
            let [b, h, t, d] = shape;
            let flops = 4.0 * (b * h * t * t * d) as f64 / if causal { 2.0 } else { 1.0 };
            let reps = if t > 1000 { 20 } else { 100 };
            let tf = time(reps, || fused.call(&xs).map(|_| ()))?;
            let tc = time(reps.min(20), || composed.call(&xs).map(|_| ()))?;
            println!(
                "sdpa {shape:?} {dtype} causal={causal} | {:.1} | {:.1} | {:.2}x | {:.1} TFLOP/s | -",
                tf * 1e6,
                tc * 1e6,
                tc / tf,
                flops / tf / 1e12
            );
        }
    }
    Ok(())
}
