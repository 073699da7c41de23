//! Elementwise ops: every eager unary / binary / where / cast runs as a
//! one-instruction fused program, so eager and fused results agree bit for
//! bit; fill and iota use the layout library.

use std::sync::Arc;

use super::codegen::{program_source, Access, MAX_RANK};
use super::context::{arg, Gpu};
use super::sources::{ctype, Kernel, LAYOUT};
use super::{alloc, ptr};
use crate::error::{invalid, Error, Result};
use crate::ops::{FusedInstr, FusedProgram, Op, Operand};
use crate::shape::{broadcast_strides, collapse_dims, contiguous_strides, numel};
use crate::{Array, DType};

const BLOCK: u32 = 256;

/// An eager elementwise op as a one-instruction program.
pub(crate) fn eager(
    gpu: &Arc<Gpu>,
    op: &Op,
    inputs: &[Array],
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    let instr = match op {
        Op::Unary(u) => FusedInstr::Unary {
            op: *u,
            src: Operand::Input(0),
            dst: 0,
            dtype,
        },
        Op::Binary(b) => FusedInstr::Binary {
            op: *b,
            a: Operand::Input(0),
            b: Operand::Input(1),
            dst: 0,
            dtype,
        },
        Op::Where => FusedInstr::Where {
            cond: Operand::Input(0),
            a: Operand::Input(1),
            b: Operand::Input(2),
            dst: 0,
            dtype,
        },
        Op::Cast => FusedInstr::Cast {
            src: Operand::Input(0),
            dst: 0,
            dtype,
        },
        _ => return Err(invalid(op.name(), "not an elementwise op")),
    };
    let prog = FusedProgram::single(instr, inputs);
    fused(gpu, &prog, inputs, shape, dtype)
}

/// `a` converted to `dtype` (shared when it already is).
pub(crate) fn convert(gpu: &Arc<Gpu>, a: &Array, dtype: DType) -> Result<Array> {
    if a.dtype() == dtype {
        return Ok(a.clone());
    }
    eager(gpu, &Op::Cast, std::slice::from_ref(a), a.shape(), dtype)
}

/// Runs a fused program: one generated kernel.
pub(crate) fn fused(
    gpu: &Arc<Gpu>,
    prog: &FusedProgram,
    inputs: &[Array],
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    if inputs.len() != prog.inputs.len() {
        return Err(invalid("fused", "input count differs from the program's"));
    }
    let n = numel(shape);
    let mut access = Vec::with_capacity(inputs.len());
    let mut strided: Vec<Vec<usize>> = vec![contiguous_strides(shape)];
    let mut which = Vec::new();
    for (k, a) in inputs.iter().enumerate() {
        if a.numel() == 1 {
            access.push(Access::Scalar);
        } else if a.shape() == shape {
            access.push(Access::Direct);
        } else {
            access.push(Access::Strided);
            strided.push(broadcast_strides(a.shape(), shape));
            which.push(k);
        }
    }
    let (cshape, cstrides) = collapse_dims(shape, &strided);
    if !which.is_empty() && cshape.len() > MAX_RANK {
        return Err(Error::Backend {
            op: "fused",
            device: gpu.device(),
            msg: format!("broadcast over {} axes (at most {MAX_RANK})", cshape.len()),
        });
    }
    // struct EP { i64 n; int rank; i64 shape[8]; i64 st[nin][8]; } as i64 words.
    let nin = inputs.len().max(1);
    let mut params = vec![0i64; 2 + MAX_RANK + nin * MAX_RANK];
    params[0] = n as i64;
    params[1] = if which.is_empty() {
        0
    } else {
        cshape.len() as i64
    };
    for (d, &s) in cshape.iter().enumerate().take(MAX_RANK) {
        params[2 + d] = s as i64;
    }
    for (j, &k) in which.iter().enumerate() {
        for (d, &s) in cstrides[j + 1].iter().enumerate().take(MAX_RANK) {
            params[2 + MAX_RANK + k * MAX_RANK + d] = s as i64;
        }
    }
    let (name, source) = program_source(prog, dtype, &access);
    let f = gpu.load("fused", &name, &source)?;
    let (out, op) = alloc(gpu, shape, dtype)?;
    let ptrs = inputs
        .iter()
        .map(|a| ptr("fused", a))
        .collect::<Result<Vec<u64>>>()?;
    let mut args = vec![arg(&op)];
    args.extend(ptrs.iter().map(arg));
    args.push(params.as_ptr() as *mut std::ffi::c_void);
    gpu.launch_over("fused", &f, n, BLOCK, &mut args)?;
    Ok(out)
}

/// Every element `value`.
pub(crate) fn full(gpu: &Arc<Gpu>, value: f64, shape: &[usize], dtype: DType) -> Result<Array> {
    let n = numel(shape);
    let (out, p) = alloc(gpu, shape, dtype)?;
    fill(gpu, p, n, value, dtype)?;
    Ok(out)
}

/// Writes `value` to `n` elements of `dtype` at `p`.
pub(crate) fn fill(gpu: &Arc<Gpu>, p: u64, n: usize, value: f64, dtype: DType) -> Result<()> {
    let k = Kernel::new(
        &LAYOUT,
        "DEFINE_FILL",
        format!("fill_{}", dtype.name()),
        &[ctype(dtype)],
    );
    let f = gpu.function("full", &k)?;
    let n64 = n as i64;
    gpu.launch_over("full", &f, n, BLOCK, &mut [arg(&p), arg(&n64), arg(&value)])
}

/// The index along `axis`.
pub(crate) fn iota(gpu: &Arc<Gpu>, axis: usize, shape: &[usize], dtype: DType) -> Result<Array> {
    let n = numel(shape);
    let stride: usize = shape[axis + 1..].iter().product();
    let dim = shape[axis];
    let k = Kernel::new(
        &LAYOUT,
        "DEFINE_IOTA",
        format!("iota_{}", dtype.name()),
        &[ctype(dtype)],
    );
    let f = gpu.function("iota", &k)?;
    let (out, p) = alloc(gpu, shape, dtype)?;
    let (n64, s64, d64) = (n as i64, stride.max(1) as i64, dim.max(1) as i64);
    gpu.launch_over(
        "iota",
        &f,
        n,
        BLOCK,
        &mut [arg(&p), arg(&n64), arg(&s64), arg(&d64)],
    )?;
    Ok(out)
}

/// The fill and iota kernels of every dtype (for the NVRTC test).
pub(crate) fn catalogue(push: &mut dyn FnMut(Kernel)) {
    for d in DType::ELEMENTS {
        push(Kernel::new(
            &LAYOUT,
            "DEFINE_FILL",
            format!("fill_{}", d.name()),
            &[ctype(d)],
        ));
        push(Kernel::new(
            &LAYOUT,
            "DEFINE_IOTA",
            format!("iota_{}", d.name()),
            &[ctype(d)],
        ));
    }
}
