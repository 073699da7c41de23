//! The elementwise engine batches several short rows into one chunk; every
//! way an operand can be laid out (like the output, one value per row, one
//! row for all, broadcast over a middle axis, a bool mask, a bf16 input) must
//! still read the right elements. Checked against the same arithmetic on
//! materialised (contiguous, unbroadcast) operands.

mod common;
use common::*;
use emily::{compile, DType, Tensor};

/// `tanh(where(mask, (x - r) * col + mid, h))` and `(x - r) * col`.
fn program(a: &[Tensor]) -> emily::Result<Vec<Tensor>> {
    let (x, r, col, mid, mask, h) = (&a[0], &a[1], &a[2], &a[3], &a[4], &a[5]);
    let d = x.sub(r)?.mul(col)?;
    let y = Tensor::where_cond(mask, &d.add(mid)?, &h.cast(DType::F32)?)?.tanh()?;
    Ok(vec![y, d])
}

#[test]
fn short_rows_with_every_operand_layout() {
    for (k, &(a, b, c)) in [
        (2, 3, 1),
        (3, 5, 7),
        (2, 9, 64),
        (5, 7, 77),
        (3, 4, 200),
        (2, 3, 257),
        (1, 1, 5),
        (4, 33, 16),
    ]
    .iter()
    .enumerate()
    {
        let seed = 10 * k as u64;
        let (x, _) = randn(&[a, b, c], seed);
        let (r, _) = randn(&[a, b, 1], seed + 1);
        let (col, _) = randn(&[c], seed + 2);
        let (mid, _) = randn(&[a, 1, c], seed + 3);
        let (m, _) = randn(&[b, c], seed + 4);
        let mask = m.binary_scalar(emily::ops::BinaryOp::Gt, 0.0).unwrap();
        let (h, _) = randn(&[a, b, c], seed + 5);
        let h = h.cast(DType::BF16).unwrap();
        let args = [x, r, col, mid, mask, h];
        // The oracle: every operand materialised at the output's shape.
        let full: Vec<Tensor> = args
            .iter()
            .map(|t| t.broadcast_to(&[a, b, c]).unwrap().eval().unwrap())
            .collect();
        let want = program(&full).unwrap();
        let eager = program(&args).unwrap();
        let compiled = compile(program).call(&args).unwrap();
        for (got, what) in [(&eager, "eager"), (&compiled, "compiled")] {
            for (g, w) in got.iter().zip(&want) {
                assert_close(
                    &g.to_f64_vec().unwrap(),
                    &w.to_f64_vec().unwrap(),
                    1e-6,
                    1e-6,
                    &format!("{what} {a}x{b}x{c}"),
                );
            }
        }
    }
}
