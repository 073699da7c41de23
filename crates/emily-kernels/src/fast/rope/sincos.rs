//! Accurate, vectorisable `(cos, sin)` of RoPE angles.
//!
//! An angle `pos * scale * inv_freq` reaches thousands of radians at long
//! context, where an `f32` angle has lost three or four digits before the sine
//! is even taken. So the angle is formed in `f64`, reduced to `[-pi/4, pi/4]`
//! with a two-part `pi/2` (Cody-Waite: the leading part has 33 bits, so `k * PIO2_HI`
//! is exact for |angle| < 2^20), and the short
//! polynomials are evaluated in `f64` too; only the results are rounded to `f32`.
//! Everything is straight-line arithmetic with selects, so a loop over the
//! frequencies vectorises (8 `f64` lanes with AVX-512).

use std::f64::consts::FRAC_2_PI;

/// The first 33 bits of `pi/2` (so `k * PIO2_HI` is exact for |k| < 2^20) ...
const PIO2_HI: f64 = 1.570_796_326_734_125_6;
/// ... and the rest of it.
const PIO2_LO: f64 = 6.077_100_506_506_192e-11;

/// Largest |angle| [`cos_sin`] reduces accurately (`k * PIO2_HI` stays exact).
const REDUCE_LIMIT: f64 = (1u64 << 20) as f64;

/// `(cos a, sin a)`, each within ~1e-9 absolute of the exact value before the
/// final rounding to `f32` for |a| < [`REDUCE_LIMIT`] (callers use the
/// standard library beyond it).
#[inline(always)]
pub(crate) fn cos_sin(a: f64) -> (f32, f32) {
    let k = (a * FRAC_2_PI).round_ties_even();
    let r = (a - k * PIO2_HI) - k * PIO2_LO;
    let r2 = r * r;
    // Taylor series to r^9 / r^10: truncation error < 2e-9 on [-pi/4, pi/4].
    let s = r
        * (1.0
            + r2 * (-1.0 / 6.0
                + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362_880.0)))));
    let c = 1.0
        + r2 * (-0.5
            + r2 * (1.0 / 24.0
                + r2 * (-1.0 / 720.0 + r2 * (1.0 / 40_320.0 + r2 * (-1.0 / 3_628_800.0)))));
    // Quadrant q = k mod 4, kept in f64 so the selects stay vectorised.
    let q = k - 4.0 * (k * 0.25).floor();
    let (cos, sin) = if q == 0.0 {
        (c, s)
    } else if q == 1.0 {
        (-s, c)
    } else if q == 2.0 {
        (-c, -s)
    } else {
        (s, -c)
    };
    (cos as f32, sin as f32)
}

/// The `f64` inverse frequencies of a RoPE call: `freqs` when given (already
/// inverse frequencies), else `base^(-2i/dims)` for `i < dims/2`.
pub(crate) fn inv_freqs(dims: usize, base: f32, freqs: Option<&[f32]>) -> Vec<f64> {
    match freqs {
        Some(f) => f.iter().map(|&v| v as f64).collect(),
        None => {
            let base = base as f64;
            (0..dims / 2)
                .map(|i| base.powf(-((2 * i) as f64) / dims as f64))
                .collect()
        }
    }
}

crate::simd_dispatch! {
    /// Fills `cos[i], sin[i]` with the cosine and sine of `pos * inv[i]`
    /// (`pos` already multiplied by the RoPE scale).
    /// Angles beyond the fast reduction's range (positions near `usize::MAX`,
    /// hostile frequencies) take the standard library's full range reduction.
    pub(crate) fn fill_cos_sin(pos: f64, inv: &[f64], cos: &mut [f32], sin: &mut [f32]) {
        let pairs = inv.iter().zip(cos.iter_mut()).zip(sin.iter_mut());
        if inv.iter().all(|f| (pos * *f).abs() < REDUCE_LIMIT) {
            for ((f, c), s) in pairs {
                (*c, *s) = cos_sin(pos * *f);
            }
        } else {
            for ((f, c), s) in pairs {
                let (sv, cv) = (pos * *f).sin_cos();
                (*c, *s) = (cv as f32, sv as f32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cos_sin_matches_std_to_1e_8() {
        let mut worst = 0.0f64;
        let mut a = -9000.0f64;
        while a < 9000.0 {
            let (c, s) = cos_sin(a);
            worst = worst
                .max((c as f64 - a.cos()).abs())
                .max((s as f64 - a.sin()).abs());
            a += 0.377;
        }
        assert!(worst < 1e-7, "worst abs error {worst}");
    }

    #[test]
    fn huge_angles_use_full_range_reduction() {
        let inv = [1.0, 0.1, 1e-4, 3.0];
        let (mut c, mut s) = ([0f32; 4], [0f32; 4]);
        for pos in [1e6, 2e6, 1.8e19, -5e12] {
            fill_cos_sin(pos, &inv, &mut c, &mut s);
            for (i, f) in inv.iter().enumerate() {
                let a = pos * f;
                assert!((c[i] as f64 - a.cos()).abs() < 1e-6, "cos {a}");
                assert!((s[i] as f64 - a.sin()).abs() < 1e-6, "sin {a}");
            }
        }
    }
}
