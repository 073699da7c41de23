//! Elementwise rules: unary functions, binary arithmetic with broadcasting
//! (gradients summed back to each operand's shape), and `where`.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

use crate::error::{invalid, Result};
use crate::ops::{BinaryOp, UnaryOp};
use crate::Tensor;

/// `g` (of a broadcast result) summed back to `shape`: over the leading axes
/// `shape` lacks and over the axes where `shape` has 1.
pub(crate) fn unbroadcast(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let extra = g.rank() - shape.len();
    let mut axes: Vec<isize> = (0..extra as isize).collect();
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 && g.shape()[extra + i] != 1 {
            axes.push((extra + i) as isize);
        }
    }
    let summed = if axes.is_empty() {
        g.clone()
    } else {
        g.sum(&axes, false)?
    };
    summed.reshape_to(shape)
}

/// The gradient of `y = op(x)`.
pub(super) fn unary(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    use UnaryOp::*;
    let one_minus = |t: &Tensor| t.neg()?.add_scalar(1.0);
    match op {
        Neg => g.neg(),
        Abs => g.mul(&x.unary(Sign)?),
        Exp => g.mul(y),
        Log => g.div(x),
        Sqrt => g.div(&y.mul_scalar(2.0)?),
        // d/dx x^-1/2 = -1/2 · y³
        Rsqrt => g.mul(&y.square()?.mul(y)?.mul_scalar(-0.5)?),
        Recip => g.mul(&y.square()?)?.neg(),
        Sin => g.mul(&x.cos()?),
        Cos => g.mul(&x.sin()?)?.neg(),
        Tanh => g.mul(&one_minus(&y.square()?)?),
        Erf => g.mul(&x.square()?.neg()?.exp()?.mul_scalar(2.0 / PI.sqrt())?),
        GeluErf => {
            // Φ(x) + x·φ(x)
            let cdf = x
                .mul_scalar(FRAC_1_SQRT_2)?
                .erf()?
                .add_scalar(1.0)?
                .mul_scalar(0.5)?;
            let pdf = x
                .square()?
                .mul_scalar(-0.5)?
                .exp()?
                .mul_scalar(1.0 / (2.0 * PI).sqrt())?;
            g.mul(&cdf.add(&x.mul(&pdf)?)?)
        }
        GeluTanh => {
            // y = x/2·(1 + tanh u), u = c·(x + 0.044715 x³)
            let c = (2.0 / PI).sqrt();
            let x2 = x.square()?;
            let u = x
                .mul(&x2.mul_scalar(0.044715)?.add_scalar(1.0)?)?
                .mul_scalar(c)?;
            let t = u.tanh()?;
            let du = x2
                .mul_scalar(3.0 * 0.044715)?
                .add_scalar(1.0)?
                .mul_scalar(c)?;
            let d = t.add_scalar(1.0)?.mul_scalar(0.5)?.add(
                &x.mul_scalar(0.5)?
                    .mul(&one_minus(&t.square()?)?)?
                    .mul(&du)?,
            )?;
            g.mul(&d)
        }
        Silu => {
            // s·(1 + x·(1 − s))
            let s = x.sigmoid()?;
            g.mul(&s.mul(&x.mul(&one_minus(&s)?)?.add_scalar(1.0)?)?)
        }
        Sigmoid => g.mul(&y.mul(&one_minus(y)?)?),
        Relu => {
            let zero = g.scalar_like(0.0);
            Tensor::where_cond(&x.gt_scalar(0.0)?, g, &zero)
        }
        Square => g.mul(x)?.mul_scalar(2.0),
        Floor | Ceil | Round | Sign | LogicalNot => {
            Err(invalid("grad", format!("{op:?} is not differentiable")))
        }
    }
}

/// The gradients of `y = op(a, b)` (broadcasting), for the inputs in `needs`.
pub(super) fn binary(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    y: &Tensor,
    g: &Tensor,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    use BinaryOp::*;
    let zero = g.scalar_like(0.0);
    let half = g.scalar_like(0.5);
    // The share of g each side gets at a tie of maximum/minimum is a half.
    let select = |wins: Tensor, ties: Tensor| -> Result<Tensor> {
        let share = Tensor::where_cond(&ties, &half, &zero)?;
        let w = Tensor::where_cond(&wins, &g.scalar_like(1.0), &share)?;
        g.mul(&w)
    };
    let (ga, gb): (Option<Tensor>, Option<Tensor>) = match op {
        Add => (Some(g.clone()), Some(g.clone())),
        Sub => (Some(g.clone()), needs[1].then(|| g.neg()).transpose()?),
        Mul => (
            needs[0].then(|| g.mul(b)).transpose()?,
            needs[1].then(|| g.mul(a)).transpose()?,
        ),
        Div => (
            needs[0].then(|| g.div(b)).transpose()?,
            needs[1].then(|| g.mul(y)?.div(b)?.neg()).transpose()?,
        ),
        Pow => {
            // d/da = b·a^(b−1); d/db = y·ln a (0 where a = 0, as for 0^b).
            let ga = needs[0]
                .then(|| g.mul(&b.mul(&a.pow(&b.sub_scalar(1.0)?)?)?))
                .transpose()?;
            let gb = needs[1]
                .then(|| {
                    let d = Tensor::where_cond(&a.eq_scalar(0.0)?, &zero, &y.mul(&a.log()?)?)?;
                    g.mul(&d)
                })
                .transpose()?;
            (ga, gb)
        }
        Maximum | Minimum => {
            let (wa, wb) = if op == Maximum {
                (a.gt(b)?, b.gt(a)?)
            } else {
                (a.lt(b)?, b.lt(a)?)
            };
            let tie = a.eq(b)?;
            (
                needs[0].then(|| select(wa, tie.clone())).transpose()?,
                needs[1].then(|| select(wb, tie)).transpose()?,
            )
        }
        Eq | Ne | Lt | Le | Gt | Ge | LogicalAnd | LogicalOr => {
            return Err(invalid("grad", format!("{op:?} is not differentiable")))
        }
    };
    Ok(vec![
        ga.filter(|_| needs[0])
            .map(|t| unbroadcast(&t, a.shape()))
            .transpose()?,
        gb.filter(|_| needs[1])
            .map(|t| unbroadcast(&t, b.shape()))
            .transpose()?,
    ])
}

/// The gradients of `where(cond, a, b)` for `a` and `b` (the condition has none).
pub(super) fn where_cond(
    inputs: &[Tensor],
    g: &Tensor,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let (cond, a, b) = (&inputs[0], &inputs[1], &inputs[2]);
    let zero = g.scalar_like(0.0);
    let ga = needs[1]
        .then(|| unbroadcast(&Tensor::where_cond(cond, g, &zero)?, a.shape()))
        .transpose()?;
    let gb = needs[2]
        .then(|| unbroadcast(&Tensor::where_cond(cond, &zero, g)?, b.shape()))
        .transpose()?;
    Ok(vec![None, ga, gb])
}
