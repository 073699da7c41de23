//! Scalar transcendental functions written to vectorise.
//!
//! Each `f32` function is branch-free straight-line arithmetic marked
//! `#[inline(always)]` (conditions become vector selects), so a loop calling it
//! inside a [`crate::simd_dispatch!`] body becomes AVX-512/AVX2 code. Accuracy
//! targets are a few ulp over the whole range, checked against `f64` in the
//! tests; special values (±inf, NaN, ±0, subnormals) follow C99 where it
//! defines them and the mathematical limit elsewhere.
//!
//! Every function comes in two forms: `f(x)` uses separate multiplies and adds,
//! so it gives the same bits on every instruction set; `f_with::<FMA>(x)` fuses
//! them when `FMA` is true (faster and slightly more accurate). Only pass
//! `FMA = true` in code compiled with the `fma` target feature (or on aarch64):
//! elsewhere each fused op is a slow library call. The crate's own kernels
//! dispatch through `dispatch_fma!`, which does exactly that.
//!
//! [`erf_f64`] and [`erfc_f64`] are scalar `f64` references (std has no erf).

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `k * LN2_HI` is exact for |k| < 2^15.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding it rounds an f32 of magnitude < 2^22 to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Like [`crate::simd_dispatch!`], but the body is generic over
/// `const $fma: bool`: true in the AVX-512 / AVX2+FMA versions and on aarch64,
/// false in the x86-64 baseline version.
macro_rules! dispatch_fma {
    ($(#[$meta:meta])* $vis:vis fn $name:ident < $fma:ident > ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body<const $fma: bool>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { body::<true>($($arg),*) }
                #[target_feature(enable = "avx2,fma,f16c")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { body::<true>($($arg),*) }
                match $crate::simd::isa() {
                    // SAFETY: `isa()` reported these features present on this CPU.
                    $crate::simd::Isa::Avx512 => return unsafe { v4($($arg),*) },
                    $crate::simd::Isa::Avx2 => return unsafe { v3($($arg),*) },
                    $crate::simd::Isa::Baseline => {}
                }
            }
            body::<{ cfg!(target_arch = "aarch64") }>($($arg),*)
        }
    };
}
pub(crate) use dispatch_fma;

/// `a * b + c`: one rounding when `FMA` (see the module docs), else two.
#[inline(always)]
pub fn mad<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Horner evaluation `(((c0 z + c1) z + c2) ...)`, written out so it inlines
/// into straight-line code.
macro_rules! horner {
    ($fma:ident, $z:expr; $c0:expr $(, $c:expr)* $(,)?) => {{
        let z = $z;
        let p: f32 = $c0;
        $(let p = mad::<$fma>(p, z, $c);)*
        p
    }};
}

/// `e^x` (max error ~1 ulp); `exp(-inf) = 0`, `exp(inf) = inf`, NaN propagates.
/// Results below the smallest subnormal round to 0, above `f32::MAX` to inf.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    exp_with::<false>(x)
}

