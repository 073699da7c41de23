//! RMSNorm and LayerNorm kernels against float64 references.

use emily_kernels::fast::{
    layer_norm_bf16, layer_norm_f16, layer_norm_f32, rms_norm_bf16, rms_norm_f16, rms_norm_f32,
};
use half::{bf16, f16};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;

mod isa_children;

fn randn(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

fn rms_ref(x: &[f32], w: Option<&[f32]>, eps: f64, cols: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / cols as f64;
        let inv = 1.0 / (ms + eps).sqrt();
        for (i, &v) in row.iter().enumerate() {
            out.push(v as f64 * inv * w.map_or(1.0, |w| w[i] as f64));
        }
    }
    out
}

fn ln_ref(x: &[f32], w: Option<&[f32]>, b: Option<&[f32]>, eps: f64, cols: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for (i, &v) in row.iter().enumerate() {
            let y = (v as f64 - mean) * inv;
            out.push(y * w.map_or(1.0, |w| w[i] as f64) + b.map_or(0.0, |b| b[i] as f64));
        }
    }
    out
}

/// Largest `|got - want| / (1 + |want|)`.
fn max_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max)
}

const COLS: [usize; 5] = [1, 7, 77, 1000, 4099];

#[test]
fn rms_norm_matches_f64() {
    for (ci, &cols) in COLS.iter().enumerate() {
        // Enough rows at the wide shapes to take the multi-threaded path.
        let rows = if cols >= 1000 { 37 } else { 5 };
        check_rms_rows(rows, cols, 10 + ci as u64, 20 + ci as u64);
    }
}

/// `rows` random rows of `cols` features (seeds for x and the weight)
/// through [`rms_norm_f32`] with and without a weight, against f64.
fn check_rms_rows(rows: usize, cols: usize, x_seed: u64, w_seed: u64) {
    let x = randn(rows * cols, x_seed);
    let w: Vec<f32> = randn(cols, w_seed).iter().map(|v| 1.0 + 0.1 * v).collect();
    for weight in [None, Some(w.as_slice())] {
        let mut out = vec![f32::NAN; x.len()];
        rms_norm_f32(&x, weight, 1e-6, cols, &mut out);
        let err = max_err(&out, &rms_ref(&x, weight, 1e-6, cols));
        assert!(
            err < 2e-6,
            "rms_norm rows={rows} cols={cols} weight={}: err {err:e}",
            weight.is_some()
        );
    }
}

/// Short rows (a multiple of 8 features, at most 256) run four at a time:
/// row counts around the group size and the widest grouped width.
fn check_grouped_rms_rows() {
    for &rows in &[1usize, 4, 7, 77] {
        for &cols in &[8usize, 16, 64, 256, 264] {
            let seed = (rows * 1000 + cols) as u64;
            check_rms_rows(rows, cols, seed, seed + 1);
        }
    }
}

#[test]
fn rms_norm_of_short_rows_matches_f64_under_every_isa_cap() {
    if std::env::var("EMILY_RMS_ROWS_CHILD").is_ok() {
        check_grouped_rms_rows();
        return;
    }
    isa_children::run_under_isa_caps(
        "rms_norm_of_short_rows_matches_f64_under_every_isa_cap",
        "EMILY_RMS_ROWS_CHILD",
        &["baseline", "avx2", "avx512"],
    );
}

#[test]
fn rms_norm_of_a_constant_row() {
    // A row of one repeated value normalises to 1 (up to eps).
    let x = vec![3.0e15f32; 64];
    let mut out = vec![0.0; 64];
    rms_norm_f32(&x, None, 1e-6, 64, &mut out);
    assert!(
        out.iter().all(|&v| (v - 1.0).abs() < 1e-6),
        "{:?}",
        &out[..4]
    );
}

#[test]
fn layer_norm_matches_f64() {
    for (ci, &cols) in COLS.iter().enumerate() {
        let rows = if cols >= 1000 { 37 } else { 5 };
        // A large common offset: the naive E[x^2] - E[x]^2 would lose every digit.
        let x: Vec<f32> = randn(rows * cols, 30 + ci as u64)
            .iter()
            .map(|v| 1000.0 + v)
            .collect();
        let w: Vec<f32> = randn(cols, 40 + ci as u64)
            .iter()
            .map(|v| 1.0 + 0.1 * v)
            .collect();
        let b: Vec<f32> = randn(cols, 50 + ci as u64)
            .iter()
            .map(|v| 0.1 * v)
            .collect();
        for (weight, bias) in [
            (None, None),
            (Some(w.as_slice()), None),
            (None, Some(b.as_slice())),
            (Some(w.as_slice()), Some(b.as_slice())),
        ] {
            let mut out = vec![f32::NAN; x.len()];
            layer_norm_f32(&x, weight, bias, 1e-5, cols, &mut out);
            let err = max_err(&out, &ln_ref(&x, weight, bias, 1e-5, cols));
            // The inputs are rounded to f32 around 1000 (ulp 6e-5), which the
            // reference sees too; what remains is the kernel's own error.
            assert!(
                err < 1e-5,
                "layer_norm cols={cols} w={} b={}: err {err:e}",
                weight.is_some(),
                bias.is_some()
            );
        }
    }
}

