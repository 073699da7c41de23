//! Reduction and softmax rules.

use crate::error::{invalid, Result};
use crate::ops::Reduction;
use crate::Tensor;

/// `t` (reduced over `axes`) with the reduced axes restored as size 1.
fn keep(t: &Tensor, axes: &[usize], keep_dims: bool, x: &Tensor) -> Result<Tensor> {
    if keep_dims {
        return Ok(t.clone());
    }
    let shape: Vec<usize> = (0..x.rank())
        .map(|i| if axes.contains(&i) { 1 } else { x.shape()[i] })
        .collect();
    t.reshape_to(&shape)
}

/// The gradient of `y = reduce(x)` over the sorted `axes`.
pub(super) fn reduce(
    op: Reduction,
    axes: &[usize],
    keep_dims: bool,
    x: &Tensor,
    y: &Tensor,
    g: &Tensor,
) -> Result<Tensor> {
    let axes_i: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
    let gk = keep(g, axes, keep_dims, x)?;
    let yk = keep(y, axes, keep_dims, x)?;
    let count: usize = axes.iter().map(|&a| x.shape()[a]).product();
    let zero = x.scalar_like(0.0);
    let one = x.scalar_like(1.0);
    match op {
        Reduction::Sum => gk.broadcast_to(x.shape()),
        Reduction::Mean => gk
            .mul_scalar(1.0 / count.max(1) as f64)?
            .broadcast_to(x.shape()),
        Reduction::Max | Reduction::Min => {
            // Ties share the gradient equally.
            let hit = Tensor::where_cond(&x.eq(&yk)?, &one, &zero)?;
            let n = hit.sum(&axes_i, true)?;
            gk.div(&n)?.mul(&hit)
        }
        Reduction::Prod => {
            // ∂y/∂x_i is the product of the others: y/x_i without zeros; with
            // one zero, the product of the nonzeros at the zero and 0
            // elsewhere; with two or more, 0.
            let is_zero = x.eq_scalar(0.0)?;
            let zeros = Tensor::where_cond(&is_zero, &one, &zero)?.sum(&axes_i, true)?;
            let nonzero =
                Tensor::where_cond(&is_zero, &one, x)?.reduce(Reduction::Prod, &axes_i, true)?;
            let no_zero = yk.div(&Tensor::where_cond(&is_zero, &one, x)?)?;
            let one_zero = Tensor::where_cond(&is_zero, &nonzero, &zero)?;
            let d = Tensor::where_cond(
                &zeros.eq_scalar(0.0)?,
                &no_zero,
                &Tensor::where_cond(&zeros.eq_scalar(1.0)?, &one_zero, &zero)?,
            )?;
            gk.mul(&d)
        }
        Reduction::LogSumExp => gk.mul(&x.sub(&yk)?.exp()?),
        Reduction::ArgMax | Reduction::ArgMin => {
            Err(invalid("grad", format!("{op:?} is not differentiable")))
        }
    }
}

/// The gradient of `y = softmax(x)` along `axis`: `y · (g − Σ g·y)`.
pub(super) fn softmax(axis: usize, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    let a = axis as isize;
    let dot = g.mul(y)?.sum(&[a], true)?;
    y.mul(&g.sub(&dot)?)
}
