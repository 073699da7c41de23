//! Product epilogues: an int8 product ([`Op::MatmulInt8`]) read only by one
//! elementwise node computed in f32 (a fused chain such as bias + GELU,
//! bias + residual or bias + rounding to bf16, or a lone bias add),
//! possibly through a reshape, becomes one
//! [`Op::MatmulInt8Then`] node that applies the chain while the GEMM writes
//! its output: one pass over the activations fewer, and the same numbers
//! (the chain runs on the same kernels over the same f32 product). Only for
//! backends that run it (`Backend::can_fuse_int8_epilogue`).

use std::sync::Arc;

use super::fusion::build_program;
use super::graph::{Graph, Kind};
use crate::backend::Backend;
use crate::ops::Op;
use crate::DType;

/// Folds every such elementwise consumer into its product; returns the
/// number of nodes fused away.
pub(crate) fn fuse_int8_epilogues(g: &mut Graph, backend: &dyn Backend) -> usize {
    if !backend.can_fuse_int8_epilogue() {
        return 0;
    }
    let uses = g.use_counts();
    let mut is_output = vec![false; g.values.len()];
    g.outputs.iter().for_each(|&i| is_output[i] = true);
    // The int8 product behind value `j` (itself or under a reshape that
    // keeps the last axis), when `j` is read by one node only.
    let product = |g: &Graph, j: usize| -> Option<usize> {
        let only = |j: usize| uses[j] == 1 && !is_output[j] && g.values[j].dtype == DType::F32;
        let is_product = |j: usize| {
            matches!(
                &g.values[j].kind,
                Kind::Node {
                    op: Op::MatmulInt8 { .. },
                    ..
                }
            ) && only(j)
        };
        match &g.values[j].kind {
            Kind::Node {
                op: Op::MatmulInt8 { .. },
                ..
            } if is_product(j) => Some(j),
            Kind::Node {
                op: Op::Reshape,
                inputs,
            } if only(j)
                && is_product(inputs[0])
                && g.values[inputs[0]].shape.last() == g.values[j].shape.last() =>
            {
                Some(inputs[0])
            }
            _ => None,
        }
    };
    let before = g.num_nodes();
    for i in 0..g.values.len() {
        let v = &g.values[i];
        let Kind::Node { op, inputs } = &v.kind else {
            continue;
        };
        if !matches!(v.dtype, DType::F32 | DType::BF16 | DType::F16) {
            continue;
        }
        let (program, ext) = match op {
            Op::Fused(p) => ((**p).clone(), inputs.clone()),
            op if op.is_elementwise() => {
                let dtypes: Vec<DType> = inputs.iter().map(|&j| g.values[j].dtype).collect();
                if !backend.can_fuse(op, &dtypes, v.dtype) {
                    continue;
                }
                build_program(g, &[i])
            }
            _ => continue,
        };
        let Some((acc, m)) = ext
            .iter()
            .enumerate()
            .find_map(|(p, &j)| product(g, j).map(|m| (p, m)))
        else {
            continue;
        };
        if !program.fits_product_epilogue(acc, &v.shape) {
            continue;
        }
        let Kind::Node {
            op: Op::MatmulInt8 { transpose_b },
            inputs: product_inputs,
        } = &g.values[m].kind
        else {
            unreachable!("found as an int8 product above")
        };
        let mut new_inputs = product_inputs.clone();
        new_inputs.extend(
            ext.iter()
                .enumerate()
                .filter(|&(p, _)| p != acc)
                .map(|(_, &j)| j),
        );
        g.values[i].kind = Kind::Node {
            op: Op::MatmulInt8Then {
                transpose_b: *transpose_b,
                program: Arc::new(program),
                acc,
            },
            inputs: new_inputs,
        };
    }
    super::passes::dead_code(g);
    before.saturating_sub(g.num_nodes())
}
