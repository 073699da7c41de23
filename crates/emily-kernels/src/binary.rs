//! Elementwise binary kernels (and `where`, `a * b + c`) over contiguous slices.
//!
//! Like [`crate::unary`], every `f32` function processes exactly the slices it
//! is given on the calling thread (one dispatch per call, no allocation); the
//! `_par` versions split large slices over the global pool. Operand forms: two
//! slices, a slice and a scalar on either side, and in-place forms writing
//! into either operand. Comparisons and logic produce 1.0 / 0.0.

use crate::math::{self, dispatch_fma};
use crate::parallel;

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

    /// Whether the result is a truth value (1.0 / 0.0).
    pub fn is_predicate(self) -> bool {
        use BinaryOp::*;
        matches!(self, Eq | Ne | Lt | Le | Gt | Ge | LogicalAnd | LogicalOr)
    }

    /// Rough cost per element relative to a copy (for parallel thresholds).
    pub fn cost(self) -> usize {
        match self {
            BinaryOp::Pow => 16,
            BinaryOp::Div => 2,
            _ => 1,
        }
    }
}

#[inline(always)]
fn truth(c: bool) -> f32 {
    if c {
        1.0
    } else {
        0.0
    }
}

/// Expands `$body` once per op with `$f` bound to that op's `(f32, f32) -> f32`.
macro_rules! with_f32_fn {
    ($op:expr, $f:ident => $body:expr) => {
        match $op {
            BinaryOp::Add => {
                let $f = |a: f32, b: f32| a + b;
                $body
            }
            BinaryOp::Sub => {
                let $f = |a: f32, b: f32| a - b;
                $body
            }
            BinaryOp::Mul => {
                let $f = |a: f32, b: f32| a * b;
                $body
            }
            BinaryOp::Div => {
                let $f = |a: f32, b: f32| a / b;
                $body
            }
            BinaryOp::Pow => {
                let $f = math::pow;
                $body
            }
            BinaryOp::Maximum => {
                let $f = |a: f32, b: f32| {
                    let m = if a > b { a } else { b };
                    if a.is_nan() {
                        a
                    } else {
                        m
                    }
                };
                $body
            }
            BinaryOp::Minimum => {
                let $f = |a: f32, b: f32| {
                    let m = if a < b { a } else { b };
                    if a.is_nan() {
                        a
                    } else {
                        m
                    }
                };
                $body
            }
            BinaryOp::Eq => {
                let $f = |a: f32, b: f32| truth(a == b);
                $body
            }
            BinaryOp::Ne => {
                let $f = |a: f32, b: f32| truth(a != b);
                $body
            }
            BinaryOp::Lt => {
                let $f = |a: f32, b: f32| truth(a < b);
                $body
            }
            BinaryOp::Le => {
                let $f = |a: f32, b: f32| truth(a <= b);
                $body
            }
            BinaryOp::Gt => {
                let $f = |a: f32, b: f32| truth(a > b);
                $body
            }
            BinaryOp::Ge => {
                let $f = |a: f32, b: f32| truth(a >= b);
                $body
            }
            BinaryOp::LogicalAnd => {
                let $f = |a: f32, b: f32| truth(a != 0.0 && b != 0.0);
                $body
            }
            BinaryOp::LogicalOr => {
                let $f = |a: f32, b: f32| truth(a != 0.0 || b != 0.0);
                $body
            }
        }
    };
}

/// Defines a dispatched kernel whose loop applies the op's function `f`.
macro_rules! kernel {
    ($name:ident ( $($arg:ident : $ty:ty),* ) $f:ident => $body:block) => {
        dispatch_fma! {
            fn $name<FMA>(op: BinaryOp, $($arg: $ty),*) {
                with_f32_fn!(op, $f => $body)
            }
        }
    };
}