/// [`exp`], fused multiply-adds when `FMA`.
#[inline(always)]
pub fn exp_with<const FMA: bool>(x: f32) -> f32 {
    // Bounds chosen so the scaling below overflows / underflows naturally and
    // correctly rounded at the edges (e^88.7228 = 2^128, e^-103.97 = 2^-150).
    let y = exp_scaled::<FMA>(x.clamp(-104.0, 88.75), 0);
    let y = if x < -104.0 { 0.0 } else { y };
    let y = if x > 88.75 { f32::INFINITY } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// `e^x` for `x <= 0`, without [`exp`]'s special-value handling (faster; for
/// softmax-style `exp(x - max)`): -inf and anything below
/// [`EXP_NONPOS_FLUSH`] give 0, NaN must not occur (it gives a finite value).
#[inline(always)]
pub fn exp_nonpos_with<const FMA: bool>(x: f32) -> f32 {
    let y = exp_scaled_nonpos::<FMA>(x.max(EXP_NONPOS_FLUSH));
    if x < EXP_NONPOS_FLUSH {
        0.0
    } else {
        y
    }
}

/// `ln 2^-126` (the f32 just above it): below it `e^x` is subnormal, and
/// [`exp_nonpos_with`] gives 0 instead, because x86 cores take a microcode
/// assist for each vector operation that makes a subnormal (or underflows
/// to 0) — masked (-inf) entries of a softmax row would each pay it.
pub const EXP_NONPOS_FLUSH: f32 = -87.336_54;

/// `2^-32`, the scale that keeps tiny exponentials normal.
const TWO_M32: f32 = 2.328_306_4e-10;

/// `e^x = 2^k p`: `k` the nearest integer to `x log2(e)` (as an `i32`) and
/// `p ≈ e^r` on `|r| <= ln(2)/2` (the Cephes polynomial, `r` reduced with
/// the split ln 2), for `x` in [-126, 88.75].
#[inline(always)]
fn exp_parts<const FMA: bool>(x: f32) -> (i32, f32) {
    let t = mad::<FMA>(x, LOG2E, ROUND_MAGIC);
    let k = t - ROUND_MAGIC;
    let ki = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let r = mad::<FMA>(-k, LN2_HI, x);
    let r = mad::<FMA>(-k, LN2_LO, r);
    let p = horner!(FMA, r; 1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2,
        1.666_666_5e-1, 0.5);
    (ki, mad::<FMA>(p, r * r, r) + 1.0)
}

/// `e^x` for `x` in [-110, 0] (no special-value handling), bit for bit
/// [`exp_scaled`]`(x, 0)` in fewer operations: `2^(k + 32)` is a normal
/// float for `k >= -158` (`x >= -110`; at `k = -159` it is `+0`, where
/// `exp_scaled` also gives 0), so `p 2^(k + 32)` is exact and the product
/// with `2^-32` rounds once, as `exp_scaled`'s second half does.
#[inline(always)]
fn exp_scaled_nonpos<const FMA: bool>(x: f32) -> f32 {
    exp_2p32_nonpos::<FMA>(x) * TWO_M32
}

/// `e^x 2^32` for `x` in [-110, 0]: `p 2^(k + 32)`, one product (exact
/// where normal, rounded once where not: bit for bit
/// [`exp_scaled`]`(x, 32)`); 0 at `k = -159`.
#[inline(always)]
fn exp_2p32_nonpos<const FMA: bool>(x: f32) -> f32 {
    let (ki, p) = exp_parts::<FMA>(x);
    p * f32::from_bits(((ki + 32 + 127) << 23) as u32)
}

/// `e^x * 2^scale` for `x` in [-126, 88.75] and `0 <= scale <= 32` (no
/// special-value handling): the scale lets callers keep tiny results normal.
#[inline(always)]
fn exp_scaled<const FMA: bool>(x: f32, scale: i32) -> f32 {
    let (ki, p) = exp_parts::<FMA>(x);
    // Scale by 2^k in two halves so neither overflows the exponent field
    // (k = 128) nor underflows it (k < -126 gives a subnormal result).
    let k1 = ki >> 1;
    let s1 = f32::from_bits(((k1 + 127) << 23) as u32);
    let s2 = f32::from_bits(((ki - k1 + 127 + scale) << 23) as u32);
    p * s1 * s2
}

/// Natural logarithm (max error ~1 ulp). `log(0) = -inf`, `log(x < 0) = NaN`,
/// `log(inf) = inf`; subnormal inputs are scaled exactly first.
#[inline(always)]
pub fn log(x: f32) -> f32 {
    log_with::<false>(x)
}

/// [`log`], fused multiply-adds when `FMA`.
#[inline(always)]
pub fn log_with<const FMA: bool>(x: f32) -> f32 {
    let sub = x < f32::MIN_POSITIVE;
    let xs = if sub { x * 8_388_608.0 } else { x }; // 2^23
                                                    // Subtracting the bits of sqrt(1/2) splits x = 2^e * m with m in
                                                    // [sqrt(1/2), sqrt(2)), so f = m - 1 is small and exact.
    let ix = (xs.to_bits() as i32).wrapping_sub(0x3f35_04f3);
    let e = (ix >> 23) - if sub { 23 } else { 0 };
    let m = f32::from_bits(((ix & 0x007f_ffff) + 0x3f35_04f3) as u32);
    let f = m - 1.0;
    // log(1 + f) = 2 atanh(s), s = f / (2 + f), rewritten as
    // f - (f^2/2 - s (f^2/2 + R(s^2))) so the leading term f is exact.
    let s = f / (2.0 + f);
    let z = s * s;
    // R(z) = 2z/3 + 2z^2/5 + ... (the atanh series)
    let r = z * horner!(FMA, z; 0.181_818_18, 0.222_222_22, 0.285_714_3, 0.4, 0.666_666_7);
    let hfsq = 0.5 * f * f;
    let ef = e as f32;
    let y = ef * LN2_HI + (f - (hfsq - mad::<FMA>(s, hfsq + r, ef * LN2_LO)));
    let y = if x == f32::INFINITY { x } else { y };
    let y = if x == 0.0 { f32::NEG_INFINITY } else { y };
    if x >= 0.0 {
        y
    } else if x.is_nan() {
        x
    } else {
        f32::NAN
    }
}

/// `e^{-c a^2}` for `c` in {1, 0.5} and `0 <= a <= 16`, with `a^2` formed
/// exactly (as `hi + lo`) so the result keeps relative accuracy in the tails.
#[inline(always)]
fn exp_neg_sq<const FMA: bool>(a: f32, c: f32) -> f32 {
    let hi = a * a;
    let lo = exact_square_lo::<FMA>(a, hi);
    // Below -110 the exponential is 0 in f32 either way.
    exp_scaled_nonpos::<FMA>((-c * hi).max(-110.0)) * mad::<FMA>(-c, lo, 1.0)
}

/// `erf(y) / y` for `y^2 = z <= 1` (fitted polynomial, error ~1e-9; the
/// constant term is fitted, one f32 ulp below 2/√π).
#[inline(always)]
#[allow(clippy::approx_constant)]
fn erf_small<const FMA: bool>(z: f32) -> f32 {
    horner!(FMA, z; 7.875_875e-5, -8.016_864_3e-4, 5.189_087_2e-3, -2.685_421_1e-2,
        1.128_359_4e-1, -3.761_262_6e-1, 1.128_379_1)
}

/// `erfc(y) e^{y^2}` for `y >= 0`: `t R(t)` with `t = 1 / (1 + y/2)` (fitted,
/// relative error ~1e-8 for y in [0, 10.1]; beyond, `e^{-y^2}` is 0 in f32).
#[inline(always)]
fn erfc_scaled<const FMA: bool>(y: f32) -> f32 {
    let t = 1.0 / mad::<FMA>(0.5, y, 1.0);
    let r = horner!(FMA, t; 3.262_555_6e-2, -1.729_953_6e-1, 3.361_779_2e-1, -2.244_871_4e-1,
        -8.132_560_6e-2, 7.114_500_6e-2, 4.053_223e-2, 1.893_762_4e-1, 2.445_541_8e-1,
        2.823_108e-1, 2.820_862e-1);
    t * r
}

/// The error function (absolute error < 1e-7, a few ulp); `erf(±inf) = ±1`.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    erf_with::<false>(x)
}

