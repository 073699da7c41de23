//! The compiler folds the elementwise chain after an int8 product or an f32
//! matmul on bf16, f32, f16 or block-quantised weights (bias + GELU, bias +
//! residual, a lone bias add, a rounding to bf16) into the product's op
//! (`matmul_int8_then`, `matmul_then`): compiled results equal eager
//! op-by-op evaluation bit for bit at odd shapes (GEMV and GEMM row
//! counts), on every `EMILY_ISA` path (child processes).

mod common;

use common::*;
use emily::{compile, BlockFormat, DType, Tensor};

/// The encoder's patterns (and one with a constant; the last two round to bf16
/// as the attention's q/k/v projections do) over `x (m, k)`,
/// `bias (n)`, `residual (1, m, n)` and weights `w0 … w9 (n, k)` (distinct,
/// so the products are not merged as common subexpressions), then `w10 …
/// w12` for the f32, f16 and (when `k` is a whole number of blocks) Q8_0
/// weights.
fn patterns(xs: &[Tensor]) -> emily::Result<Vec<Tensor>> {
    let (x, bias, residual) = (&xs[0], &xs[1], &xs[2]);
    let (m, n, k) = (x.shape()[0], bias.shape()[0], x.shape()[1]);
    let product = |w: usize| -> emily::Result<Tensor> {
        x.matmul_int8(&xs[3 + w].t()?)?.reshape_to(&[1, m, n])
    };
    // f32 activations on bf16 weights: the bf16 engine (the GEMV below 9 rows).
    let bf16_product = |w: usize| -> emily::Result<Tensor> {
        x.matmul(&xs[3 + w].cast(DType::BF16)?.t()?)?
            .reshape_to(&[1, m, n])
    };
    // f32 activations on f32, f16 or quantised weights: the backend's own
    // product, then the program in the same op.
    // The first is reshaped to one row per batch entry: the product's own
    // shape, not the node's, is what the plain product is computed at.
    let plain_product = |w: usize, dtype: DType, shape: &[usize]| -> emily::Result<Tensor> {
        let weight = if dtype == DType::F32 {
            xs[3 + w].clone()
        } else {
            xs[3 + w].cast(dtype)?
        };
        x.matmul(&weight.t()?)?.reshape_to(shape)
    };
    let mut outs = vec![
        plain_product(10, DType::F32, &[m, 1, n])?
            .add(bias)?
            .gelu()?,
        residual.add(&plain_product(11, DType::F16, &[1, m, n])?.add(bias)?)?,
    ];
    if k % 32 == 0 {
        let q8 = DType::Quantized(BlockFormat::Q8_0);
        outs.push(plain_product(12, q8, &[1, m, n])?.add(bias)?);
    }
    outs.extend([
        product(0)?.add(bias)?.gelu()?,
        residual.add(&product(1)?.add(bias)?)?,
        product(2)?.add(bias)?,
        product(3)?.mul_scalar(0.5)?.sub(residual)?,
        product(4)?.add(bias)?.cast(DType::BF16)?,
        product(5)?.cast(DType::BF16)?,
        bf16_product(6)?.add(bias)?.gelu()?,
        residual.add(&bf16_product(7)?.add(bias)?)?,
        // The bias first, and a chain that reads the product after its bias
        // add (the dequantizing pass may take the bias only in the first).
        bias.add(&product(8)?)?.gelu()?,
        {
            let p = product(9)?;
            p.add(bias)?.mul(&p)?
        },
    ]);
    Ok(outs)
}

fn check_shapes() {
    for (s, &(m, n, k)) in [
        (1, 47, 45),
        (7, 200, 64),
        (77, 33, 96),
        (1000, 47, 13),
        (3, 77, 32),
    ]
    .iter()
    .enumerate()
    {
        let s = 10 * s as u64;
        let mut args = vec![
            randn(&[m, k], s + 1).0,
            randn(&[n], s + 2).0,
            randn(&[1, m, n], s + 3).0,
        ];
        args.extend((0..13).map(|w| randn(&[n, k], s + 4 + w).0));
        let eager = patterns(&args).unwrap();
        let c = compile(patterns);
        let plan = c.plan(&args).unwrap();
        let ops = plan.op_frequencies();
        let count = |name: &str| ops.iter().find(|(o, _)| *o == name).map_or(0, |(_, c)| *c);
        assert_eq!(count("matmul_int8_then"), 8, "m={m} n={n}: {ops:?}");
        assert_eq!(count("matmul_int8"), 0, "m={m} n={n}: {ops:?}");
        let plain = 4 + usize::from(k % 32 == 0);
        assert_eq!(count("matmul_then"), plain, "m={m} n={n}: {ops:?}");
        assert_eq!(count("matmul"), 0, "m={m} n={n}: {ops:?}");
        for _ in 0..2 {
            let out = c.call(&args).unwrap();
            for (p, (e, o)) in eager.iter().zip(&out).enumerate() {
                assert_eq!(e.dtype(), o.dtype(), "pattern {p}");
                let f32s = |t: &Tensor| t.cast(DType::F32).unwrap().to_vec::<f32>().unwrap();
                let (e, o) = (f32s(e), f32s(o));
                for (i, (a, b)) in e.iter().zip(&o).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "pattern {p} m={m} n={n} k={k} at {i}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn fused_epilogues_equal_eager_on_every_isa() {
    on_every_isa(
        "fused_epilogues_equal_eager_on_every_isa",
        "EMILY_EPILOGUE_ISA_CHILD",
        &["baseline", "avx2", "avx512", ""],
        || {
            check_shapes();
        },
    );
}
