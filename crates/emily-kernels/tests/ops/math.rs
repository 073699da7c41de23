//! `math` functions against `f64` over dense ranges, every binade and random bits.

use crate::common::{rng, ulp_err};
use emily_kernels::math;
use rand::Rng;

fn sweep(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    (0..=n)
        .map(|i| lo + (hi - lo) * (i as f32 / n as f32))
        .collect()
}

/// ±m·2^e for every binade (subnormals included) and a few mantissas, plus specials.
fn binades() -> Vec<f32> {
    let mut v = vec![0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
    v.extend([f32::MAX, f32::MIN_POSITIVE, f32::EPSILON, 1e-45]);
    for e in -149..128 {
        for m in [1.0, 1.1, 1.37, 1.5, 1.7, 1.999] {
            let x = m * 2f64.powi(e);
            v.push(x as f32);
            v.push(-x as f32);
        }
    }
    v
}

fn random_bits(seed: u64, n: usize) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n).map(|_| f32::from_bits(r.gen())).collect()
}

/// Worst ulp error of `f` against `r` over `xs`; panics above `tol`.
fn check1(name: &str, f: fn(f32) -> f32, r: fn(f64) -> f64, xs: &[f32], tol: f64) {
    let mut worst = (0.0f64, 0.0f32);
    for &x in xs {
        let e = ulp_err(f(x), r(x as f64));
        if e > worst.0 || e.is_nan() {
            worst = (e, x);
        }
    }
    eprintln!("{name}: worst {:.3} ulp at x = {:e}", worst.0, worst.1);
    assert!(
        worst.0 <= tol,
        "{name}: {} ulp > {tol} at x = {:e}: got {:e}, want {:e}",
        worst.0,
        worst.1,
        f(worst.1),
        r(worst.1 as f64)
    );
}

/// [`check1`] on the plain and the fused-multiply-add form of a function.
fn check(name: &str, f: [fn(f32) -> f32; 2], r: fn(f64) -> f64, xs: &[f32], tol: f64) {
    check1(name, f[0], r, xs, tol);
    check1(&format!("{name} (fma)"), f[1], r, xs, tol);
}

fn all_inputs(lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut xs = sweep(lo, hi, 400_000);
    xs.extend(binades());
    xs.extend(random_bits(seed, 200_000));
    xs
}

fn sigmoid64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        x.exp() / (1.0 + x.exp())
    }
}

fn silu64(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        -0.0
    } else {
        x * sigmoid64(x)
    }
}

/// GELU (erf) with the f32 kernels' flush: -0 below `GELU_ERF_FLUSH`.
fn gelu_erf64(x: f64) -> f64 {
    if x < math::GELU_ERF_FLUSH as f64 {
        -0.0
    } else {
        x * 0.5 * math::erfc_f64(-x * std::f64::consts::FRAC_1_SQRT_2)
    }
}

/// GELU (tanh) with the f32 kernels' flush: -0 below `GELU_TANH_FLUSH`.
fn gelu_tanh64(x: f64) -> f64 {
    if x < math::GELU_TANH_FLUSH as f64 {
        return -0.0;
    }
    let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    x * sigmoid64(2.0 * u)
}

#[test]
fn f64_erf_reference_matches_known_values() {
    // (x, erf x, erfc x) from a 30-digit evaluation.
    let known = [
        (0.1, 0.11246291601828488, 0.887537083981715),
        (0.5, 0.5204998778130465, 0.4795001221869535),
        (1.0, 0.8427007929497149, 0.15729920705028513),
        (2.0, 0.9953222650189527, 0.004677734981047266),
        (2.5, 0.999593047982555, 0.0004069520174449589),
        (3.0, 0.9999779095030014, 2.209049699858544e-05),
        (5.0, 0.9999999999984626, 1.537459794428035e-12),
        (10.0, 1.0, 2.088487583762545e-45),
        (26.0, 1.0, 5.663192408856143e-296),
    ];
    for (x, e, c) in known {
        assert!((math::erf_f64(x) - e).abs() <= 3e-16, "erf({x})");
        assert!((math::erf_f64(-x) + e).abs() <= 3e-16, "erf(-{x})");
        assert!(((math::erfc_f64(x) - c) / c).abs() <= 1e-14, "erfc({x})");
        assert!(
            (math::erfc_f64(-x) - (2.0 - c)).abs() <= 4e-16,
            "erfc(-{x})"
        );
    }
}

