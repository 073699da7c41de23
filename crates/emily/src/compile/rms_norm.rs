//! Recognises a composed RMSNorm and its gradient in a traced training step
//! and runs them as fused row kernels.
//!
//! The forward `x · rsqrt(mean(x², last axis) + eps) · w` (the weight
//! optional, as the model layers and [`crate::fast`]'s decomposition build
//! it) becomes one [`FastOp::RmsNorm`] node, and its vector-Jacobian
//! product — the nodes the gradient rules emit for those ops: `dy·w`, the
//! two products with `r = rsqrt(…)` and `x`, the row sum, `rsqrt`'s
//! `−½·r³`, the mean's `1/D` and broadcast, the square's `2·x`, and the
//! weight's gradient summed over rows — becomes one [`FastOp::RmsNormGrad`]
//! node whose flat output is sliced into dx and dw. The two contributions
//! to x's cotangent are replaced together: the first by dx, and the sum
//! that adds the second by its other operand.
//!
//! A match requires every piece: f32 tensors, constant `eps`, `−½`, `1/D`
//! and `2`, and the backward exactly as the rules build it, with x's
//! gradient present (the weight's is optional). Anything
//! else is left composed, so the rewrite only ever replaces values by equal
//! ones up to round-off (the fused kernels accumulate in another order).

use std::collections::HashSet;

use super::graph::{Graph, Kind};
use super::passes::dead_code;
use super::pattern::{
    commutative_use, consumers, is_binary, node, push, slice_into, uniform_const,
};
use crate::backend::Backend;
use crate::fast::FastOp;
use crate::ops::{BinaryOp, Op, Reduction, UnaryOp};
use crate::DType;

/// The value ids of one matched RMSNorm.
struct Site {
    x: usize,
    weight: Option<usize>,
    eps: f32,
    /// The forward output.
    out: usize,
    /// The output's cotangent.
    d_out: usize,
    /// `dy·r`, the first contribution to x's cotangent.
    dx_direct: usize,
    /// The sum adding the second contribution (`2·x·∂mean`), and the
    /// operand it keeps.
    dx_sum: usize,
    dx_sum_other: usize,
    /// The second contribution itself.
    dx_square: usize,
    /// The weight's gradient (shaped like the weight), if it has one.
    dw: Option<usize>,
}

/// Rewrites every matched RMSNorm (module docs); returns how many.
pub(crate) fn fuse_rms_norms(g: &mut Graph, backend: &dyn Backend) -> usize {
    let consumers = consumers(g);
    let sites: Vec<Site> = (0..g.values.len())
        .filter_map(|r| match_site(g, &consumers, r))
        .collect();
    // Two norms of one x could meet in one sum of their contributions:
    // each site then claims the nodes it rewrites, and a later site touching
    // any of them stays composed.
    let mut claimed = HashSet::new();
    let mut fused = 0;
    for s in &sites {
        let ids = [s.dx_direct, s.dx_sum, s.dx_sum_other, s.dx_square];
        if ids.iter().any(|i| claimed.contains(i)) {
            continue;
        }
        if rewrite(g, backend, s) {
            claimed.extend(ids);
            fused += 1;
        }
    }
    if fused > 0 {
        g.sort_topologically();
        dead_code(g);
    }
    fused
}

fn is_unary(g: &Graph, i: usize, want: UnaryOp) -> Option<usize> {
    match node(g, i)? {
        (Op::Unary(u), &[x]) if *u == want => Some(x),
        _ => None,
    }
}

/// `(a, b)` of a node computing `a · b` (operands in node order).
fn mul_operands(g: &Graph, i: usize) -> Option<(usize, usize)> {
    match node(g, i)? {
        (op, &[a, b]) if is_binary(op, BinaryOp::Mul) => Some((a, b)),
        _ => None,
    }
}

/// The consumer of `a` computing `a · b` with these operands in this order.
fn mul_use(g: &Graph, consumers: &[Vec<usize>], a: usize, b: usize) -> Option<usize> {
    consumers[a]
        .iter()
        .copied()
        .find(|&c| mul_operands(g, c) == Some((a, b)))
}

/// The consumer of `a` computing `a · c` with `c` a constant equal to `k`.
fn mul_const_use(g: &Graph, consumers: &[Vec<usize>], a: usize, k: f64) -> Option<usize> {
    consumers[a].iter().copied().find(|&c| {
        matches!(mul_operands(g, c), Some((x, y)) if x == a
            && uniform_const(g, y).is_some_and(|v| (v - k).abs() <= 1e-7 * k.abs()))
    })
}