/// [`erf`], fused multiply-adds when `FMA`.
#[inline(always)]
pub fn erf_with<const FMA: bool>(x: f32) -> f32 {
    let a = x.abs();
    let small = x * erf_small::<FMA>(x * x);
    // Past |x| = 6 the tail is below 2^-50 and 1 - tail rounds to 1:
    // clamping there keeps e^{-x²} normal (a subnormal costs an assist).
    let tail = exp_neg_sq::<FMA>(a.min(6.0), 1.0) * erfc_scaled::<FMA>(a);
    let y = if a < 1.0 {
        small
    } else {
        (1.0 - tail).copysign(x)
    };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// The complementary error function `1 - erf(x)`, with relative accuracy in
/// the right tail (a few ulp down to the subnormal range); `erfc(-inf) = 2`.
#[inline(always)]
pub fn erfc(x: f32) -> f32 {
    erfc_with::<false>(x)
}

/// [`erfc`], fused multiply-adds when `FMA`.
#[inline(always)]
pub fn erfc_with<const FMA: bool>(x: f32) -> f32 {
    let a = x.abs();
    let small = 1.0 - x * erf_small::<FMA>(x * x);
    let tail = exp_neg_sq::<FMA>(a.min(16.0), 1.0) * erfc_scaled::<FMA>(a);
    let big = if x < 0.0 { 2.0 - tail } else { tail };
    let y = if a < 0.5 { small } else { big };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// Hyperbolic tangent (a few ulp); odd polynomial below |x| = 0.625, else
/// `(1 - e^{-2|x|}) / (1 + e^{-2|x|})`. Saturates to ±1, keeps -0.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    tanh_with::<false>(x)
}

/// [`tanh`], fused multiply-adds when `FMA`.
#[inline(always)]
pub fn tanh_with<const FMA: bool>(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let p = horner!(FMA, z; 2.292_744_8e-3, -8.343_945e-3, 2.176_891_8e-2, -5.395_925_8e-2,
        1.333_330_4e-1, -3.333_333_4e-1);
    let small = mad::<FMA>(a * z, p, a);
    // From |x| = 9 on, t < 2^-26 and the quotient rounds to 1: clamping
    // there keeps t normal (a subnormal costs an assist on x86).
    let t = exp_scaled_nonpos::<FMA>((-2.0 * a).max(-18.0));
    let big = (1.0 - t) / (1.0 + t);
    let y = (if a < 0.625 { small } else { big }).copysign(x);
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// Logistic sigmoid `1 / (1 + e^{-x})`, accurate in both tails (the left tail
/// is `e^x / (1 + e^x)`, so tiny results keep their relative accuracy).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    sigmoid_with::<false>(x)
}

/// [`sigmoid`], fused multiply-adds when `FMA`.
#[inline(always)]
pub fn sigmoid_with<const FMA: bool>(x: f32) -> f32 {
    let e = exp_scaled_nonpos::<FMA>((-x.abs()).max(-104.0));
    let y = (if x >= 0.0 { 1.0 } else { e }) / (1.0 + e);
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// `x * sigmoid(v)` for `v = hi + lo` (`lo` a small correction). The left
/// tail is `x e^v / (1 + e^v)` with `e^v` carried scaled by 2^32, so a result
/// that is normal never passes through a subnormal intermediate.
#[inline(always)]
fn times_sigmoid<const FMA: bool>(x: f32, hi: f32, lo: f32) -> f32 {
    let na = -hi.abs();
    // e^{-|v|} 2^32 = e^{-|hi|} 2^32 (1 - sign(hi) lo)
    let corr = 1.0 - if hi >= 0.0 { lo } else { -lo };
    // Below -110, e_big (at most 2^-126.7) times |x| (< 2^8.7 for SiLU and
    // the tanh GELU there) times 2^-32 rounds to a signed zero, as 0 does.
    let e_big = exp_2p32_nonpos::<FMA>(na.max(-110.0)) * corr;
    let e_big = if na < -110.0 { 0.0 } else { e_big };
    let d = mad::<FMA>(e_big, TWO_M32, 1.0);
    // Selects multiply by exactly 1.0 on the right branch (the same bits as
    // selecting the operand), so the compiler emits one division per vector
    // instead of one per branch.
    let pos = hi >= 0.0;
    let q = (x * if pos { 1.0 } else { e_big }) / d;
    q * if pos { 1.0 } else { TWO_M32 }
}

/// SiLU / swish `x * sigmoid(x)`; `silu(-inf) = -0`.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    silu_with::<false>(x)
}

/// [`silu`], fused multiply-adds when `FMA`.
#[inline(always)]
pub fn silu_with<const FMA: bool>(x: f32) -> f32 {
    let y = times_sigmoid::<FMA>(x, x, 0.0);
    if x == f32::NEG_INFINITY {
        -0.0
    } else {
        y
    }
}

/// Exact GELU `x Φ(x) = x/2 (1 + erf(x/√2))`. The left tail is
/// `x e^{-x²/2} erfc_scaled(|x|/√2) / 2`, so it keeps relative accuracy
/// instead of rounding to 0 below x ≈ -5.5; below [`GELU_ERF_FLUSH`], where
/// the result is smaller than the least normal f32, it is -0 (see
/// [`gelu_erf_with`]). `gelu_erf(-inf) = -0`.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    gelu_erf_with::<false>(x)
}

