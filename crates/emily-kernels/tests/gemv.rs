//! `gemv_{f16,bf16,f32}` against an f64 reference with the weights widened
//! exactly, at odd shapes, many activation rows, and sizes that take the
//! parallel path; blocks of weight rows against one row at a time (bit for
//! bit). The shape checks run again under every `EMILY_ISA` cap.

mod isa_children;

use emily_kernels::gemv::{gemv_bf16, gemv_f16, gemv_f32};
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// Checks `got` (m × n) against the f64 reference of `w` (n × k, already
/// widened) times `x` (m × k): per element, |err| <= tol · Σ_j |w·x| + tiny.
fn check(what: &str, w: &[f64], n: usize, k: usize, x: &[f32], m: usize, got: &[f32]) {
    assert_eq!(got.len(), m * n);
    let tol = 1e-5 * (k as f64).sqrt().max(1.0);
    for i in 0..m {
        for r in 0..n {
            let (mut s, mut a) = (0f64, 0f64);
            for j in 0..k {
                let p = w[r * k + j] * x[i * k + j] as f64;
                s += p;
                a += p.abs();
            }
            let g = got[i * n + r] as f64;
            let err = (g - s).abs();
            assert!(
                err <= tol * a + 1e-30,
                "{what} n={n} k={k} m={m}: out[{i},{r}] = {g}, expected {s} (err {err:e}, bound {:e})",
                tol * a
            );
        }
    }
}