#[test]
fn exp_full_range() {
    check(
        "exp",
        [math::exp, math::exp_with::<true>],
        f64::exp,
        &all_inputs(-110.0, 90.0, 1),
        1.5,
    );
}

#[test]
fn log_full_range() {
    check(
        "log",
        [math::log, math::log_with::<true>],
        f64::ln,
        &all_inputs(0.0, 10.0, 2),
        1.0,
    );
    assert!(math::log(-1.0).is_nan());
    assert!(math::log(f32::NEG_INFINITY).is_nan());
    assert_eq!(math::log(-0.0), f32::NEG_INFINITY);
    assert_eq!(math::log(1.0), 0.0);
}

#[test]
fn tanh_full_range() {
    check(
        "tanh",
        [math::tanh, math::tanh_with::<true>],
        f64::tanh,
        &all_inputs(-10.0, 10.0, 3),
        2.0,
    );
    assert!(math::tanh(-0.0).is_sign_negative());
}

#[test]
fn erf_full_range() {
    check(
        "erf",
        [math::erf, math::erf_with::<true>],
        math::erf_f64,
        &all_inputs(-5.0, 5.0, 4),
        3.0,
    );
    check(
        "erfc",
        [math::erfc, math::erfc_with::<true>],
        math::erfc_f64,
        &all_inputs(-5.0, 11.0, 5),
        6.0,
    );
}

#[test]
fn sigmoid_silu_full_range() {
    check(
        "sigmoid",
        [math::sigmoid, math::sigmoid_with::<true>],
        sigmoid64,
        &all_inputs(-110.0, 30.0, 6),
        3.0,
    );
    check(
        "silu",
        [math::silu, math::silu_with::<true>],
        silu64,
        &all_inputs(-110.0, 30.0, 7),
        3.5,
    );
}

#[test]
fn gelu_full_range() {
    check(
        "gelu_erf",
        [math::gelu_erf, math::gelu_erf_with::<true>],
        gelu_erf64,
        &all_inputs(-15.0, 10.0, 8),
        7.0,
    );
    check(
        "gelu_tanh",
        [math::gelu_tanh, math::gelu_tanh_with::<true>],
        gelu_tanh64,
        &all_inputs(-12.0, 10.0, 9),
        5.0,
    );
}

#[test]
fn sin_cos_full_range() {
    let xs: Vec<f32> = all_inputs(-50.0, 50.0, 10)
        .into_iter()
        .filter(|x| x.abs() < 8e8 || x.is_nan())
        .collect();
    check(
        "sin",
        [math::sin, math::sin_with::<true>],
        f64::sin,
        &xs,
        2.0,
    );
    check(
        "cos",
        [math::cos, math::cos_with::<true>],
        f64::cos,
        &xs,
        2.0,
    );
    for x in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
        assert!(math::sin(x).is_nan() && math::cos(x).is_nan());
    }
    for x in [1e9f32, -3e12, 1e30, f32::MAX] {
        assert!(math::sin(x).abs() <= 1.0 && math::cos(x).abs() <= 1.0);
    }
    assert!(math::sin(-0.0).is_sign_negative());
}

#[test]
fn exp_nonpos_matches_exp() {
    let xs: Vec<f32> = all_inputs(-110.0, 0.0, 11)
        .into_iter()
        .filter(|&x| x <= 0.0)
        .collect();
    check(
        "exp_nonpos",
        [
            math::exp_nonpos_with::<false>,
            math::exp_nonpos_with::<true>,
        ],
        |x| {
            if x < math::EXP_NONPOS_FLUSH as f64 {
                0.0
            } else {
                x.exp()
            }
        },
        &xs,
        1.5,
    );
    assert_eq!(math::exp_nonpos_with::<false>(f32::NEG_INFINITY), 0.0);
}