kernel!(k_vv(a: &[f32], b: &[f32], out: &mut [f32]) f => {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
});
kernel!(k_vs(a: &[f32], b: f32, out: &mut [f32]) f => {
    for (o, &x) in out.iter_mut().zip(a) {
        *o = f(x, b);
    }
});
kernel!(k_sv(a: f32, b: &[f32], out: &mut [f32]) f => {
    for (o, &y) in out.iter_mut().zip(b) {
        *o = f(a, y);
    }
});
kernel!(k_vv_lhs(a: &mut [f32], b: &[f32]) f => {
    for (x, &y) in a.iter_mut().zip(b) {
        *x = f(*x, y);
    }
});
kernel!(k_vv_rhs(a: &[f32], b: &mut [f32]) f => {
    for (&x, y) in a.iter().zip(b.iter_mut()) {
        *y = f(x, *y);
    }
});
kernel!(k_vs_inplace(a: &mut [f32], b: f32) f => {
    for x in a.iter_mut() {
        *x = f(*x, b);
    }
});
kernel!(k_sv_inplace(a: f32, b: &mut [f32]) f => {
    for y in b.iter_mut() {
        *y = f(a, *y);
    }
});

fn check_len(what: &str, a: usize, b: usize) {
    assert_eq!(a, b, "{what}: length mismatch ({a} vs {b})");
}

/// `out[i] = a[i] op b[i]`. Panics unless all lengths are equal.
pub fn binary_f32(op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) {
    check_len("binary_f32", a.len(), out.len());
    check_len("binary_f32", b.len(), out.len());
    k_vv(op, a, b, out);
}

/// `out[i] = a[i] op b`.
pub fn binary_f32_scalar_rhs(op: BinaryOp, a: &[f32], b: f32, out: &mut [f32]) {
    check_len("binary_f32_scalar_rhs", a.len(), out.len());
    k_vs(op, a, b, out);
}

/// `out[i] = a op b[i]`.
pub fn binary_f32_scalar_lhs(op: BinaryOp, a: f32, b: &[f32], out: &mut [f32]) {
    check_len("binary_f32_scalar_lhs", b.len(), out.len());
    k_sv(op, a, b, out);
}

/// `a[i] = a[i] op b[i]`.
pub fn binary_f32_inplace(op: BinaryOp, a: &mut [f32], b: &[f32]) {
    check_len("binary_f32_inplace", a.len(), b.len());
    k_vv_lhs(op, a, b);
}

/// `b[i] = a[i] op b[i]` (writes into the right operand).
pub fn binary_f32_inplace_rhs(op: BinaryOp, a: &[f32], b: &mut [f32]) {
    check_len("binary_f32_inplace_rhs", a.len(), b.len());
    k_vv_rhs(op, a, b);
}

/// `a[i] = a[i] op b`.
pub fn binary_f32_scalar_rhs_inplace(op: BinaryOp, a: &mut [f32], b: f32) {
    k_vs_inplace(op, a, b);
}

/// `b[i] = a op b[i]`.
pub fn binary_f32_scalar_lhs_inplace(op: BinaryOp, a: f32, b: &mut [f32]) {
    k_sv_inplace(op, a, b);
}

/// `a op b` for one pair, bit-identical to the slice kernels on this CPU.
pub fn binary_scalar_f32(op: BinaryOp, a: f32, b: f32) -> f32 {
    let mut out = [0.0];
    k_vv(op, &[a], &[b], &mut out);
    out[0]
}

/// Elements per parallel work unit.
const PAR_BLOCK: usize = 1024;

/// [`binary_f32`] split over the global pool when large (same results).
pub fn binary_f32_par(op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) {
    check_len("binary_f32_par", a.len(), out.len());
    check_len("binary_f32_par", b.len(), out.len());
    parallel::for_each_row_block_mut(out, PAR_BLOCK, PAR_BLOCK * op.cost(), |row, o| {
        let s = row * PAR_BLOCK..row * PAR_BLOCK + o.len();
        k_vv(op, &a[s.clone()], &b[s], o);
    });
}

/// [`binary_f32_scalar_rhs`] split over the global pool when large.
pub fn binary_f32_scalar_rhs_par(op: BinaryOp, a: &[f32], b: f32, out: &mut [f32]) {
    check_len("binary_f32_scalar_rhs_par", a.len(), out.len());
    parallel::for_each_row_block_mut(out, PAR_BLOCK, PAR_BLOCK * op.cost(), |row, o| {
        let s = row * PAR_BLOCK;
        k_vs(op, &a[s..s + o.len()], b, o);
    });
}

