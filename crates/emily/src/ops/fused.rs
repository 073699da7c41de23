//! The fused elementwise op: a small register program the compiler builds from
//! a chain of elementwise nodes, run by a backend in one pass over memory.

use super::{BinaryOp, UnaryOp};
use crate::DType;

/// Where an instruction reads a value from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// A program input (loaded, broadcast and widened to the compute type).
    Input(usize),
    /// A register written by an earlier instruction.
    Reg(usize),
    /// The program's `i`-th scalar constant (broadcast to every element).
    Const(usize),
}

/// One input of a fused program.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FusedInput {
    /// The input's own shape (broadcast to the program's output shape).
    pub shape: Vec<usize>,
    /// The input's dtype.
    pub dtype: DType,
}

/// One step of a fused program. `dtype` is the dtype the original node had:
/// results are rounded to it (f16/bf16/bool) so fused and eager agree exactly.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FusedInstr {
    /// `dst = op(src)`.
    Unary {
        /// The function.
        op: UnaryOp,
        /// Argument.
        src: Operand,
        /// Destination register.
        dst: usize,
        /// The original node's dtype.
        dtype: DType,
    },
    /// `dst = op(a, b)`.
    Binary {
        /// The function.
        op: BinaryOp,
        /// Left argument.
        a: Operand,
        /// Right argument.
        b: Operand,
        /// Destination register.
        dst: usize,
        /// The original node's dtype.
        dtype: DType,
    },
    /// `dst = cond ? a : b`.
    Where {
        /// Condition (nonzero = true).
        cond: Operand,
        /// Value where true.
        a: Operand,
        /// Value where false.
        b: Operand,
        /// Destination register.
        dst: usize,
        /// The original node's dtype.
        dtype: DType,
    },
    /// `dst = src` converted to `dtype` (rounding to its precision).
    Cast {
        /// Argument.
        src: Operand,
        /// Destination register.
        dst: usize,
        /// Target dtype.
        dtype: DType,
    },
}

/// A result of a fused program besides its main output (see
/// [`FusedProgram::extra_outputs`]): written to its own array of the
/// program's shape as soon as instruction `after` has computed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtraOutput {
    /// The register holding the result once instruction `after` has run.
    pub reg: usize,
    /// The instruction (index into [`FusedProgram::instrs`]) that writes it.
    pub after: usize,
    /// The output's dtype (the original node's).
    pub dtype: DType,
}

/// A fused elementwise computation: inputs broadcast to the output shape, a
/// straight-line list of instructions over registers, one output register
/// and possibly extra outputs of the same shape (values of the group that
/// other nodes read as well), all written in the same pass.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FusedProgram {
    /// Inputs, in the order of the node's input tensors.
    pub inputs: Vec<FusedInput>,
    /// Instructions in execution order.
    pub instrs: Vec<FusedInstr>,
    /// Number of registers.
    pub num_regs: usize,
    /// The register holding the result.
    pub output: Operand,
    /// Scalar constants folded into the program, as f64 bit patterns (so the
    /// program stays `Eq + Hash`); each was a one-element constant of the
    /// input's dtype, so the value is exact in the compute type.
    pub constants: Vec<u64>,
    /// Further results written in the same pass (empty for a plain program).
    /// Formed by the compiler for backends that run them
    /// ([`crate::backend::Backend::max_fused_outputs`]); read in a plan by
    /// [`crate::ops::Op::FusedOutput`] nodes.
    pub extra_outputs: Vec<ExtraOutput>,
}

impl FusedInstr {
    /// The register the instruction writes.
    pub fn dst(&self) -> usize {
        match self {
            FusedInstr::Unary { dst, .. }
            | FusedInstr::Binary { dst, .. }
            | FusedInstr::Where { dst, .. }
            | FusedInstr::Cast { dst, .. } => *dst,
        }
    }

