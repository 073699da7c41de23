//! The elementwise engine batches several short rows into one chunk; every
//! way an operand can be laid out (like the output, one value per row, one
//! row for all, broadcast over a middle axis, a bool mask, a bf16 input, one
//! value for all) must still read the right elements, in the f32 and the f64
//! engine. Checked bit for bit against the same arithmetic on materialised
//! (contiguous, unbroadcast) operands, against an f64 reference, and under
//! every `EMILY_ISA` cap (child processes: the ISA is chosen once per
//! process).

mod common;
use common::*;
use emily::ops::BinaryOp;
use emily::{compile, DType, Tensor};

/// `tanh(where(mask, (x - r) * col + mid, h)) * s` and `(x - r) * col`.
fn program(a: &[Tensor]) -> emily::Result<Vec<Tensor>> {
    let (x, r, col, mid, mask, h, s) = (&a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &a[6]);
    let d = x.sub(r)?.mul(col)?;
    let y = Tensor::where_cond(mask, &d.add(mid)?, &h.cast(x.dtype())?)?.tanh()?;
    Ok(vec![y.mul(s)?, d])
}

/// The same program in f64 on host values (`v[k]` holds operand `k` at
/// the shape `shapes[k]`), at output index `i`.
fn reference(v: &[Vec<f64>], shapes: &[Vec<usize>], i: &[usize]) -> [f64; 2] {
    let at = |k: usize| bcast_at(&v[k], &shapes[k], i);
    let d = (at(0) - at(1)) * at(2);
    let w = if at(4) != 0.0 { d + at(3) } else { at(5) };
    [w.tanh() * at(6), d]
}

/// Shapes (a, b, c) of the output: odd sizes, rows shorter and longer than
/// the engine's chunk, the byte LM's [16, 64, 64] and [16, 64, 172].
const SHAPES: [(usize, usize, usize); 12] = [
    (2, 3, 1),
    (3, 5, 7),
    (2, 9, 64),
    (5, 7, 77),
    (3, 4, 200),
    (2, 3, 257),
    (1, 1, 5),
    (4, 33, 16),
    (1, 3, 1000),
    (7, 1, 1),
    (16, 64, 64),
    (16, 64, 172),
];

fn check_layouts(dtype: DType) {
    let tol = if dtype == DType::F64 { 1e-12 } else { 1e-6 };
    for (k, &(a, b, c)) in SHAPES.iter().enumerate() {
        let seed = 10 * k as u64;
        let f = |t: Tensor| t.cast(dtype).unwrap().eval().unwrap();
        let (x, _) = randn(&[a, b, c], seed);
        let (r, _) = randn(&[a, b, 1], seed + 1);
        let (col, _) = randn(&[c], seed + 2);
        let (mid, _) = randn(&[a, 1, c], seed + 3);
        let (m, _) = randn(&[b, c], seed + 4);
        let mask = m.binary_scalar(BinaryOp::Gt, 0.0).unwrap();
        let (h, _) = randn(&[a, b, c], seed + 5);
        let h = h.cast(DType::BF16).unwrap().eval().unwrap();
        let (s, _) = randn(&[], seed + 6);
        let args = [f(x), f(r), f(col), f(mid), mask, h, f(s)];
        let shapes: Vec<Vec<usize>> = args.iter().map(|t| t.shape().to_vec()).collect();
        let values: Vec<Vec<f64>> = args.iter().map(|t| t.to_f64_vec().unwrap()).collect();
        // The oracle: every operand materialised at the output's shape.
        let full: Vec<Tensor> = args
            .iter()
            .map(|t| t.broadcast_to(&[a, b, c]).unwrap().eval().unwrap())
            .collect();
        let want = program(&full).unwrap();
        let eager = program(&args).unwrap();
        let compiled = compile(program).call(&args).unwrap();
        let out = [a, b, c];
        let idx = indices(&out);
        for (got, what) in [(&eager, "eager"), (&compiled, "compiled")] {
            for (o, (g, w)) in got.iter().zip(&want).enumerate() {
                let what = format!("{what} {dtype} {a}x{b}x{c} output {o}");
                let (g, w) = (g.to_f64_vec().unwrap(), w.to_f64_vec().unwrap());
                // Bit for bit against the materialised operands ...
                for (i, (gi, wi)) in g.iter().zip(&w).enumerate() {
                    assert_eq!(gi.to_bits(), wi.to_bits(), "{what}[{i}]");
                }
                // ... and close to the f64 reference.
                let r: Vec<f64> = idx
                    .iter()
                    .map(|i| reference(&values, &shapes, i)[o])
                    .collect();
                assert_close(&g, &r, tol, tol, &what);
            }
        }
    }
}

#[test]
fn short_rows_with_every_operand_layout_on_every_isa() {
    on_every_isa(
        "short_rows_with_every_operand_layout_on_every_isa",
        "EMILY_SHORT_ROWS_ISA_CHILD",
        &["baseline", "avx2", ""],
        || {
            check_layouts(DType::F32);
            check_layouts(DType::F64);
        },
    );
}
