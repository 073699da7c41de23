//! Vector-Jacobian rules, grouped by op family. Each takes the node's inputs,
//! its output, the output's cotangent `g` and which inputs need a gradient,
//! and returns one optional gradient per input, shaped and typed like it.

mod elementwise;
mod fast;
mod indexing;
mod layout;
mod linalg;
mod reduce;

use crate::error::{invalid, Result};
use crate::ops::Op;
use crate::Tensor;

pub(super) use elementwise::unbroadcast;

/// The VJP of one node.
pub(super) fn vjp(
    op: &Op,
    inputs: &[Tensor],
    out: &Tensor,
    g: &Tensor,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let x = &inputs[0];
    let one = |t: Result<Tensor>| -> Result<Vec<Option<Tensor>>> { Ok(vec![Some(t?)]) };
    match op {
        Op::Unary(u) => one(elementwise::unary(*u, x, out, g)),
        Op::Binary(b) => elementwise::binary(*b, &inputs[0], &inputs[1], out, g, needs),
        Op::Where => elementwise::where_cond(inputs, g, needs),
        Op::Cast => one(g.cast(x.dtype())),
        Op::Reduce {
            op,
            axes,
            keep_dims,
        } => one(reduce::reduce(*op, axes, *keep_dims, x, out, g)),
        Op::Softmax { axis } => one(reduce::softmax(*axis, out, g)),
        Op::Matmul {
            transpose_a,
            transpose_b,
        } => linalg::matmul(&inputs[0], &inputs[1], *transpose_a, *transpose_b, g, needs),
        Op::Conv1d {
            stride,
            padding,
            dilation,
            groups,
        } => linalg::conv1d(
            &inputs[0],
            &inputs[1],
            linalg::ConvParams {
                stride: *stride,
                padding: *padding,
                dilation: *dilation,
                groups: *groups,
            },
            g,
            needs,
        ),
        Op::Reshape => one(g.reshape_to(x.shape())),
        Op::Permute { perm } => one(layout::permute(perm, g)),
        Op::Broadcast => one(unbroadcast(g, x.shape())),
        Op::Slice { starts, steps } => one(layout::slice(x, starts, steps, g)),
        Op::Concat { axis } => Ok(layout::concat(inputs, *axis, g)?
            .into_iter()
            .map(Some)
            .collect()),
        Op::Pad { pads, .. } => one(layout::pad(x, pads, g)),
        Op::Gather { axis } => Ok(vec![Some(indexing::gather(x, &inputs[1], *axis, g)?), None]),
        Op::ScatterAdd { axis } => indexing::scatter_add(&inputs[1], *axis, g, needs),
        Op::SliceUpdate { axis } => indexing::slice_update(inputs, *axis, g, needs),
        Op::Fast(f) => fast::vjp(f, inputs, g, needs),
        // Quantized products are an inference path: no gradient through them.
        Op::Full { .. }
        | Op::Iota { .. }
        | Op::RandomUniform { .. }
        | Op::Fused(_)
        | Op::FusedOutput { .. }
        | Op::MatmulInt8 { .. }
        | Op::MatmulThen { .. }
        | Op::ConvThen { .. }
        | Op::MlpInt8Then { .. } => Err(invalid(
            "grad",
            format!("no gradient rule for `{}`", op.name()),
        )),
    }
}
