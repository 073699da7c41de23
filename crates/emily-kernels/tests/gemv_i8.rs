//! `I8Rows` (int8 weight rows, per-row steps, VNNI panels) against float64
//! references on random inputs at odd sizes, for every implementation this
//! CPU runs: exact block arithmetic (integer block sums of the quantized
//! operands, f64 outside them) to f32 round-off, and the documented
//! quantization bound against the unquantized activations.

use emily_kernels::gemv_i8::{quantize_two_pass, I8Isa, I8Rows};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

fn randn(rng: &mut StdRng, len: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|_| scale * rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// Checks one product against (a) the f64 value of the quantized operands'
/// block sums (both passes) and (b) the dequantized weights times the
/// unquantized `x`, within `step · Σ|q| · e/2` (`e` the second pass's scale).
fn check(what: &str, w: &I8Rows, x: &[f32], m: usize, got: &[f32]) {
    let (n, k) = (w.rows(), w.cols());
    let kp = k.div_ceil(32).max(1) * 32;
    let (act, rest) = quantize_two_pass(x, m, k, kp);
    // The two passes: every value within e/2 of d·q + e·p.
    for i in 0..m {
        for j in 0..k {
            let (b, at) = (i * kp / 32 + j / 32, i * kp + j);
            let approx =
                act.d[b] as f64 * act.qs[at] as f64 + rest.d[b] as f64 * rest.qs[at] as f64;
            let err = (approx - x[i * k + j] as f64).abs();
            assert!(
                err <= rest.d[b] as f64 / 2.0 * 1.0001 + (x[i * k + j] as f64).abs() * 1.2e-7
                    && rest.d[b] <= act.d[b] / 200.0 + 1e-30,
                "x[{i},{j}] = {}: d {} q {} e {} p {} err {err:e}",
                x[i * k + j],
                act.d[b],
                act.qs[at],
                rest.d[b],
                rest.qs[at]
            );
        }
    }
    let mut codes = vec![0i8; k];
    for r in 0..n {
        w.codes_of_row(r, &mut codes);
        let step = w.step(r) as f64;
        for i in 0..m {
            let (mut exact, mut mag, mut real, mut bound) = (0f64, 0f64, 0f64, 0f64);
            for b in 0..kp / 32 {
                let d = act.d[i * kp / 32 + b] as f64;
                let e = rest.d[i * kp / 32 + b] as f64;
                let (mut s, mut s2) = (0i64, 0i64);
                for j in b * 32..((b + 1) * 32).min(k) {
                    let q = codes[j] as i64;
                    let (a, p) = (act.qs[i * kp + j] as i64, rest.qs[i * kp + j] as i64);
                    s += q * a;
                    s2 += q * p;
                    mag += (q * a).abs() as f64 * d + (q * p).abs() as f64 * e;
                    real += step * q as f64 * x[i * k + j] as f64;
                    bound += step * (q.abs() as f64) * e / 2.0;
                }
                exact += d * s as f64 + e * s2 as f64;
            }
            exact *= step;
            let g = got[i * n + r] as f64;
            let tol = 4e-7 * (k as f64).sqrt().max(4.0) * step * mag + 1e-30;
            assert!(
                (g - exact).abs() <= tol,
                "{what} n={n} k={k} m={m}: out[{i},{r}] = {g}, block arithmetic gives {exact} (tol {tol:e})"
            );
            assert!(
                (g - real).abs() <= bound * 1.0001 + tol,
                "{what} n={n} k={k} m={m}: out[{i},{r}] = {g}, real product {real}, bound {bound:e}"
            );
        }
    }
}

#[test]
fn gemv_i8_matches_f64_at_odd_sizes_on_every_isa() {
    let mut rng = StdRng::seed_from_u64(11);
    for isa in I8Isa::all_available() {
        for &(n, k) in &[
            (1, 1),
            (3, 7),
            (17, 77),
            (33, 1000),
            (16, 32),
            (5, 384),
            (40, 96),
        ] {
            let w = randn(&mut rng, n * k, 0.05);
            let rows = I8Rows::quantize(&w, n, k);
            for &m in &[1, 2, 3, 5, 8] {
                let x = randn(&mut rng, m * k, 1.3);
                let mut out = vec![f32::NAN; m * n];
                rows.gemv_with(isa, &x, m, &mut out);
                check(&format!("{isa:?}"), &rows, &x, m, &out);
            }
        }
    }
}

#[test]
fn implementations_agree_on_a_parallel_size() {
    // Large enough for the pool's split (many panels), with an odd row tail.
    let (n, k, m) = (1000 + 7, 384, 2);
    let mut rng = StdRng::seed_from_u64(5);
    let w = randn(&mut rng, n * k, 0.1);
    let rows = I8Rows::quantize(&w, n, k);
    let x = randn(&mut rng, m * k, 1.0);
    let mut want = vec![0f32; m * n];
    rows.gemv_with(I8Isa::Portable, &x, m, &mut want);
    check("portable", &rows, &x, m, &want);
    agree_on_every_isa(&rows, &x, m, &want);
}

/// Every available implementation gives `want` (the portable loops' output)
/// to f32 round-off.
fn agree_on_every_isa(rows: &I8Rows, x: &[f32], m: usize, want: &[f32]) {
    for isa in I8Isa::all_available() {
        let mut got = vec![f32::NAN; m * rows.rows()];
        rows.gemv_with(isa, x, m, &mut got);
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{isa:?}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn rows_keep_their_codes_and_steps() {
    let (n, k) = (19, 45);
    let mut rng = StdRng::seed_from_u64(3);
    let mut w = randn(&mut rng, n * k, 2.0);
    w[2 * k..3 * k].fill(0.0); // a zero row
    let rows = I8Rows::quantize(&w, n, k);
    assert_eq!((rows.rows(), rows.cols()), (n, k));
    let mut back = vec![0f32; k];
    for r in 0..n {
        rows.dequantize_row(r, &mut back);
        let amax = w[r * k..(r + 1) * k]
            .iter()
            .fold(0f32, |a, v| a.max(v.abs()));
        for (j, &b) in back.iter().enumerate() {
            let err = (b - w[r * k + j]).abs();
            assert!(
                err <= amax / 127.0 / 2.0 * 1.001 + 1e-30,
                "row {r} col {j}: {b} vs {}",
                w[r * k + j]
            );
        }
    }
    // Packing from given codes keeps them exactly.
    let packed = I8Rows::from_rows(n, k, |r, codes| {
        for (j, q) in codes.iter_mut().enumerate() {
            *q = ((r * 31 + j * 7) % 255) as i32 as i8;
        }
        r as f32 + 0.5
    });
    let mut codes = vec![0i8; k];
    for r in 0..n {
        packed.codes_of_row(r, &mut codes);
        for (j, &q) in codes.iter().enumerate() {
            assert_eq!(q, ((r * 31 + j * 7) % 255) as i32 as i8);
        }
        assert_eq!(packed.step(r), r as f32 + 0.5);
    }
}

#[test]
fn non_finite_activations_poison_the_outputs() {
    let (n, k) = (20, 64);
    let mut rng = StdRng::seed_from_u64(9);
    let rows = I8Rows::quantize(&randn(&mut rng, n * k, 1.0), n, k);
    let mut x = randn(&mut rng, k, 1.0);
    x[40] = f32::NAN;
    for isa in I8Isa::all_available() {
        let mut out = vec![0f32; n];
        rows.gemv_with(isa, &x, 1, &mut out);
        assert!(out.iter().all(|v| v.is_nan()), "{isa:?}: {out:?}");
    }
}

/// Codes at the ends of the int8 range (-128 from a foreign model's codes,
/// 127) against activation codes at ±127: every implementation's exact
/// integer sums agree (the AVX2 path's 16-bit pair sums must not saturate).
#[test]
fn extreme_codes_agree_on_every_isa() {
    let (n, k, m) = (37, 96, 3);
    let rows = I8Rows::from_rows(n, k, |r, codes| {
        for (j, q) in codes.iter_mut().enumerate() {
            *q = match (r + j) % 3 {
                0 => -128,
                1 => 127,
                _ => -127,
            };
        }
        0.01
    });
    // Same-signed pairs of ±big values: every block's codes are ±127.
    let x: Vec<f32> = (0..m * k)
        .map(|i| if (i / 2) % 2 == 0 { 3.0 } else { -3.0 })
        .collect();
    let mut want = vec![0f32; m * n];
    rows.gemv_with(I8Isa::Portable, &x, m, &mut want);
    let mut codes = vec![0i8; k];
    for i in 0..m {
        for r in 0..n {
            rows.codes_of_row(r, &mut codes);
            let exact: f64 = codes
                .iter()
                .zip(&x[i * k..(i + 1) * k])
                .map(|(&q, &v)| q as f64 * 0.01 * v as f64)
                .sum();
            let w = want[i * n + r] as f64;
            assert!(
                (w - exact).abs() <= 1e-4 * exact.abs().max(1.0),
                "{w} vs {exact}"
            );
        }
    }
    agree_on_every_isa(&rows, &x, m, &want);
}
