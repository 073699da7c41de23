//! Elementwise unary kernels over contiguous slices.
//!
//! [`unary_f32`] and friends process exactly the slice they are given on the
//! calling thread, with one instruction-set dispatch per call and no
//! allocation, so the fusing interpreter can call them on L1-sized chunks;
//! [`unary_f32_par`] splits large slices over the global pool. The `f64`
//! versions are plain `std` loops: `f64` is the reference dtype.

use crate::math::{self, dispatch_fma};
use crate::parallel;

/// An elementwise unary operation. Semantics follow IEEE / C99 for the special
/// values; comparisons and logic produce 1.0 (true) and 0.0 (false).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`.
    Neg,
    /// `|x|`.
    Abs,
    /// `e^x`.
    Exp,
    /// Natural log; NaN below 0, -inf at 0.
    Log,
    /// Square root (correctly rounded); NaN below 0 (but `sqrt(-0) = -0`).
    Sqrt,
    /// `1 / sqrt(x)` (two roundings).
    Rsqrt,
    /// `1 / x`.
    Recip,
    /// Sine (see [`math::sin`] for the accurate range).
    Sin,
    /// Cosine.
    Cos,
    /// Hyperbolic tangent.
    Tanh,
    /// Error function.
    Erf,
    /// Exact GELU `x Φ(x)`.
    GeluErf,
    /// Tanh-approximated GELU.
    GeluTanh,
    /// `x * sigmoid(x)`.
    Silu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `max(x, 0)`; NaN propagates.
    Relu,
    /// `x * x`.
    Square,
    /// Round toward -inf.
    Floor,
    /// Round toward +inf.
    Ceil,
    /// Round half to even (numpy's `round`).
    Round,
    /// -1, 0 or 1 (keeps the sign of zero; NaN propagates).
    Sign,
    /// 1.0 where `x == 0`, else 0.0 (NaN counts as true, giving 0.0).
    LogicalNot,
}

impl UnaryOp {
    /// Every op, in declaration order.
    pub const ALL: [UnaryOp; 22] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Recip,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tanh,
        UnaryOp::Erf,
        UnaryOp::GeluErf,
        UnaryOp::GeluTanh,
        UnaryOp::Silu,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::Square,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
        UnaryOp::Sign,
        UnaryOp::LogicalNot,
    ];

    /// Rough cost per element relative to a copy, used to pick the parallel
    /// threshold (transcendental ops split at smaller sizes).
    pub fn cost(self) -> usize {
        use UnaryOp::*;
        match self {
            Exp | Log | Sin | Cos | Tanh | Erf | GeluErf | GeluTanh | Silu | Sigmoid => 8,
            Sqrt | Rsqrt | Recip => 2,
            _ => 1,
        }
    }
}

/// Expands `$body` once per op with `$f` bound to that op's `f32 -> f32`
/// function (fused multiply-adds when `$fma`), so each arm is its own
/// (vectorised) loop.
macro_rules! with_f32_fn {
    ($op:expr, $fma:ident, $f:ident => $body:expr) => {
        match $op {
            UnaryOp::Neg => {
                let $f = |v: f32| -v;
                $body
            }
            UnaryOp::Abs => {
                let $f = |v: f32| v.abs();
                $body
            }
            UnaryOp::Exp => {
                let $f = math::exp_with::<$fma>;
                $body
            }
            UnaryOp::Log => {
                let $f = math::log_with::<$fma>;
                $body
            }
            UnaryOp::Sqrt => {
                let $f = |v: f32| v.sqrt();
                $body
            }
            UnaryOp::Rsqrt => {
                let $f = |v: f32| 1.0 / v.sqrt();
                $body
            }
            UnaryOp::Recip => {
                let $f = |v: f32| 1.0 / v;
                $body
            }
            UnaryOp::Sin => {
                let $f = math::sin_with::<$fma>;
                $body
            }
            UnaryOp::Cos => {
                let $f = math::cos_with::<$fma>;
                $body
            }
            UnaryOp::Tanh => {
                let $f = math::tanh_with::<$fma>;
                $body
            }
            UnaryOp::Erf => {
                let $f = math::erf_with::<$fma>;
                $body
            }
            UnaryOp::GeluErf => {
                let $f = math::gelu_erf_with::<$fma>;
                $body
            }
            UnaryOp::GeluTanh => {
                let $f = math::gelu_tanh_with::<$fma>;
                $body
            }
            UnaryOp::Silu => {
                let $f = math::silu_with::<$fma>;
                $body
            }
            UnaryOp::Sigmoid => {
                let $f = math::sigmoid_with::<$fma>;
                $body
            }
            UnaryOp::Relu => {
                let $f = |v: f32| if v <= 0.0 { 0.0 } else { v };
                $body
            }
            UnaryOp::Square => {
                let $f = |v: f32| v * v;
                $body
            }
            UnaryOp::Floor => {
                let $f = |v: f32| v.floor();
                $body
            }
            UnaryOp::Ceil => {
                let $f = |v: f32| v.ceil();
                $body
            }
            UnaryOp::Round => {
                let $f = |v: f32| v.round_ties_even();
                $body
            }
            UnaryOp::Sign => {
                let $f = |v: f32| {
                    if v > 0.0 {
                        1.0
                    } else if v < 0.0 {
                        -1.0
                    } else {
                        v
                    }
                };
                $body
            }
            UnaryOp::LogicalNot => {
                let $f = |v: f32| if v == 0.0 { 1.0 } else { 0.0 };
                $body
            }
        }
    };
}

