//! Fused programs the elementwise engine runs as one dedicated loop rather
//! than instruction by instruction: the engine passes each instruction over
//! a chunk of registers in L1, which for a chain of cheap arithmetic costs
//! more than the arithmetic; a program recognised here computes every
//! element through the whole chain in SIMD registers. The loops perform the
//! program's exact operations (same order, same operands), so results are
//! bit-identical to the engine's, and so to eager evaluation.
//!
//! Recognised: the SiLU gradient `a · s · (g · (−s + 1) + 1)` with
//! `s = sigmoid(g)` (what the gradient rule builds; SwiGLU's gate
//! gradient, with `a = dy · u`), in f32.

use crate::ops::{BinaryOp, FusedInstr, FusedProgram, Operand, UnaryOp};
use crate::DType;

/// A recognised program, by the input indices it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Special {
    /// `(a · b) · silu'(g)`, or `a · silu'(g)` without `b`.
    SiluGrad {
        a: usize,
        b: Option<usize>,
        g: usize,
    },
}

impl Special {
    /// Whether the loop reads input `j`.
    pub(super) fn reads(&self, j: usize) -> bool {
        match *self {
            Special::SiluGrad { a, b, g } => a == j || b == Some(j) || g == j,
        }
    }
}

/// A program value, symbolically: what each instruction computed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expr {
    Input(usize),
    Const(f64),
    Unary(UnaryOp, usize),
    Binary(BinaryOp, usize, usize),
}

/// The program as an expression arena (`None` for instructions outside
/// plain f32 unary/binary arithmetic) and the id of its output.
fn expressions(prog: &FusedProgram) -> Option<(Vec<Expr>, usize)> {
    let mut arena: Vec<Expr> = Vec::new();
    let mut regs: Vec<Option<usize>> = vec![None; prog.num_regs];
    let operand = |o: Operand, arena: &mut Vec<Expr>, regs: &[Option<usize>]| -> Option<usize> {
        match o {
            Operand::Reg(r) => *regs.get(r)?,
            Operand::Input(j) => {
                arena.push(Expr::Input(j));
                Some(arena.len() - 1)
            }
            Operand::Const(c) => {
                arena.push(Expr::Const(f64::from_bits(*prog.constants.get(c)?)));
                Some(arena.len() - 1)
            }
        }
    };
    for ins in &prog.instrs {
        let (e, dst) = match *ins {
            FusedInstr::Unary {
                op,
                src,
                dst,
                dtype: DType::F32,
            } => (Expr::Unary(op, operand(src, &mut arena, &regs)?), dst),
            FusedInstr::Binary {
                op,
                a,
                b,
                dst,
                dtype: DType::F32,
            } => {
                let a = operand(a, &mut arena, &regs)?;
                let b = operand(b, &mut arena, &regs)?;
                (Expr::Binary(op, a, b), dst)
            }
            _ => return None,
        };
        arena.push(e);
        *regs.get_mut(dst)? = Some(arena.len() - 1);
    }
    let Operand::Reg(r) = prog.output else {
        return None;
    };
    let out = (*regs.get(r)?)?;
    Some((arena, out))
}