/// The input below which `gelu_erf` is -0: the largest f32 `c` with
/// `c Φ(-c) >= 2^-126` (13.1462…). Results past it would be subnormal, and
/// x86 cores take a microcode assist for every vector operation that makes
/// or reads a subnormal: on Zen 2 this function over inputs in [-15, -13]
/// ran 5.06 ns per value against 1.31 over [-4, 4], and ~10 % of the
/// inputs of Whisper's MLP activation are below -13.
pub const GELU_ERF_FLUSH: f32 = -13.146_246;

/// [`gelu_erf`], fused multiply-adds when `FMA`.
///
/// `t = x Φ(-|x|) = (x e) h` with `e = e^{-x²/2}` (`x²` split exactly into
/// `hi + lo`) and `h = erfc_scaled(|x|/√2) / 2`; GELU is `t` for negative
/// `x` and `x - t` for positive. The two factors are independent chains and
/// their polynomials are evaluated in Estrin's scheme, because on cores with
/// a small out-of-order window this function is latency-bound. `|x|` is
/// clamped to `-GELU_ERF_FLUSH` and `e` carried as `e 2^32`, `h` as
/// `h 2^-32`, so no operation makes a subnormal value unless `|x| < 2^-125`
/// (where GELU ≈ x/2 is subnormal); results below [`GELU_ERF_FLUSH`] are -0.
#[inline(always)]
pub fn gelu_erf_with<const FMA: bool>(x: f32) -> f32 {
    const C: f32 = -GELU_ERF_FLUSH;
    // Past C, GELU(-|x|) is below 2^-126 (flushed) and GELU(|x|) is |x|.
    let a = x.abs();
    let a = if a > C { C } else { a };
    let xc = if x.is_sign_negative() { -a } else { a };
    let hi = a * a;
    let lo = exact_square_lo::<FMA>(a, hi);
    let e32 = exp_2p32_nonpos::<FMA>(-0.5 * hi) * mad::<FMA>(-0.5, lo, 1.0);
    let h = half_erfc_scaled_2m32::<FMA>(a);
    let xe = xc * e32;
    let t = xe * h;
    let pos = mad::<FMA>(-xe, h, x);
    if x < GELU_ERF_FLUSH {
        -0.0
    } else if x.is_sign_negative() {
        t
    } else {
        pos
    }
}