#[test]
fn layer_norm_rows_whose_first_element_is_far_from_the_mean() {
    // The kernel shifts by the first element when that is close enough to the
    // mean and falls back to the exact two-pass formula otherwise: cover both,
    // with a large common offset (where a poor shift would cancel badly).
    for (ci, &cols) in COLS.iter().enumerate().skip(1) {
        let rows = 6;
        let mut x: Vec<f32> = randn(rows * cols, 80 + ci as u64)
            .iter()
            .map(|v| 1000.0 + v)
            .collect();
        for (r, row) in x.chunks_mut(cols).enumerate() {
            row[0] = match r {
                0 => 1000.0 + 40.0, // outlier: takes the fallback
                1 => -5.0e4,        // huge outlier
                2 => 1000.0 - 2.9,  // just inside the accepted band
                _ => row[0],
            };
        }
        let mut out = vec![f32::NAN; x.len()];
        layer_norm_f32(&x, None, None, 1e-5, cols, &mut out);
        let err = max_err(&out, &ln_ref(&x, None, None, 1e-5, cols));
        assert!(err < 1e-5, "layer_norm outliers cols={cols}: err {err:e}");
    }
}

#[test]
fn outputs_large_enough_to_stream_match_f64() {
    // Outputs of 16 MiB and more are written with non-temporal stores through
    // a row buffer: wide rows (one per buffer) and narrow ones (many per buffer,
    // with a partial last buffer).
    for (rows, cols) in [(1025, 4099), (600_001, 7)] {
        let x = randn(rows * cols, 70 + cols as u64);
        let w: Vec<f32> = randn(cols, 71).iter().map(|v| 1.0 + 0.1 * v).collect();
        let b: Vec<f32> = randn(cols, 72).iter().map(|v| 0.1 * v).collect();
        let mut out = vec![f32::NAN; x.len()];
        rms_norm_f32(&x, Some(&w), 1e-6, cols, &mut out);
        let err = max_err(&out, &rms_ref(&x, Some(&w), 1e-6, cols));
        assert!(err < 2e-6, "rms_norm {rows}x{cols}: err {err:e}");
        layer_norm_f32(&x, Some(&w), Some(&b), 1e-5, cols, &mut out);
        let err = max_err(&out, &ln_ref(&x, Some(&w), Some(&b), 1e-5, cols));
        assert!(err < 1e-5, "layer_norm {rows}x{cols}: err {err:e}");
    }
}

#[test]
fn half_precision_entry_points_match_f64() {
    let (rows, cols) = (9, 77);
    let x32 = randn(rows * cols, 60);
    let w32: Vec<f32> = randn(cols, 61).iter().map(|v| 1.0 + 0.1 * v).collect();
    let b32: Vec<f32> = randn(cols, 62).iter().map(|v| 0.1 * v).collect();

    let xh: Vec<f16> = x32.iter().map(|&v| f16::from_f32(v)).collect();
    let wh: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
    let bh: Vec<f16> = b32.iter().map(|&v| f16::from_f32(v)).collect();
    let widen = |v: &[f16]| v.iter().map(|x| x.to_f32()).collect::<Vec<_>>();
    let mut out = vec![f16::ZERO; xh.len()];
    rms_norm_f16(&xh, Some(&wh), 1e-6, cols, &mut out);
    let err = max_err(
        &widen(&out),
        &rms_ref(&widen(&xh), Some(&widen(&wh)), 1e-6, cols),
    );
    assert!(err < 1e-3, "rms_norm f16 err {err:e}"); // f16 half-ulp ~ 5e-4 relative
    layer_norm_f16(&xh, Some(&wh), Some(&bh), 1e-5, cols, &mut out);
    let want = ln_ref(
        &widen(&xh),
        Some(&widen(&wh)),
        Some(&widen(&bh)),
        1e-5,
        cols,
    );
    let err = max_err(&widen(&out), &want);
    assert!(err < 1e-3, "layer_norm f16 err {err:e}");

    let xb: Vec<bf16> = x32.iter().map(|&v| bf16::from_f32(v)).collect();
    let wb: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
    let bb: Vec<bf16> = b32.iter().map(|&v| bf16::from_f32(v)).collect();
    let widen = |v: &[bf16]| v.iter().map(|x| x.to_f32()).collect::<Vec<_>>();
    let mut out = vec![bf16::ZERO; xb.len()];
    rms_norm_bf16(&xb, Some(&wb), 1e-6, cols, &mut out);
    let err = max_err(
        &widen(&out),
        &rms_ref(&widen(&xb), Some(&widen(&wb)), 1e-6, cols),
    );
    assert!(err < 4e-3, "rms_norm bf16 err {err:e}"); // bf16 half-ulp ~ 4e-3 relative
    layer_norm_bf16(&xb, None, Some(&bb), 1e-5, cols, &mut out);
    let want = ln_ref(&widen(&xb), None, Some(&widen(&bb)), 1e-5, cols);
    let err = max_err(&widen(&out), &want);
    assert!(err < 4e-3, "layer_norm bf16 err {err:e}");
}

#[test]
#[should_panic(expected = "[rms_norm] weight has 1000 elements, x's last axis is 1024")]
fn rms_norm_rejects_a_wrong_weight() {
    let x = vec![0.0f32; 2048];
    let mut out = vec![0.0f32; 2048];
    rms_norm_f32(&x, Some(&[1.0; 1000]), 1e-6, 1024, &mut out);
}

#[test]
fn empty_inputs_are_no_ops() {
    rms_norm_f32(&[], None, 1e-6, 8, &mut []);
    layer_norm_f32(&[], None, None, 1e-5, 0, &mut []);
}
