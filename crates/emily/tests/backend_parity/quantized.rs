//! Parity cases for block-quantised weights: `x · wᵀ` for every format at odd
//! shapes, embedding rows, casts both ways, and bad values.

use super::harness::{check, check_error, input, Values};
use emily::{BlockFormat, DType, Device, Result, Tensor};

/// `w (n, k)` quantised to `format` on the CPU (the same blocks go to every
/// device).
fn weights(format: BlockFormat, n: usize, k: usize, seed: u64) -> Tensor {
    input(&[n, k], DType::F32, seed, Values::Normal)
        .quantize(format)
        .and_then(|t| t.eval())
        .expect("quantised weights")
}

/// `x · wᵀ` on `device` against the reference (f64 over the dequantised
/// weights). The CPU quantises x to 8-bit blocks (any number of rows; other
/// devices up to `GEMV_MAX_ROWS`), so the bound allows that rounding: `Σ_j |w_j| · max|x_block| / 254`, plus
/// f32 round-off of `Σ_j |w_j x_j|`.
fn check_matmul(device: Device, format: BlockFormat, m: usize, n: usize, k: usize) {
    let what = format!("{format} x ({m}, {k}) · w ({n}, {k})ᵀ");
    let w = weights(format, n, k, 60 + n as u64);
    let x = input(&[m, k], DType::F32, 61 + m as u64, Values::Normal);
    let run = |d: Device| -> Result<Vec<f64>> {
        let (x, w) = (x.to_device(d)?, w.to_device(d)?);
        let y = x.matmul(&w.t()?)?;
        assert_eq!((y.dtype(), y.shape()), (DType::F32, &[m, n][..]), "{what}");
        y.to_device(Device::Cpu)?.to_f64_vec()
    };
    let (got, want) = (run(device).unwrap(), run(Device::Reference).unwrap());
    let wd = w.cast(DType::F64).unwrap().to_f64_vec().unwrap();
    let xd = x.to_f64_vec().unwrap();
    for i in 0..m {
        for j in 0..n {
            let (mut mag, mut act) = (0f64, 0f64);
            for p in 0..k {
                let wv = wd[j * k + p].abs();
                mag += wv * xd[i * k + p].abs();
                let b0 = i * k + p / 32 * 32;
                let amax = xd[b0..b0 + 32].iter().fold(0f64, |a, v| a.max(v.abs()));
                act += wv * amax / 254.0;
            }
            let quantised = device == Device::Cpu || m <= emily_kernels::quant::GEMV_MAX_ROWS;
            let bound = 1e-5 * mag + if quantised { 1.001 * act } else { 0.0 };
            let (g, r) = (got[i * n + j], want[i * n + j]);
            assert!(
                (g - r).abs() <= bound + 1e-30,
                "{what} on {device}: out[{i},{j}] = {g}, reference {r} (bound {bound:e})"
            );
        }
    }
}

/// Every format at odd shapes, decode and prefill row counts.
pub fn matmul(device: Device) {
    for format in BlockFormat::ALL {
        let k = 2 * format.block_elems().max(64);
        for (m, n) in [(1, 1), (2, 7), (7, 77), (77, 7), (1, 77)] {
            check_matmul(device, format, m, n, k);
        }
    }
    check_matmul(device, BlockFormat::Q4_0, 3, 1000, 96);
    // Leading batch axes of x fold into rows.
    let w = weights(BlockFormat::Q8_0, 5, 64, 62);
    let x = input(&[2, 3, 64], DType::F32, 63, Values::Normal);
    let flat = |t: &[Tensor]| {
        t[0].reshape(&[6, 64])?
            .matmul(&t[1].t()?)?
            .reshape(&[2, 3, 5])
    };
    let batched = |t: &[Tensor]| t[0].matmul(&t[1].t()?);
    let (a, b) = (
        flat(&[x.clone(), w.clone()]).unwrap(),
        batched(&[x, w]).unwrap(),
    );
    assert_eq!(a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
    let _ = device;
}

/// Embedding rows of a quantised table, and casts to every float type.
pub fn gather_and_cast(device: Device) {
    for format in BlockFormat::ALL {
        let table = weights(format, 77, 2 * format.block_elems(), 64);
        let idx = Tensor::from_slice(&[5i64, 0, 76, 5, 3], &[5]).unwrap();
        check(
            device,
            &format!("{format} rows"),
            &[table.clone(), idx],
            |t| t[0].gather(&t[1], 0),
        );
        for to in [DType::F32, DType::F64, DType::F16, DType::BF16] {
            check(
                device,
                &format!("{format} as {to}"),
                std::slice::from_ref(&table),
                |t| t[0].cast(to),
            );
        }
        // Quantising on either device gives the same blocks.
        for from in [DType::F32, DType::F16, DType::BF16] {
            let x = input(&[3, format.block_elems() * 2], from, 65, Values::Normal);
            check(
                device,
                &format!("{from} quantised to {format}"),
                &[x],
                |t| t[0].quantize(format)?.cast(DType::F32),
            );
        }
    }
    let bad = Tensor::from_slice(&[f32::NAN; 64], &[2, 32]).unwrap();
    check_error(device, "quantising NaN", &[bad], |t| {
        t[0].quantize(BlockFormat::Q4_0)?.cast(DType::F32)
    });
}
