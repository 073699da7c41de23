//! Two int8 products in a row become one [`Op::MlpInt8Then`].
//!
//! After the epilogue pass an int8 MLP block is two
//! [`Op::MatmulThen`] nodes — `h = gelu(x · w1 + b1)`, then `y = h · w2 +
//! b2 + residual` — with only a reshape (the flattening of `h`'s leading
//! axes) between. When the first is read by the second alone, both become
//! one op that takes row blocks through both products on one thread each,
//! the hidden rows never leaving that thread's cache (see
//! `backend::cpu::mlp`). Only for backends that run it
//! (`Backend::can_fuse_int8_mlp`).

use super::graph::{Graph, Kind};
use super::passes::dead_code;
use super::pattern::node;
use crate::backend::Backend;
use crate::ops::Op;
use crate::DType;

/// Fuses every such pair; returns the number of nodes fused away.
pub(crate) fn fuse_int8_mlps(g: &mut Graph, backend: &dyn Backend) -> usize {
    if !backend.can_fuse_int8_mlp() {
        return 0;
    }
    let before = g.num_nodes();
    let uses = g.use_counts();
    let sole = |j: usize| uses[j] == 1 && !g.outputs.contains(&j);
    let mut sites = Vec::new();
    // A product already paired (a chain of three pairs its first two: the
    // second is then no longer a `MatmulThen` to start a pair from).
    let mut paired = vec![false; g.values.len()];
    for i in 0..g.values.len() {
        let Some((Op::MatmulThen { int8: true, .. }, inputs)) = node(g, i) else {
            continue;
        };
        // The first product, under a reshape that keeps its rows' width.
        let mut h = inputs[0];
        if let Some((Op::Reshape, &[src])) = node(g, h) {
            if !sole(h) || g.values[src].shape.last() != g.values[h].shape.last() {
                continue;
            }
            h = src;
        }
        let first = matches!(node(g, h), Some((Op::MatmulThen { int8: true, .. }, _)));
        if first
            && !paired[h]
            && sole(h)
            && g.values[h].dtype == DType::F32
            && g.values[i].dtype == DType::F32
        {
            sites.push((h, i));
            (paired[h], paired[i]) = (true, true);
        }
    }
    for &(h, i) in &sites {
        let (
            Some((
                &Op::MatmulThen {
                    transpose_b: transpose_b1,
                    program: ref program1,
                    acc: acc1,
                    ..
                },
                first_inputs,
            )),
            Some((
                &Op::MatmulThen {
                    transpose_b: transpose_b2,
                    program: ref program2,
                    acc: acc2,
                    ..
                },
                second_inputs,
            )),
        ) = (node(g, h), node(g, i))
        else {
            unreachable!("found above")
        };
        let mut inputs = first_inputs.to_vec();
        let second = inputs.len();
        inputs.extend(&second_inputs[1..]);
        let op = Op::MlpInt8Then {
            transpose_b1,
            program1: program1.clone(),
            acc1,
            hidden_shape: g.values[h].shape.clone(),
            second,
            transpose_b2,
            program2: program2.clone(),
            acc2,
        };
        g.values[i].kind = Kind::Node { op, inputs };
    }
    if !sites.is_empty() {
        dead_code(g);
    }
    before.saturating_sub(g.num_nodes())
}
