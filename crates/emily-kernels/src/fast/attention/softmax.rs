//! The online softmax of a score tile, in base 2.
//!
//! Scores arrive pre-multiplied by `scale * log2(e)` (folded into the packed
//! queries), so `exp(s - max)` becomes `2^(s' - max')` and costs one polynomial
//! without a multiply. Statistics are per query lane: a running maximum `m`, a
//! running denominator `l`, and per tile the factor `alpha = 2^(m_old - m_new)`
//! that rescales what was accumulated before.

/// `log2(e)`: converts natural-log-domain scores, masks and sinks to base 2.
pub(super) const LOG2E: f32 = std::f32::consts::LOG2_E;

/// Whether a call's lanes-layout tiles ([`super::microkernel`]'s one-pass
/// `softmax_max`, every tile of an unmasked call) take their exponential
/// from the short polynomial [`EXP2_SHORT`] rather than the Cephes `e^r`
/// form: only calls without any mask. The rule of one place:
///
/// - `Mask::None` (Whisper's encoder self-attention, the one large
///   non-causal product; a decoding step's cross-attention runs the rows
///   layout on AVX2 and AVX-512, which keeps the Cephes form): the short
///   form, five fused multiply-adds instead of eight operations per vector
///   (~3.5 % less kernel CPU at `[1, 6, 1500, 64]` on Zen 2, loaded).
/// - every masked call (causal language-model prefill and decoding, bands,
///   additive and Boolean masks): the Cephes form, unchanged — both forms
///   are within 3e-7 of `2^x`, but the short one flips a near tie of the
///   LLM CLI golden (`generate_streams_the_greedy_continuation`), recorded
///   with the Cephes form.
pub(super) fn short_exp(mask: &super::Mask<'_>) -> bool {
    matches!(mask, super::Mask::None)
}

/// `2^f ≈ 1 + f·Q(f)` on `|f| <= 1/2`: the coefficients of `Q`, highest
/// degree first, a degree-4 polynomial interpolating `(2^f − 1)/f` at
/// Chebyshev nodes (the fitted `0.693147184` rounds to ln 2 in f32). With
/// [`exp2_nonpos_by`]'s range reduction, relative error < 3e-7.
pub(super) const EXP2_SHORT: [f32; 5] = [
    1.338_284_7e-3,
    9.666_368e-3,
    5.550_376_2e-2,
    2.402_235e-1,
    std::f32::consts::LN_2,
];

/// `2^x` for `x <= 0`, relative error < 3e-7 (`2^−inf = 0`, NaN stays NaN,
/// arguments below −126 give 0): [`exp2_nonpos_by`] with `2^f ≈ 1 + f·Q(f)`,
/// `Q` of degree 4 ([`EXP2_SHORT`]), its products fused when `FMA`. Four
/// operations fewer per vector than the Cephes `e^r` form of
/// [`exp2_nonpos`] at the same accuracy: the training strips' exponential,
/// and the portable lanes kernel's under [`short_exp`].
#[inline(always)]
pub(crate) fn exp2_short<const FMA: bool>(x: f32) -> f32 {
    use crate::math::mad;
    exp2_nonpos_by(x, |f| {
        let [c0, rest @ ..] = EXP2_SHORT;
        let p = rest.iter().fold(c0, |p, &c| mad::<FMA>(p, f, c));
        mad::<FMA>(p, f, 1.0)
    })
}

/// Rounds an f32 of magnitude < 2^22 to an integer when added and subtracted.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `2^x` for `x <= 0` (relative error ~2e-7); `2^-inf = 0`, NaN stays NaN.
/// Arguments below -126 return 0 (the result would be subnormal).
#[inline(always)]
pub(super) fn exp2_nonpos(x: f32) -> f32 {
    exp2_nonpos_with::<false>(x)
}

/// [`exp2_nonpos`], its polynomial in fused multiply-adds when `FMA` (the
/// caller's ISA has them).
#[inline(always)]
pub(crate) fn exp2_nonpos_with<const FMA: bool>(x: f32) -> f32 {
    use crate::math::mad;
    exp2_nonpos_by(x, |f| {
        // e^r on |r| <= ln(2)/2 with the Cephes expf polynomial.
        let r = f * std::f32::consts::LN_2;
        let p = 1.987_569_1e-4_f32;
        let p = mad::<FMA>(p, r, 1.398_199_9e-3);
        let p = mad::<FMA>(p, r, 8.333_452e-3);
        let p = mad::<FMA>(p, r, 4.166_579_6e-2);
        let p = mad::<FMA>(p, r, 1.666_666_5e-1);
        let p = mad::<FMA>(p, r, 0.5);
        mad::<FMA>(p, r * r, r) + 1.0
    })
}

