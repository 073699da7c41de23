//! The op catalogue.
//!
//! Each op states its shape and dtype rule once, in the function that builds
//! its node (`Tensor::add`, `Tensor::matmul`, …): invalid shapes or dtypes are
//! rejected there, naming the op and the shapes, never at eval. The primitive
//! set is small and orthogonal; everything else (mean, squeeze, stack, gelu …)
//! is composed or is a parameter of a primitive.

mod creation;
mod elementwise;
mod functions;
mod fused;
mod indexing;
mod layout;
mod linalg;
mod quantized;
pub(crate) mod random;
mod reduce;

pub use functions::{BinaryOp, UnaryOp};
pub(crate) use fused::covers_rows;
pub use fused::{ExtraOutput, FusedInput, FusedInstr, FusedProgram, Operand};
pub(crate) use quantized::{check_node as check_quantized, is_last_two_swap};
pub use reduce::Reduction;

use std::sync::Arc;

use crate::error::{invalid, Result};
use crate::fast::FastOp;
use crate::{Device, Tensor};

/// One node's operation. The node's own shape and dtype complete it (e.g.
/// `Reshape` and `Cast` read the target from the node).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Every element `value` (no inputs).
    Full {
        /// The fill value.
        value: f64,
    },
    /// The index along `axis` (no inputs).
    Iota {
        /// Axis whose index is written.
        axis: usize,
    },
    /// `f(x)` elementwise.
    Unary(UnaryOp),
    /// `f(a, b)` elementwise with numpy broadcasting.
    Binary(BinaryOp),
    /// `cond ? a : b` with broadcasting (inputs: cond, a, b).
    Where,
    /// Conversion to the node's dtype.
    Cast,
    /// A reduction over sorted `axes`.
    Reduce {
        /// What to compute.
        op: Reduction,
        /// Axes reduced (sorted, unique).
        axes: Vec<usize>,
        /// Keep reduced axes as size 1.
        keep_dims: bool,
    },
    /// Softmax along `axis` (computed in f32 for half types).
    Softmax {
        /// The normalised axis.
        axis: usize,
    },
    /// Batched matrix product with broadcast batch axes. A transposed operand
    /// is read through strides, never copied.
    Matmul {
        /// Input 0 is stored as (…, k, m).
        transpose_a: bool,
        /// Input 1 is stored as (…, n, k).
        transpose_b: bool,
    },
    /// Quantized product of f32 activations (…, m, k) and a 2-D float weight
    /// (k, n) (inputs: x, weight): activation rows quantized to u8 on the
    /// fly, weight columns to s8 once, integer products, f32 output. See
    /// [`Tensor::matmul_int8`](crate::Tensor::matmul_int8).
    MatmulInt8 {
        /// Input 1 is stored as (n, k).
        transpose_b: bool,
    },
    /// A product of activations (…, m, k) and a 2-D weight — [`Op::MatmulInt8`],
    /// or [`Op::Matmul`] without a transposed A — whose f32 output goes
    /// straight through an elementwise program computed in f32 (a bias,
    /// GELU, a residual add, a rounding to bf16) while it is written; output
    /// f32, bf16 or f16. Formed by the compiler for backends that run it
    /// ([`crate::backend::Backend::can_fuse_product_epilogue`]), never
    /// traced. Inputs: x, weight, then the program's inputs other than
    /// `acc`, in order; the program's input `acc` is the product.
    MatmulThen {
        /// The product is [`Op::MatmulInt8`] (else [`Op::Matmul`]).
        int8: bool,
        /// Input 1 is stored as (n, k).
        transpose_b: bool,
        /// Applied to the product (see
        /// `FusedProgram::fits_product_epilogue`; its output has the
        /// product's shape).
        program: Arc<FusedProgram>,
        /// Which program input is the product.
        acc: usize,
    },
    /// Two int8 products in a row, each with its epilogue — an MLP block,
    /// `then2(then1(x · w1) · w2)` with `then1` a bias and GELU, `then2` a
    /// bias and a residual add — run by row blocks: each thread takes its
    /// rows through both products, so the hidden activations never leave
    /// its cache. The same numbers as the two [`Op::MatmulThen`] nodes it
    /// replaces (the hidden rows are quantized per row either way). Formed
    /// by the compiler for backends that run it
    /// ([`crate::backend::Backend::can_fuse_int8_mlp`]), never traced.
    /// Inputs: x, w1, the first program's inputs other than `acc1`, then
    /// (from index `second`) w2 and the second program's other inputs.
    MlpInt8Then {
        /// w1 is stored as (n, k).
        transpose_b1: bool,
        /// Applied to the first product (output f32).
        program1: Arc<FusedProgram>,
        /// Which input of `program1` is the first product.
        acc1: usize,
        /// The first product's shape as its epilogue sees it (the node it
        /// replaces), its last axis the hidden width.
        hidden_shape: Vec<usize>,
        /// Index of w2 among the inputs.
        second: usize,
        /// w2 is stored as (n, k).
        transpose_b2: bool,
        /// Applied to the second product (output f32).
        program2: Arc<FusedProgram>,
        /// Which input of `program2` is the second product.
        acc2: usize,
    },
    /// A channels-last convolution
    /// ([`crate::fast::FastOp::Conv1dChannelsLast`], bf16 weight) whose f32
    /// output goes straight through an elementwise program (a bias, GELU, a
    /// position add) while its GEMM writes it, as [`Op::MatmulThen`] does
    /// for a product. Formed by the compiler for the CPU backend, never
    /// traced. Inputs: x, weight, then the program's inputs other than
    /// `acc`, in order; the program's input `acc` is the convolution.
    ConvThen {
        /// Step between windows.
        stride: usize,
        /// Zeros added at each end of the time axis.
        padding: usize,
        /// Applied to the convolution's output (its output has that shape).
        program: Arc<FusedProgram>,
        /// Which program input is the convolution.
        acc: usize,
    },
    /// 1-D convolution, input (N, C_in, L), weight (C_out, C_in/groups, K).
    Conv1d {
        /// Step between windows.
        stride: usize,
        /// Zeros added on both sides.
        padding: usize,
        /// Spacing between kernel taps.
        dilation: usize,
        /// Channel groups.
        groups: usize,
    },
    /// Same data, the node's shape.
    Reshape,
    /// Axis permutation.
    Permute {
        /// Output axis i is input axis `perm[i]`.
        perm: Vec<usize>,
    },
    /// Numpy broadcast to the node's shape.
    Broadcast,
    /// Strided slice along every axis (positive steps).
    Slice {
        /// First index per axis.
        starts: Vec<usize>,
        /// Step per axis.
        steps: Vec<usize>,
    },
    /// Concatenation of all inputs along `axis`.
    Concat {
        /// The joined axis.
        axis: usize,
    },
    /// Constant padding, `(before, after)` per axis.
    Pad {
        /// Padding per axis.
        pads: Vec<(usize, usize)>,
        /// The fill value.
        value: f64,
    },
    /// `x` indexed along `axis` by an integer tensor (inputs: x, indices);
    /// output shape `x[..axis] + indices.shape + x[axis+1..]`.
    Gather {
        /// The indexed axis.
        axis: usize,
    },
    /// `target` with `update` written at a run-time offset along `axis`
    /// (inputs: target, update, offset as a scalar integer tensor). Static-size
    /// KV caches use it so a decode step keeps one shape.
    SliceUpdate {
        /// The axis the offset applies to.
        axis: usize,
    },
    /// `target` with `updates` added at `indices` along `axis` (inputs:
    /// target, indices, updates; updates shaped like `gather`'s output).
    /// Repeated indices accumulate. The transpose of [`Op::Gather`].
    ScatterAdd {
        /// The indexed axis.
        axis: usize,
    },
    /// Uniform `[0, 1)` numbers from a counter-based generator keyed by a
    /// one-element integer tensor (input 0): the same key gives the same
    /// numbers, so a compiled plan draws fresh ones per call from a fresh key.
    RandomUniform {
        /// Selects an independent sequence for the same key (one per use site).
        stream: u64,
    },
    /// A fused transformer kernel (see [`crate::fast`]).
    Fast(FastOp),
    /// A chain of elementwise ops fused by the compiler into one pass.
    Fused(Arc<FusedProgram>),
    /// Extra output `index` (0-based into its program's
    /// [`FusedProgram::extra_outputs`]) of the [`Op::Fused`] node that is this
    /// node's one input. Formed by the compiler, never traced: a plan takes it
    /// from the fused node's run, no kernel computes it.
    FusedOutput {
        /// Which extra output.
        index: usize,
    },
}

