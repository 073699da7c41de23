//! An f32 elementwise program run over finished rows of a product while the
//! GEMM writes them ([`crate::ops::Op::MatmulThen`]): the bias, GELU or
//! residual add that would otherwise be a second pass over the output.
//!
//! Each instruction runs through the same SIMD kernels as the elementwise
//! engine ([`super::fused`]) on f32 registers, so the result is bit for bit
//! that of the product followed by the fused program.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::fused::execute;
use crate::error::{invalid, Result};
use crate::ops::{BinaryOp, FusedInstr, FusedProgram, Operand};
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
    /// Instructions already applied by the product's own pass
    /// ([`RowProgram::fold_leading_bias`]): the rest start here.
    start: usize,
    /// The register whose value the row holds after those instructions.
    row_reg: Option<usize>,
    /// Identifies this binding in the per-thread scratch (constants and
    /// scalar fills are written once per binding and row length).
    id: u64,
}

/// The source of [`RowProgram::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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
                "matmul_then",
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
                    "matmul_then",
                    format!(
                        "input {j} is {:?} {}, the program expects {:?} f32",
                        a.shape(),
                        a.dtype(),
                        program.inputs[j].shape
                    ),
                ));
            }
            let data = a.as_slice::<f32>();
            inputs.push(Some(if crate::ops::covers_rows(a.shape(), shape) {
                Layout::Full(data)
            } else if numel(a.shape()) == n && a.shape().last() == Some(&n) {
                Layout::Row(data)
            } else {
                Layout::Scalar(data[0])
            }));
        }
        Ok(RowProgram {
            program,
            n,
            inputs,
            start: 0,
            row_reg: None,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// When the program starts with the product plus a per-column f32 bias
    /// (`acc + bias`, the dense layer's bias) and reads the product nowhere
    /// else, drops that instruction and returns the bias, for the product's
    /// dequantizing pass to add (the same one f32 addition, so results are
    /// unchanged); the rest of the program then reads the row in place of
    /// the sum's register.
    pub(crate) fn fold_leading_bias(&mut self) -> Option<&'a [f32]> {
        let acc = self.inputs.iter().position(Option::is_none)?;
        let Some(&FusedInstr::Binary {
            op: BinaryOp::Add,
            a,
            b,
            dst,
            dtype: DType::F32,
        }) = self.program.instrs.first()
        else {
            return None;
        };
        let other = match (a, b) {
            (Operand::Input(x), Operand::Input(y)) if x == acc && y != acc => y,
            (Operand::Input(x), Operand::Input(y)) if y == acc && x != acc => x,
            _ => return None,
        };
        let Some(Layout::Row(bias)) = self.inputs[other] else {
            return None;
        };
        let rest = &self.program.instrs[1..];
        let reads_acc = |o: &Operand| *o == Operand::Input(acc);
        let clash = rest.iter().any(|ins| {
            let (d, ops): (usize, Vec<&Operand>) = match ins {
                FusedInstr::Unary { src, dst, .. } | FusedInstr::Cast { src, dst, .. } => {
                    (*dst, vec![src])
                }
                FusedInstr::Binary { a, b, dst, .. } => (*dst, vec![a, b]),
                FusedInstr::Where {
                    cond, a, b, dst, ..
                } => (*dst, vec![cond, a, b]),
            };
            d == dst || ops.into_iter().any(reads_acc)
        });
        if clash || reads_acc(&self.program.output) || self.start != 0 {
            return None;
        }
        self.start = 1;
        self.row_reg = Some(dst);
        Some(bias)
    }

    /// Replaces `row` (row `i` of the product, columns `j0 ..`) by the
    /// program's result there.
    pub(crate) fn apply(&self, i: usize, j0: usize, row: &mut [f32]) {
        let len = row.len();
        let prog = self.program;
        // The same columns of a later row of each full-size input (a
        // residual read from memory): requested now, in cache by then.
        for input in &self.inputs {
            if let Some(Layout::Full(d)) = input {
                if let Some(ahead) = d.get((i + PREFETCH_ROWS) * self.n + j0..) {
                    prefetch(&ahead[..len.min(ahead.len())]);
                }
            }
        }
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let Scratch {
                regs,
                consts,
                fills,
                bound,
            } = &mut *scratch;
            if *bound != (self.id, len) {
                // A new binding or row length: size the registers, write the
                // constants and scalar inputs out once (rows of one call
                // mostly share their length).
                *bound = (self.id, len);
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
                    Operand::Reg(r) if Some(r) == self.row_reg => acc_ptr,
                    Operand::Reg(r) => regs[r].as_ptr(),
                    Operand::Const(c) => consts[c].as_ptr(),
                }
            };
            for ins in &prog.instrs[self.start..] {
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

/// How many rows ahead of the one being rewritten [`RowProgram::apply`]
/// requests its full-size inputs (the product's rows are rewritten in order).
const PREFETCH_ROWS: usize = 4;

/// Asks for the cache lines of `data` (a hint).
fn prefetch(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks(16) {
        // SAFETY: prefetching never faults; SSE is part of x86-64.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Per-thread registers of [`RowProgram::apply`].
#[derive(Default)]
struct Scratch {
    regs: Vec<Vec<f32>>,
    consts: Vec<Vec<f32>>,
    fills: Vec<Vec<f32>>,
    /// The binding ([`RowProgram::id`]) and row length the registers,
    /// constants and fills were last prepared for.
    bound: (u64, usize),
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{FusedInput, UnaryOp};

    fn input(shape: &[usize]) -> FusedInput {
        FusedInput {
            shape: shape.to_vec(),
            dtype: DType::F32,
        }
    }

    /// `gelu(bias + acc)` over inputs (bias, acc), then `extra` instructions.
    fn program(extra: Vec<FusedInstr>, output: Operand) -> FusedProgram {
        let mut instrs = vec![
            FusedInstr::Binary {
                op: BinaryOp::Add,
                a: Operand::Input(0),
                b: Operand::Input(1),
                dst: 0,
                dtype: DType::F32,
            },
            FusedInstr::Unary {
                op: UnaryOp::GeluErf,
                src: Operand::Reg(0),
                dst: 1,
                dtype: DType::F32,
            },
        ];
        instrs.extend(extra);
        FusedProgram {
            inputs: vec![input(&[5]), input(&[3, 5])],
            instrs,
            num_regs: 3,
            output,
            constants: Vec::new(),
            extra_outputs: Vec::new(),
        }
    }

    fn applied(p: &FusedProgram, fold: bool) -> (bool, Vec<f32>) {
        let bias = [0.5f32, -1.0, 2.0, 0.25, -3.0];
        let others = [Array::from_slice(&bias, &[5]).unwrap()];
        let mut rp = RowProgram::new(p, 1, &others, &[3, 5]).unwrap();
        let folded = if fold {
            rp.fold_leading_bias().map(<[f32]>::to_vec)
        } else {
            None
        };
        let mut out = Vec::new();
        for i in 0..3 {
            let mut row: Vec<f32> = (0..5).map(|j| (i * 5 + j) as f32 * 0.37 - 2.0).collect();
            if let Some(b) = &folded {
                row.iter_mut().zip(b).for_each(|(v, c)| *v += c);
            }
            rp.apply(i, 0, &mut row);
            out.extend(row);
        }
        (folded.is_some(), out)
    }

    #[test]
    fn leading_bias_folds_only_when_the_product_is_not_read_again() {
        let plain = program(Vec::new(), Operand::Reg(1));
        let (folded, out) = applied(&plain, true);
        assert!(folded);
        assert_eq!(out, applied(&plain, false).1);
        // The product read again after the bias add: not folded.
        let again = program(
            vec![FusedInstr::Binary {
                op: BinaryOp::Mul,
                a: Operand::Reg(1),
                b: Operand::Input(1),
                dst: 2,
                dtype: DType::F32,
            }],
            Operand::Reg(2),
        );
        assert!(!applied(&again, true).0);
        // The sum's register overwritten later: not folded.
        let reuse = program(
            vec![FusedInstr::Unary {
                op: UnaryOp::Neg,
                src: Operand::Reg(1),
                dst: 0,
                dtype: DType::F32,
            }],
            Operand::Reg(0),
        );
        assert!(!applied(&reuse, true).0);
    }
}