/// `2^x` for `x <= 0` as `2^k · two_f(f)`, `k` the nearest integer to `x`
/// and `two_f` an approximation of `2^f` on `|f| <= 1/2`; `2^-inf = 0`,
/// NaN stays NaN, arguments below -126 return 0 (the result would be
/// subnormal). The range reduction of every exponential of the attention
/// kernels (their polynomials differ).
#[inline(always)]
pub(crate) fn exp2_nonpos_by(x: f32, two_f: impl Fn(f32) -> f32) -> f32 {
    // `if` rather than `max`, so NaN passes through and it is one instruction.
    let xc = if x < -126.0 { -126.0 } else { x };
    let t = xc + ROUND_MAGIC;
    let k = t - ROUND_MAGIC;
    let ki = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let p = two_f(xc - k);
    // 2^k is a normal float for -126 <= k <= 127; a NaN `x` makes `p` NaN.
    let y = p * f32::from_bits((ki.wrapping_add(127) << 23) as u32);
    if x < -126.0 {
        0.0
    } else {
        y
    }
}

/// One online-softmax step over a chunk of `lanes` query lanes (the portable
/// version; the x86 micro-kernels implement the same contract with
/// intrinsics). `st` holds `keys` rows of score lanes at stride `ldst`; the
/// scores become unnormalised probabilities `2^(s - m_new)` in place,
/// `alpha = 2^(m_old - m_new)`, `l = alpha * l + sum(p)` and `m = m_new`, where
/// `m_new` is the running maximum including this tile.
///
/// A lane whose maximum is still `-inf` (nothing visible yet) subtracts 0
/// instead, so it produces zeros rather than NaN. The exponential is
/// [`exp2_short`] with `SHORT` (see [`short_exp`]), else [`exp2_nonpos`].
pub(super) fn online_update<const SHORT: bool>(
    st: &mut [f32],
    ldst: usize,
    keys: usize,
    m: &mut [f32],
    l: &mut [f32],
    alpha: &mut [f32],
) {
    let lanes = m.len();
    for n in 0..lanes {
        let mut mx = m[n];
        for j in 0..keys {
            let s = st[j * ldst + n];
            mx = if s > mx { s } else { mx };
        }
        let safe = if mx == f32::NEG_INFINITY { 0.0 } else { mx };
        let exp2 = |x: f32| {
            if SHORT {
                exp2_short::<false>(x)
            } else {
                exp2_nonpos(x)
            }
        };
        alpha[n] = exp2(m[n] - safe);
        let mut sum = 0.0f32;
        for j in 0..keys {
            let p = exp2(st[j * ldst + n] - safe);
            st[j * ldst + n] = p;
            sum += p;
        }
        l[n] = l[n] * alpha[n] + sum;
        m[n] = mx;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp2_matches_f64() {
        let mut worst = 0.0f64;
        let mut x = -125.0f32;
        while x <= 0.0 {
            let want = (x as f64).exp2();
            let got = exp2_nonpos(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_37;
        }
        assert!(worst < 3e-7, "exp2 worst relative error {worst}");
        let mut x = -125.0f32;
        while x <= 0.0 {
            let (plain, fused) = (exp2_nonpos(x) as f64, exp2_nonpos_with::<true>(x) as f64);
            assert!(((fused - plain) / plain).abs() < 3e-7, "fused exp2({x})");
            x += 0.001_37;
        }
        assert_eq!(exp2_nonpos(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp2_nonpos(0.0), 1.0);
        assert_eq!(exp2_nonpos(-1.0), 0.5);
        assert!(exp2_nonpos(f32::NAN).is_nan());
    }

    #[test]
    fn exp2_short_matches_f64() {
        for fma in [false, true] {
            let e = |x: f32| {
                if fma {
                    exp2_short::<true>(x)
                } else {
                    exp2_short::<false>(x)
                }
            };
            let mut worst = 0.0f64;
            let mut x = -126.0f32;
            while x <= 0.0 {
                let want = (x as f64).exp2();
                worst = worst.max(((e(x) as f64 - want) / want).abs());
                x += 0.000_97;
            }
            assert!(
                worst < 3e-7,
                "exp2_short (fma {fma}) worst relative error {worst}"
            );
            assert_eq!(e(f32::NEG_INFINITY), 0.0);
            assert_eq!(e(-127.0), 0.0);
            assert_eq!(e(0.0), 1.0);
            assert_eq!(e(-1.0), 0.5);
            assert!(e(f32::NAN).is_nan());
        }
    }
}
