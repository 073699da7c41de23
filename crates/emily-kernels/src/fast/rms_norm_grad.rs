//! The gradient of RMSNorm over the last axis, one pass per row.
//!
//! With `r = 1 / sqrt(mean(x²) + eps)`, `y = x·r·w` and the output's
//! cotangent `dy`: `dx = r·(dy∘w) − x·r³·Σ(dy∘w∘x)/D` and
//! `dw = Σ_rows dy∘x·r`. The inverse RMS is recomputed from the row (it sits
//! in L1), so the forward saves nothing. Rows are split across the pool;
//! each block sums its own weight-gradient partials, added in block order.

use std::sync::Mutex;

use super::lanes::{self, fma_dispatch};
use super::rms_norm::{inv_rms, GROUP, GW};
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
    rms_norm_backward_plus_f32(x, weight, &[dy], None, eps, cols, dx, dweight)
}

/// [`rms_norm_backward_f32`] for an output cotangent given as the parts of
/// a sum, `dy = dy[0] + dy[1] + …` (added left to right per element, a few
/// rows at a time), with `residual` (like `x`) added to `dx` as each row is
/// finished: the cotangents of a norm read by several products and of a
/// residual stream `x + f(norm(x))` in one pass instead of separate adds.
///
/// # Panics
/// As [`rms_norm_backward_f32`] (for every part of `dy`), if `dy` has no
/// part, and if `residual` differs from `x` in length.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_backward_plus_f32(
    x: &[f32],
    weight: Option<&[f32]>,
    dy: &[&[f32]],
    residual: Option<&[f32]>,
    eps: f32,
    cols: usize,
    dx: &mut [f32],
    dweight: Option<&mut [f32]>,
) {
    assert!(!dy.is_empty(), "[rms_norm_backward] no part of dy");
    for part in dy {
        check(
            x.len(),
            part.len(),
            dx.len(),
            cols,
            weight,
            dweight.as_deref(),
        );
    }
    if let Some(r) = residual {
        assert_eq!(
            r.len(),
            x.len(),
            "[rms_norm_backward] residual has {} elements, x {}",
            r.len(),
            x.len()
        );
    }
    let plus = |at: std::ops::Range<usize>| residual.map(|r| &r[at]);
    let parts =
        |at: std::ops::Range<usize>| -> Vec<&[f32]> { dy.iter().map(|p| &p[at.clone()]).collect() };
    let Some(dw) = dweight else {
        if cols > 0 {
            parallel::for_each_row_block_mut(dx, cols, 3 * cols, |row0, block| {
                let at = row0 * cols..row0 * cols + block.len();
                let (xs, gs, rs) = (&x[at.clone()], parts(at.clone()), plus(at));
                grad_parts(xs, None, &gs, rs, eps, cols, block, None);
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
        grad_parts(
            &x[at.clone()],
            weight,
            &parts(at.clone()),
            plus(at),
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

/// [`grad_rows`] for `dy` given as parts: each [`GROUP`] of rows' `dy` is
/// summed into an L1 scratch first (the rows are grouped as `grad_rows`
/// would group them over the whole block, so results do not change).
#[allow(clippy::too_many_arguments)]
fn grad_parts(
    x: &[f32],
    weight: Option<&[f32]>,
    dy: &[&[f32]],
    plus: Option<&[f32]>,
    eps: f32,
    cols: usize,
    dx: &mut [f32],
    dw: Option<&mut [f32]>,
) {
    let mut dw = dw;
    let [first, rest @ ..] = dy else {
        unreachable!("checked: dy has a part")
    };
    if rest.is_empty() {
        return grad_rows(x, weight, first, plus, eps, cols, dx, dw);
    }
    let step = GROUP * cols;
    let mut sum = vec![0.0f32; step.min(x.len())];
    for start in (0..x.len()).step_by(step) {
        let at = start..(start + step).min(x.len());
        let s = &mut sum[..at.len()];
        s.copy_from_slice(&first[at.clone()]);
        for part in rest {
            for (a, b) in s.iter_mut().zip(&part[at.clone()]) {
                *a += *b;
            }
        }
        grad_rows(
            &x[at.clone()],
            weight,
            s,
            plus.map(|p| &p[at.clone()]),
            eps,
            cols,
            &mut dx[at],
            dw.as_deref_mut(),
        );
    }
}

fma_dispatch! {
    /// The gradient of whole rows; `dw` (with a weight) accumulates
    /// `dy∘x·r` over them (row by row, in order). Rows whose length is a
    /// multiple of [`GW`] run [`GROUP`] at a time; `plus` (like `x`) is
    /// added to `dx`.
    fn grad_rows(
        x: &[f32],
        weight: Option<&[f32]>,
        dy: &[f32],
        plus: Option<&[f32]>,
        eps: f32,
        cols: usize,
        dx: &mut [f32],
        dw: Option<&mut [f32]>,
    ) {
        let mut dw = dw;
        let rows = x.len() / cols;
        let grouped = if cols.is_multiple_of(GW) { rows / GROUP * GROUP } else { 0 };
        for g0 in (0..grouped).step_by(GROUP) {
            let at = g0 * cols..(g0 + GROUP) * cols;
            grad_group::<FMA>(
                &x[at.clone()],
                weight,
                &dy[at.clone()],
                plus.map(|p| &p[at.clone()]),
                eps,
                cols,
                &mut dx[at],
                dw.as_deref_mut(),
            );
        }
        let at = grouped * cols..;
        let rest = x[at.clone()].chunks_exact(cols).zip(dy[at.clone()].chunks_exact(cols));
        for (k, ((xr, gr), out)) in rest.zip(dx[at].chunks_exact_mut(cols)).enumerate() {
            let pr = plus.map(|p| &p[(grouped + k) * cols..][..cols]);
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
            finish_row::<FMA>(xr, gr, pr, r, dot, out, dw.as_deref_mut());
        }
    }
}

/// `dx = r·(dy∘w) − x·r³·dot/D` (plus the row of `plus`, if any) in place
/// of `dy∘w` in `out`, and the row's `dy∘x·r` added to `dw`.
#[inline(always)]
fn finish_row<const FMA: bool>(
    xr: &[f32],
    gr: &[f32],
    plus: Option<&[f32]>,
    r: f32,
    dot: f32,
    out: &mut [f32],
    dw: Option<&mut [f32]>,
) {
    let c = r * r * r * dot / xr.len() as f32;
    match plus {
        Some(p) => {
            for ((o, v), p) in out.iter_mut().zip(xr).zip(p) {
                *o = lanes::fmadd::<FMA>(-c, *v, r * *o) + *p;
            }
        }
        None => {
            for (o, v) in out.iter_mut().zip(xr) {
                *o = lanes::fmadd::<FMA>(-c, *v, r * *o);
            }
        }
    }
    if let Some(dw) = dw {
        for ((d, g), v) in dw.iter_mut().zip(gr).zip(xr) {
            *d = lanes::fmadd::<FMA>(*g, *v * r, *d);
        }
    }
}

/// [`GROUP`] rows of [`grad_rows`] (`cols` a multiple of [`GW`]): `dy∘w`,
/// `Σx²` and `Σ(dy∘w)∘x` of every row in one pass with the rows' partial
/// sums interleaved, then each row finished as alone.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn grad_group<const FMA: bool>(
    x: &[f32],
    weight: Option<&[f32]>,
    dy: &[f32],
    plus: Option<&[f32]>,
    eps: f32,
    cols: usize,
    dx: &mut [f32],
    dw: Option<&mut [f32]>,
) {
    let mut dw = dw;
    let mut ss = [[0.0f32; GW]; GROUP];
    let mut dot = [[0.0f32; GW]; GROUP];
    for c0 in (0..cols).step_by(GW) {
        let w: [f32; GW] = weight.map_or([1.0; GW], |w| w[c0..][..GW].try_into().unwrap());
        for r in 0..GROUP {
            let at = r * cols + c0;
            let xv: [f32; GW] = x[at..][..GW].try_into().unwrap();
            let gv: [f32; GW] = dy[at..][..GW].try_into().unwrap();
            let mut gw = [0.0f32; GW];
            for l in 0..GW {
                // Without a weight, `w` is ones: the same values.
                gw[l] = gv[l] * w[l];
                ss[r][l] = lanes::fmadd::<FMA>(xv[l], xv[l], ss[r][l]);
                dot[r][l] = lanes::fmadd::<FMA>(gw[l], xv[l], dot[r][l]);
            }
            dx[at..][..GW].copy_from_slice(&gw);
        }
    }
    for r in 0..GROUP {
        let at = r * cols..(r + 1) * cols;
        let inv = 1.0 / (lanes::halving_sum(ss[r]) / cols as f32 + eps).sqrt();
        finish_row::<FMA>(
            &x[at.clone()],
            &dy[at.clone()],
            plus.map(|p| &p[at.clone()]),
            inv,
            lanes::halving_sum(dot[r]),
            &mut dx[at],
            dw.as_deref_mut(),
        );
    }
}