/// [`binary_f32_scalar_lhs`] split over the global pool when large.
pub fn binary_f32_scalar_lhs_par(op: BinaryOp, a: f32, b: &[f32], out: &mut [f32]) {
    check_len("binary_f32_scalar_lhs_par", b.len(), out.len());
    parallel::for_each_row_block_mut(out, PAR_BLOCK, PAR_BLOCK * op.cost(), |row, o| {
        let s = row * PAR_BLOCK;
        k_sv(op, a, &b[s..s + o.len()], o);
    });
}

/// `if c { x } else { y }` as a bit mask.
#[inline(always)]
fn select(c: bool, x: f32, y: f32) -> f32 {
    let m = (c as u32).wrapping_neg();
    f32::from_bits((x.to_bits() & m) | (y.to_bits() & !m))
}

crate::simd_dispatch! {
    fn k_where(cond: &[f32], a: &[f32], b: &[f32], out: &mut [f32]) {
        // Indexed over re-sliced operands: a chain of three zips does not vectorise.
        // `select` is bitwise so LLVM cannot turn it into a load through a
        // selected pointer (which does not vectorise either).
        let n = out.len();
        let (cond, a, b) = (&cond[..n], &a[..n], &b[..n]);
        for i in 0..n {
            out[i] = select(cond[i] != 0.0, a[i], b[i]);
        }
    }
}

crate::simd_dispatch! {
    fn k_where_u8(cond: &[u8], a: &[f32], b: &[f32], out: &mut [f32]) {
        let n = out.len();
        let (cond, a, b) = (&cond[..n], &a[..n], &b[..n]);
        for i in 0..n {
            out[i] = select(cond[i] != 0, a[i], b[i]);
        }
    }
}

crate::simd_dispatch! {
    fn k_where_sa(cond: &[f32], a: f32, b: &[f32], out: &mut [f32]) {
        for ((o, &c), &y) in out.iter_mut().zip(cond).zip(b) {
            *o = if c != 0.0 { a } else { y };
        }
    }
}

crate::simd_dispatch! {
    fn k_where_sb(cond: &[f32], a: &[f32], b: f32, out: &mut [f32]) {
        for ((o, &c), &x) in out.iter_mut().zip(cond).zip(a) {
            *o = if c != 0.0 { x } else { b };
        }
    }
}

crate::simd_dispatch! {
    fn k_where_ss(cond: &[f32], a: f32, b: f32, out: &mut [f32]) {
        for (o, &c) in out.iter_mut().zip(cond) {
            *o = if c != 0.0 { a } else { b };
        }
    }
}

/// `out[i] = if cond[i] != 0 { a[i] } else { b[i] }` (NaN counts as true).
pub fn where_f32(cond: &[f32], a: &[f32], b: &[f32], out: &mut [f32]) {
    check_len("where_f32", cond.len(), out.len());
    check_len("where_f32", a.len(), out.len());
    check_len("where_f32", b.len(), out.len());
    k_where(cond, a, b, out);
}

/// [`where_f32`] with a byte mask (`bool` tensors): nonzero selects `a`.
pub fn where_u8_f32(cond: &[u8], a: &[f32], b: &[f32], out: &mut [f32]) {
    check_len("where_u8_f32", cond.len(), out.len());
    check_len("where_u8_f32", a.len(), out.len());
    check_len("where_u8_f32", b.len(), out.len());
    k_where_u8(cond, a, b, out);
}

/// [`where_f32`] with a scalar `a`.
pub fn where_f32_scalar_a(cond: &[f32], a: f32, b: &[f32], out: &mut [f32]) {
    check_len("where_f32_scalar_a", cond.len(), out.len());
    check_len("where_f32_scalar_a", b.len(), out.len());
    k_where_sa(cond, a, b, out);
}

/// [`where_f32`] with a scalar `b` (e.g. masking with -inf).
pub fn where_f32_scalar_b(cond: &[f32], a: &[f32], b: f32, out: &mut [f32]) {
    check_len("where_f32_scalar_b", cond.len(), out.len());
    check_len("where_f32_scalar_b", a.len(), out.len());
    k_where_sb(cond, a, b, out);
}

