//! A weight held as int8 rows (`Tensor::from_int8_rows`, a `Q8_0` weight to
//! the graph): `x · wᵀ` runs the int8-row GEMV, eager and compiled, at odd
//! shapes and row counts (past the kernel's row blocks) under every
//! `EMILY_ISA` cap, within the activation quantization's bound of the f64
//! product of the dequantized rows; under exact products it is that product
//! to f32 round-off; any other use is an error naming the op.

mod common;

use std::sync::Arc;

use common::*;
use emily::{compile, BlockFormat, DType, Tensor};
use emily_kernels::gemv_i8::{I8Rows, CODE_MAX};

/// `(m, n)` outputs of `x · wᵀ` in f64 from the dequantized rows, each
/// output's bound on the 16-bit activation blocks' error (`s/2` per value,
/// `s ≤ max|x_row| / CODE_MAX`) plus f32 round-off, and its bound on the
/// round-off of an f32 sum of `k` products alone.
type Reference = (Vec<f64>, Vec<f64>, Vec<f64>);

fn reference(rows: &I8Rows, x: &[f32], m: usize) -> Reference {
    let (n, k) = (rows.rows(), rows.cols());
    let mut w = vec![0f32; k];
    let (mut want, mut bound) = (vec![0f64; m * n], vec![0f64; m * n]);
    let mut roundoff = vec![0f64; m * n];
    for r in 0..n {
        rows.dequantize_row(r, &mut w);
        for i in 0..m {
            let xi = &x[i * k..(i + 1) * k];
            let amax = xi.iter().fold(0f64, |a, v| a.max(v.abs() as f64));
            let (mut dot, mut mag, mut wsum) = (0f64, 0f64, 0f64);
            for (&a, &b) in xi.iter().zip(&w) {
                dot += a as f64 * b as f64;
                mag += (a as f64 * b as f64).abs();
                wsum += (b as f64).abs();
            }
            want[i * n + r] = dot;
            bound[i * n + r] = wsum * amax / CODE_MAX as f64 / 2.0 * 1.001 + mag * 2e-6;
            roundoff[i * n + r] = mag * k as f64 * 6e-8 + 1e-30;
        }
    }
    (want, bound, roundoff)
}

fn check(what: &str, got: &Tensor, want: &[f64], bound: &[f64]) {
    let got = got.to_f64_vec().unwrap();
    assert_eq!(got.len(), want.len(), "{what}");
    for (j, ((g, w), b)) in got.iter().zip(want).zip(bound).enumerate() {
        assert!(
            (g - w).abs() <= *b,
            "{what} [{j}]: {g} vs {w} (bound {b:e})"
        );
    }
}

fn products_match_f64() {
    for (s, &(n, k)) in [(1, 32), (7, 64), (77, 96), (33, 1024), (1000, 32)]
        .iter()
        .enumerate()
    {
        let s = 10 * s as u64;
        let w = randn(&[n, k], s + 1).1;
        let w: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        let rows = Arc::new(I8Rows::quantize(&w, n, k));
        let weight = Tensor::from_int8_rows(rows.clone()).unwrap();
        assert_eq!(weight.shape(), &[n, k]);
        assert_eq!(weight.dtype(), DType::Quantized(BlockFormat::Q8_0));
        assert!(Arc::ptr_eq(&weight.int8_rows().unwrap(), &rows));
        // Decoding rows, a beam search's, and past the row blocks.
        for &m in &[1, 5, 17, 77] {
            let (x, xv) = randn(&[m, k], s + 2 + m as u64);
            let xs: Vec<f32> = xv.iter().map(|&v| v as f32).collect();
            let (want, bound, roundoff) = reference(&rows, &xs, m);
            let what = format!("n={n} k={k} m={m}");
            let got = x.matmul(&weight.t().unwrap()).unwrap();
            check(&what, &got, &want, &bound);

            // Compiled, with a bias after the product (the Dense form).
            let bias = randn(&[n], s + 3).0;
            let f = |xs: &[Tensor]| -> emily::Result<Vec<Tensor>> {
                Ok(vec![xs[0].matmul(&xs[1].t()?)?.add(&xs[2])?])
            };
            let eager = f(&[x.clone(), weight.clone(), bias.clone()]).unwrap();
            let c = compile(f);
            let out = c.call(&[x.clone(), weight.clone(), bias.clone()]).unwrap();
            assert_eq!(
                out[0].to_vec::<f32>().unwrap(),
                eager[0].to_vec::<f32>().unwrap(),
                "compiled {what}"
            );

            // Exact products: the dequantized rows in f32.
            let exact = emily_kernels::quant::with_exact_products(true, || {
                x.matmul(&weight.t().unwrap()).unwrap().eval().unwrap()
            });
            check(&format!("exact {what}"), &exact, &want, &roundoff);
        }
    }
}

#[test]
fn int8_rows_products_match_f64_on_every_isa() {
    on_every_isa(
        "int8_rows_products_match_f64_on_every_isa",
        "EMILY_INT8_ROWS_ISA_CHILD",
        &["baseline", "avx2", ""],
        products_match_f64,
    );
}

#[test]
fn int8_rows_refuse_every_other_use() {
    let w: Vec<f32> = (0..5 * 32).map(|i| (i as f32 * 0.37).sin()).collect();
    let weight = Tensor::from_int8_rows(Arc::new(I8Rows::quantize(&w, 5, 32))).unwrap();
    let x = randn(&[3, 32], 1).0;
    let err = |r: emily::Result<Tensor>| match r.and_then(|t| t.eval()) {
        Ok(_) => panic!("an error, not a value"),
        Err(e) => e.to_string(),
    };
    let e = err(weight.cast(DType::F32));
    assert!(e.contains("read only as the weight"), "{e}");
    let e = weight
        .array()
        .unwrap()
        .to_host_bytes()
        .unwrap_err()
        .to_string();
    assert!(e.contains("no host form"), "{e}");
    // Rows that are not whole blocks of 32.
    let odd = Tensor::from_int8_rows(Arc::new(I8Rows::quantize(&w[..5 * 31], 5, 31)));
    let e = err(odd);
    assert!(e.contains("whole Q8_0 blocks"), "{e}");
    // A float tensor holds no int8 rows.
    assert!(x.int8_rows().is_none());
}
