//! The squared global norm of a list of tensors without the concatenation.
//!
//! Gradient clipping by global norm traces `sum(square(concat(flat
//! gradients)))`: one long row, so eager evaluation runs three kernels
//! instead of two per gradient — but the concatenation copies every
//! gradient and the square writes the copy again. In a plan the three
//! become one [`FastOp::SumSquares`] reading each gradient once.
//!
//! A match requires f32 throughout, the concatenation and the square read
//! by nothing else, and the sum over every axis to a scalar.

use super::graph::{Graph, Kind};
use super::passes::dead_code;
use super::pattern::node;
use crate::backend::Backend;
use crate::fast::FastOp;
use crate::ops::{Op, Reduction, UnaryOp};
use crate::DType;

/// Rewrites every matched sum (module docs); returns how many.
pub(crate) fn fold_sum_squares(g: &mut Graph, backend: &dyn Backend) -> usize {
    let uses = g.use_counts();
    let mut folded = 0;
    for s in 0..g.values.len() {
        let Some(parts) = concat_parts(g, &uses, s) else {
            continue;
        };
        let shapes: Vec<(&[usize], DType)> = parts
            .iter()
            .map(|&p| (g.values[p].shape.as_slice(), DType::F32))
            .collect();
        if backend.supports_fast(&FastOp::SumSquares, &shapes).is_err() {
            continue;
        }
        g.values[s].kind = Kind::Node {
            op: Op::Fast(FastOp::SumSquares),
            inputs: parts,
        };
        folded += 1;
    }
    if folded > 0 {
        dead_code(g);
    }
    folded
}

/// The parts of `s = sum(square(concat(parts)))`, when `s` is that.
fn concat_parts(g: &Graph, uses: &[usize], s: usize) -> Option<Vec<usize>> {
    let (
        Op::Reduce {
            op: Reduction::Sum,
            axes,
            keep_dims: false,
        },
        &[sq],
    ) = node(g, s)?
    else {
        return None;
    };
    let (Op::Unary(UnaryOp::Square), &[c]) = node(g, sq)? else {
        return None;
    };
    let (Op::Concat { .. }, parts) = node(g, c)? else {
        return None;
    };
    let f32s = [s, sq, c]
        .iter()
        .chain(parts)
        .all(|&v| g.values[v].dtype == DType::F32);
    let whole = axes.len() == g.values[sq].shape.len();
    (f32s && whole && uses[sq] == 1 && uses[c] == 1).then(|| parts.to_vec())
}
