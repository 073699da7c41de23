//! Scatters into zeros folded into the add that reads them.
//!
//! A gather's gradient scatters its cotangent into a fresh zero tensor (in a
//! cross-entropy backward: the one-hot of the targets, as large as the
//! logits), and the sum of cotangents then adds that tensor to the other
//! contribution (`softmax·g`). `x + scatter_add(0, idx, u)` is
//! `scatter_add(x, idx, u)`: the scatter then updates `x` in place (the
//! last reader takes it), so the zero fill and the read of the scattered
//! tensor (as many elements as the logits) disappear and only the few
//! updated elements are touched.
//!
//! A match requires an f32 `Add` whose one operand is a `ScatterAdd` into a
//! zero fill (directly or under one reshape), read by that add only, and
//! whose other operand has the add's shape (no broadcast). The result is
//! equal up to round-off: repeated indices add into `x` one at a time
//! instead of being summed first.

use super::graph::{Graph, Kind};
use super::pattern::{as_shape, is_binary, node, push, uniform_const};
use crate::ops::{BinaryOp, Op};
use crate::DType;

/// Rewrites every matched add (module docs); returns how many.
pub(crate) fn fold_scatter_adds(g: &mut Graph) -> usize {
    let uses = g.use_counts();
    let mut is_output = vec![false; g.values.len()];
    g.outputs.iter().for_each(|&o| is_output[o] = true);
    let only_read_once = |j: usize| uses[j] == 1 && !is_output[j];
    let mut folded = 0;
    for a in 0..g.values.len() {
        let Some((op, ins)) = node(g, a) else {
            continue;
        };
        if !is_binary(op, BinaryOp::Add) || g.values[a].dtype != DType::F32 || ins[0] == ins[1] {
            continue;
        }
        let (l, r) = (ins[0], ins[1]);
        let Some((x, s)) = [(l, r), (r, l)].into_iter().find_map(|(x, y)| {
            let s = zero_scatter(g, y, &only_read_once)?;
            let plain = g.values[x].shape == g.values[a].shape && g.values[x].dtype == DType::F32;
            plain.then_some((x, s))
        }) else {
            continue;
        };
        let Some((Op::ScatterAdd { axis }, s_ins)) = node(g, s) else {
            unreachable!("zero_scatter returns a scatter");
        };
        let (axis, idx, upd) = (*axis, s_ins[1], s_ins[2]);
        let s_shape = g.values[s].shape.clone();
        let target = as_shape(g, x, &s_shape);
        let scatter = Kind::Node {
            op: Op::ScatterAdd { axis },
            inputs: vec![target, idx, upd],
        };
        if g.values[a].shape == s_shape {
            g.values[a].kind = scatter;
        } else {
            let Kind::Node { op, inputs } = scatter else {
                unreachable!()
            };
            let new = push(g, op, inputs, s_shape);
            g.values[a].kind = Kind::Node {
                op: Op::Reshape,
                inputs: vec![new],
            };
        }
        folded += 1;
    }
    if folded > 0 {
        g.sort_topologically();
        super::passes::dead_code(g);
    }
    folded
}

/// The f32 `ScatterAdd` into zeros behind `y` (itself, or under one
/// reshape), when `y` and the scatter are each read once (by `y`'s reader
/// and by the reshape).
fn zero_scatter(g: &Graph, y: usize, only_read_once: &impl Fn(usize) -> bool) -> Option<usize> {
    if !only_read_once(y) {
        return None;
    }
    let s = match node(g, y)? {
        (Op::Reshape, ins) if only_read_once(ins[0]) => ins[0],
        _ => y,
    };
    let (Op::ScatterAdd { .. }, ins) = node(g, s)? else {
        return None;
    };
    let zeros = match &g.values[ins[0]].kind {
        Kind::Node {
            op: Op::Full { value },
            ..
        } => *value == 0.0,
        Kind::Const(_) => uniform_const(g, ins[0]) == Some(0.0),
        _ => false,
    };
    (zeros && g.values[s].dtype == DType::F32).then_some(s)
}
