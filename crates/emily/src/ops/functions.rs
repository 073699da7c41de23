//! The elementwise functions of the op catalogue. They belong to the core:
//! each backend maps them to its own kernels (the CPU backend to
//! `emily-kernels`' enums, the reference backend to plain f64 math).

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
    /// Sine.
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
}

/// An elementwise binary operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// `a^b` with C99 `pow` special values (`pow(x, 0) = 1`, `pow(1, y) = 1`,
    /// NaN for a negative finite base and a non-integer exponent, signs for
    /// odd integer exponents); correctly rounded in almost all cases.
    Pow,
    /// The larger of `a` and `b`; NaN if either is NaN.
    Maximum,
    /// The smaller of `a` and `b`; NaN if either is NaN.
    Minimum,
    /// `a == b` (NaN compares unequal to everything).
    Eq,
    /// `a != b` (true when either is NaN).
    Ne,
    /// `a < b`.
    Lt,
    /// `a <= b`.
    Le,
    /// `a > b`.
    Gt,
    /// `a >= b`.
    Ge,
    /// Both nonzero (NaN counts as nonzero).
    LogicalAnd,
    /// Either nonzero.
    LogicalOr,
}

impl BinaryOp {
    /// Every op, in declaration order.
    pub const ALL: [BinaryOp; 15] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::LogicalAnd,
        BinaryOp::LogicalOr,
    ];
}
