//! The SiLU gradient `a · silu'(g)` (optionally `(a · b) · silu'(g)`) in
//! one loop, with `silu'(g) = s · (g · (1 − s) + 1)` and `s = sigmoid(g)`:
//! exactly the operations, in the same order and with the same operands,
//! that the gradient rule's elementwise ops perform one at a time, so the
//! results are bit-identical to evaluating them separately (the sigmoid is
//! [`crate::math::sigmoid_with`], fused multiply-adds where the unary
//! kernel uses them). A fused elementwise program of that shape (SwiGLU's
//! gate gradient) runs here instead of instruction by instruction.

use crate::math::{self, dispatch_fma};

dispatch_fma! {
    fn k_silu_grad<FMA>(a: &[f32], b: Option<&[f32]>, g: &[f32], out: &mut [f32]) {
        let n = out.len();
        let (a, g) = (&a[..n], &g[..n]);
        match b {
            Some(b) => {
                let b = &b[..n];
                for i in 0..n {
                    out[i] = (a[i] * b[i]) * ds::<FMA>(g[i]);
                }
            }
            None => {
                for i in 0..n {
                    out[i] = a[i] * ds::<FMA>(g[i]);
                }
            }
        }
    }
}

/// `s · (g · (−s + 1) + 1)`, `s = sigmoid(g)`, one rounding per operation.
#[inline(always)]
fn ds<const FMA: bool>(g: f32) -> f32 {
    let s = math::sigmoid_with::<FMA>(g);
    s * (g * (-s + 1.0) + 1.0)
}

/// `out[i] = a[i] · silu'(g[i])`, or `(a[i] · b[i]) · silu'(g[i])` with
/// `b` (module docs). Panics unless all lengths are equal.
pub fn silu_grad_f32(a: &[f32], b: Option<&[f32]>, g: &[f32], out: &mut [f32]) {
    let n = out.len();
    assert!(
        a.len() == n && g.len() == n && b.is_none_or(|b| b.len() == n),
        "silu_grad_f32: length mismatch"
    );
    k_silu_grad(a, b, g, out);
}
