//! The seed notebook's part 1: fused RMSNorm and attention against the composed
//! versions written by hand from primitives, both compiled; max |difference|,
//! ms/call and speedup.
//!
//! `cargo run --release -p emily --example fast_kernels`

use std::time::Instant;

use emily::fast::{rms_norm, scaled_dot_product_attention, SdpaOptions};
use emily::{compile, DType, Result, Tensor};

fn iota(shape: &[usize], div: f64) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    Tensor::arange(n, DType::F32)?
        .div_scalar(div)?
        .reshape_to(shape)?
        .eval()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    a.sub(b)?.abs()?.max(&[], false)?.to_scalar::<f32>()
}

fn ms_per_call(f: impl Fn() -> Result<()>) -> Result<f64> {
    f()?;
    let reps = 50;
    let t = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e3 / reps as f64)
}

fn main() -> Result<()> {
    // RMSNorm, composed exactly as the notebook writes it.
    let x = iota(&[4, 128, 1024], 100.0)?;
    let w = Tensor::ones(&[1024], DType::F32)?.eval()?;
    let (w1, w2) = (w.clone(), w.clone());
    let composed = compile(move |xs: &[Tensor]| {
        let x = &xs[0];
        let ms = x.pow_scalar(2.0)?.mean(&[-1], true)?;
        Ok(vec![x.div(&ms.add_scalar(1e-5)?.sqrt()?)?.mul(&w1)?])
    });
    let fused = compile(move |xs: &[Tensor]| Ok(vec![rms_norm(&xs[0], Some(&w2), 1e-5)?]));
    let a = composed.call(std::slice::from_ref(&x))?.remove(0);
    let b = fused.call(std::slice::from_ref(&x))?.remove(0);
    println!(
        "RMSNorm max |composed - fused| = {:e}",
        max_abs_diff(&a, &b)?
    );
    let tc = ms_per_call(|| composed.call(std::slice::from_ref(&x)).map(|_| ()))?;
    let tf = ms_per_call(|| fused.call(std::slice::from_ref(&x)).map(|_| ()))?;
    println!(
        "RMSNorm x{{4,128,1024}}: composed {tc:.3} ms, fused {tf:.3} ms, speedup {:.2}x",
        tc / tf
    );

    // Attention, composed exactly as the notebook writes it.
    let shape = [2, 8, 128, 64];
    let (q, k, v) = (
        iota(&shape, 10000.0)?,
        iota(&shape, 10000.0)?,
        iota(&shape, 10000.0)?,
    );
    let scale = 1.0 / (64f64).sqrt();
    let composed = compile(move |xs: &[Tensor]| {
        let s = xs[0].matmul(&xs[1].t()?)?.mul_scalar(scale)?;
        let e = s.sub(&s.max(&[-1], true)?)?.exp()?;
        Ok(vec![e.div(&e.sum(&[-1], true)?)?.matmul(&xs[2])?])
    });
    let fused = compile(|xs: &[Tensor]| {
        Ok(vec![scaled_dot_product_attention(
            &xs[0],
            &xs[1],
            &xs[2],
            SdpaOptions::default(),
        )?])
    });
    let args = [q, k, v];
    let a = composed.call(&args)?.remove(0);
    let b = fused.call(&args)?.remove(0);
    println!("SDPA max |composed - fused| = {:e}", max_abs_diff(&a, &b)?);
    let tc = ms_per_call(|| composed.call(&args).map(|_| ()))?;
    let tf = ms_per_call(|| fused.call(&args).map(|_| ()))?;
    println!(
        "SDPA {{2,8,128,64}}: composed {tc:.3} ms, fused {tf:.3} ms, speedup {:.2}x",
        tc / tf
    );
    Ok(())
}
