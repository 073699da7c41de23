//! The adds around an RMSNorm gradient folded into its kernel.
//!
//! After the RMSNorm rewrite (`rms_norm.rs`) the gradient node reads the
//! norm output's cotangent — in a transformer block the sum of the
//! cotangents of the products that read the normed activations (gate and
//! up; q, k and v) — and its dx, a slice of the node's flat output, is added
//! to x's other cotangent (a residual stream's, `x + f(norm(x))`) by a
//! separate kernel. Here the chain of adds computing the cotangent becomes
//! the node's `dy_parts` inputs and the add after dx its residual input
//! ([`FastOp::RmsNormGrad`]): the kernel sums the parts a few rows at a time
//! in L1 and adds the residual as each row is finished, so neither sum is
//! written out and read back.
//!
//! Every folded add is f32, of x's shape (no broadcast) and read by nothing
//! else; no part of a folded sum is elementwise (it would fuse with the adds
//! instead: one program writing the sum); the residual does not depend on
//! the gradient node. The kernel adds
//! in the chain's order, so the results are bit-identical to the adds'.

use super::graph::{Graph, Kind};
use super::pattern::{consumers, is_binary, node};
use crate::fast::FastOp;
use crate::ops::{BinaryOp, Op};
use crate::DType;

/// Most parts a cotangent sum is folded into.
const MAX_PARTS: usize = 4;

/// Folds the adds of every gradient node (module docs); returns how many
/// nodes changed.
pub(crate) fn fold_adds(g: &mut Graph) -> usize {
    let readers = consumers(g);
    let uses = g.use_counts();
    let mut is_output = vec![false; g.values.len()];
    g.outputs.iter().for_each(|&o| is_output[o] = true);
    let read_once = |j: usize| uses[j] == 1 && !is_output[j];
    let mut folded = 0;
    for n in 0..g.values.len() {
        let Some((
            Op::Fast(FastOp::RmsNormGrad {
                eps,
                has_weight,
                dy_parts: 1,
                has_residual: false,
            }),
            ins,
        )) = node(g, n)
        else {
            continue;
        };
        let (eps, has_weight) = (*eps, *has_weight);
        let first = 1 + has_weight as usize;
        let mut inputs = ins[..first].to_vec();
        let parts = sum_parts(g, ins[first], &read_once);
        let residual = residual_add(g, &readers, n, &read_once);
        if parts.len() == 1 && residual.is_none() {
            continue;
        }
        inputs.extend(&parts);
        if let Some((slice, add, other)) = residual {
            inputs.push(other);
            g.values[add].kind = Kind::Node {
                op: Op::Reshape,
                inputs: vec![slice],
            };
        }
        g.values[n].kind = Kind::Node {
            op: Op::Fast(FastOp::RmsNormGrad {
                eps,
                has_weight,
                dy_parts: parts.len(),
                has_residual: residual.is_some(),
            }),
            inputs,
        };
        folded += 1;
    }
    if folded > 0 {
        g.sort_topologically();
        super::passes::dead_code(g);
    }
    folded
}

/// The f32 add of `j`'s shape with both operands of that shape and dtype,
/// read once: its operands.
fn plain_add(g: &Graph, j: usize, read_once: &impl Fn(usize) -> bool) -> Option<(usize, usize)> {
    let (op, ins) = node(g, j)?;
    let v = &g.values[j];
    let like = |k: usize| g.values[k].shape == v.shape && g.values[k].dtype == DType::F32;
    (is_binary(op, BinaryOp::Add)
        && v.dtype == DType::F32
        && read_once(j)
        && ins[0] != ins[1]
        && like(ins[0])
        && like(ins[1]))
    .then(|| (ins[0], ins[1]))
}

/// The leaves of the chain of plain adds computing `dy`, in the order the
/// chain adds them (`[dy]` when `dy` is no such add, the chain is longer
/// than [`MAX_PARTS`] or a leaf is elementwise). A chain follows one nested
/// add per level (the left one when both are), so summing the leaves left
/// to right repeats it exactly (addition commutes bit for bit).
fn sum_parts(g: &Graph, dy: usize, read_once: &impl Fn(usize) -> bool) -> Vec<usize> {
    // Leaves from the last added to the first.
    let mut rev = Vec::new();
    let mut v = dy;
    while let Some((a, b)) = plain_add(g, v, read_once) {
        if plain_add(g, a, read_once).is_some() {
            rev.push(b);
            v = a;
        } else if plain_add(g, b, read_once).is_some() {
            rev.push(a);
            v = b;
        } else {
            rev.extend([b, a]);
            break;
        }
    }
    // An elementwise leaf would fuse with the adds into one program writing
    // the sum; folded, each such leaf would be written out instead.
    let elementwise = |j: usize| matches!(node(g, j), Some((op, _)) if op.is_elementwise());
    if rev.is_empty() || rev.len() > MAX_PARTS || rev.iter().any(|&j| elementwise(j)) {
        return vec![dy];
    }
    rev.reverse();
    rev
}

/// The add of x's other cotangent to gradient node `n`'s dx: `(dx slice,
/// add, other operand)`, when the slice (directly or under one reshape) is
/// read by that f32 add only, the other operand has the add's shape and
/// does not depend on `n`.
fn residual_add(
    g: &Graph,
    readers: &[Vec<usize>],
    n: usize,
    read_once: &impl Fn(usize) -> bool,
) -> Option<(usize, usize, usize)> {
    let (_, ins) = node(g, n)?;
    let n_x: usize = g.values[ins[0]].shape.iter().product();
    let slice = readers[n].iter().copied().find(|&c| {
        matches!(node(g, c), Some((Op::Slice { starts, steps }, _))
            if starts[..] == [0] && steps[..] == [1] && g.values[c].shape[..] == [n_x])
    })?;
    if !read_once(slice) {
        return None;
    }
    let dx = match node(g, readers[slice][0]) {
        Some((Op::Reshape, _)) if read_once(readers[slice][0]) => readers[slice][0],
        _ => slice,
    };
    let add = readers[dx][0];
    let (_, add_ins) = node(g, add).filter(|(op, _)| is_binary(op, BinaryOp::Add))?;
    let other = if add_ins[0] == dx {
        add_ins[1]
    } else {
        add_ins[0]
    };
    let fits = g.values[add].dtype == DType::F32
        && other != dx
        && g.values[other].dtype == DType::F32
        && g.values[other].shape == g.values[add].shape
        && !depends_on(g, other, n);
    fits.then_some((slice, add, other))
}

/// Whether value `v` is computed from value `target` (through any inputs).
fn depends_on(g: &Graph, v: usize, target: usize) -> bool {
    let mut seen = vec![false; g.values.len()];
    let mut stack = vec![v];
    while let Some(j) = stack.pop() {
        if j == target {
            return true;
        }
        if std::mem::replace(&mut seen[j], true) {
            continue;
        }
        if let Kind::Node { inputs, .. } = &g.values[j].kind {
            stack.extend(inputs.iter().copied());
        }
    }
    false
}