/// The rounding error `a² - hi` of `hi = a * a` (exact: Dekker's product via
/// a 12-bit split without FMA).
#[inline(always)]
fn exact_square_lo<const FMA: bool>(a: f32, hi: f32) -> f32 {
    if FMA {
        a.mul_add(a, -hi)
    } else {
        let ca = 4097.0 * a;
        let ah = ca - (ca - a);
        let al = a - ah;
        ((ah * ah - hi) + 2.0 * ah * al) + al * al
    }
}

/// `erfc(a/√2) e^{a²/2} 2^-33` for `a` in [0, 14.8]: `t P(t)` with
/// `t = 1 / (1 + a/(2√2))` (relative minimax fit for the rounded constant,
/// error < 0.1 ulp before rounding; the 2^-32 is folded into `P`).
#[inline(always)]
fn half_erfc_scaled_2m32<const FMA: bool>(a: f32) -> f32 {
    const S: f32 = TWO_M32;
    let t = 1.0 / mad::<FMA>(0.5 * std::f32::consts::FRAC_1_SQRT_2, a, 1.0);
    // The low-order terms carry the value: Horner keeps their rounding
    // small; the high-order ones, scaled by t^4 <= 1, go in Estrin's scheme.
    let low = horner!(FMA, t; 9.239_54e-2 * S, 1.226_600_2e-1 * S, 1.411_192e-1 * S,
        1.410_445_6e-1 * S);
    let high = estrin::<FMA, 7>(
        t,
        [
            2.888_368_6e-2 * S,
            1.427_977_9e-2 * S,
            -5.548_964_3e-3 * S,
            -1.505_086e-1 * S,
            1.945_318_9e-1 * S,
            -9.698_909e-2 * S,
            1.813_212_2e-2 * S,
        ],
    );
    let t2 = t * t;
    let r = mad::<FMA>(t2 * t2, high, low);
    t * r
}

