//! `I8Rows` (int8 weight rows, per-row steps, VNNI panels) against float64
//! references on random inputs at odd sizes, for every implementation this
//! CPU runs: exact block arithmetic (integer block sums of the quantized
//! operands, f64 outside them) to f32 round-off, and the documented
//! quantization bound against the unquantized activations; the 16-bit
//! activation blocks alike on every path.

use emily_kernels::gemv_i8::{I16Blocks, I8Isa, I8Rows, CODE_MAX, F32_MIN_ROWS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

fn randn(rng: &mut StdRng, len: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|_| scale * rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// Checks one product against (a) the f64 value of the quantized operands'
/// block sums and (b) the dequantized weights times the unquantized `x`,
/// within `step · Σ|q| · s/2` (`s` the activation blocks' scales).
fn check(what: &str, w: &I8Rows, x: &[f32], m: usize, got: &[f32]) {
    let (n, k) = (w.rows(), w.cols());
    let kp = k.div_ceil(32).max(1) * 32;
    let act = I16Blocks::quantize(x, m, k, kp, false);
    // Every value within s/2 of s·a, s = max|x| / CODE_MAX over its block.
    for i in 0..m {
        for j in 0..k {
            let (b, at) = (i * kp / 32 + j / 32, i * kp + j);
            let block = &x[i * k + j / 32 * 32..i * k + ((j / 32 + 1) * 32).min(k)];
            let amax = block.iter().fold(0f64, |a, v| a.max(v.abs() as f64));
            let s = act.scales[b] as f64;
            let err = (s * act.codes[at] as f64 - x[i * k + j] as f64).abs();
            assert!(
                err <= s / 2.0 * 1.0001 + (x[i * k + j] as f64).abs() * 1.2e-7
                    && (s - amax / CODE_MAX as f64).abs() <= amax * 1e-6,
                "x[{i},{j}] = {}: s {s} a {} err {err:e}",
                x[i * k + j],
                act.codes[at]
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
                let s = act.scales[i * kp / 32 + b] as f64;
                let mut sum = 0i64;
                for j in b * 32..((b + 1) * 32).min(k) {
                    let (q, a) = (codes[j] as i64, act.codes[i * kp + j] as i64);
                    sum += q * a;
                    mag += (q * a).abs() as f64 * s;
                    real += step * q as f64 * x[i * k + j] as f64;
                    bound += step * (q.abs() as f64) * s / 2.0;
                }
                exact += s * sum as f64;
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

/// The AVX2 loop gives the plain loop's codes, scales and sums (ordinary,
/// zero, tiny, huge, outlier and non-finite blocks), and the byte planes
/// rebuild every code within the ranges `vpdpbusd` takes.
#[test]
fn activation_blocks_agree_and_split_exactly() {
    let mut rng = StdRng::seed_from_u64(21);
    let (m, k): (usize, usize) = (3, 7 * 32 + 5);
    let kp = k.div_ceil(32) * 32;
    let mut x = randn(&mut rng, m * k, 2.0);
    x[32..64].fill(0.0);
    x[64..96].iter_mut().for_each(|v| *v *= 1e-38);
    x[96..128].iter_mut().for_each(|v| *v *= 1e30);
    x[130] = 1e4;
    x[k + 40] = f32::NAN;
    x[2 * k + 70] = f32::INFINITY;
    let plain = I16Blocks::quantize(&x, m, k, kp, false);
    let fast = I16Blocks::quantize(&x, m, k, kp, true);
    assert_eq!(plain.codes, fast.codes);
    assert_eq!(plain.sums, fast.sums);
    for (b, (p, f)) in plain.scales.iter().zip(&fast.scales).enumerate() {
        assert!(
            p.to_bits() == f.to_bits() || (p.is_nan() && f.is_nan()),
            "block {b}: {p} vs {f}"
        );
        let codes = &plain.codes[b * 32..(b + 1) * 32];
        assert_eq!(plain.sums[b], codes.iter().map(|&a| a as i32).sum::<i32>());
        assert!(codes.iter().all(|&a| (a as i32).abs() <= CODE_MAX));
    }
    assert!(plain.scales[kp / 32 + 1].is_nan() && plain.scales[2 * kp / 32 + 2].is_nan());
    assert_eq!(plain.scales[1], 0.0);
    let planes = plain.split();
    for (j, &a) in plain.codes.iter().enumerate() {
        let (h, l) = (planes.hi[j] as i32, planes.lo[j] as i32);
        assert!((-127..=127).contains(&h), "code {a}: hi {h}");
        assert_eq!(256 * h + l, a as i32);
    }
    for b in 0..m * kp / 32 {
        let sum = |v: &[i8]| {
            v[b * 32..(b + 1) * 32]
                .iter()
                .map(|&c| c as i32)
                .sum::<i32>()
        };
        assert_eq!(
            (planes.hi_sums[b], planes.lo_sums[b]),
            (sum(&planes.hi), sum(&planes.lo))
        );
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
            // Past 16 rows the product runs in blocks of rows.
            for &m in &[1, 2, 3, 5, 8, 17, 77] {
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
    agree_from_portable(1000 + 7, 384, 2, 5);
}

#[test]
fn rows_on_huge_pages_multiply_as_the_portable_loops() {
    // 2,107 × 1,000 codes: 2.2 MB of panels, a huge-page mapping of their
    // own on Linux; 391 × 384 (160 KB) and 77 × 1,000 (80 KB) cut from a
    // shared one; 7 × 77 on the heap.
    let mut rng = StdRng::seed_from_u64(12);
    for (n, k, mapped) in [
        (2100 + 7, 1000, true),
        (384 + 7, 384, true),
        (77, 1000, true),
        (7, 77, false),
    ] {
        let w = randn(&mut rng, n * k, 0.1);
        let rows = I8Rows::quantize(&w, n, k);
        assert_eq!(rows.on_huge_pages(), mapped && cfg!(target_os = "linux"));
        let copy = rows.clone();
        drop(rows);
        for m in [1, 3] {
            let x = randn(&mut rng, m * k, 1.0);
            let mut want = vec![0f32; m * n];
            copy.gemv_with(I8Isa::Portable, &x, m, &mut want);
            check("portable", &copy, &x, m, &want);
            agree_on_every_isa(&copy, &x, m, &want);
        }
    }
}

#[test]
fn implementations_agree_on_many_rows_in_parallel() {
    // Enough activation rows for the pool to split blocks of rows, with a
    // partial last block and a partial last panel.
    agree_from_portable(200 + 3, 384, 100 + 5, 6);
}

/// `m` random rows times a random `(n, k)` matrix (from `seed`): the
/// portable loops within the bound of f64, every implementation as them.
fn agree_from_portable(n: usize, k: usize, m: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = randn(&mut rng, n * k, 0.1);
    let rows = I8Rows::quantize(&w, n, k);
    let x = randn(&mut rng, m * k, 1.0);
    let mut want = vec![0f32; m * n];
    rows.gemv_with(I8Isa::Portable, &x, m, &mut want);
    check("portable", &rows, &x, m, &want);
    agree_on_every_isa(&rows, &x, m, &want);
}

#[test]
fn gemm_f32_is_the_dequantized_product() {
    let mut rng = StdRng::seed_from_u64(8);
    for &(n, k) in &[(1, 1), (7, 77), (33, 1000), (100, 384)] {
        let w = randn(&mut rng, n * k, 0.05);
        let rows = I8Rows::quantize(&w, n, k);
        // Past F32_MIN_ROWS `gemv` takes this product too.
        for &m in &[1, 7, 77, F32_MIN_ROWS + 1] {
            let x = randn(&mut rng, m * k, 1.3);
            let mut got = vec![f32::NAN; m * n];
            rows.gemm_f32(&x, m, &mut got);
            let mut by_gemv = vec![f32::NAN; m * n];
            rows.gemv(&x, m, &mut by_gemv);
            let mut row = vec![0f32; k];
            for r in 0..n {
                rows.dequantize_row(r, &mut row);
                for i in 0..m {
                    let (mut want, mut mag) = (0f64, 0f64);
                    for (a, b) in x[i * k..(i + 1) * k].iter().zip(&row) {
                        want += *a as f64 * *b as f64;
                        mag += (*a as f64 * *b as f64).abs();
                    }
                    let g = got[i * n + r] as f64;
                    let bound = mag * k as f64 * 6e-8 + 1e-30;
                    assert!(
                        (g - want).abs() <= bound,
                        "n={n} k={k} m={m}: {g} vs {want}"
                    );
                    if m >= F32_MIN_ROWS {
                        assert_eq!(by_gemv[i * n + r], got[i * n + r]);
                    }
                }
            }
        }
    }
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
/// 127) against activation codes at ±CODE_MAX: every implementation's exact
/// integer sums agree (no pair or block sum overflows).
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
