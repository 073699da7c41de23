//! Binary elementwise nodes: residual add and gating multiply.

use emily::Tensor;

/// `a + b` with broadcasting (residual connections).
pub(crate) fn add(a: &Tensor, b: &Tensor) -> emily::Result<Tensor> {
    a.add(b)
}

/// `a * b` with broadcasting (gated MLPs).
pub(crate) fn multiply(a: &Tensor, b: &Tensor) -> emily::Result<Tensor> {
    a.mul(b)
}