/// `Σ c[i] z^i` in Estrin's scheme: pairs `c[2i] + c[2i+1] z`, then pairs of
/// those with `z²`, … — depth log2(N) instead of Horner's N, for code whose
/// speed is bound by the latency of one long chain.
#[inline(always)]
fn estrin<const FMA: bool, const N: usize>(z: f32, c: [f32; N]) -> f32 {
    let mut v = c;
    let (mut n, mut p) = (N, z);
    while n > 1 {
        let m = n.div_ceil(2);
        for i in 0..m {
            v[i] = if 2 * i + 1 < n {
                mad::<FMA>(v[2 * i + 1], p, v[2 * i])
            } else {
                v[2 * i]
            };
        }
        n = m;
        p = p * p;
    }
    v[0]
}

/// Tanh-approximated GELU `x/2 (1 + tanh(u))`, `u = √(2/π) (x + 0.044715 x³)`,
/// evaluated as the identical `x sigmoid(2u)` so neither tail cancels.
/// `gelu_tanh(-inf) = -0`.
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    gelu_tanh_with::<false>(x)
}

/// [`gelu_tanh`], fused multiply-adds when `FMA`.
#[inline(always)]
pub fn gelu_tanh_with<const FMA: bool>(x: f32) -> f32 {
    // Below the flush point the result is -0 and the inputs are clamped
    // there, so no operation makes a subnormal (see `GELU_TANH_FLUSH`).
    let flush = x < GELU_TANH_FLUSH;
    let x = if flush { GELU_TANH_FLUSH } else { x };
    // 2u = 2 sqrt(2/pi) x (1 + 0.044715 x^2), formed in f64 and split into
    // hi + lo: e^{-2u} amplifies any rounding of 2u by |2u| in the left tail.
    let xd = x as f64;
    let v = (xd * 1.595_769_121_605_730_8 * (1.0 + 0.044_715 * xd * xd)).clamp(-200.0, 200.0);
    let hi = v as f32;
    let lo = (v - hi as f64) as f32;
    let g = times_sigmoid::<FMA>(x, hi, lo);
    if flush {
        -0.0
    } else {
        g
    }
}

/// The input below which `gelu_tanh` is -0: the largest f32 whose exact
/// result is at least the least normal f32 (10.1006…); past it the result
/// would be subnormal, which costs a microcode assist per vector on x86
/// (Zen 2: 5.8 ns per value over [-13, -10] against 1.9 over [-4, 4]).
pub const GELU_TANH_FLUSH: f32 = -10.100_636;

/// Reduces `x` by π/2 in `f64` (three-part π/2, exact for |x| < 8e8):
/// returns `r` in [-π/4, π/4] and the quadrant `q` (mod 4).
#[inline(always)]
fn reduce_half_pi(x: f32) -> (f32, i64) {
    // pi/2 = P1 + P2 + P3, P1 and P2 with 24 significant bits each, so
    // k * P1 and k * P2 are exact for |k| < 2^29.
    const P1: f64 = 1.570_796_251_296_997;
    const P2: f64 = 7.549_789_415_861_596e-8;
    const P3: f64 = 5.390_302_858_158_119e-15;
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    let xd = x as f64;
    let t = xd * std::f64::consts::FRAC_2_PI + MAGIC;
    let k = t - MAGIC;
    let r = ((xd - k * P1) - k * P2) - k * P3;
    (r as f32, t.to_bits() as i64 & 3)
}

/// Taylor polynomials of sin and cos on [-π/4, π/4] (truncation < 2e-9).
#[inline(always)]
fn sin_cos_poly<const FMA: bool>(r: f32) -> (f32, f32) {
    let z = r * r;
    let s = horner!(FMA, z; 2.755_731_9e-6, -1.984_127e-4, 8.333_334e-3, -1.666_666_7e-1);
    let c = horner!(FMA, z; -2.755_732e-7, 2.480_158_7e-5, -1.388_888_9e-3, 4.166_666_8e-2);
    (
        mad::<FMA>(r * z, s, r),
        mad::<FMA>(z * z, c, mad::<FMA>(-0.5, z, 1.0)),
    )
}

/// Sine (a few ulp for |x| < 8e8; beyond that the reduction loses accuracy
/// and the result is only clamped to [-1, 1]); `sin(±inf) = NaN`, keeps -0.
#[inline(always)]
pub fn sin(x: f32) -> f32 {
    sin_with::<false>(x)
}