/// [`where_f32`] with both branches scalar.
pub fn where_f32_scalars(cond: &[f32], a: f32, b: f32, out: &mut [f32]) {
    check_len("where_f32_scalars", cond.len(), out.len());
    k_where_ss(cond, a, b, out);
}

crate::simd_dispatch! {
    fn k_fma(a: &[f32], b: &[f32], c: &[f32], out: &mut [f32]) {
        let n = out.len();
        let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
        for i in 0..n {
            out[i] = a[i] * b[i] + c[i];
        }
    }
}

/// `out[i] = a[i] * b[i] + c[i]` in one pass, rounded twice (bit-identical
/// to a multiply then an add, so fusing it never changes results).
pub fn fma_f32(a: &[f32], b: &[f32], c: &[f32], out: &mut [f32]) {
    check_len("fma_f32", a.len(), out.len());
    check_len("fma_f32", b.len(), out.len());
    check_len("fma_f32", c.len(), out.len());
    k_fma(a, b, c, out);
}

/// `a op b` in `f64` (the reference semantics; same special values as `f32`).
pub fn binary_scalar_f64(op: BinaryOp, a: f64, b: f64) -> f64 {
    let t = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Maximum if a.is_nan() || b.is_nan() => f64::NAN,
        BinaryOp::Maximum => a.max(b),
        BinaryOp::Minimum if a.is_nan() || b.is_nan() => f64::NAN,
        BinaryOp::Minimum => a.min(b),
        BinaryOp::Eq => t(a == b),
        BinaryOp::Ne => t(a != b),
        BinaryOp::Lt => t(a < b),
        BinaryOp::Le => t(a <= b),
        BinaryOp::Gt => t(a > b),
        BinaryOp::Ge => t(a >= b),
        BinaryOp::LogicalAnd => t(a != 0.0 && b != 0.0),
        BinaryOp::LogicalOr => t(a != 0.0 || b != 0.0),
    }
}

/// `out[i] = a[i] op b[i]` in `f64` (scalar loop).
pub fn binary_f64(op: BinaryOp, a: &[f64], b: &[f64], out: &mut [f64]) {
    check_len("binary_f64", a.len(), out.len());
    check_len("binary_f64", b.len(), out.len());
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = binary_scalar_f64(op, x, y);
    }
}

/// `out[i] = a[i] op b` in `f64`.
pub fn binary_f64_scalar_rhs(op: BinaryOp, a: &[f64], b: f64, out: &mut [f64]) {
    check_len("binary_f64_scalar_rhs", a.len(), out.len());
    for (o, &x) in out.iter_mut().zip(a) {
        *o = binary_scalar_f64(op, x, b);
    }
}

/// `out[i] = a op b[i]` in `f64`.
pub fn binary_f64_scalar_lhs(op: BinaryOp, a: f64, b: &[f64], out: &mut [f64]) {
    check_len("binary_f64_scalar_lhs", b.len(), out.len());
    for (o, &y) in out.iter_mut().zip(b) {
        *o = binary_scalar_f64(op, a, y);
    }
}

/// `a[i] = a[i] op b[i]` in `f64`.
pub fn binary_f64_inplace(op: BinaryOp, a: &mut [f64], b: &[f64]) {
    check_len("binary_f64_inplace", a.len(), b.len());
    for (x, &y) in a.iter_mut().zip(b) {
        *x = binary_scalar_f64(op, *x, y);
    }
}

/// `out[i] = if cond[i] != 0 { a[i] } else { b[i] }` in `f64`.
pub fn where_f64(cond: &[f64], a: &[f64], b: &[f64], out: &mut [f64]) {
    check_len("where_f64", cond.len(), out.len());
    check_len("where_f64", a.len(), out.len());
    check_len("where_f64", b.len(), out.len());
    for (((o, &c), &x), &y) in out.iter_mut().zip(cond).zip(a).zip(b) {
        *o = if c != 0.0 { x } else { y };
    }
}