impl Op {
    /// Short name for telemetry and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Full { .. } => "full",
            Op::Iota { .. } => "iota",
            Op::Unary(_) => "unary",
            Op::Binary(_) => "binary",
            Op::Where => "where",
            Op::Cast => "cast",
            Op::Reduce { .. } => "reduce",
            Op::Softmax { .. } => "softmax",
            Op::Matmul { .. } => "matmul",
            Op::MatmulInt8 { .. } => "matmul_int8",
            Op::MatmulThen { int8: true, .. } => "matmul_int8_then",
            Op::MatmulThen { .. } => "matmul_then",
            Op::ConvThen { .. } => "conv1d_channels_last_then",
            Op::MlpInt8Then { .. } => "mlp_int8_then",
            Op::Conv1d { .. } => "conv1d",
            Op::Reshape => "reshape",
            Op::Permute { .. } => "permute",
            Op::Broadcast => "broadcast",
            Op::Slice { .. } => "slice",
            Op::Concat { .. } => "concat",
            Op::Pad { .. } => "pad",
            Op::Gather { .. } => "gather",
            Op::SliceUpdate { .. } => "slice_update",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::RandomUniform { .. } => "random_uniform",
            Op::Fast(f) => f.name(),
            Op::Fused(_) => "fused",
            Op::FusedOutput { .. } => "fused_output",
        }
    }

    /// True for ops the compiler may fuse into one elementwise pass.
    pub fn is_elementwise(&self) -> bool {
        matches!(self, Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast)
    }
}

/// The error a backend gives when asked to run [`Op::FusedOutput`] as a
/// kernel (a plan reads it from its fused node's run instead).
pub(crate) fn fused_output_error() -> crate::error::Error {
    invalid(
        "fused_output",
        "an extra output is read from its fused program's run inside a compiled plan, never computed alone",
    )
}

/// The common device of an op's inputs, or an error naming the op.
pub(crate) fn common_device(op: &'static str, inputs: &[&Tensor]) -> Result<Device> {
    let d = inputs.first().map(|t| t.device()).unwrap_or_default();
    if let Some(t) = inputs.iter().find(|t| t.device() != d) {
        return Err(invalid(
            op,
            format!("inputs on different devices: {d} and {}", t.device()),
        ));
    }
    Ok(d)
}
