//! The compiler takes an int8 MLP block — `x + (gelu(x · w1ᵀ + b1) · w2ᵀ +
//! b2)` on the int8 products, as Whisper's int8 encoder computes it — as
//! one `mlp_int8_then` op run by row blocks, with the same bits as eager
//! op-by-op evaluation: row counts below, at and across the blocks (1, 7,
//! 64, 77, 150), odd widths; and it leaves the pair apart when the hidden
//! activations are read elsewhere too.

use emily::{compile, DType, Result, Tensor};

mod common;
mod grad_common;

use common::f32_bits;
use grad_common::{count, randn};

/// `[x (m, k), w1 (f, k), b1 (f), w2 (k, f), b2 (k)]`.
fn args(m: usize, k: usize, f: usize, seed: u64) -> Vec<Tensor> {
    vec![
        randn(&[m, k], seed),
        randn(&[f, k], seed + 1)
            .mul_scalar(0.1)
            .unwrap()
            .eval()
            .unwrap(),
        randn(&[f], seed + 2),
        randn(&[k, f], seed + 3)
            .mul_scalar(0.1)
            .unwrap()
            .eval()
            .unwrap(),
        randn(&[k], seed + 4),
    ]
}

fn block(a: &[Tensor], keep_hidden: bool) -> Result<Vec<Tensor>> {
    let (x, m) = (&a[0], a[0].shape()[0]);
    let h = x
        .matmul_int8(&a[1].t()?)?
        .reshape_to(&[1, m, a[2].shape()[0]])?
        .add(&a[2])?
        .gelu()?;
    let y = h
        .reshape_to(&[m, a[2].shape()[0]])?
        .matmul_int8(&a[3].t()?)?
        .add(&a[4])?
        .add(x)?;
    Ok(if keep_hidden { vec![y, h] } else { vec![y] })
}

/// Compiles `g`, checks its plan runs `mlps` fused MLPs and `products`
/// other int8 products, and that its first output has eager's bits.
fn check(
    g: impl Fn(&[Tensor]) -> Result<Vec<Tensor>> + Clone + Send + Sync + 'static,
    a: &[Tensor],
    (mlps, products): (usize, usize),
    case: &str,
) {
    let compiled = compile(g.clone());
    let plan = compiled.plan(a).unwrap();
    let counts = (
        count(&plan, "mlp_int8_then"),
        count(&plan, "matmul_int8_then"),
    );
    assert_eq!(
        counts,
        (mlps, products),
        "{case}: {:?}",
        plan.op_frequencies()
    );
    let (fused, eager) = (compiled.call(a).unwrap(), g(a).unwrap());
    assert_eq!(fused[0].dtype(), DType::F32, "{case}");
    assert_eq!(f32_bits(&fused[0]), f32_bits(&eager[0]), "{case}");
}

#[test]
fn an_int8_mlp_block_runs_as_one_op_with_the_eager_bits() {
    for (m, k, f) in [
        (1usize, 40usize, 96usize),
        (7, 384, 1536),
        (64, 64, 256),
        (77, 384, 1536),
        (150, 72, 200),
    ] {
        let a = args(m, k, f, (m * 7 + k) as u64);
        check(
            |a: &[Tensor]| block(a, false),
            &a,
            (1, 0),
            &format!("m {m} k {k} f {f}"),
        );
    }
}

#[test]
fn hidden_activations_read_elsewhere_keep_the_products_apart() {
    let a = args(77, 64, 128, 3);
    check(
        |a: &[Tensor]| block(a, true),
        &a,
        (0, 2),
        "hidden read elsewhere",
    );
}

#[test]
fn batched_rows_with_a_full_shape_input_in_the_first_epilogue() {
    // x (2, 9, k); the hidden epilogue adds a (2, 9, f) tensor, so it reads
    // the first product at its own batched shape.
    let (k, f) = (32usize, 48usize);
    let a = vec![
        randn(&[2, 9, k], 1),
        randn(&[f, k], 2).mul_scalar(0.1).unwrap().eval().unwrap(),
        randn(&[2, 9, f], 3),
        randn(&[k, f], 4).mul_scalar(0.1).unwrap().eval().unwrap(),
        randn(&[k], 5),
    ];
    let g = |a: &[Tensor]| -> Result<Vec<Tensor>> {
        let h = a[0].matmul_int8(&a[1].t()?)?.add(&a[2])?.gelu()?;
        Ok(vec![h.matmul_int8(&a[3].t()?)?.add(&a[4])?])
    };
    check(g, &a, (1, 0), "batched");
}

#[test]
fn a_chain_of_three_products_pairs_the_first_two() {
    let (m, k) = (70usize, 32usize);
    let w = |seed: u64| {
        randn(&[k, k], seed)
            .mul_scalar(0.2)
            .unwrap()
            .eval()
            .unwrap()
    };
    let a = vec![randn(&[m, k], 1), w(2), w(3), w(4), randn(&[k], 5)];
    let g = |a: &[Tensor]| -> Result<Vec<Tensor>> {
        let h1 = a[0].matmul_int8(&a[1].t()?)?.add(&a[4])?.gelu()?;
        let h2 = h1.matmul_int8(&a[2].t()?)?.add(&a[4])?.gelu()?;
        Ok(vec![h2.matmul_int8(&a[3].t()?)?.add(&a[4])?])
    };
    check(g, &a, (1, 1), "chain of three");
}