/// The value `v` summed to `shape` the way the gradient rules'
/// `unbroadcast` does it: `v` itself when shapes agree, else a sum over
/// `axes` (dropping them) and, when the shape still differs, a reshape.
fn unbroadcast_exit(
    g: &Graph,
    consumers: &[Vec<usize>],
    v: usize,
    axes: &[usize],
    shape: &[usize],
) -> Option<usize> {
    if g.values[v].shape == shape {
        return Some(v);
    }
    let sum = consumers[v].iter().copied().find(|&c| {
        matches!(node(g, c), Some((Op::Reduce { op: Reduction::Sum, axes: a, keep_dims: false }, _)) if a == axes)
    })?;
    if g.values[sum].shape == shape {
        return Some(sum);
    }
    consumers[sum]
        .iter()
        .copied()
        .find(|&c| matches!(node(g, c), Some((Op::Reshape, _))) && g.values[c].shape == shape)
}

/// The only consumer of `v`, if it is a sum; with the sum's other operand.
fn sole_sum(g: &Graph, consumers: &[Vec<usize>], v: usize) -> Option<(usize, usize)> {
    let &[add] = consumers[v].as_slice() else {
        return None;
    };
    match node(g, add)? {
        (op, &[a, b])
            if is_binary(op, BinaryOp::Add) && g.values[add].shape == g.values[v].shape =>
        {
            Some((add, if a == v { b } else { a }))
        }
        _ => None,
    }
}

/// Matches the RMSNorm whose inverse RMS is value `r` (module docs).
fn match_site(g: &Graph, consumers: &[Vec<usize>], r: usize) -> Option<Site> {
    let a = is_unary(g, r, UnaryOp::Rsqrt)?;
    let rs = &g.values[r].shape;
    if g.values[r].dtype != DType::F32 || rs.last() != Some(&1) {
        return None;
    }
    let (a0, a1) = match node(g, a)? {
        (op, &[a0, a1]) if is_binary(op, BinaryOp::Add) => (a0, a1),
        _ => None?,
    };
    let (ms, eps) = match (uniform_const(g, a0), uniform_const(g, a1)) {
        (None, Some(e)) => (a0, e),
        (Some(e), None) => (a1, e),
        _ => return None,
    };
    if g.values[ms].shape != *rs || g.values[a].shape != *rs {
        return None;
    }
    let rank = rs.len();
    let (
        Op::Reduce {
            op: Reduction::Mean,
            axes,
            keep_dims: true,
        },
        &[sq],
    ) = node(g, ms)?
    else {
        return None;
    };
    if axes != &[rank - 1] {
        return None;
    }
    let x = is_unary(g, sq, UnaryOp::Square)?;
    let xs = g.values[x].shape.clone();
    let cols = *xs.last()?;
    if g.values[x].dtype != DType::F32 || xs[..rank - 1] != rs[..rank - 1] || cols == 0 {
        return None;
    }
    let y = commutative_use(g, consumers, r, BinaryOp::Mul, |o| o == x)?;
    // The weight: a consumer `w·y` or `y·w` with w holding `cols` elements.
    let is_weight = |o: usize| {
        let s = &g.values[o].shape;
        o != y
            && g.values[o].dtype == DType::F32
            && s.last() == Some(&cols)
            && s.iter().product::<usize>() == cols
            && s.len() <= rank
    };
    let out_w = commutative_use(g, consumers, y, BinaryOp::Mul, is_weight);
    let (out, weight, d_out, dy) = match out_w {
        Some(out) => {
            let (o0, o1) = mul_operands(g, out)?;
            let w = if o0 == y { o1 } else { o0 };
            if g.values[out].shape != xs {
                return None;
            }
            // dy = d_out · w (the product rule's gradient for y).
            let (dy, d_out) = consumers[w]
                .iter()
                .find_map(|&c| match mul_operands(g, c) {
                    Some((d, ww)) if ww == w && d != y && g.values[d].shape == xs => Some((c, d)),
                    _ => None,
                })?;
            (out, Some(w), d_out, dy)
        }
        None => {
            // Without a weight the output is y, and its cotangent multiplies r.
            let dy = consumers[r]
                .iter()
                .find_map(|&c| match mul_operands(g, c) {
                    Some((d, rr)) if rr == r && d != x && g.values[d].shape == xs => Some(d),
                    _ => None,
                })?;
            (y, None, dy, dy)
        }
    };
    // x's first contribution dy·r; the second through r: Σ(dy·x) over the row.
    let dx_direct = mul_use(g, consumers, dy, r)?;
    let dyx = mul_use(g, consumers, dy, x)?;
    let dr = unbroadcast_exit(g, consumers, dyx, &[rank - 1], rs)?;
    // rsqrt's rule: dr · ((r² · r) · −½).
    let da = consumers[dr].iter().copied().find(|&c| {
        let Some((d, t)) = mul_operands(g, c) else {
            return false;
        };
        let Some((m, half)) = mul_operands(g, t) else {
            return false;
        };
        let cube = mul_operands(g, m)
            .is_some_and(|(s, rr)| rr == r && is_unary(g, s, UnaryOp::Square) == Some(r));
        d == dr && cube && uniform_const(g, half) == Some(-0.5)
    })?;
    // The sum's rule passes da to the mean; the mean's scales by 1/D and
    // broadcasts; the square's multiplies by x and 2.
    let dmean = mul_const_use(g, consumers, da, 1.0 / cols as f64)?;
    let dsq = if g.values[dmean].shape == xs {
        dmean
    } else {
        consumers[dmean]
            .iter()
            .copied()
            .find(|&c| matches!(node(g, c), Some((Op::Broadcast, _))) && g.values[c].shape == xs)?
    };
    let dsqx = mul_use(g, consumers, dsq, x)?;
    let dx_square = mul_const_use(g, consumers, dsqx, 2.0)?;
    sole_sum(g, consumers, dx_direct)?;
    let (dx_sum, dx_sum_other) = sole_sum(g, consumers, dx_square)?;
    if g.outputs.contains(&dx_direct) || g.outputs.contains(&dx_square) {
        return None;
    }
    // The weight's gradient, when it has one (a frozen weight has none).
    let dw = match weight.zip(mul_use(g, consumers, d_out, y)) {
        Some((w, prod)) => {
            let lead = rank - g.values[w].shape.len();
            let axes: Vec<usize> = (0..rank)
                .filter(|&i| i < lead || (g.values[w].shape[i - lead] == 1 && xs[i] != 1))
                .collect();
            Some(unbroadcast_exit(
                g,
                consumers,
                prod,
                &axes,
                &g.values[w].shape,
            )?)
        }
        None => None,
    };
    Some(Site {
        x,
        weight,
        eps: eps as f32,
        out,
        d_out,
        dx_direct,
        dx_sum,
        dx_sum_other,
        dx_square,
        dw,
    })
}

