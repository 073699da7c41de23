//! Scalar transcendental functions written to vectorise.
//!
//! Each function is branch-free straight-line `f32` arithmetic marked
//! `#[inline(always)]`, so a loop calling it inside a [`crate::simd_dispatch!`]
//! body becomes AVX-512/AVX2 code. Accuracy targets are a few ulp over the
//! whole range, checked against `f64` in the tests.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding it rounds an f32 of magnitude < 2^22 to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `e^x` (max error ~2 ulp); `exp(-inf) = 0`, `exp(inf) = inf`, NaN propagates.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(-103.0, 88.5);
    let t = xc * LOG2E + ROUND_MAGIC;
    let k = t - ROUND_MAGIC;
    let ki = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let r = xc - k * LN2_HI - k * LN2_LO;
    let r2 = r * r;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5.000_000_1e-1;
    let p = p * r2 + r + 1.0;
    // Scale by 2^k in two halves so neither overflows the exponent field
    // (k = 128) nor underflows it (k < -126 gives a subnormal result).
    let k1 = ki >> 1;
    let s1 = f32::from_bits(((k1 + 127) << 23) as u32);
    let s2 = f32::from_bits(((ki - k1 + 127) << 23) as u32);
    let y = p * s1 * s2;
    let y = if x < -103.0 { 0.0 } else { y };
    let y = if x > 88.5 { f32::INFINITY } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_f64_over_range() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.5 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 4e-7, "exp worst relative error {worst}");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }
}