dispatch_fma! {
    fn unary_f32_kernel<FMA>(op: UnaryOp, x: &[f32], out: &mut [f32]) {
        with_f32_fn!(op, FMA, f => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = f(v);
            }
        })
    }
}

dispatch_fma! {
    fn unary_f32_inplace_kernel<FMA>(op: UnaryOp, x: &mut [f32]) {
        with_f32_fn!(op, FMA, f => {
            for v in x.iter_mut() {
                *v = f(*v);
            }
        })
    }
}

/// `out[i] = op(x[i])` on the calling thread. Panics if the lengths differ.
pub fn unary_f32(op: UnaryOp, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "unary_f32: length mismatch");
    unary_f32_kernel(op, x, out);
}

/// `x[i] = op(x[i])` on the calling thread.
pub fn unary_f32_inplace(op: UnaryOp, x: &mut [f32]) {
    unary_f32_inplace_kernel(op, x);
}

/// `op` applied to one value, bit-identical to what the slice kernels produce
/// on this CPU (for constant folding).
pub fn unary_scalar_f32(op: UnaryOp, x: f32) -> f32 {
    let mut out = [0.0];
    unary_f32_kernel(op, &[x], &mut out);
    out[0]
}

/// Elements per parallel work unit (a multiple of every vector width).
const PAR_BLOCK: usize = 1024;

/// [`unary_f32`] split over the global pool when the slice is large enough
/// (results are identical to the single-threaded call).
pub fn unary_f32_par(op: UnaryOp, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "unary_f32_par: length mismatch");
    parallel::for_each_row_block_mut(out, PAR_BLOCK, PAR_BLOCK * op.cost(), |row, o| {
        let start = row * PAR_BLOCK;
        unary_f32_kernel(op, &x[start..start + o.len()], o);
    });
}

/// [`unary_f32_inplace`] split over the global pool when the slice is large.
pub fn unary_f32_inplace_par(op: UnaryOp, x: &mut [f32]) {
    parallel::for_each_row_block_mut(x, PAR_BLOCK, PAR_BLOCK * op.cost(), |_, o| {
        unary_f32_inplace_kernel(op, o);
    });
}

/// `1 / (1 + e^-x)` in `f64`, accurate in both tails.
fn sigmoid_f64(x: f64) -> f64 {
    let e = (-x.abs()).exp();
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// `op` on one `f64` (the reference semantics; same special values as `f32`).
pub fn unary_scalar_f64(op: UnaryOp, x: f64) -> f64 {
    use UnaryOp::*;
    match op {
        Neg => -x,
        Abs => x.abs(),
        Exp => x.exp(),
        Log => x.ln(),
        Sqrt => x.sqrt(),
        Rsqrt => 1.0 / x.sqrt(),
        Recip => 1.0 / x,
        Sin => x.sin(),
        Cos => x.cos(),
        Tanh => x.tanh(),
        Erf => math::erf_f64(x),
        GeluErf if x == f64::NEG_INFINITY => -0.0,
        GeluErf => x * 0.5 * math::erfc_f64(-x * std::f64::consts::FRAC_1_SQRT_2),
        GeluTanh if x == f64::NEG_INFINITY => -0.0,
        GeluTanh => {
            let two_u = 2.0 * (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
            x * sigmoid_f64(two_u)
        }
        Silu if x == f64::NEG_INFINITY => -0.0,
        Silu => x * sigmoid_f64(x),
        Sigmoid => sigmoid_f64(x),
        Relu => {
            if x <= 0.0 {
                0.0
            } else {
                x
            }
        }
        Square => x * x,
        Floor => x.floor(),
        Ceil => x.ceil(),
        Round => x.round_ties_even(),
        Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        }
        LogicalNot => {
            if x == 0.0 {
                1.0
            } else {
                0.0
            }
        }
    }
}

/// `out[i] = op(x[i])` in `f64` (scalar loop). Panics if the lengths differ.
pub fn unary_f64(op: UnaryOp, x: &[f64], out: &mut [f64]) {
    assert_eq!(x.len(), out.len(), "unary_f64: length mismatch");
    for (o, &v) in out.iter_mut().zip(x) {
        *o = unary_scalar_f64(op, v);
    }
}

/// `x[i] = op(x[i])` in `f64`.
pub fn unary_f64_inplace(op: UnaryOp, x: &mut [f64]) {
    for v in x.iter_mut() {
        *v = unary_scalar_f64(op, *v);
    }
}