/// [`sin`], fused multiply-adds when `FMA`.
#[inline(always)]
pub fn sin_with<const FMA: bool>(x: f32) -> f32 {
    let (r, q) = reduce_half_pi(x);
    let (s, c) = sin_cos_poly::<FMA>(r);
    let v = if q & 1 == 0 { s } else { c };
    let v = if q & 2 == 0 { v } else { -v };
    // The polynomial turns -0 into +0; sin is odd.
    if x == 0.0 {
        x
    } else {
        v.clamp(-1.0, 1.0)
    }
}

/// Cosine (same accuracy and range as [`sin`]); `cos(±inf) = NaN`.
#[inline(always)]
pub fn cos(x: f32) -> f32 {
    cos_with::<false>(x)
}

/// [`cos`], fused multiply-adds when `FMA`.
#[inline(always)]
pub fn cos_with<const FMA: bool>(x: f32) -> f32 {
    let (r, q) = reduce_half_pi(x);
    let (s, c) = sin_cos_poly::<FMA>(r);
    let v = if q & 1 == 0 { c } else { s };
    let v = if (q + 1) & 2 == 0 { v } else { -v };
    v.clamp(-1.0, 1.0)
}

/// `x^y` with C99 `pow` special values: `pow(x, ±0) = 1` and `pow(1, y) = 1`
/// (even for NaN), NaN for a finite negative base with a finite non-integer
/// exponent, a negative result for a negative base (or -0, -inf) with an odd
/// integer exponent, `pow(-1, ±inf) = 1`. Computed as `e^{y ln|x|}` in `f64`
/// (error ~1e-13 before the final rounding), so it is correctly rounded
/// except in rare near-halfway cases.
#[inline(always)]
pub fn pow(x: f32, y: f32) -> f32 {
    let ax = x.abs();
    let mag = exp_f64(y as f64 * ln_f64(ax as f64)) as f32;
    // Parity of y: below 2^23 read it off y + 2^23; in [2^23, 2^24) every
    // float is an integer whose low mantissa bit is its parity; above, even.
    let ay = y.abs();
    let t = ay + 8_388_608.0;
    let small = ay < 8_388_608.0;
    let is_int = !small || t - 8_388_608.0 == ay;
    let low_bit = (if small { t.to_bits() } else { ay.to_bits() }) & 1 == 1;
    let odd = is_int && ay < 16_777_216.0 && low_bit;
    let r = if x.is_sign_negative() && odd {
        -mag
    } else {
        mag
    };
    let r = if x < 0.0 && x.is_finite() && !is_int && y.is_finite() {
        f32::NAN
    } else {
        r
    };
    let one = y == 0.0 || x == 1.0 || (ax == 1.0 && y.is_infinite());
    if one {
        1.0
    } else {
        r
    }
}

/// ln 2 as `hi + lo` in `f64`, `hi` with 33 significant bits (so `k * hi`
/// is exact for |k| < 2^20).
const LN2_F64: (f64, f64) = (0.693_147_180_485_539_1, 7.440_617_110_012_397e-11);

/// `ln x` in `f64` for `x` an f32 widened (so normal, zero, inf or NaN), to
/// ~1e-16; vectorisable (the same split as [`log`], with a longer series).
#[inline(always)]
fn ln_f64(x: f64) -> f64 {
    const SQRT_HALF: i64 = 0x3fe6_a09e_667f_3bcd;
    let ix = (x.to_bits() as i64).wrapping_sub(SQRT_HALF);
    let e = (ix >> 52) as f64;
    let (ln2_hi, ln2_lo) = LN2_F64;
    let f = f64::from_bits(((ix & 0x000f_ffff_ffff_ffff) + SQRT_HALF) as u64) - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let r = 2.0 / 13.0;
    let r = r * z + 2.0 / 11.0;
    let r = r * z + 2.0 / 9.0;
    let r = r * z + 2.0 / 7.0;
    let r = r * z + 2.0 / 5.0;
    let r = (r * z + 2.0 / 3.0) * z;
    let hfsq = 0.5 * f * f;
    let y = e * ln2_hi + (f - (hfsq - (s * (hfsq + r) + e * ln2_lo)));
    let y = if x == 0.0 { f64::NEG_INFINITY } else { y };
    if x == f64::INFINITY || x.is_nan() {
        x
    } else {
        y
    }
}

