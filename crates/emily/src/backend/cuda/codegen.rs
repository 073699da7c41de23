//! Fused elementwise programs as CUDA C: one kernel per program.
//!
//! A [`FusedProgram`] (and every eager unary / binary / where / cast, as a
//! one-instruction program) becomes a grid-stride loop that loads each input
//! (in place, as one broadcast scalar, or through broadcast strides), runs
//! the instructions in registers of the compute type (f32 when every dtype
//! involved is exact in f32, as on the CPU, else f64), rounds each result to
//! its node's dtype, and stores the output. The source depends only on the
//! program and on how each input is indexed, so it is compiled once per
//! expression, dtypes and broadcast pattern and cached by the compiler.

use std::fmt::Write;

use super::sources::{ctype, exact_in_f32, ELEMENTWISE, PRELUDE};
use crate::ops::{BinaryOp, FusedInstr, FusedProgram, Operand, UnaryOp};
use crate::DType;

/// How a kernel reads one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    /// Same shape as the output, contiguous: element `i`.
    Direct,
    /// One element broadcast everywhere.
    Scalar,
    /// Through broadcast strides.
    Strided,
}

/// Most axes a strided access may have after collapsing.
pub(crate) const MAX_RANK: usize = 8;

/// The source and kernel name of `prog` with output `dtype` and inputs read
/// as `access` says.
pub(crate) fn program_source(
    prog: &FusedProgram,
    dtype: DType,
    access: &[Access],
) -> (String, String) {
    let wide = !exact_in_f32(dtype)
        || prog.inputs.iter().any(|i| !exact_in_f32(i.dtype))
        || prog.instrs.iter().any(|i| !exact_in_f32(instr_dtype(i)));
    let c = if wide { "double" } else { "float" };
    let mut body = String::new();
    let nin = prog.inputs.len();
    let _ = writeln!(
        body,
        "struct EP {{ i64 n; int rank; i64 shape[{MAX_RANK}]; i64 st[{}][{MAX_RANK}]; }};",
        nin.max(1)
    );
    let mut params = format!("{}* __restrict__ out", ctype(dtype));
    for (k, inp) in prog.inputs.iter().enumerate() {
        let _ = write!(params, ", const {}* __restrict__ in{k}", ctype(inp.dtype));
    }
    params.push_str(", const EP p");
    let mut loop_body = String::new();
    if access.contains(&Access::Strided) {
        for (k, a) in access.iter().enumerate() {
            if *a == Access::Strided {
                let _ = writeln!(loop_body, "    i64 o{k} = 0;");
            }
        }
        loop_body.push_str("    { i64 r = i;\n      for (int d = p.rank - 1; d >= 0; --d) {\n        const i64 q = r / p.shape[d]; const i64 x = r - q * p.shape[d]; r = q;\n");
        for (k, a) in access.iter().enumerate() {
            if *a == Access::Strided {
                let _ = writeln!(loop_body, "        o{k} += x * p.st[{k}][d];");
            }
        }
        loop_body.push_str("      } }\n");
    }
    for (k, a) in access.iter().enumerate() {
        let idx = match a {
            Access::Direct => "i".to_string(),
            Access::Scalar => "0".to_string(),
            Access::Strided => format!("o{k}"),
        };
        let _ = writeln!(loop_body, "    const {c} x{k} = ld<{c}>(in{k}[{idx}]);");
    }
    for (k, bits) in prog.constants.iter().enumerate() {
        let _ = writeln!(
            loop_body,
            "    const {c} k{k} = ({c})__longlong_as_double({}LL);",
            *bits as i64
        );
    }
    let operand = |o: &Operand| match o {
        Operand::Input(k) => format!("x{k}"),
        Operand::Reg(r) => format!("r{r}"),
        Operand::Const(k) => format!("k{k}"),
    };
    let mut declared = vec![false; prog.num_regs];
    for ins in &prog.instrs {
        let (dst, expr) = match ins {
            FusedInstr::Unary { op, src, dst, .. } => (
                *dst,
                format!("u_{}<{c}>({})", unary_name(*op), operand(src)),
            ),
            FusedInstr::Binary { op, a, b, dst, .. } => (
                *dst,
                format!(
                    "b_{}<{c}>({}, {})",
                    binary_name(*op),
                    operand(a),
                    operand(b)
                ),
            ),
            FusedInstr::Where {
                cond, a, b, dst, ..
            } => (
                *dst,
                format!(
                    "({} != ({c})0 ? {} : {})",
                    operand(cond),
                    operand(a),
                    operand(b)
                ),
            ),
            FusedInstr::Cast { src, dst, .. } => (*dst, operand(src)),
        };
        let decl = if declared.get(dst).copied().unwrap_or(true) {
            ""
        } else {
            c
        };
        if let Some(d) = declared.get_mut(dst) {
            *d = true;
        }
        let _ = writeln!(
            loop_body,
            "    {decl} r{dst} = rnd_{}({expr});",
            instr_dtype(ins).name()
        );
    }
    let _ = writeln!(loop_body, "    st(out + i, {});", operand(&prog.output));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(&params, &loop_body), &mut h);
    let name = format!("fused_{:016x}", std::hash::Hasher::finish(&h));
    let mut src = String::with_capacity(PRELUDE.len() + ELEMENTWISE.len() + body.len() + 2048);
    src.push_str(PRELUDE);
    src.push_str(ELEMENTWISE);
    src.push_str(&body);
    let _ = write!(
        src,
        "extern \"C\" __global__ void {name}({params}) {{\n  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += (i64)gridDim.x * blockDim.x) {{\n{loop_body}  }}\n}}\n"
    );
    (name, src)
}