/// Recognises `prog` (module docs); `None` for any other program.
pub(super) fn recognize(prog: &FusedProgram) -> Option<Special> {
    if !prog.extra_outputs.is_empty() || prog.inputs.iter().any(|i| i.dtype != DType::F32) {
        return None;
    }
    let (x, out) = expressions(prog)?;
    let input = |e: usize| match x[e] {
        Expr::Input(j) => Some(j),
        _ => None,
    };
    let bin = |e: usize, want: BinaryOp| match x[e] {
        Expr::Binary(op, a, b) if op == want => Some((a, b)),
        _ => None,
    };
    let one = |e: usize| x[e] == Expr::Const(1.0);
    // The sigmoid of an input: that input.
    let sigmoid_of = |e: usize| match x[e] {
        Expr::Unary(UnaryOp::Sigmoid, s) => input(s),
        _ => None,
    };
    // out = A · (S · (G · (−S + 1) + 1))
    let (a_expr, ds) = bin(out, BinaryOp::Mul)?;
    let (s, t) = bin(ds, BinaryOp::Mul)?;
    let g = sigmoid_of(s)?;
    let (m, c1) = bin(t, BinaryOp::Add)?;
    let (g2, n) = bin(m, BinaryOp::Mul)?;
    let (neg, c2) = bin(n, BinaryOp::Add)?;
    let Expr::Unary(UnaryOp::Neg, s2) = x[neg] else {
        return None;
    };
    if !(one(c1) && one(c2) && input(g2) == Some(g) && sigmoid_of(s2) == Some(g)) {
        return None;
    }
    let (a, b) = match input(a_expr) {
        Some(a) => (a, None),
        None => {
            let (p, q) = bin(a_expr, BinaryOp::Mul)?;
            (input(p)?, Some(input(q)?))
        }
    };
    Some(Special::SiluGrad { a, b, g })
}

#[cfg(test)]
mod tests {
    use super::{recognize, Special};
    use crate::ops::{
        BinaryOp, ExtraOutput, FusedInput, FusedInstr, FusedProgram, Operand, UnaryOp,
    };
    use crate::DType;

    fn un(op: UnaryOp, src: Operand, dst: usize) -> FusedInstr {
        FusedInstr::Unary {
            op,
            src,
            dst,
            dtype: DType::F32,
        }
    }

    fn bin(op: BinaryOp, a: Operand, b: Operand, dst: usize) -> FusedInstr {
        FusedInstr::Binary {
            op,
            a,
            b,
            dst,
            dtype: DType::F32,
        }
    }

    /// The gate gradient as the fusion pass writes it (inputs d, u, g),
    /// with constant `c` where the rule has 1 and `-s` of input `neg_of`.
    fn gate(c: f64, neg_of: usize) -> FusedProgram {
        use BinaryOp::{Add, Mul};
        use Operand::{Const, Input, Reg};
        let instrs = vec![
            un(UnaryOp::Sigmoid, Input(2), 0),
            un(UnaryOp::Sigmoid, Input(neg_of), 5),
            un(UnaryOp::Neg, Reg(5), 1),
            bin(Add, Reg(1), Const(0), 2),
            bin(Mul, Input(2), Reg(2), 1),
            bin(Add, Reg(1), Const(0), 2),
            bin(Mul, Reg(0), Reg(2), 1),
            bin(Mul, Input(0), Input(1), 0),
            bin(Mul, Reg(0), Reg(1), 2),
        ];
        let input = FusedInput {
            shape: vec![7],
            dtype: DType::F32,
        };
        FusedProgram {
            inputs: vec![input; 3],
            instrs,
            num_regs: 6,
            output: Operand::Reg(2),
            constants: vec![c.to_bits()],
            extra_outputs: Vec::new(),
        }
    }

    #[test]
    fn the_silu_gradient_is_recognised_and_lookalikes_are_not() {
        let want = Special::SiluGrad {
            a: 0,
            b: Some(1),
            g: 2,
        };
        assert_eq!(recognize(&gate(1.0, 2)), Some(want));
        assert_eq!(recognize(&gate(2.0, 2)), None, "another constant");
        assert_eq!(
            recognize(&gate(1.0, 1)),
            None,
            "the sigmoid of another input"
        );
        let mut extra = gate(1.0, 2);
        extra.extra_outputs.push(ExtraOutput {
            reg: 0,
            after: 0,
            dtype: DType::F32,
        });
        assert_eq!(recognize(&extra), None, "a program with an extra output");
        let mut f64_input = gate(1.0, 2);
        f64_input.inputs[1].dtype = DType::F64;
        assert_eq!(recognize(&f64_input), None, "an f64 input");
    }
}
