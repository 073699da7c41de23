//! Product epilogues: an int8 product ([`Op::MatmulInt8`]), a matmul
//! with a 2-D weight or a channels-last convolution (into [`Op::ConvThen`])
//! read only by one
//! elementwise node computed in f32 (a fused chain such as bias + GELU,
//! bias + residual or bias + rounding to bf16, or a lone bias add),
//! possibly through a reshape, becomes one
//! [`Op::MatmulThen`] node. On an engine with epilogues (the CPU's int8 and
//! bf16 GEMMs) the chain runs while the GEMM writes its output, one pass
//! over the activations fewer; on other products (the decode GEMVs, f32
//! GEMMs) it runs right after the product in the same op, one op and one
//! buffer fewer per bias add. The same numbers either way (the chain runs
//! on the same kernels over the same f32 product). Only for backends that
//! run it (`Backend::can_fuse_product_epilogue`).

use std::sync::Arc;

use super::fusion::build_program;
use super::graph::{Graph, Kind};
use crate::backend::Backend;
use crate::fast::FastOp;
use crate::ops::Op;
use crate::DType;

/// Folds every such elementwise consumer into its product; returns the
/// number of nodes fused away.
pub(crate) fn fuse_product_epilogues(g: &mut Graph, backend: &dyn Backend) -> usize {
    let uses = g.use_counts();
    let mut is_output = vec![false; g.values.len()];
    g.outputs.iter().for_each(|&i| is_output[i] = true);
    // The int8 product behind value `j` (itself or under a reshape that
    // keeps the last axis), when `j` is read by one node only.
    let product = |g: &Graph, j: usize| -> Option<usize> {
        let only = |j: usize| uses[j] == 1 && !is_output[j] && g.values[j].dtype == DType::F32;
        let is_product = |j: usize| only(j) && product_kind(g, j, backend).is_some();
        match &g.values[j].kind {
            Kind::Node { .. } if is_product(j) => Some(j),
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
                build_program(g, &[i], &[i])
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
        let (
            Some(kind),
            Kind::Node {
                inputs: product_inputs,
                ..
            },
        ) = (product_kind(g, m, backend), &g.values[m].kind)
        else {
            unreachable!("found as a product above")
        };
        let mut new_inputs = product_inputs.clone();
        new_inputs.extend(
            ext.iter()
                .enumerate()
                .filter(|&(p, _)| p != acc)
                .map(|(_, &j)| j),
        );
        let program = Arc::new(program);
        let op = match kind {
            Product::Matmul { int8, transpose_b } => Op::MatmulThen {
                int8,
                transpose_b,
                program,
                acc,
            },
            Product::Conv { stride, padding } => Op::ConvThen {
                stride,
                padding,
                program,
                acc,
            },
        };
        g.values[i].kind = Kind::Node {
            op,
            inputs: new_inputs,
        };
    }
    super::passes::dead_code(g);
    before.saturating_sub(g.num_nodes())
}

/// A product that can take an epilogue.
#[derive(Clone, Copy)]
enum Product {
    /// [`Op::MatmulInt8`] or [`Op::Matmul`] (into [`Op::MatmulThen`]).
    Matmul { int8: bool, transpose_b: bool },
    /// [`FastOp::Conv1dChannelsLast`] (into [`Op::ConvThen`]).
    Conv { stride: usize, padding: usize },
}

/// What value `j` is when it is a product the backend can give an
/// epilogue: an int8 product, or a matmul (A not transposed) of activations
/// whose rows are contiguous by a 2-D weight, or a channels-last
/// convolution (its rows are whole), with f32 output.
fn product_kind(g: &Graph, j: usize, backend: &dyn Backend) -> Option<Product> {
    let v = &g.values[j];
    let Kind::Node { op, inputs } = &v.kind else {
        return None;
    };
    let operands = || (&g.values[inputs[0]], &g.values[inputs[1]]);
    let (int8, tb) = match op {
        Op::MatmulInt8 { transpose_b } => (true, *transpose_b),
        Op::Matmul {
            transpose_a: false,
            transpose_b,
        } => (false, *transpose_b),
        Op::Fast(FastOp::Conv1dChannelsLast { stride, padding }) => {
            let (x, w) = operands();
            return (v.dtype == DType::F32
                && backend.can_fuse_product_epilogue(false, x.dtype, w.dtype))
            .then_some(Product::Conv {
                stride: *stride,
                padding: *padding,
            });
        }
        _ => return None,
    };
    let (x, w) = operands();
    let rows_contiguous = x.shape.iter().product::<usize>()
        == v.shape[..v.shape.len() - 1].iter().product::<usize>() * x.shape.last()?;
    (v.dtype == DType::F32
        && w.shape.len() == 2
        && rows_contiguous
        && backend.can_fuse_product_epilogue(int8, x.dtype, w.dtype))
    .then_some(Product::Matmul {
        int8,
        transpose_b: tb,
    })
}
