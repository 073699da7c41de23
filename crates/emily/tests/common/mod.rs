//! Shared helpers for the core tests: seeded inputs and f64 comparisons.
#![allow(dead_code)]

use emily::{DType, Tensor};

/// Every element dtype of the catalogue (block-quantised weights have their
/// own tests: `quantized.rs`, `backend_parity/quantized.rs`).
pub const ALL_DTYPES: [DType; 8] = DType::ELEMENTS;

/// Odd sizes that break SIMD tails and cross the parallel threshold.
pub const SIZES: [usize; 6] = [1, 7, 77, 1000, 4099, 70_001];

/// Seeded standard-normal f32 tensor and its values as f64.
pub fn randn(shape: &[usize], seed: u64) -> (Tensor, Vec<f64>) {
    let t = Tensor::randn(shape, 0.0, 1.0, seed, DType::F32)
        .unwrap()
        .eval()
        .unwrap();
    let v = t.to_f64_vec().unwrap();
    (t, v)
}

/// Asserts `got` ≈ `want` elementwise: |g - w| <= atol + rtol·|w| (NaN == NaN, inf == inf).
pub fn assert_close(got: &[f64], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: got {g}, want NaN");
            continue;
        }
        if w.is_infinite() {
            assert_eq!(g, w, "{what}[{i}]");
            continue;
        }
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// Row-major index of a multi-index.
pub fn flat(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (i, d)| acc * d + i)
}

/// All multi-indices of a shape in row-major order.
pub fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let n: usize = shape.iter().product();
    (0..n)
        .map(|mut k| {
            let mut idx = vec![0; shape.len()];
            for d in (0..shape.len()).rev() {
                idx[d] = k % shape[d];
                k /= shape[d];
            }
            idx
        })
        .collect()
}

/// Value of a broadcast operand at an output multi-index.
pub fn bcast_at(v: &[f64], shape: &[usize], out_idx: &[usize]) -> f64 {
    let off = out_idx.len() - shape.len();
    let idx: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if d == 1 { 0 } else { out_idx[i + off] })
        .collect();
    v[flat(&idx, shape)]
}

/// Runs `check` under every `EMILY_ISA` cap in `caps` ("" = no cap): the
/// test re-runs itself (`test_name`, this binary, one thread) in a child
/// process per cap with `child_env` set, and the child runs `check`. The
/// cap is read once per process, so each one needs its own process.
pub fn on_every_isa(test_name: &str, child_env: &str, caps: &[&str], check: impl FnOnce()) {
    if std::env::var(child_env).is_ok() {
        check();
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    for cap in caps {
        let child = std::process::Command::new(&exe)
            .args(["--exact", test_name, "--test-threads", "1"])
            .env("EMILY_ISA", cap)
            .env(child_env, "1")
            .env("EMILY_NUM_THREADS", "2")
            .output()
            .expect("run the test binary");
        assert!(
            child.status.success(),
            "child with EMILY_ISA={cap} failed:\n{}{}",
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
    }
}

/// The f32 bits of `t` (cast to f32 first), for bit-for-bit comparisons.
pub fn f32_bits(t: &Tensor) -> Vec<u32> {
    t.cast(DType::F32)
        .unwrap()
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// An f32 tensor equal to `x` in a buffer of its own.
pub fn own_copy(x: &Tensor) -> Tensor {
    Tensor::from_vec(x.to_vec::<f32>().unwrap(), x.shape()).unwrap()
}
