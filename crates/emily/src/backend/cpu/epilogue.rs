//! An f32 elementwise program run over finished rows of a product while the
//! GEMM writes them ([`crate::ops::Op::MatmulThen`]): the bias, GELU or
//! residual add that would otherwise be a second pass over the output.
//!
//! Each instruction runs through the same SIMD kernels as the elementwise
//! engine ([`super::fused`]) on f32 registers, so the result is bit for bit
//! that of the product followed by the fused program.

use std::cell::RefCell;

use super::fused::execute;
use crate::error::{invalid, Result};
use crate::ops::{FusedProgram, Operand};
use crate::shape::numel;
use crate::{Array, DType};

/// How one of the program's other inputs lines up with the `rows × n` product.
enum Layout<'a> {
    /// The product's shape: element (i, j) at `i · n + j`.
    Full(&'a [f32]),
    /// One row broadcast over every row (a bias): element j.
    Row(&'a [f32]),
    /// One value everywhere.
    Scalar(f32),
}

/// A program bound to its inputs, applied to row slices of the product.
pub(crate) struct RowProgram<'a> {
    program: &'a FusedProgram,
    n: usize,
    /// Program inputs in order; `None` at `acc`.
    inputs: Vec<Option<Layout<'a>>>,
}

impl<'a> RowProgram<'a> {
    /// Binds `program` to `others` (its inputs except the product, in order)
    /// for a product of `shape`; an error names what does not fit.
    pub(crate) fn new(
        program: &'a FusedProgram,
        acc: usize,
        others: &'a [Array],
        shape: &[usize],
    ) -> Result<RowProgram<'a>> {
        let n = shape.last().copied().unwrap_or(0);
        if !program.fits_product_epilogue(acc, shape) || others.len() + 1 != program.inputs.len() {
            return Err(invalid(
                "matmul_int8_then",
                format!("program does not fit a product of {shape:?}"),
            ));
        }
        let mut inputs = Vec::with_capacity(program.inputs.len());
        let mut rest = others.iter();
        for j in 0..program.inputs.len() {
            if j == acc {
                inputs.push(None);
                continue;
            }
            let a = rest.next().expect("counted above");
            if a.shape() != program.inputs[j].shape.as_slice() || a.dtype() != DType::F32 {
                return Err(invalid(
                    "matmul_int8_then",
                    format!(
                        "input {j} is {:?} {}, the program expects {:?} f32",
                        a.shape(),
                        a.dtype(),
                        program.inputs[j].shape
                    ),
                ));
            }
            let data = a.as_slice::<f32>();
            inputs.push(Some(if a.shape() == shape {
                Layout::Full(data)
            } else if numel(a.shape()) == n && a.shape().last() == Some(&n) {
                Layout::Row(data)
            } else {
                Layout::Scalar(data[0])
            }));
        }
        Ok(RowProgram { program, n, inputs })
    }

    /// Replaces `row` (row `i` of the product, columns `j0 ..`) by the
    /// program's result there.
    pub(crate) fn apply(&self, i: usize, j0: usize, row: &mut [f32]) {
        let len = row.len();
        let prog = self.program;
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let Scratch {
                regs,
                consts,
                fills,
            } = &mut *scratch;
            regs.resize_with(prog.num_regs, Vec::new);
            regs.iter_mut()
                .for_each(|r| r.resize(len.max(r.len()), 0.0));
            consts.resize_with(prog.constants.len(), Vec::new);
            for (c, &bits) in consts.iter_mut().zip(&prog.constants) {
                c.clear();
                c.resize(len, f64::from_bits(bits) as f32);
            }
            fills.resize_with(self.inputs.len(), Vec::new);
            for (f, input) in fills.iter_mut().zip(&self.inputs) {
                if let Some(Layout::Scalar(v)) = input {
                    f.clear();
                    f.resize(len, *v);
                }
            }
            let acc_ptr = row.as_ptr();
            let input = |j: usize| -> *const f32 {
                match &self.inputs[j] {
                    None => acc_ptr,
                    Some(Layout::Full(d)) => d[i * self.n + j0..][..len].as_ptr(),
                    Some(Layout::Row(d)) => d[j0..][..len].as_ptr(),
                    Some(Layout::Scalar(_)) => fills[j].as_ptr(),
                }
            };
            let operand = |o: Operand, regs: &[Vec<f32>]| -> *const f32 {
                match o {
                    Operand::Input(j) => input(j),
                    Operand::Reg(r) => regs[r].as_ptr(),
                    Operand::Const(c) => consts[c].as_ptr(),
                }
            };
            for ins in &prog.instrs {
                execute(ins, regs, &operand, len);
            }
            let result = operand(prog.output, regs);
            if result != acc_ptr {
                // SAFETY: `result` points at `len` values of a register, a
                // constant or another input, none of which overlaps `row`.
                row.copy_from_slice(unsafe { std::slice::from_raw_parts(result, len) });
            }
        });
    }
}

/// Per-thread registers of [`RowProgram::apply`].
#[derive(Default)]
struct Scratch {
    regs: Vec<Vec<f32>>,
    consts: Vec<Vec<f32>>,
    fills: Vec<Vec<f32>>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}
