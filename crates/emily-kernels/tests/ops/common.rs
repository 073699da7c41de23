//! Shared helpers: seeded inputs and error measures.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// Sizes every kernel is tested at; the last one exercises the parallel path.
pub const SIZES: [usize; 6] = [1, 7, 77, 1000, 4099, 1 << 20 | 3];

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `n` values: mostly normal(0, scale), with some large, tiny, zero and (when
/// `specials`) ±inf and NaN entries sprinkled in.
pub fn inputs(seed: u64, n: usize, scale: f32, specials: bool) -> Vec<f32> {
    let mut r = rng(seed);
    let normal = Normal::new(0.0f32, scale).unwrap();
    (0..n)
        .map(|_| match r.gen_range(0..100) {
            0 => r.gen_range(-1e6..1e6),
            1 => r.gen_range(-1e-30..1e-30),
            2 => 0.0,
            3 if specials => f32::INFINITY,
            4 if specials => f32::NEG_INFINITY,
            5 if specials => f32::NAN,
            _ => normal.sample(&mut r),
        })
        .collect()
}

/// Spacing of f32 values at `v` (2^-149 in the subnormal range).
pub fn ulp_at(v: f64) -> f64 {
    let a = v.abs().max(f32::MIN_POSITIVE as f64);
    2f64.powi(a.log2().floor() as i32 - 23)
}

/// Error of `got` in ulps of the exact `want`; special values must match exactly
/// (NaN with NaN, infinities and signs included), else the error is infinite.
pub fn ulp_err(got: f32, want: f64) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let w32 = want as f32;
    if w32.is_infinite() || got.is_infinite() {
        return if got == w32 { 0.0 } else { f64::INFINITY };
    }
    (got as f64 - want).abs() / ulp_at(want)
}

/// Asserts every `got[i]` is within `tol` of `want[i]` under `err`, naming the
/// worst element on failure.
pub fn assert_close<T: Copy + std::fmt::Debug>(
    what: &str,
    x: &[T],
    got: &[f32],
    want: &[f64],
    tol: f64,
    err: impl Fn(f32, f64) -> f64,
) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0.0, 0);
    for i in 0..got.len() {
        let e = err(got[i], want[i]);
        if e > worst.0 || e.is_nan() {
            worst = (e, i);
        }
    }
    let (e, i) = worst;
    assert!(
        e <= tol,
        "{what}: error {e} > {tol} at {i}: x = {:?}, got {}, want {}",
        x.get(i),
        got[i],
        want[i]
    );
}
