//! The softmax + log-sum-exp row kernel: the log-sum-exp bit for bit equal
//! to the LogSumExp reduction, the probabilities (with and without a
//! per-row scale) within a few ulp of an f64 softmax (and summing to one,
//! or to the scale), and rows whose max is not finite or that
//! are longer than a reduction segment exactly `exp(x - lse)` as the
//! composed ops give it; at odd sizes, on one thread and split over rows,
//! under every `EMILY_ISA` cap.

use emily_kernels::reduce::{reduce_last_axis_f32, ReduceOp};
use emily_kernels::softmax_lse::softmax_logsumexp_f32;
use emily_kernels::unary::{unary_f32, UnaryOp};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;

mod isa_children;

/// Normal values times `scale`, with some -inf entries.
fn logits(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let v: f32 = rng.sample(StandardNormal);
            if i % 13 == 5 {
                f32::NEG_INFINITY
            } else {
                v * scale
            }
        })
        .collect()
}

/// What the composed ops give: the reduction, then `exp(x - lse)`.
fn composed(x: &[f32], rows: usize, cols: usize) -> (Vec<f32>, Vec<f32>) {
    let mut lse = vec![0.0; rows];
    reduce_last_axis_f32(ReduceOp::LogSumExp, x, rows, cols, &mut lse);
    let diff: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| v - lse[i / cols.max(1)])
        .collect();
    let mut probs = vec![0.0; x.len()];
    unary_f32(UnaryOp::Exp, &diff, &mut probs);
    (probs, lse)
}

/// Spacing of f32 values at `v`.
fn ulp(v: f64) -> f64 {
    let a = v.abs().max(f32::MIN_POSITIVE as f64);
    2f64.powi(a.log2().floor() as i32 - 23)
}

fn check(x: &[f32], rows: usize, cols: usize) {
    check_scaled(x, rows, cols, None);
    let scale: Vec<f32> = (0..rows).map(|r| 0.25 + r as f32 / 3.0).collect();
    check_scaled(x, rows, cols, Some(&scale));
}

/// [`check`] with the probabilities of row `r` times `scale[r]` (composed:
/// the scale times `exp(x - lse)`).
fn check_scaled(x: &[f32], rows: usize, cols: usize, scale: Option<&[f32]>) {
    let what = format!("{rows}x{cols} scaled {}", scale.is_some());
    let mut probs = vec![f32::NAN; x.len()];
    let mut lse = vec![f32::NAN; rows];
    softmax_logsumexp_f32(x, rows, cols, scale, &mut probs, &mut lse);
    let (mut want_p, want_l) = composed(x, rows, cols);
    let c = |r: usize| scale.map_or(1.0, |s| s[r]);
    for (i, p) in want_p.iter_mut().enumerate() {
        *p *= c(i / cols.max(1));
    }
    for (r, (a, b)) in lse.iter().zip(&want_l).enumerate() {
        assert_eq!(a.to_bits(), b.to_bits(), "{what} lse[{r}]: {a} vs {b}");
    }
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let (got, want) = (&probs[r * cols..][..cols], &want_p[r * cols..][..cols]);
        let m = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let special = !m.is_finite() || row.iter().any(|v| v.is_nan());
        if special || cols > 1 << 16 {
            for (j, (a, b)) in got.iter().zip(want).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{what} row {r}[{j}] (as composed)"
                );
            }
            continue;
        }
        // f64 softmax; each value within 4 + |x - max| ulp (rounding x - max
        // to f32 costs a relative |x - max| 2^-24 through the exp).
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m as f64).exp()).collect();
        let s: f64 = e.iter().sum();
        let mut total = 0.0f64;
        for (j, (&g, &ej)) in got.iter().zip(&e).enumerate() {
            let w = ej / s * c(r) as f64;
            // An exp below the least normal f32 is flushed to 0 before the
            // scale multiplies it (as composed): up to 2^-126 times the scale.
            let tol = 4.0 + (row[j] as f64 - m as f64).abs();
            let lost = c(r).abs() as f64 * 2f64.powi(-126);
            let err = ((g as f64 - w).abs() - lost).max(0.0) / ulp(w);
            assert!(err <= tol, "{what} row {r}[{j}]: {g} vs {w} ({err} ulp)");
            total += g as f64;
        }
        let want = c(r) as f64;
        assert!(
            (total - want).abs() < 1e-5 * want,
            "{what} row {r} sums to {total}"
        );
    }
}

fn check_all() {
    for (k, &(rows, cols)) in [
        (1, 1),
        (1, 7),
        (7, 77),
        (77, 1000),
        (3, 1),
        (1000, 7),
        (1024, 256),
    ]
    .iter()
    .enumerate()
    {
        for scale in [1.0, 30.0] {
            check(&logits(rows * cols, k as u64, scale), rows, cols);
        }
    }
    // Special rows: all -inf, a +inf, a NaN, a huge value beside -inf.
    let cols = 7;
    let mut x = logits(5 * cols, 99, 3.0);
    x[..cols].fill(f32::NEG_INFINITY);
    x[cols + 2] = f32::INFINITY;
    x[2 * cols + 6] = f32::NAN;
    x[3 * cols..4 * cols].fill(f32::NEG_INFINITY);
    x[3 * cols + 3] = 88.0;
    check(&x, 5, cols);
    // A row longer than a reduction segment, and no columns at all.
    check(&logits((1 << 16) + 3, 7, 2.0), 1, (1 << 16) + 3);
    check(&[], 3, 0);
}

#[test]
fn matches_the_reduction_and_an_f64_softmax() {
    check_all();
}

#[test]
fn matches_under_every_isa_cap() {
    if std::env::var("EMILY_SOFTMAX_LSE_CHILD").is_ok() {
        check_all();
        return;
    }
    isa_children::run_under_isa_caps(
        "matches_under_every_isa_cap",
        "EMILY_SOFTMAX_LSE_CHILD",
        &["baseline", "avx2", "avx512"],
    );
}

#[test]
#[should_panic(expected = "lse.len() != rows")]
fn a_wrong_length_is_refused() {
    softmax_logsumexp_f32(&[0.0; 6], 2, 3, None, &mut [0.0; 6], &mut [0.0; 3]);
}

#[test]
#[should_panic(expected = "scale.len() != rows")]
fn a_wrong_scale_length_is_refused() {
    softmax_logsumexp_f32(&[0.0; 6], 2, 3, Some(&[1.0]), &mut [0.0; 6], &mut [0.0; 2]);
}