fn instr_dtype(i: &FusedInstr) -> DType {
    match i {
        FusedInstr::Unary { dtype, .. }
        | FusedInstr::Binary { dtype, .. }
        | FusedInstr::Where { dtype, .. }
        | FusedInstr::Cast { dtype, .. } => *dtype,
    }
}

fn unary_name(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "neg",
        UnaryOp::Abs => "abs",
        UnaryOp::Exp => "exp",
        UnaryOp::Log => "log",
        UnaryOp::Sqrt => "sqrt",
        UnaryOp::Rsqrt => "rsqrt",
        UnaryOp::Recip => "recip",
        UnaryOp::Sin => "sin",
        UnaryOp::Cos => "cos",
        UnaryOp::Tanh => "tanh",
        UnaryOp::Erf => "erf",
        UnaryOp::GeluErf => "gelu_erf",
        UnaryOp::GeluTanh => "gelu_tanh",
        UnaryOp::Silu => "silu",
        UnaryOp::Sigmoid => "sigmoid",
        UnaryOp::Relu => "relu",
        UnaryOp::Square => "square",
        UnaryOp::Floor => "floor",
        UnaryOp::Ceil => "ceil",
        UnaryOp::Round => "round",
        UnaryOp::Sign => "sign",
        UnaryOp::LogicalNot => "logical_not",
    }
}

fn binary_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::Pow => "pow",
        BinaryOp::Maximum => "maximum",
        BinaryOp::Minimum => "minimum",
        BinaryOp::Eq => "eq",
        BinaryOp::Ne => "ne",
        BinaryOp::Lt => "lt",
        BinaryOp::Le => "le",
        BinaryOp::Gt => "gt",
        BinaryOp::Ge => "ge",
        BinaryOp::LogicalAnd => "logical_and",
        BinaryOp::LogicalOr => "logical_or",
    }
}

/// For the NVRTC test: per dtype, one program that chains every unary and
/// binary function, a select and a cast to every dtype, with every kind of
/// input access.
pub(crate) fn representative_programs() -> Vec<(String, String)> {
    use crate::ops::FusedInput;
    let mut out = Vec::new();
    for dtype in DType::ELEMENTS {
        let mut instrs = Vec::new();
        let mut reg = 0usize;
        let mut last = Operand::Input(0);
        for op in UnaryOp::ALL {
            instrs.push(FusedInstr::Unary {
                op,
                src: last,
                dst: reg,
                dtype,
            });
            last = Operand::Reg(reg);
            reg += 1;
        }
        for op in BinaryOp::ALL {
            instrs.push(FusedInstr::Binary {
                op,
                a: last,
                b: Operand::Input(1),
                dst: reg,
                dtype,
            });
            last = Operand::Reg(reg);
            reg += 1;
        }
        instrs.push(FusedInstr::Where {
            cond: Operand::Input(2),
            a: last,
            b: Operand::Const(0),
            dst: reg,
            dtype,
        });
        last = Operand::Reg(reg);
        reg += 1;
        for to in DType::ELEMENTS {
            instrs.push(FusedInstr::Cast {
                src: last,
                dst: reg,
                dtype: to,
            });
            last = Operand::Reg(reg);
            reg += 1;
        }
        instrs.push(FusedInstr::Cast {
            src: last,
            dst: reg,
            dtype,
        });
        let prog = FusedProgram {
            inputs: vec![
                FusedInput {
                    shape: vec![3, 5],
                    dtype,
                },
                FusedInput {
                    shape: vec![1, 5],
                    dtype,
                },
                FusedInput {
                    shape: vec![1],
                    dtype: DType::Bool,
                },
            ],
            instrs,
            num_regs: reg + 1,
            output: Operand::Reg(reg),
            constants: vec![1.5f64.to_bits()],
            extra_outputs: Vec::new(),
        };
        let (name, src) = program_source(
            &prog,
            dtype,
            &[Access::Direct, Access::Strided, Access::Scalar],
        );
        out.push((name, src));
    }
    out
}
