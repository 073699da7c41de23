//! The CPU backend: SIMD kernels from `emily-kernels`, one thread pool, GEMM
//! from the `gemm` crate, buffers from the pool in [`crate::memory`].

mod compute;
mod conv;
mod creation;
mod epilogue;
mod fast;
mod fused;
mod fused_special;
mod indexing;
mod int8_rows;
mod layout;
mod lowp;
mod matmul;
mod mlp;
mod packed_weights;
mod quant;
mod quantized_input;
mod random;
mod reduce;

use super::Backend;
use crate::error::{invalid, Result};
use crate::fast::FastOp;
use crate::ops::{FusedInstr, FusedProgram, Op, Operand};
use crate::shape::numel;
use crate::{Array, DType, Device};

use std::sync::Arc;

/// The CPU backend (stateless; the pool and caches are global).
pub struct CpuBackend;

/// `a` converted to `dtype` (shared, not copied, when it already is).
pub(crate) fn convert(a: &Array, dtype: DType) -> Result<Array> {
    if a.dtype() == dtype {
        return Ok(a.clone());
    }
    let prog = FusedProgram::single(
        FusedInstr::Cast {
            src: Operand::Input(0),
            dst: 0,
            dtype,
        },
        std::slice::from_ref(a),
    );
    fused::run(&prog, vec![a.clone()], a.shape(), dtype)
}

impl Backend for CpuBackend {
    fn device(&self) -> Device {
        Device::Cpu
    }

    fn upload(&self, bytes: &[u8], shape: &[usize], dtype: DType) -> Result<Array> {
        Array::from_bytes(bytes, shape, dtype)
    }

    fn execute(&self, op: &Op, inputs: Vec<Array>, shape: &[usize], dtype: DType) -> Result<Array> {
        super::check_inputs(op, Device::Cpu, &inputs)?;
        // A weight packed at load is read in place by the int8 products
        // (as their weight operand) and by nothing else.
        let int8_weight = |i: usize| match op {
            Op::MatmulInt8 { .. } | Op::MatmulThen { int8: true, .. } => i == 1,
            Op::MlpInt8Then { second, .. } => i == 1 || i == *second,
            _ => false,
        };
        // Int8 rows (`Tensor::from_int8_rows`) only as the weight of x · wᵀ.
        let rows_weight = |i: usize| {
            i == 1 && matches!(op, Op::Matmul { .. } | Op::MatmulThen { int8: false, .. })
        };
        for (i, a) in inputs.iter().enumerate() {
            if a.host_bytes().is_some()
                || (int8_weight(i) && packed_weights::is_packed_int8(a))
                || (rows_weight(i) && int8_rows::of(a).is_some())
            {
                continue;
            }
            return Err(invalid(
                op.name(),
                if packed_weights::is_packed_int8(a) {
                    "a weight packed for the int8 products is read only as the weight of matmul_int8"
                } else if int8_rows::of(a).is_some() {
                    "a weight held as int8 rows is read only as the weight w of x · wᵀ"
                } else {
                    "the CPU backend cannot read this kind of buffer in place"
                },
            ));
        }
        // A product with an epilogue reaches the quantised kernels through
        // its plain product (below).
        if quant::involved(&inputs, dtype)
            && !matches!(op, Op::MatmulThen { .. } | Op::MlpInt8Then { .. })
        {
            return quant::execute(op, &inputs, shape, dtype);
        }
        let x = || &inputs[0];
        // An empty output needs no kernel (its inputs may still have huge axes,
        // e.g. a (0, 2^60) reduction); indexing ops still check their indices.
        if numel(shape) == 0
            && !matches!(
                op,
                Op::Gather { .. } | Op::SliceUpdate { .. } | Op::ScatterAdd { .. }
            )
        {
            return Array::uninit(shape, dtype);
        }
        match op {
            Op::Full { value } => creation::full(shape, *value, dtype),
            Op::Iota { axis } => creation::iota(shape, *axis, dtype),
            Op::Unary(u) => {
                let p = FusedProgram::single(
                    FusedInstr::Unary {
                        op: *u,
                        src: Operand::Input(0),
                        dst: 0,
                        dtype,
                    },
                    &inputs,
                );
                fused::run(&p, inputs, shape, dtype)
            }
            Op::Binary(b) => {
                let p = FusedProgram::single(
                    FusedInstr::Binary {
                        op: *b,
                        a: Operand::Input(0),
                        b: Operand::Input(1),
                        dst: 0,
                        dtype,
                    },
                    &inputs,
                );
                fused::run(&p, inputs, shape, dtype)
            }
            Op::Where => {
                let p = FusedProgram::single(
                    FusedInstr::Where {
                        cond: Operand::Input(0),
                        a: Operand::Input(1),
                        b: Operand::Input(2),
                        dst: 0,
                        dtype,
                    },
                    &inputs,
                );
                fused::run(&p, inputs, shape, dtype)
            }
            Op::Cast => convert(x(), dtype),
            Op::Fused(p) => fused::run(p, inputs, shape, dtype),
            Op::FusedOutput { .. } => Err(crate::ops::fused_output_error()),
            Op::Reduce { op, axes, .. } => reduce::reduce(x(), *op, axes, shape, dtype),
            Op::Softmax { axis } => reduce::softmax(x(), *axis, dtype),
            Op::Matmul {
                transpose_a,
                transpose_b,
            } => matmul::matmul(x(), &inputs[1], *transpose_a, *transpose_b, shape, dtype),
            Op::MatmulInt8 { transpose_b } => {
                lowp::int8_matmul(x(), &inputs[1], *transpose_b, shape)
            }
            Op::MatmulThen {
                int8,
                transpose_b,
                program,
                acc,
            } => {
                let plain = Op::Matmul {
                    transpose_a: false,
                    transpose_b: *transpose_b,
                };
                // The product's own shape (x's rows by n): the node's shape
                // may be a reshape of it that keeps the last axis.
                let x_shape = inputs[0].shape();
                let mut product_shape = x_shape[..x_shape.len().saturating_sub(1)].to_vec();
                product_shape.extend(shape.last());
                let operands = inputs[..2].to_vec();
                let plain_product = || {
                    let product = self.execute(&plain, operands, &product_shape, DType::F32)?;
                    Ok(product.reshaped(shape))
                };
                lowp::matmul_then(
                    &inputs,
                    (*int8, *transpose_b),
                    program,
                    *acc,
                    shape,
                    dtype,
                    plain_product,
                )
            }
            Op::MlpInt8Then {
                transpose_b1,
                program1,
                acc1,
                hidden_shape,
                second,
                transpose_b2,
                program2,
                acc2,
            } => mlp::mlp_int8_then(
                &inputs,
                [
                    (*transpose_b1, program1, *acc1, hidden_shape),
                    (*transpose_b2, program2, *acc2, shape),
                ],
                *second,
                dtype,
            ),
            Op::ConvThen {
                stride,
                padding,
                program,
                acc,
            } => conv::conv1d_channels_last_then(
                &inputs,
                (*stride, *padding),
                program,
                *acc,
                shape,
                dtype,
            ),
            Op::Conv1d {
                stride,
                padding,
                dilation,
                groups,
            } => conv::conv1d(
                x(),
                &inputs[1],
                conv::ConvParams {
                    stride: *stride,
                    padding: *padding,
                    dilation: *dilation,
                    groups: *groups,
                },
                shape,
                dtype,
            ),
            Op::Reshape => Ok(x().reshaped(shape)),
            Op::Permute { perm } => layout::permute(x(), perm, shape),
            Op::Broadcast => layout::broadcast(x(), shape),
            Op::Slice { starts, steps } => {
                let x = inputs.into_iter().next().expect("slice has an input");
                layout::slice(x, starts, steps, shape)
            }
            Op::Concat { axis } => layout::concat(&inputs, *axis, shape, dtype),
            Op::Pad { pads, value } => layout::pad(x(), pads, *value, shape),
            Op::Gather { axis } => indexing::gather(x(), &inputs[1], *axis, shape),
            Op::SliceUpdate { axis } => {
                let mut it = inputs.into_iter();
                let (t, u, o) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
                indexing::slice_update(t, &u, &o, *axis)
            }
            Op::ScatterAdd { axis } => {
                let mut it = inputs.into_iter();
                let (t, i, u) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
                indexing::scatter_add(t, &i, &u, *axis)
            }
            Op::RandomUniform { stream } => random::uniform(x(), *stream, shape, dtype),
            Op::Fast(f) => fast::execute(f, &inputs, shape, dtype),
        }
    }

