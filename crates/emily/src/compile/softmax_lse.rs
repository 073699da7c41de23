//! A log-sum-exp and the softmax built from it as one row kernel.
//!
//! A cross-entropy loss reads `lse = logsumexp(x)` over the last axis, and
//! its gradient `exp(x − lse)` (the rule of the log-sum-exp): two passes over
//! the logits, each with an exp per element. Where a traced graph computes
//! both, one [`FastOp::SoftmaxLogSumExp`] node computes them in one pass with
//! one exp per element; its flat output is sliced into the probabilities
//! (its leading part, which the CPU backend then hands over without a copy)
//! and the log-sum-exp. The log-sum-exp keeps its bits; the probabilities
//! agree with `exp(x − lse)` to round-off. When the softmax's one reader
//! multiplies it by a per-row value (the loss's cotangent), the kernel
//! applies that factor too and the product is sliced out instead.
//!
//! A match requires an f32 `exp(x − y)` of `x`'s shape where `y` is the
//! log-sum-exp of that same `x` over its last axis with that axis kept as
//! size 1 (directly or through one reshape), and a backend kernel for it.

use super::graph::Graph;
use super::pattern::{as_shape, is_binary, node, push, slice_into, unreshaped};
use crate::backend::Backend;
use crate::fast::FastOp;
use crate::ops::{BinaryOp, Op, Reduction, UnaryOp};
use crate::shape::numel;
use crate::DType;

/// The log-sum-exp `l` of `x` that value `e` exponentiates `x` against
/// (`e = exp(x − l)`, module docs): `(x, l)`.
fn site(g: &Graph, e: usize) -> Option<(usize, usize)> {
    let (Op::Unary(UnaryOp::Exp), ins) = node(g, e)? else {
        return None;
    };
    let (sub, ins) = node(g, ins[0])?;
    if !is_binary(sub, BinaryOp::Sub) {
        return None;
    }
    let (x, y) = (ins[0], ins[1]);
    let l = unreshaped(g, y);
    let (Op::Reduce { op, axes, .. }, l_ins) = node(g, l)? else {
        return None;
    };
    let shape = &g.values[x].shape;
    let rank = shape.len();
    let kept: Vec<usize> = shape[..rank.saturating_sub(1)]
        .iter()
        .copied()
        .chain([1])
        .collect();
    let ok = *op == Reduction::LogSumExp
        && l_ins[0] == x
        && rank >= 1
        && axes[..] == [rank - 1]
        && g.values[y].shape == kept
        && g.values[e].shape == *shape
        && g.values[x].dtype == DType::F32;
    ok.then_some((x, l))
}

/// The per-row multiplier of the one reader of `e`, when that reader is
/// `c · e` (either order) with `c` an f32 value of one element or one per
/// row (`kept`'s shape), and `e` is not a graph output: `(product, c)`.
fn row_scale(g: &Graph, e: usize, kept: &[usize], is_output: &[bool]) -> Option<(usize, usize)> {
    let readers: Vec<usize> = (0..g.values.len())
        .filter(|&i| node(g, i).is_some_and(|(_, ins)| ins.contains(&e)))
        .collect();
    let [m] = readers[..] else { return None };
    let (op, ins) = node(g, m)?;
    if is_output[e] || !is_binary(op, BinaryOp::Mul) || ins[0] == ins[1] {
        return None;
    }
    let c = if ins[0] == e { ins[1] } else { ins[0] };
    let v = &g.values[c];
    let per_row = v.shape == kept || numel(&v.shape) == 1;
    (per_row && v.dtype == DType::F32 && g.values[m].shape == g.values[e].shape).then_some((m, c))
}

/// Rewrites every matched pair (module docs); returns how many.
pub(crate) fn fuse_softmax_lse(g: &mut Graph, backend: &dyn Backend) -> usize {
    // (x, l, the exps of x − l)
    let mut sites: Vec<(usize, usize, Vec<usize>)> = Vec::new();
    for e in 0..g.values.len() {
        let Some((x, l)) = site(g, e) else { continue };
        match sites.iter_mut().find(|s| s.1 == l) {
            Some(s) => s.2.push(e),
            None => sites.push((x, l, vec![e])),
        }
    }
    let mut is_output = vec![false; g.values.len()];
    g.outputs.iter().for_each(|&o| is_output[o] = true);
    let mut fused = 0;
    for (x, l, exps) in sites {
        let shape = g.values[x].shape.clone();
        let n = numel(&shape);
        let rows = numel(&g.values[l].shape);
        let kept: Vec<usize> = shape[..shape.len() - 1]
            .iter()
            .copied()
            .chain([1])
            .collect();
        let scaled = match exps[..] {
            [e] => row_scale(g, e, &kept, &is_output),
            _ => None,
        };
        let op = FastOp::SoftmaxLogSumExp {
            scaled: scaled.is_some(),
        };
        let mut ins_shapes: Vec<(&[usize], DType)> = vec![(&shape, DType::F32)];
        let row_shape = [rows];
        if scaled.is_some() {
            ins_shapes.push((&row_shape, DType::F32));
        }
        if backend.supports_fast(&op, &ins_shapes).is_err() {
            continue;
        }
        let mut inputs = vec![x];
        if let Some((_, c)) = scaled {
            let c = if numel(&g.values[c].shape) == 1 {
                let one = as_shape(g, c, &[]);
                push(g, Op::Broadcast, vec![one], vec![rows])
            } else {
                as_shape(g, c, &[rows])
            };
            inputs.push(c);
        }
        let both = push(g, Op::Fast(op), inputs, vec![n + rows]);
        match scaled {
            Some((product, _)) => slice_into(g, both, 0, product),
            None => exps.iter().for_each(|&e| slice_into(g, both, 0, e)),
        }
        slice_into(g, both, n, l);
        fused += 1;
    }
    if fused > 0 {
        g.sort_topologically();
        super::passes::dead_code(g);
    }
    fused
}