/// Replaces the site's forward output and gradient exits (module docs).
fn rewrite(g: &mut Graph, backend: &dyn Backend, s: &Site) -> bool {
    let has_weight = s.weight.is_some();
    let forward = FastOp::RmsNorm {
        eps: s.eps,
        has_weight,
    };
    let backward = FastOp::RmsNormGrad {
        eps: s.eps,
        has_weight,
        dy_parts: 1,
        has_residual: false,
    };
    let xs = g.values[s.x].shape.clone();
    let cols = *xs.last().unwrap_or(&1);
    let w_shape = vec![cols];
    let mut ins: Vec<(&[usize], DType)> = vec![(&xs, DType::F32)];
    if has_weight {
        ins.push((&w_shape, DType::F32));
    }
    let fwd_ok = backend.supports_fast(&forward, &ins).is_ok();
    ins.push((&xs, DType::F32));
    let bwd_ok = backend.supports_fast(&backward, &ins).is_ok();
    if !(fwd_ok && bwd_ok) || g.values[s.d_out].dtype != DType::F32 {
        return false;
    }
    // The kernels take the weight as a vector.
    let w = s.weight.map(|w| {
        if g.values[w].shape == w_shape {
            w
        } else {
            push(g, Op::Reshape, vec![w], w_shape.clone())
        }
    });
    let n = xs.iter().product::<usize>();
    let mut inputs = vec![s.x];
    inputs.extend(w);
    inputs.push(s.d_out);
    let grads = push(
        g,
        Op::Fast(backward),
        inputs,
        vec![n + if has_weight { cols } else { 0 }],
    );
    if s.dx_sum_other == s.dx_direct {
        // Both contributions meet in one sum: it becomes dx.
        slice_into(g, grads, 0, s.dx_sum);
    } else {
        slice_into(g, grads, 0, s.dx_direct);
        g.values[s.dx_sum].kind = Kind::Node {
            op: Op::Reshape,
            inputs: vec![s.dx_sum_other],
        };
    }
    if let Some(dw) = s.dw {
        slice_into(g, grads, n, dw);
    }
    let mut fwd_inputs = vec![s.x];
    fwd_inputs.extend(w);
    g.values[s.out].kind = Kind::Node {
        op: Op::Fast(forward),
        inputs: fwd_inputs,
    };
    true
}