    fn supports_fast(
        &self,
        op: &FastOp,
        inputs: &[(&[usize], DType)],
    ) -> std::result::Result<(), String> {
        fast::supports(op, inputs)
    }

    /// Quantised types never fuse: `f32_exact` is false for them.
    fn can_fuse(&self, op: &Op, inputs: &[DType], output: DType) -> bool {
        op.is_elementwise()
            && compute::f32_exact(output)
            && inputs.iter().all(|&d| compute::f32_exact(d))
    }

    /// The elementwise engine writes any number of outputs per pass; a few
    /// keep each chunk's registers and output lines in L1.
    fn max_fused_outputs(&self) -> usize {
        4
    }

    fn execute_fused(
        &self,
        program: &Arc<FusedProgram>,
        inputs: Vec<Array>,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Vec<Array>> {
        let op = Op::Fused(program.clone());
        super::check_inputs(&op, Device::Cpu, &inputs)?;
        if inputs.iter().any(|a| a.host_bytes().is_none()) {
            return Err(invalid(
                op.name(),
                "the CPU backend cannot read this kind of buffer in place",
            ));
        }
        if numel(shape) == 0 {
            let mut outs = vec![Array::uninit(shape, dtype)?];
            for e in &program.extra_outputs {
                outs.push(Array::uninit(shape, e.dtype)?);
            }
            return Ok(outs);
        }
        fused::run_outputs(program, inputs, shape, dtype)
    }

    fn can_fuse_int8_mlp(&self) -> bool {
        true
    }

    fn can_fuse_product_epilogue(&self, int8: bool, a: DType, b: DType) -> bool {
        // Int8 products; f32 activations on bf16 weights (the bf16 engine
        // applies the program as it writes); on f32, f16 and quantised
        // weights the product is followed by the program in the same op,
        // which saves a decode step an op per bias add or residual.
        int8 || (a == DType::F32
            && (matches!(b, DType::F32 | DType::F16 | DType::BF16) || b.is_quantized()))
    }
}
