//! The reference backend: the oracle the other backends are tested against.
//!
//! Every op of the catalogue is a plain scalar loop over elements, computed
//! in f64 (sums, dot products and norms accumulate in f64), with no SIMD, no
//! threads and nothing shared with the CPU kernels: elementwise functions are
//! `std`/`libm` f64 math, fast ops are their textbook formulas, layout ops
//! move raw elements. Results are rounded once to the node's dtype. Its
//! buffers are its own ([`ReferenceBuffer`], a `Vec<u8>` behind the
//! [`BackendBuffer`] seam), so anything that works on it works through the
//! seam alone. Slow by design: for tests, not for models.
//!
//! Integer arithmetic follows the catalogue's rule (the value in f64,
//! converted to the dtype as Rust's `as` does: truncating, saturating), so
//! it is exact for magnitudes below 2^53.

mod element;
mod elementwise;
mod fast;
mod layout;
mod linalg;
mod quant;
mod reduce;
pub mod scalar;

use std::any::Any;

use super::Backend;
use crate::error::{invalid, Result};
use crate::fast::FastOp;
use crate::ops::Op;
use crate::storage::BackendBuffer;
use crate::{Array, DType, Device};
pub(crate) use element::{Out, View};

/// The reference backend (stateless).
pub struct ReferenceBackend;

/// A reference-backend buffer: little-endian row-major bytes in a plain
/// `Vec` (not the CPU pool).
pub struct ReferenceBuffer {
    bytes: Vec<u8>,
}

impl BackendBuffer for ReferenceBuffer {
    fn device(&self) -> Device {
        Device::Reference
    }

    fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    fn to_host(&self) -> Result<Vec<u8>> {
        Ok(self.bytes.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A reference array holding `bytes`.
fn array(bytes: Vec<u8>, shape: &[usize], dtype: DType) -> Result<Array> {
    Array::from_buffer(Box::new(ReferenceBuffer { bytes }), shape, dtype)
}

/// The bytes of a reference array.
fn bytes_of<'a>(op: &Op, a: &'a Array) -> Result<&'a [u8]> {
    a.buffer::<ReferenceBuffer>()
        .map(|b| b.bytes.as_slice())
        .ok_or_else(|| invalid(op.name(), "input is not a reference-backend buffer"))
}

impl Backend for ReferenceBackend {
    fn device(&self) -> Device {
        Device::Reference
    }

    fn upload(&self, bytes: &[u8], shape: &[usize], dtype: DType) -> Result<Array> {
        // `Array::from_buffer` checks the length against the shape.
        array(bytes.to_vec(), shape, dtype)
    }

    fn execute(&self, op: &Op, inputs: Vec<Array>, shape: &[usize], dtype: DType) -> Result<Array> {
        super::check_inputs(op, Device::Reference, &inputs)?;
        quant::check_op(op, &inputs)?;
        let views = inputs
            .iter()
            .map(|a| Ok(View::new(bytes_of(op, a)?, a.shape(), a.dtype())))
            .collect::<Result<Vec<View>>>()?;
        let v = &views;
        let out = match op {
            Op::Reshape => return Ok(inputs[0].reshaped(shape)),
            Op::Full { value } => elementwise::full(*value, shape, dtype)?,
            Op::Iota { axis } => elementwise::iota(*axis, shape, dtype)?,
            Op::Unary(u) => elementwise::unary(*u, &v[0], shape, dtype)?,
            Op::Binary(b) => elementwise::binary(*b, &v[0], &v[1], shape, dtype)?,
            Op::Where => elementwise::select(&v[0], &v[1], &v[2], shape, dtype)?,
            Op::Cast => match dtype {
                DType::Quantized(f) => return quant::quantize(&v[0], f, shape),
                _ => elementwise::cast(&v[0], dtype)?,
            },
            Op::Fused(p) => {
                p.check_one_output()?;
                elementwise::fused(p, v, shape, dtype)?
            }
            Op::FusedOutput { .. } => return Err(crate::ops::fused_output_error()),
            Op::Reduce { op, axes, .. } => reduce::reduce(*op, &v[0], axes, shape, dtype)?,
            Op::Softmax { axis } => reduce::softmax(&v[0], *axis, dtype)?,
            Op::Matmul {
                transpose_a,
                transpose_b,
            } => linalg::matmul(&v[0], &v[1], *transpose_a, *transpose_b, shape, dtype)?,
            Op::MatmulInt8 { transpose_b } => {
                linalg::matmul_int8(&v[0], &v[1], *transpose_b, shape)?
            }
            Op::MatmulThen {
                int8,
                transpose_b,
                program,
                acc,
            } => {
                // As composed: the product, then the program over it.
                let product = if *int8 {
                    linalg::matmul_int8(&v[0], &v[1], *transpose_b, shape)?
                } else {
                    linalg::matmul(&v[0], &v[1], false, *transpose_b, shape, DType::F32)?
                };
                let mut args: Vec<View> = inputs[2..]
                    .iter()
                    .map(|a| Ok(View::new(bytes_of(op, a)?, a.shape(), a.dtype())))
                    .collect::<Result<_>>()?;
                if *acc > args.len() {
                    return Err(invalid(
                        op.name(),
                        format!("product input {acc} out of range"),
                    ));
                }
                args.insert(*acc, product.view());
                elementwise::fused(program, &args, shape, dtype)?
            }
            Op::ConvThen { .. } | Op::MlpInt8Then { .. } => {
                return Err(invalid(op.name(), "formed only for the CPU backend"))
            }
            Op::Conv1d {
                stride,
                padding,
                dilation,
                groups,
            } => linalg::conv1d(
                &v[0],
                &v[1],
                [*stride, *padding, *dilation, *groups],
                shape,
                dtype,
            )?,
            Op::Permute { perm } => layout::permute(&v[0], perm, shape)?,
            Op::Broadcast => layout::broadcast(&v[0], shape)?,
            Op::Slice { starts, steps } => layout::slice(&v[0], starts, steps, shape)?,
            Op::Concat { axis } => layout::concat(v, *axis, shape, dtype)?,
            Op::Pad { pads, value } => layout::pad(&v[0], pads, *value, shape)?,
            Op::Gather { axis } => layout::gather(&v[0], &v[1], *axis, shape, dtype)?,
            Op::SliceUpdate { axis } => layout::slice_update(&v[0], &v[1], &v[2], *axis)?,
            Op::ScatterAdd { axis } => layout::scatter_add(&v[0], &v[1], &v[2], *axis)?,
            Op::RandomUniform { stream } => layout::random_uniform(&v[0], *stream, shape, dtype)?,
            Op::Fast(f) => fast::execute(f, v, shape, dtype)?,
        };
        out.finish()
    }

    fn supports_fast(
        &self,
        op: &FastOp,
        inputs: &[(&[usize], DType)],
    ) -> std::result::Result<(), String> {
        match inputs.first() {
            _ if op.cpu_only() => Err(format!("no reference {}: it runs composed", op.name())),
            Some((_, d)) if d.is_float() => Ok(()),
            Some((_, d)) => Err(format!("no reference {} for {d}", op.name())),
            None => Err(format!("{} without inputs", op.name())),
        }
    }

    /// Every elementwise op fuses: a fused program is interpreted element by
    /// element, each instruction rounded to its node's dtype. Casts from or to
    /// block-quantised types run on their own (blocks are not elements).
    fn can_fuse(&self, op: &Op, inputs: &[DType], output: DType) -> bool {
        op.is_elementwise() && !output.is_quantized() && !inputs.iter().any(|d| d.is_quantized())
    }
}
