//! The RMSNorm gradient kernel against a float64 reference, at odd row
//! counts and widths, with and without a weight, a residual added to dx and
//! dy given as the parts of a sum, under every `EMILY_ISA` cap.

use emily_kernels::fast::{rms_norm_backward_f32, rms_norm_backward_plus_f32};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;

mod isa_children;

fn randn(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// `(dx, dw)` in f64, from the textbook chain rule of
/// `y_i = x_i · w_i / sqrt(mean(x²) + eps)`: the full Jacobian of each row.
fn reference(
    x: &[f32],
    w: Option<&[f32]>,
    dy: &[f32],
    eps: f64,
    cols: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut dx = Vec::with_capacity(x.len());
    let mut dw = vec![0.0f64; cols];
    let wi = |i: usize| w.map_or(1.0, |w| w[i] as f64);
    for (xr, gr) in x.chunks(cols).zip(dy.chunks(cols)) {
        let ms = xr.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / cols as f64;
        let r = 1.0 / (ms + eps).sqrt();
        for j in 0..cols {
            // ∂y_i/∂x_j = w_i·(r·δ_ij − x_i·x_j·r³/D)
            let mut s = 0.0;
            for i in 0..cols {
                let delta = if i == j { r } else { 0.0 };
                let jac = wi(i) * (delta - xr[i] as f64 * xr[j] as f64 * r.powi(3) / cols as f64);
                s += gr[i] as f64 * jac;
            }
            dx.push(s);
            dw[j] += gr[j] as f64 * xr[j] as f64 * r;
        }
    }
    (dx, dw)
}

/// Largest `|got - want| / (1 + |want|)`.
fn max_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max)
}

fn check_all_shapes() {
    for &rows in &[1usize, 7, 77] {
        for &cols in &[1usize, 7, 16, 64, 77, 1000] {
            if rows * cols > 80_000 {
                continue;
            }
            let seed = (rows * 1000 + cols) as u64;
            let x = randn(rows * cols, seed);
            let dy = randn(rows * cols, seed + 1);
            let w: Vec<f32> = randn(cols, seed + 2)
                .iter()
                .map(|v| 1.0 + 0.3 * v)
                .collect();
            let residual = randn(rows * cols, seed + 3);
            // dy as three parts, dy/2 + dy/4 + dy/4 (dy to round-off).
            let (half, quarter): (Vec<f32>, Vec<f32>) =
                dy.iter().map(|&v| (0.5 * v, 0.25 * v)).unzip();
            let parts = [half.as_slice(), &quarter, &quarter];
            for (weighted, plus) in [(true, false), (false, false), (true, true), (false, true)] {
                let wt = weighted.then_some(w.as_slice());
                let (mut want_dx, want_dw) = reference(&x, wt, &dy, 1e-5, cols);
                let mut dx = vec![f32::NAN; x.len()];
                let mut dw = vec![f32::NAN; cols];
                let dwm = weighted.then_some(dw.as_mut_slice());
                if plus {
                    // The parts with a residual; without, dy in one piece.
                    let r = Some(residual.as_slice());
                    rms_norm_backward_plus_f32(&x, wt, &parts, r, 1e-5, cols, &mut dx, dwm);
                    want_dx
                        .iter_mut()
                        .zip(&residual)
                        .for_each(|(d, &r)| *d += r as f64);
                } else {
                    rms_norm_backward_f32(&x, wt, &dy, 1e-5, cols, &mut dx, dwm);
                }
                let case = format!("rows {rows}, cols {cols}, weight {weighted}, residual {plus}");
                let e = max_err(&dx, &want_dx);
                assert!(e < 2e-5, "{case}: dx error {e}");
                if weighted {
                    // A sum over rows: the bound grows with their number.
                    let e = max_err(&dw, &want_dw);
                    assert!(
                        e < 1e-5 * (1.0 + rows as f64).sqrt(),
                        "{case}: dw error {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn gradient_matches_f64() {
    check_all_shapes();
}

#[test]
fn gradient_matches_f64_under_every_isa_cap() {
    if std::env::var("EMILY_RMS_GRAD_CHILD").is_ok() {
        check_all_shapes();
        return;
    }
    isa_children::run_under_isa_caps(
        "gradient_matches_f64_under_every_isa_cap",
        "EMILY_RMS_GRAD_CHILD",
        &["baseline", "avx2", "avx512"],
    );
}

#[test]
fn a_constant_row_has_a_finite_gradient() {
    // x = c·1: mean(x²) = c², and eps keeps r finite at c = 0.
    for c in [0.0f32, 3.0] {
        let x = vec![c; 16];
        let dy = randn(16, 9);
        let w = vec![1.0f32; 16];
        let mut dx = vec![0.0; 16];
        let mut dw = vec![0.0; 16];
        rms_norm_backward_f32(&x, Some(&w), &dy, 1e-6, 16, &mut dx, Some(&mut dw));
        let (want_dx, want_dw) = reference(&x, Some(&w), &dy, 1e-6, 16);
        assert!(dx.iter().chain(&dw).all(|v| v.is_finite()));
        assert!(
            max_err(&dx, &want_dx)
                < 1e-3 * (1.0 + want_dx.iter().fold(0.0f64, |a, b| a.max(b.abs())))
        );
        assert!(max_err(&dw, &want_dw) < 1e-5);
    }
}

#[test]
fn empty_inputs_zero_the_weight_gradient() {
    let mut dw = vec![f32::NAN; 4];
    rms_norm_backward_f32(&[], Some(&[1.0; 4]), &[], 1e-6, 4, &mut [], Some(&mut dw));
    assert_eq!(dw, vec![0.0; 4]);
}

#[test]
#[should_panic(expected = "weight gradient")]
fn a_weight_without_its_gradient_is_refused() {
    rms_norm_backward_f32(
        &[1.0; 4],
        Some(&[1.0; 4]),
        &[1.0; 4],
        1e-6,
        4,
        &mut [0.0; 4],
        None,
    );
}
