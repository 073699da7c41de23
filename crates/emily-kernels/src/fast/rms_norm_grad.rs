//! The gradient of RMSNorm over the last axis, one pass per row.
//!
//! With `r = 1 / sqrt(mean(x²) + eps)`, `y = x·r·w` and the output's
//! cotangent `dy`: `dx = r·(dy∘w) − x·r³·Σ(dy∘w∘x)/D` and
//! `dw = Σ_rows dy∘x·r`. The inverse RMS is recomputed from the row (it sits
//! in L1), so the forward saves nothing. Rows are split across the pool;
//! each block sums its own weight-gradient partials, added in block order.

use std::sync::Mutex;

use super::lanes::{self, fma_dispatch};
use super::rms_norm::inv_rms;
use crate::parallel;

/// The gradient of [`super::rms_norm_f32`] for each length-`cols` row: `dx`
/// (like `x`) and, with a weight, `dweight` (`cols` elements, overwritten
/// with the sum over rows).
///
/// `cols == 0` or no rows: `dx` is left empty and `dweight` zeroed.
///
/// # Panics
/// If `x`, `dy` and `dx` differ in length, the length is not a multiple of
/// `cols`, `weight` or `dweight` does not have `cols` elements, or exactly
/// one of `weight` and `dweight` is given.
pub fn rms_norm_backward_f32(
    x: &[f32],
    weight: Option<&[f32]>,
    dy: &[f32],
    eps: f32,
    cols: usize,
    dx: &mut [f32],
    dweight: Option<&mut [f32]>,
) {
    check(
        x.len(),
        dy.len(),
        dx.len(),
        cols,
        weight,
        dweight.as_deref(),
    );
    let Some(dw) = dweight else {
        if cols > 0 {
            parallel::for_each_row_block_mut(dx, cols, 3 * cols, |row0, block| {
                let at = row0 * cols..row0 * cols + block.len();
                grad_rows(&x[at.clone()], None, &dy[at], eps, cols, block, None);
            });
        }
        return;
    };
    dw.fill(0.0);
    if cols == 0 || x.is_empty() {
        return;
    }
    let partials: Mutex<Vec<(usize, Vec<f32>)>> = Mutex::new(Vec::new());
    parallel::for_each_row_block_mut(dx, cols, 3 * cols, |row0, block| {
        let at = row0 * cols..row0 * cols + block.len();
        let mut part = vec![0.0f32; cols];
        grad_rows(
            &x[at.clone()],
            weight,
            &dy[at],
            eps,
            cols,
            block,
            Some(&mut part),
        );
        partials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((row0, part));
    });
    let mut partials = partials.into_inner().unwrap_or_else(|e| e.into_inner());
    partials.sort_by_key(|p| p.0);
    for (_, part) in partials {
        for (d, p) in dw.iter_mut().zip(part) {
            *d += p;
        }
    }
}

fn check(
    x_len: usize,
    dy_len: usize,
    dx_len: usize,
    cols: usize,
    w: Option<&[f32]>,
    dw: Option<&[f32]>,
) {
    assert!(
        x_len == dy_len && x_len == dx_len,
        "[rms_norm_backward] x, dy and dx have {x_len}, {dy_len} and {dx_len} elements"
    );
    if cols > 0 {
        assert!(
            x_len.is_multiple_of(cols),
            "[rms_norm_backward] x has {x_len} elements, not a multiple of the row length {cols}"
        );
    }
    assert_eq!(
        w.is_some(),
        dw.is_some(),
        "[rms_norm_backward] a weight needs a weight gradient and vice versa"
    );
    for (name, n) in [
        ("weight", w.map(<[f32]>::len)),
        ("dweight", dw.map(<[f32]>::len)),
    ] {
        if let Some(n) = n {
            assert_eq!(
                n, cols,
                "[rms_norm_backward] {name} has {n} elements, x's last axis is {cols}"
            );
        }
    }
}

fma_dispatch! {
    /// The gradient of whole rows; `dw` (with a weight) accumulates
    /// `dy∘x·r` over them.
    fn grad_rows(
        x: &[f32],
        weight: Option<&[f32]>,
        dy: &[f32],
        eps: f32,
        cols: usize,
        dx: &mut [f32],
        dw: Option<&mut [f32]>,
    ) {
        let mut dw = dw;
        let rows = x.chunks_exact(cols).zip(dy.chunks_exact(cols));
        for ((xr, gr), out) in rows.zip(dx.chunks_exact_mut(cols)) {
            let r = inv_rms::<FMA>(xr, eps);
            // dx holds dy∘w first, then the gradient.
            match weight {
                Some(w) => {
                    for ((o, g), w) in out.iter_mut().zip(gr).zip(w) {
                        *o = *g * *w;
                    }
                }
                None => out.copy_from_slice(gr),
            }
            let dot = lanes::dot::<FMA>(out, xr);
            let c = r * r * r * dot / cols as f32;
            for (o, v) in out.iter_mut().zip(xr) {
                *o = lanes::fmadd::<FMA>(-c, *v, r * *o);
            }
            if let Some(dw) = dw.as_deref_mut() {
                for ((d, g), v) in dw.iter_mut().zip(gr).zip(xr) {
                    *d = lanes::fmadd::<FMA>(*g, *v * r, *d);
                }
            }
        }
    }
}
