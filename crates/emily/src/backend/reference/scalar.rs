//! The catalogue's elementwise functions in f64 (`std` and `libm` math): the
//! reference definition every backend's kernels are compared against.

use crate::ops::{BinaryOp, UnaryOp};

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn truth(c: bool) -> f64 {
    if c {
        1.0
    } else {
        0.0
    }
}

/// `op(x)` in f64.
pub fn unary(op: UnaryOp, x: f64) -> f64 {
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
        Erf => libm::erf(x),
        // x·Φ(x) and its tanh approximation x·σ(2u) tend to -0 at -inf.
        GeluErf | GeluTanh | Silu if x == f64::NEG_INFINITY => -0.0,
        GeluErf => 0.5 * x * libm::erfc(-x / std::f64::consts::SQRT_2),
        GeluTanh => {
            let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
            x * sigmoid(2.0 * u)
        }
        Silu => x * sigmoid(x),
        Sigmoid => sigmoid(x),
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
        LogicalNot => truth(x == 0.0),
    }
}

/// `op(a, b)` in f64. Maximum and minimum propagate NaN; comparisons and
/// logic give 1.0 or 0.0 (NaN counts as true for logic).
pub fn binary(op: BinaryOp, a: f64, b: f64) -> f64 {
    use BinaryOp::*;
    match op {
        Add => a + b,
        Sub => a - b,
        Mul => a * b,
        Div => a / b,
        Pow => a.powf(b),
        Maximum | Minimum if a.is_nan() || b.is_nan() => f64::NAN,
        Maximum => a.max(b),
        Minimum => a.min(b),
        Eq => truth(a == b),
        Ne => truth(a != b),
        Lt => truth(a < b),
        Le => truth(a <= b),
        Gt => truth(a > b),
        Ge => truth(a >= b),
        LogicalAnd => truth(a != 0.0 && b != 0.0),
        LogicalOr => truth(a != 0.0 || b != 0.0),
    }
}
