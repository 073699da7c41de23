//! Unary kernels against the `f64` reference, in ulps, at every test size.

use crate::common::{assert_close, inputs, ulp_err, SIZES};
use emily_kernels::unary::{self, UnaryOp};

/// Max error in f32 ulps of the exact result, per op.
fn tolerance(op: UnaryOp) -> f64 {
    use UnaryOp::*;
    match op {
        Neg | Abs | Relu | Floor | Ceil | Round | Sign | LogicalNot => 0.0,
        Sqrt | Recip | Square => 0.5,
        Exp | Rsqrt => 1.5,
        Log => 1.0,
        Sin | Cos | Tanh => 2.0,
        Erf | Sigmoid => 3.0,
        Silu => 3.5,
        GeluErf => 7.0,
        GeluTanh => 5.0,
    }
}

/// The f32 GELUs are -0 where their exact value is below the least normal
/// f32 (`math::GELU_ERF_FLUSH`, `GELU_TANH_FLUSH`); the f64 reference is exact.
fn flush_like_f32(op: UnaryOp, x: &[f32], want: &mut [f64]) {
    let flush = match op {
        UnaryOp::GeluErf => emily_kernels::math::GELU_ERF_FLUSH,
        UnaryOp::GeluTanh => emily_kernels::math::GELU_TANH_FLUSH,
        _ => return,
    };
    for (w, &v) in want.iter_mut().zip(x) {
        if v < flush {
            *w = -0.0;
        }
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

#[test]
fn every_op_matches_f64_at_every_size() {
    for op in UnaryOp::ALL {
        for (k, &n) in SIZES.iter().enumerate() {
            let x = inputs(100 + k as u64, n, 3.0, true);
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let mut want = vec![0.0; n];
            unary::unary_f64(op, &x64, &mut want);
            flush_like_f32(op, &x, &mut want);
            let mut got = vec![0.0; n];
            if n > 100_000 {
                unary::unary_f32_par(op, &x, &mut got);
            } else {
                unary::unary_f32(op, &x, &mut got);
            }
            assert_close(
                &format!("{op:?} n={n}"),
                &x,
                &got,
                &want,
                tolerance(op),
                ulp_err,
            );

            // In-place, parallel and scalar forms give the same bits.
            let mut inplace = x.clone();
            if n > 100_000 {
                unary::unary_f32_inplace_par(op, &mut inplace);
            } else {
                unary::unary_f32_inplace(op, &mut inplace);
            }
            assert!(same_bits(&inplace, &got), "{op:?} n={n}: in-place differs");
            if n < 5000 {
                let scalar: Vec<f32> = x.iter().map(|&v| unary::unary_scalar_f32(op, v)).collect();
                assert!(same_bits(&scalar, &got), "{op:?} n={n}: scalar differs");
            }
        }
    }
}

#[test]
fn parallel_matches_serial_bitwise() {
    let n = 3 << 20;
    let x = inputs(7, n, 5.0, true);
    for op in [UnaryOp::Exp, UnaryOp::GeluErf, UnaryOp::Neg] {
        let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
        unary::unary_f32(op, &x, &mut a);
        unary::unary_f32_par(op, &x, &mut b);
        assert!(same_bits(&a, &b), "{op:?}");
    }
}

#[test]
fn special_values() {
    use UnaryOp::*;
    let x = [
        0.0f32,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -2.5,
        2.5,
        0.5,
    ];
    let check = |op: UnaryOp, want: [f32; 8]| {
        let mut got = [0.0f32; 8];
        unary::unary_f32(op, &x, &mut got);
        assert!(same_bits(&got, &want), "{op:?}: {got:?} != {want:?}");
    };
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    check(Relu, [0.0, 0.0, inf, 0.0, nan, 0.0, 2.5, 0.5]);
    check(Sign, [0.0, -0.0, 1.0, -1.0, nan, -1.0, 1.0, 1.0]);
    check(Round, [0.0, -0.0, inf, -inf, nan, -2.0, 2.0, 0.0]);
    check(LogicalNot, [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    check(Recip, [inf, -inf, 0.0, -0.0, nan, -0.4, 0.4, 2.0]);
    check(
        Silu,
        [
            0.0,
            -0.0,
            inf,
            -0.0,
            nan,
            unary::unary_scalar_f32(Silu, -2.5),
            unary::unary_scalar_f32(Silu, 2.5),
            unary::unary_scalar_f32(Silu, 0.5),
        ],
    );
    check(
        Exp,
        [
            1.0,
            1.0,
            inf,
            0.0,
            nan,
            (-2.5f32).exp(),
            2.5f32.exp(),
            0.5f32.exp(),
        ],
    );
}