    /// Whether the instruction reads `operand`.
    pub fn reads(&self, operand: Operand) -> bool {
        match self {
            FusedInstr::Unary { src, .. } | FusedInstr::Cast { src, .. } => *src == operand,
            FusedInstr::Binary { a, b, .. } => *a == operand || *b == operand,
            FusedInstr::Where { cond, a, b, .. } => [cond, a, b].contains(&&operand),
        }
    }

    /// The dtype the instruction's result is rounded to.
    pub fn dtype(&self) -> DType {
        match self {
            FusedInstr::Unary { dtype, .. }
            | FusedInstr::Binary { dtype, .. }
            | FusedInstr::Where { dtype, .. }
            | FusedInstr::Cast { dtype, .. } => *dtype,
        }
    }
}

impl FusedProgram {
    /// Whether this program can run as the epilogue of a product of `shape`
    /// ([`crate::ops::Op::MatmulThen`]) with the product as input
    /// `acc`: every input is f32 and every instruction's dtype a float type
    /// an f32 register holds exactly (f32, bf16, f16), the product is read
    /// unbroadcast, and every other input has the product's shape, is one
    /// row broadcast down the rows (a bias) or is one value.
    pub(crate) fn fits_product_epilogue(&self, acc: usize, shape: &[usize]) -> bool {
        let n = shape.last().copied().unwrap_or(0);
        let count = |s: &[usize]| s.iter().product::<usize>();
        let f32_instrs = self
            .instrs
            .iter()
            .all(|i| matches!(i.dtype(), DType::F32 | DType::BF16 | DType::F16));
        f32_instrs
            && self.extra_outputs.is_empty()
            && acc < self.inputs.len()
            && self.inputs.iter().enumerate().all(|(j, input)| {
                let s = input.shape.as_slice();
                input.dtype == DType::F32
                    && (covers_rows(s, shape)
                        || (j != acc && ((s.last() == Some(&n) && count(s) == n) || count(s) == 1)))
            })
    }

    /// A one-instruction program over inputs of these shapes and dtypes (how
    /// backends run an eager elementwise op through their fused engine).
    pub fn single(instr: FusedInstr, inputs: &[crate::Array]) -> FusedProgram {
        FusedProgram {
            inputs: inputs
                .iter()
                .map(|a| FusedInput {
                    shape: a.shape().to_vec(),
                    dtype: a.dtype(),
                })
                .collect(),
            instrs: vec![instr],
            num_regs: 1,
            output: Operand::Reg(0),
            constants: Vec::new(),
            extra_outputs: Vec::new(),
        }
    }

    /// An error unless the program has only its main output: a backend
    /// that runs programs one output at a time calls this first (extra
    /// outputs are formed only for backends that report
    /// [`crate::backend::Backend::max_fused_outputs`] above 1).
    pub(crate) fn check_one_output(&self) -> crate::error::Result<()> {
        if self.extra_outputs.is_empty() {
            Ok(())
        } else {
            Err(crate::error::invalid(
                "fused",
                format!(
                    "a program with {} extra outputs runs only through Backend::execute_fused",
                    self.extra_outputs.len()
                ),
            ))
        }
    }

    /// Number of original ops fused into this program.
    pub fn len(&self) -> usize {
        self.instrs.len()
    }

    /// True if the program has no instruction (a pure copy/cast of an input).
    pub fn is_empty(&self) -> bool {
        self.instrs.is_empty()
    }
}

/// Whether an input of shape `s` holds one value per element of a
/// product-epilogue output of `shape`, in its order: the same shape up to
/// leading unit axes (a `(T, d)` position table beside a `(1, T, d)` output).
pub(crate) fn covers_rows(s: &[usize], shape: &[usize]) -> bool {
    let strip = |x: &[usize]| {
        let lead = x.iter().take_while(|&&d| d == 1).count();
        x[lead.min(x.len().saturating_sub(1))..].to_vec()
    };
    s == shape || strip(s) == strip(shape)
}
