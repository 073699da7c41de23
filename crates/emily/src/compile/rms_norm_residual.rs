//! A residual stream's cotangent folded into the RMSNorm gradient kernel.
//!
//! In `x + f(norm(x))` x's cotangent is the stream's plus the norm's dx.
//! After the RMSNorm rewrite (`rms_norm.rs`) that dx is a slice of the
//! gradient node's flat output, added to the other cotangent by a separate
//! kernel; here the add's other operand becomes the node's residual input
//! ([`FastOp::RmsNormGrad`]'s `has_residual`), so dx is written once,
//! already summed, instead of written, read back and added.
//!
//! A match requires the dx slice (directly or under one reshape) to be read
//! by one f32 `Add` only, whose other operand has the add's shape and does
//! not depend on the gradient node. The kernel adds the residual to each
//! finished element: the same sum, in the same order, as the add.

use super::graph::{Graph, Kind};
use super::pattern::{consumers, is_binary, node};
use crate::fast::FastOp;
use crate::ops::{BinaryOp, Op};
use crate::DType;

/// Folds every matched add (module docs); returns how many.
pub(crate) fn fold_residuals(g: &mut Graph) -> usize {
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
                has_residual: false,
            }),
            ins,
        )) = node(g, n)
        else {
            continue;
        };
        let (eps, has_weight, mut inputs) = (*eps, *has_weight, ins.to_vec());
        let n_x: usize = g.values[inputs[0]].shape.iter().product();
        let dx_slice = readers[n].iter().copied().find(|&c| {
            matches!(node(g, c), Some((Op::Slice { starts, steps }, _))
                if starts[..] == [0] && steps[..] == [1] && g.values[c].shape[..] == [n_x])
        });
        let Some(slice) = dx_slice.filter(|&s| read_once(s)) else {
            continue;
        };
        let dx = match node(g, readers[slice][0]) {
            Some((Op::Reshape, _)) if read_once(readers[slice][0]) => readers[slice][0],
            _ => slice,
        };
        let add = readers[dx][0];
        let Some((_, add_ins)) = node(g, add).filter(|(op, _)| is_binary(op, BinaryOp::Add)) else {
            continue;
        };
        let other = if add_ins[0] == dx {
            add_ins[1]
        } else {
            add_ins[0]
        };
        if g.values[add].dtype != DType::F32
            || other == dx
            || g.values[other].dtype != DType::F32
            || g.values[other].shape != g.values[add].shape
            || depends_on(g, other, n)
        {
            continue;
        }
        inputs.push(other);
        g.values[n].kind = Kind::Node {
            op: Op::Fast(FastOp::RmsNormGrad {
                eps,
                has_weight,
                has_residual: true,
            }),
            inputs,
        };
        g.values[add].kind = Kind::Node {
            op: Op::Reshape,
            inputs: vec![slice],
        };
        folded += 1;
    }
    if folded > 0 {
        g.sort_topologically();
        super::passes::dead_code(g);
    }
    folded
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
