//! Int8 products of one input quantize it once (the CPU backend keeps the
//! last product's quantized rows with a handle on their buffer): several
//! products of one tensor — compiled with fused epilogues, and eagerly —
//! equal, bit for bit, the products of an equal copy held in its own buffer;
//! a fresh input of the same shape after the old one was dropped (its
//! memory handed out again), and a view of the same buffer at another shape,
//! get their own quantization. On every `EMILY_ISA` path (child processes).

mod common;

use common::*;
use emily::{compile, DType, Tensor};

/// q/k/v-like products of `xs[0]` with `xs[2..]` (bias `xs[1]`): with a bias
/// and a rounding to bf16, without a bias, and a plain product.
fn products(xs: &[Tensor]) -> emily::Result<Vec<Tensor>> {
    let (x, bias) = (&xs[0], &xs[1]);
    let p = |w: usize| x.matmul_int8(&xs[2 + w].t()?);
    Ok(vec![
        p(0)?.add(bias)?.cast(DType::BF16)?,
        p(1)?.cast(DType::BF16)?,
        p(2)?.add(bias)?.gelu()?,
        p(3)?,
    ])
}

fn check_shapes() {
    for (s, &(m, n, k)) in [(1, 47, 45), (7, 200, 64), (77, 33, 96), (1000, 47, 13)]
        .iter()
        .enumerate()
    {
        let s = 10 * s as u64;
        let mut args = vec![randn(&[m, k], s + 1).0, randn(&[n], s + 2).0];
        args.extend((0..4).map(|w| randn(&[n, k], s + 3 + w).0));
        // The reference: each product on its own copy of x.
        let want: Vec<Vec<u32>> = (0..4)
            .map(|p| {
                let mut own = args.clone();
                own[0] = own_copy(&args[0]);
                f32_bits(&products(&own).unwrap()[p])
            })
            .collect();
        let eager = products(&args).unwrap();
        let c = compile(products);
        for _ in 0..2 {
            for (p, got) in c.call(&args).unwrap().iter().zip(&eager).enumerate() {
                assert_eq!(
                    f32_bits(got.0),
                    want[p],
                    "compiled product {p} m={m} n={n} k={k}"
                );
                assert_eq!(
                    f32_bits(got.1),
                    want[p],
                    "eager product {p} m={m} n={n} k={k}"
                );
            }
        }
        // Fresh inputs of one shape, each dropped before the next is made.
        let w = &args[2];
        for seed in 0..4 {
            let x = randn(&[m, k], 100 + seed).0;
            let got = f32_bits(&x.matmul_int8(&w.t().unwrap()).unwrap());
            let want = f32_bits(&own_copy(&x).matmul_int8(&w.t().unwrap()).unwrap());
            assert_eq!(got, want, "fresh input {seed} m={m} n={n} k={k}");
        }
        // The same buffer read as (m·k/2k', 2k') rows: another quantization.
        if (m * k) % (2 * k) == 0 {
            let x = &args[0];
            let wide = randn(&[n, 2 * k], s + 9).0;
            let _ = f32_bits(&x.matmul_int8(&w.t().unwrap()).unwrap());
            let view = x.reshape_to(&[m / 2, 2 * k]).unwrap();
            let got = f32_bits(&view.matmul_int8(&wide.t().unwrap()).unwrap());
            let own = own_copy(&view);
            let want = f32_bits(&own.matmul_int8(&wide.t().unwrap()).unwrap());
            assert_eq!(got, want, "reshaped view m={m} n={n} k={k}");
        }
    }
}

#[test]
fn products_of_one_input_equal_products_of_copies_on_every_isa() {
    on_every_isa(
        "products_of_one_input_equal_products_of_copies_on_every_isa",
        "EMILY_SHARED_INPUT_ISA_CHILD",
        &["baseline", "avx2", "avx512", ""],
        check_shapes,
    );
}
