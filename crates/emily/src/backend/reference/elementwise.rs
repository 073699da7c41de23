//! Elementwise ops, element by element: full, iota, unary, binary, where,
//! cast and fused programs.

use super::element::{offset, round_to};
use super::scalar;
use super::{Out, View};
use crate::error::Result;
use crate::ops::{BinaryOp, FusedInstr, FusedProgram, Operand, UnaryOp};
use crate::shape::{contiguous_strides, numel};
use crate::DType;

/// Every element `value`.
pub(super) fn full(value: f64, shape: &[usize], dtype: DType) -> Result<Out> {
    let mut out = Out::new(shape, dtype)?;
    for i in 0..numel(shape) {
        out.set(i, value);
    }
    Ok(out)
}

/// Each element is its index along `axis`.
pub(super) fn iota(axis: usize, shape: &[usize], dtype: DType) -> Result<Out> {
    let mut out = Out::new(shape, dtype)?;
    let stride = contiguous_strides(shape)[axis];
    for i in 0..numel(shape) {
        out.set(i, ((i / stride) % shape[axis]) as f64);
    }
    Ok(out)
}

/// `op(x)`.
pub(super) fn unary(op: UnaryOp, x: &View, shape: &[usize], dtype: DType) -> Result<Out> {
    let mut out = Out::new(shape, dtype)?;
    for i in 0..numel(shape) {
        out.set(i, scalar::unary(op, x.get(i)));
    }
    Ok(out)
}

/// `op(a, b)` with broadcasting.
pub(super) fn binary(
    op: BinaryOp,
    a: &View,
    b: &View,
    shape: &[usize],
    dtype: DType,
) -> Result<Out> {
    let (sa, sb) = (a.strides_for(shape), b.strides_for(shape));
    let mut out = Out::new(shape, dtype)?;
    for i in 0..numel(shape) {
        let (x, y) = (a.get(offset(i, shape, &sa)), b.get(offset(i, shape, &sb)));
        out.set(i, scalar::binary(op, x, y));
    }
    Ok(out)
}

/// `cond ? a : b` with broadcasting (elements copied exactly).
pub(super) fn select(
    cond: &View,
    a: &View,
    b: &View,
    shape: &[usize],
    dtype: DType,
) -> Result<Out> {
    let (sc, sa, sb) = (
        cond.strides_for(shape),
        a.strides_for(shape),
        b.strides_for(shape),
    );
    let mut out = Out::new(shape, dtype)?;
    for i in 0..numel(shape) {
        let raw = if cond.get(offset(i, shape, &sc)) != 0.0 {
            a.raw(offset(i, shape, &sa))
        } else {
            b.raw(offset(i, shape, &sb))
        };
        out.set_raw(i, raw);
    }
    Ok(out)
}

/// `x` converted to `dtype`.
pub(super) fn cast(x: &View, dtype: DType) -> Result<Out> {
    let mut out = Out::new(x.shape, dtype)?;
    for i in 0..x.numel() {
        out.set(i, x.get(i));
    }
    Ok(out)
}

/// A fused program interpreted element by element: each instruction's
/// result is rounded to its node's dtype, as op-by-op evaluation would.
pub(super) fn fused(
    prog: &FusedProgram,
    inputs: &[View],
    shape: &[usize],
    dtype: DType,
) -> Result<Out> {
    let strides: Vec<Vec<usize>> = inputs.iter().map(|v| v.strides_for(shape)).collect();
    let mut regs = vec![0.0f64; prog.num_regs];
    let mut out = Out::new(shape, dtype)?;
    for i in 0..numel(shape) {
        let read = |o: Operand, regs: &[f64]| match o {
            Operand::Input(j) => inputs[j].get(offset(i, shape, &strides[j])),
            Operand::Reg(r) => regs[r],
            Operand::Const(c) => f64::from_bits(prog.constants[c]),
        };
        for ins in &prog.instrs {
            let (dst, v, to) = match *ins {
                FusedInstr::Unary {
                    op,
                    src,
                    dst,
                    dtype,
                } => (dst, scalar::unary(op, read(src, &regs)), dtype),
                FusedInstr::Binary {
                    op,
                    a,
                    b,
                    dst,
                    dtype,
                } => (
                    dst,
                    scalar::binary(op, read(a, &regs), read(b, &regs)),
                    dtype,
                ),
                FusedInstr::Where {
                    cond,
                    a,
                    b,
                    dst,
                    dtype,
                } => {
                    let v = if read(cond, &regs) != 0.0 {
                        read(a, &regs)
                    } else {
                        read(b, &regs)
                    };
                    (dst, v, dtype)
                }
                FusedInstr::Cast { src, dst, dtype } => (dst, read(src, &regs), dtype),
            };
            regs[dst] = round_to(v, to);
        }
        out.set(i, read(prog.output, &regs));
    }
    Ok(out)
}
