//! Binary kernels, `where` and `fma` against the `f64` reference.

use crate::common::{assert_close, inputs, rng, ulp_err, SIZES};
use emily_kernels::binary::{self as bin, BinaryOp};
use rand::Rng;

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// Max error in ulps: correctly rounded ops 0.5 (plus the f64 reference's
/// own rounding), pow ~correctly rounded, exact ops 0.
fn tolerance(op: BinaryOp) -> f64 {
    match op {
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => 0.501,
        BinaryOp::Pow => 0.51,
        _ => 0.0,
    }
}

fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

#[test]
fn every_op_matches_f64_at_every_size() {
    for op in BinaryOp::ALL {
        for (k, &n) in SIZES.iter().enumerate() {
            let a = inputs(200 + k as u64, n, 3.0, true);
            let mut b = inputs(300 + k as u64, n, 3.0, true);
            // Equal operands exercise Eq/Le/Ge, integer exponents exercise Pow.
            for (i, v) in b.iter_mut().enumerate() {
                match i % 5 {
                    0 => *v = a[i],
                    1 => *v = v.round(),
                    _ => {}
                }
            }
            let mut want = vec![0.0; n];
            bin::binary_f64(op, &widen(&a), &widen(&b), &mut want);
            let mut got = vec![0.0; n];
            if n > 100_000 {
                bin::binary_f32_par(op, &a, &b, &mut got);
            } else {
                bin::binary_f32(op, &a, &b, &mut got);
            }
            let what = format!("{op:?} n={n}");
            assert_close(&what, &a, &got, &want, tolerance(op), ulp_err);

            // In-place forms agree bit for bit.
            let mut lhs = a.clone();
            bin::binary_f32_inplace(op, &mut lhs, &b);
            assert!(same_bits(&lhs, &got), "{what}: inplace");
            let mut rhs = b.clone();
            bin::binary_f32_inplace_rhs(op, &a, &mut rhs);
            assert!(same_bits(&rhs, &got), "{what}: inplace_rhs");
            if n < 5000 {
                let s: Vec<f32> = a
                    .iter()
                    .zip(&b)
                    .map(|(&x, &y)| bin::binary_scalar_f32(op, x, y))
                    .collect();
                assert!(same_bits(&s, &got), "{what}: scalar");
            }
        }
    }
}

#[test]
fn scalar_operands_match_broadcast_slices() {
    let n = 4099;
    let a = inputs(11, n, 2.0, true);
    for op in BinaryOp::ALL {
        for s in [0.0f32, -1.5, 2.0, 0.5, f32::INFINITY, f32::NAN] {
            let full = vec![s; n];
            let (mut want, mut got) = (vec![0.0; n], vec![0.0; n]);
            bin::binary_f32(op, &a, &full, &mut want);
            bin::binary_f32_scalar_rhs(op, &a, s, &mut got);
            assert!(same_bits(&got, &want), "{op:?} rhs {s}");
            let mut inplace = a.clone();
            bin::binary_f32_scalar_rhs_inplace(op, &mut inplace, s);
            assert!(same_bits(&inplace, &want), "{op:?} rhs inplace {s}");

            bin::binary_f32(op, &full, &a, &mut want);
            bin::binary_f32_scalar_lhs(op, s, &a, &mut got);
            assert!(same_bits(&got, &want), "{op:?} lhs {s}");
            let mut inplace = a.clone();
            bin::binary_f32_scalar_lhs_inplace(op, s, &mut inplace);
            assert!(same_bits(&inplace, &want), "{op:?} lhs inplace {s}");
        }
    }
    let big = inputs(12, 3 << 20, 2.0, true);
    let (mut want, mut got) = (vec![0.0; big.len()], vec![0.0; big.len()]);
    bin::binary_f32_scalar_rhs(BinaryOp::Pow, &big, 1.5, &mut want);
    bin::binary_f32_scalar_rhs_par(BinaryOp::Pow, &big, 1.5, &mut got);
    assert!(same_bits(&got, &want), "scalar_rhs_par");
    bin::binary_f32_scalar_lhs(BinaryOp::Sub, 1.5, &big, &mut want);
    bin::binary_f32_scalar_lhs_par(BinaryOp::Sub, 1.5, &big, &mut got);
    assert!(same_bits(&got, &want), "scalar_lhs_par");
}