fn randn(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// Runs all three dtypes at one shape; `out` starts as garbage so a kernel that
/// accumulates instead of overwriting fails.
fn case(rng: &mut StdRng, n: usize, k: usize, m: usize) {
    let wf = randn(rng, n * k);
    let x = randn(rng, m * k);
    let garbage = || vec![f32::NAN; m * n];

    let wh: Vec<f16> = wf.iter().map(|&v| f16::from_f32(v)).collect();
    let mut out = garbage();
    gemv_f16(&wh, n, k, &x, m, &mut out);
    let w64: Vec<f64> = wh.iter().map(|v| v.to_f64()).collect();
    check("f16", &w64, n, k, &x, m, &out);

    let wb: Vec<bf16> = wf.iter().map(|&v| bf16::from_f32(v)).collect();
    let mut out = garbage();
    gemv_bf16(&wb, n, k, &x, m, &mut out);
    let w64: Vec<f64> = wb.iter().map(|v| v.to_f64()).collect();
    check("bf16", &w64, n, k, &x, m, &out);

    let mut out = garbage();
    gemv_f32(&wf, n, k, &x, m, &mut out);
    let w64: Vec<f64> = wf.iter().map(|&v| v as f64).collect();
    check("f32", &w64, n, k, &x, m, &out);
}

fn check_odd_shapes() {
    let mut rng = StdRng::seed_from_u64(7);
    for &n in &[1, 7, 77, 1000, 4099] {
        for &k in &[1, 7, 77, 1000, 4099] {
            // Keep the f64 reference cheap at the largest shapes.
            let ms: &[usize] = if n * k > 1_000_000 {
                &[1, 3, 8]
            } else {
                &[1, 2, 3, 5, 8, 13]
            };
            for &m in ms {
                case(&mut rng, n, k, m);
            }
        }
    }
}

fn check_every_small_m_and_tail() {
    let mut rng = StdRng::seed_from_u64(11);
    // Every m chunk size (and past it), every k tail for both vector widths.
    for m in 1..=17 {
        for k in [15, 16, 17, 31, 33] {
            case(&mut rng, 9, k, m);
        }
    }
}

/// Every output of a product over `n` weight rows equals, bit for bit, the
/// product of its weight row alone: the row blocks (and the rows left over
/// after the last block) sum in the order of a row at a time.
fn check_blocks_match_single_rows() {
    let mut rng = StdRng::seed_from_u64(19);
    for m in 1..=9 {
        for &n in &[1, 2, 3, 4, 5, 7, 13, 77] {
            for &k in &[1, 7, 16, 17, 77, 1000] {
                let wf = randn(&mut rng, n * k);
                let x = randn(&mut rng, m * k);
                let wh: Vec<f16> = wf.iter().map(|&v| f16::from_f32(v)).collect();
                let mut all = vec![f32::NAN; m * n];
                gemv_f16(&wh, n, k, &x, m, &mut all);
                let mut all32 = vec![f32::NAN; m * n];
                gemv_f32(&wf, n, k, &x, m, &mut all32);
                for r in 0..n {
                    let mut one = vec![f32::NAN; m];
                    gemv_f16(&wh[r * k..(r + 1) * k], 1, k, &x, m, &mut one);
                    let mut one32 = vec![f32::NAN; m];
                    gemv_f32(&wf[r * k..(r + 1) * k], 1, k, &x, m, &mut one32);
                    for i in 0..m {
                        assert_eq!(
                            all[i * n + r].to_bits(),
                            one[i].to_bits(),
                            "f16 m={m} n={n} k={k}: out[{i},{r}] {} vs row alone {}",
                            all[i * n + r],
                            one[i]
                        );
                        assert_eq!(
                            all32[i * n + r].to_bits(),
                            one32[i].to_bits(),
                            "f32 m={m} n={n} k={k}: out[{i},{r}]"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn odd_shapes() {
    check_odd_shapes();
}

#[test]
fn every_small_m_and_tail() {
    check_every_small_m_and_tail();
}

#[test]
fn blocks_match_single_rows() {
    check_blocks_match_single_rows();
}

/// The shape checks with `EMILY_ISA` capped to each path (portable, AVX2,
/// AVX-512), one pool thread.
#[test]
fn shapes_under_every_isa_cap() {
    if std::env::var("EMILY_GEMV_CHILD").is_ok() {
        check_odd_shapes();
        check_every_small_m_and_tail();
        check_blocks_match_single_rows();
        return;
    }
    isa_children::run_under_isa_caps(
        "shapes_under_every_isa_cap",
        "EMILY_GEMV_CHILD",
        &["baseline", "avx2", "avx512"],
    );
}

#[test]
fn parallel_path() {
    let mut rng = StdRng::seed_from_u64(3);
    // Big enough to split over the pool (a Whisper-logits-like shape, trimmed).
    case(&mut rng, 20_011, 384, 1);
    case(&mut rng, 5003, 384, 2);
    case(&mut rng, 3001, 1000, 5);
}

#[test]
fn degenerate_shapes() {
    let mut out = vec![f32::NAN; 6];
    gemv_f16(&[], 3, 0, &[], 2, &mut out);
    assert_eq!(out, vec![0.0; 6]);
    let mut out: Vec<f32> = vec![];
    gemv_f32(&[], 0, 5, &[1.0; 10], 2, &mut out);
    gemv_bf16(&[bf16::ONE; 5], 1, 5, &[], 0, &mut out);
}

#[test]
fn exact_small_values() {
    // Integers are exact in every dtype and in f32 sums: results must match exactly.
    let (n, k, m) = (5, 37, 3);
    let wf: Vec<f32> = (0..n * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let x: Vec<f32> = (0..m * k).map(|i| ((i * 5) % 9) as f32 - 4.0).collect();
    let mut want = vec![0f32; m * n];
    for i in 0..m {
        for r in 0..n {
            want[i * n + r] = (0..k).map(|j| wf[r * k + j] * x[i * k + j]).sum();
        }
    }
    let mut out = vec![0f32; m * n];
    gemv_f32(&wf, n, k, &x, m, &mut out);
    assert_eq!(out, want);
    let wh: Vec<f16> = wf.iter().map(|&v| f16::from_f32(v)).collect();
    gemv_f16(&wh, n, k, &x, m, &mut out);
    assert_eq!(out, want);
    let wb: Vec<bf16> = wf.iter().map(|&v| bf16::from_f32(v)).collect();
    gemv_bf16(&wb, n, k, &x, m, &mut out);
    assert_eq!(out, want);
}

#[test]
#[should_panic(expected = "gemv")]
fn length_mismatch_panics() {
    let mut out = vec![0f32; 2];
    gemv_f32(&[0.0; 5], 2, 3, &[0.0; 3], 1, &mut out);
}
