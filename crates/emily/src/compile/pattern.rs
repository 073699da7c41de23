//! Helpers shared by the compiler's pattern rewrites (`attention.rs`,
//! `rms_norm.rs`): who reads a value, what a node computes, which constants
//! are uniform, and appending replacement nodes.

use super::graph::{Graph, Kind, Value};
use crate::ops::{BinaryOp, Op};
use crate::DType;

/// For each value, the nodes that read it.
pub(super) fn consumers(g: &Graph) -> Vec<Vec<usize>> {
    let mut c = vec![Vec::new(); g.values.len()];
    for (i, v) in g.values.iter().enumerate() {
        if let Kind::Node { inputs, .. } = &v.kind {
            for &j in inputs {
                if !c[j].contains(&i) {
                    c[j].push(i);
                }
            }
        }
    }
    c
}

pub(super) fn node(g: &Graph, i: usize) -> Option<(&Op, &[usize])> {
    match &g.values[i].kind {
        Kind::Node { op, inputs } => Some((op, inputs)),
        _ => None,
    }
}

/// The input of a reshape, or the value itself.
pub(super) fn unreshaped(g: &Graph, i: usize) -> usize {
    match node(g, i) {
        Some((Op::Reshape, ins)) => ins[0],
        _ => i,
    }
}

/// The consumer of `i` that is a reshape, or `i` itself when none is.
pub(super) fn reshaped_by(g: &Graph, consumers: &[Vec<usize>], i: usize) -> Vec<usize> {
    let mut out = vec![i];
    out.extend(
        consumers[i]
            .iter()
            .copied()
            .filter(|&c| matches!(node(g, c), Some((Op::Reshape, _)))),
    );
    out
}

/// The `(0, 2, 1, 3)` permute: a rank-4 tensor's heads and sequence swapped.
pub(super) const HEAD_SWAP: [usize; 4] = [0, 2, 1, 3];

/// Whether node `p` is the [`HEAD_SWAP`] permute.
pub(super) fn is_head_swap(g: &Graph, p: usize) -> bool {
    matches!(node(g, p), Some((Op::Permute { perm }, _)) if perm[..] == HEAD_SWAP)
}

/// The input of `x` when `x` is the [`HEAD_SWAP`] permute.
pub(super) fn head_swap_source(g: &Graph, x: usize) -> Option<usize> {
    match node(g, x) {
        Some((Op::Permute { perm }, &[src])) if perm[..] == HEAD_SWAP => Some(src),
        _ => None,
    }
}

pub(super) fn is_matmul(op: &Op, ta: bool, tb: bool) -> bool {
    matches!(op, Op::Matmul { transpose_a, transpose_b } if *transpose_a == ta && *transpose_b == tb)
}

pub(super) fn is_binary(op: &Op, want: BinaryOp) -> bool {
    matches!(op, Op::Binary(b) if *b == want)
}

/// A consumer of `a` computing `op(a, b)` or `op(b, a)` (the other operand
/// satisfying `other`), for a commutative `op`.
pub(super) fn commutative_use(
    g: &Graph,
    consumers: &[Vec<usize>],
    a: usize,
    op: BinaryOp,
    other: impl Fn(usize) -> bool,
) -> Option<usize> {
    consumers[a].iter().copied().find(|&c| {
        matches!(node(g, c), Some((o, ins)) if is_binary(o, op)
            && ((ins[0] == a && other(ins[1])) || (ins[1] == a && other(ins[0]))))
    })
}

/// Every element of a constant as f64 (floats only).
pub(super) fn const_values(g: &Graph, i: usize) -> Option<Vec<f64>> {
    let Kind::Const(a) = &g.values[i].kind else {
        return None;
    };
    let bytes = a.to_host_bytes().ok()?;
    match a.dtype() {
        DType::F32 => Some(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
                .collect(),
        ),
        _ => None,
    }
}

/// The one value every element of a float constant holds.
pub(super) fn uniform_const(g: &Graph, i: usize) -> Option<f64> {
    let vals = const_values(g, i)?;
    let first = *vals.first()?;
    vals.iter()
        .all(|&v| v == first || (v.is_nan() && first.is_nan()))
        .then_some(first)
}

/// Appends a node and returns its id.
pub(super) fn push(g: &mut Graph, op: Op, inputs: Vec<usize>, shape: Vec<usize>) -> usize {
    g.values.push(Value {
        kind: Kind::Node { op, inputs },
        shape,
        dtype: DType::F32,
    });
    g.values.len() - 1
}

/// `i` reshaped to `shape` (a new node when the shape differs).
pub(super) fn as_shape(g: &mut Graph, i: usize, shape: &[usize]) -> usize {
    if g.values[i].shape == shape {
        i
    } else {
        push(g, Op::Reshape, vec![i], shape.to_vec())
    }
}

/// Turns value `exit` into the elements of the 1-D value `flat` from
/// `start` on (as many as `exit` holds), reshaped to `exit`'s shape.
pub(super) fn slice_into(g: &mut Graph, flat: usize, start: usize, exit: usize) {
    let n = g.values[exit].shape.iter().product::<usize>();
    let part = push(
        g,
        Op::Slice {
            starts: vec![start],
            steps: vec![1],
        },
        vec![flat],
        vec![n],
    );
    g.values[exit].kind = Kind::Node {
        op: Op::Reshape,
        inputs: vec![part],
    };
}