#[test]
fn pow_special_values_follow_c99() {
    let vals = [
        0.0f32,
        -0.0,
        1.0,
        -1.0,
        2.0,
        -2.0,
        0.5,
        -0.5,
        3.0,
        -3.0,
        2.5,
        -2.5,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-30,
        1e30,
        16_777_215.0,
        8_388_609.0,
        -16_777_215.0,
        3e7,
        f32::MIN_POSITIVE,
        1e-45,
    ];
    for &x in &vals {
        for &y in &vals {
            let got = bin::binary_scalar_f32(BinaryOp::Pow, x, y);
            let want = (x as f64).powf(y as f64);
            let w32 = want as f32;
            let ok = (got.is_nan() && w32.is_nan()) || got.to_bits() == w32.to_bits();
            assert!(ok, "pow({x}, {y}) = {got}, want {w32}");
        }
    }
    // Dense check of ordinary values, including huge and tiny results.
    let mut r = rng(5);
    for _ in 0..200_000 {
        let x: f32 = r.gen_range(0.0..50.0);
        let y: f32 = r.gen_range(-30.0..30.0);
        let e = ulp_err(
            bin::binary_scalar_f32(BinaryOp::Pow, x, y),
            (x as f64).powf(y as f64),
        );
        assert!(e <= 0.51, "pow({x}, {y}): {e} ulp");
    }
}

#[test]
fn max_min_propagate_nan_and_compare_exactly() {
    let (nan, inf) = (f32::NAN, f32::INFINITY);
    let a = [nan, 1.0, nan, -inf, 0.0];
    let b = [1.0, nan, nan, 3.0, -0.0];
    let mut o = [0.0; 5];
    bin::binary_f32(BinaryOp::Maximum, &a, &b, &mut o);
    assert!(o[0].is_nan() && o[1].is_nan() && o[2].is_nan() && o[3] == 3.0 && o[4] == 0.0);
    bin::binary_f32(BinaryOp::Minimum, &a, &b, &mut o);
    assert!(o[0].is_nan() && o[1].is_nan() && o[2].is_nan() && o[3] == -inf);
    bin::binary_f32(BinaryOp::Ne, &a, &b, &mut o);
    assert_eq!(o, [1.0, 1.0, 1.0, 1.0, 0.0]);
    bin::binary_f32(BinaryOp::LogicalAnd, &a, &b, &mut o);
    assert_eq!(o, [1.0, 1.0, 1.0, 1.0, 0.0]);
}

#[test]
fn where_and_fma() {
    for (k, &n) in SIZES.iter().enumerate() {
        let c: Vec<f32> = inputs(400 + k as u64, n, 1.0, true)
            .into_iter()
            .map(|v| if v > 0.3 { 0.0 } else { v })
            .collect();
        let cu: Vec<u8> = c.iter().map(|&v| (v != 0.0) as u8 * 7).collect();
        let a = inputs(500 + k as u64, n, 1.0, true);
        let b = inputs(600 + k as u64, n, 1.0, true);
        let want: Vec<f32> = (0..n)
            .map(|i| if c[i] != 0.0 { a[i] } else { b[i] })
            .collect();
        let mut got = vec![0.0; n];
        bin::where_f32(&c, &a, &b, &mut got);
        assert!(same_bits(&got, &want), "where n={n}");
        bin::where_u8_f32(&cu, &a, &b, &mut got);
        assert!(same_bits(&got, &want), "where_u8 n={n}");
        let want_a: Vec<f32> = (0..n)
            .map(|i| if c[i] != 0.0 { 2.0 } else { b[i] })
            .collect();
        bin::where_f32_scalar_a(&c, 2.0, &b, &mut got);
        assert!(same_bits(&got, &want_a), "where_scalar_a n={n}");
        let want_b: Vec<f32> = (0..n)
            .map(|i| if c[i] != 0.0 { a[i] } else { f32::NEG_INFINITY })
            .collect();
        bin::where_f32_scalar_b(&c, &a, f32::NEG_INFINITY, &mut got);
        assert!(same_bits(&got, &want_b), "where_scalar_b n={n}");
        let want_s: Vec<f32> = (0..n)
            .map(|i| if c[i] != 0.0 { 1.0 } else { -1.0 })
            .collect();
        bin::where_f32_scalars(&c, 1.0, -1.0, &mut got);
        assert!(same_bits(&got, &want_s), "where_scalars n={n}");
        let mut w64 = vec![0.0; n];
        bin::where_f64(&widen(&c), &widen(&a), &widen(&b), &mut w64);
        assert!(w64
            .iter()
            .zip(&want)
            .all(|(x, &y)| (x.is_nan() && y.is_nan()) || *x == y as f64));

        // fma == mul then add, bit for bit.
        let mut prod = vec![0.0; n];
        bin::binary_f32(BinaryOp::Mul, &a, &b, &mut prod);
        let mut sum = vec![0.0; n];
        bin::binary_f32(BinaryOp::Add, &prod, &c, &mut sum);
        bin::fma_f32(&a, &b, &c, &mut got);
        assert!(same_bits(&got, &sum), "fma n={n}");
    }
}