/// `e^y` in `f64` to ~1e-15 relative for results in the f32 range (the
/// argument is clamped to [-200, 200]; callers round to f32); vectorisable.
#[inline(always)]
fn exp_f64(y: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    let yc = y.clamp(-200.0, 200.0);
    let t = yc * std::f64::consts::LOG2_E + MAGIC;
    let k = t - MAGIC;
    let ki = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
    let (ln2_hi, ln2_lo) = LN2_F64;
    let r = (yc - k * ln2_hi) - k * ln2_lo;
    // Taylor series to r^12 / 12! (|r| <= ln2 / 2).
    let p = 1.0 / 479_001_600.0;
    let p = p * r + 1.0 / 39_916_800.0;
    let p = p * r + 1.0 / 3_628_800.0;
    let p = p * r + 1.0 / 362_880.0;
    let p = p * r + 1.0 / 40_320.0;
    let p = p * r + 1.0 / 5_040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = ((p * r + 0.5) * r + 1.0) * r + 1.0;
    p * f64::from_bits(((ki + 1023) << 52) as u64)
}

/// Scalar `f64` error function (error ~1e-16), the reference for the `f32`
/// kernels: a positive-term series below 1, else `1 - erfc`.
pub fn erf_f64(x: f64) -> f64 {
    let a = x.abs();
    if x.is_nan() {
        return x;
    }
    if a >= 1.0 {
        return (1.0 - erfc_cf(a)).copysign(x);
    }
    // erf(a) = 2/√π e^{-a²} Σ (2a²)^n a / (1·3·…·(2n+1)).
    let (mut term, mut sum, mut n) = (a, a, 0.0);
    while term > 1e-17 * sum {
        n += 1.0;
        term *= 2.0 * a * a / (2.0 * n + 1.0);
        sum += term;
    }
    (std::f64::consts::FRAC_2_SQRT_PI * (-a * a).exp() * sum).copysign(x)
}

/// Scalar `f64` complementary error function with relative accuracy in the
/// right tail (continued fraction from 1 on).
pub fn erfc_f64(x: f64) -> f64 {
    if x.is_nan() {
        x
    } else if x >= 1.0 {
        erfc_cf(x)
    } else if x <= -1.0 {
        2.0 - erfc_cf(-x)
    } else {
        1.0 - erf_f64(x)
    }
}

/// erfc(a) for a >= 1: e^{-a²}/√π / (a + (1/2)/(a + 1/(a + (3/2)/(a + …)))),
/// evaluated bottom-up deep enough to converge to f64 precision.
fn erfc_cf(a: f64) -> f64 {
    if a == f64::INFINITY {
        return 0.0;
    }
    let depth = 50 + (450.0 / (a * a)) as usize;
    let mut d = a;
    for k in (1..=depth).rev() {
        d = a + (k as f64 * 0.5) / d;
    }
    (-a * a).exp() / (std::f64::consts::PI.sqrt() * d)
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

    /// The one-step scaling of `exp_scaled_nonpos` (and `exp_2p32_nonpos`)
    /// against `exp_scaled`'s two halves, bit for bit: every 61st f32 in
    /// [-126, 0] (subnormal results and the zeros below them included) and
    /// the edges.
    #[test]
    fn nonpositive_exponential_matches_the_two_half_scaling() {
        fn check<const FMA: bool>(x: f32) {
            let want = exp_scaled::<FMA>(x.max(-126.0), 0);
            let got = exp_scaled_nonpos::<FMA>(x.max(-110.0));
            assert_eq!(got.to_bits(), want.to_bits(), "x = {x:e} (fma {FMA})");
            // Where 2^(k + 32) is normal (k >= -158), also the 2^32 form.
            if x >= -109.8 {
                let want = exp_scaled::<FMA>(x, 32);
                let got = exp_2p32_nonpos::<FMA>(x);
                assert_eq!(got.to_bits(), want.to_bits(), "x = {x:e} 2^32 (fma {FMA})");
            }
        }
        let edges = [
            0.0, -0.0, -1e-30, -87.3, -103.3, -103.98, -104.0, -109.99, -110.0, -126.0,
        ];
        let sweep = (0x8000_0000u32..=(-126.0f32).to_bits())
            .step_by(61)
            .map(f32::from_bits);
        for x in edges.into_iter().chain(sweep) {
            check::<false>(x);
            check::<true>(x);
        }
    }
}
