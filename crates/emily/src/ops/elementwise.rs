//! Elementwise ops: unary, binary (numpy broadcasting), where, cast.
//!
//! Dtype rule: binary operands must share a dtype (no silent promotion: cast
//! explicitly); comparisons return `Bool`; float-only functions reject
//! integer inputs.

use super::{common_device, BinaryOp, Op, UnaryOp};
use crate::error::{dtype_err, Result};
use crate::shape::broadcast_shapes;
use crate::{DType, Tensor};

fn unary_accepts(op: UnaryOp, dtype: DType) -> bool {
    use UnaryOp::*;
    match op {
        Neg | Abs | Square | Sign | Relu => dtype != DType::Bool,
        LogicalNot => dtype == DType::Bool,
        _ => dtype.is_float(),
    }
}

fn binary_out_dtype(op: BinaryOp, a: DType) -> Result<DType> {
    use BinaryOp::*;
    match op {
        Eq | Ne | Lt | Le | Gt | Ge => Ok(DType::Bool),
        LogicalAnd | LogicalOr if a == DType::Bool => Ok(DType::Bool),
        LogicalAnd | LogicalOr => Err(dtype_err("logical", a, ", expected bool")),
        Pow if !a.is_float() => Err(dtype_err("pow", a, ", expected a float type")),
        _ if a == DType::Bool => Err(dtype_err("binary", a, " for arithmetic")),
        _ => Ok(a),
    }
}

impl Tensor {
    /// Applies a unary function elementwise.
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        if !unary_accepts(op, self.dtype()) {
            return Err(dtype_err("unary", self.dtype(), format!(" for {op:?}")));
        }
        Tensor::from_op(
            Op::Unary(op),
            vec![self.clone()],
            self.shape().to_vec(),
            self.dtype(),
            self.device(),
        )
    }

    /// Applies a binary function elementwise with numpy broadcasting.
    pub fn binary(&self, op: BinaryOp, other: &Tensor) -> Result<Tensor> {
        let device = common_device("binary", &[self, other])?;
        if self.dtype() != other.dtype() {
            return Err(dtype_err(
                "binary",
                other.dtype(),
                format!(
                    " for {op:?}: operands are {} and {} (cast one)",
                    self.dtype(),
                    other.dtype()
                ),
            ));
        }
        let shape = broadcast_shapes("binary", self.shape(), other.shape())?;
        let dtype = binary_out_dtype(op, self.dtype())?;
        Tensor::from_op(
            Op::Binary(op),
            vec![self.clone(), other.clone()],
            shape,
            dtype,
            device,
        )
    }

    /// `cond ? a : b` elementwise with broadcasting; `cond` is Bool.
    pub fn where_cond(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let device = common_device("where", &[cond, a, b])?;
        if cond.dtype() != DType::Bool {
            return Err(dtype_err(
                "where",
                cond.dtype(),
                " for the condition, expected bool",
            ));
        }
        if a.dtype() != b.dtype() {
            return Err(dtype_err(
                "where",
                b.dtype(),
                format!(", branches are {} and {}", a.dtype(), b.dtype()),
            ));
        }
        let s = broadcast_shapes("where", cond.shape(), a.shape())?;
        let s = broadcast_shapes("where", &s, b.shape())?;
        Tensor::from_op(
            Op::Where,
            vec![cond.clone(), a.clone(), b.clone()],
            s,
            a.dtype(),
            device,
        )
    }

    /// Converts to `dtype` (floats round to nearest, float→int truncates,
    /// nonzero→true for Bool).
    pub fn cast(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        Tensor::from_op(
            Op::Cast,
            vec![self.clone()],
            self.shape().to_vec(),
            dtype,
            self.device(),
        )
    }

    /// A 0-d tensor holding `value` in this tensor's dtype and device.
    pub fn scalar_like(&self, value: f64) -> Tensor {
        Tensor::scalar(value, self.dtype(), self.device())
    }

    /// Applies `op` with a scalar right operand.
    pub fn binary_scalar(&self, op: BinaryOp, value: f64) -> Result<Tensor> {
        self.binary(op, &self.scalar_like(value))
    }
}

macro_rules! unary_methods {
    ($($(#[$m:meta])* $name:ident => $op:ident;)*) => {
        impl Tensor {
            $($(#[$m])* pub fn $name(&self) -> Result<Tensor> { self.unary(UnaryOp::$op) })*
        }
    };
}

unary_methods! {
    /// `-x`.
    neg => Neg;
    /// `|x|`.
    abs => Abs;
    /// `e^x`.
    exp => Exp;
    /// Natural logarithm.
    log => Log;
    /// Square root.
    sqrt => Sqrt;
    /// `1/sqrt(x)`.
    rsqrt => Rsqrt;
    /// `1/x`.
    recip => Recip;
    /// Sine.
    sin => Sin;
    /// Cosine.
    cos => Cos;
    /// Hyperbolic tangent.
    tanh => Tanh;
    /// Error function.
    erf => Erf;
    /// GELU, exact (erf) form.
    gelu => GeluErf;
    /// GELU, tanh approximation.
    gelu_tanh => GeluTanh;
    /// `x * sigmoid(x)`.
    silu => Silu;
    /// Logistic sigmoid.
    sigmoid => Sigmoid;
    /// `max(x, 0)`.
    relu => Relu;
    /// `x²`.
    square => Square;
    /// Boolean not.
    logical_not => LogicalNot;
}

macro_rules! binary_methods {
    ($($(#[$m:meta])* $name:ident, $sname:ident => $op:ident;)*) => {
        impl Tensor {
            $(
                $(#[$m])* pub fn $name(&self, other: &Tensor) -> Result<Tensor> { self.binary(BinaryOp::$op, other) }
                $(#[$m])* #[doc = "(scalar right operand)"]
                pub fn $sname(&self, value: f64) -> Result<Tensor> { self.binary_scalar(BinaryOp::$op, value) }
            )*
        }
    };
}

binary_methods! {
    /// `a + b`.
    add, add_scalar => Add;
    /// `a - b`.
    sub, sub_scalar => Sub;
    /// `a * b`.
    mul, mul_scalar => Mul;
    /// `a / b`.
    div, div_scalar => Div;
    /// `a ^ b`.
    pow, pow_scalar => Pow;
    /// Elementwise maximum.
    maximum, maximum_scalar => Maximum;
    /// Elementwise minimum.
    minimum, minimum_scalar => Minimum;
    /// `a == b` (Bool).
    eq, eq_scalar => Eq;
    /// `a != b` (Bool).
    ne, ne_scalar => Ne;
    /// `a < b` (Bool).
    lt, lt_scalar => Lt;
    /// `a <= b` (Bool).
    le, le_scalar => Le;
    /// `a > b` (Bool).
    gt, gt_scalar => Gt;
    /// `a >= b` (Bool).
    ge, ge_scalar => Ge;
}

impl Tensor {
    /// Boolean and.
    pub fn logical_and(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::LogicalAnd, other)
    }

    /// Boolean or.
    pub fn logical_or(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::LogicalOr, other)
    }
}
