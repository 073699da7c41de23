//! A weight packed at load into its own int8 storage
//! (`Tensor::pack_int8_weight`) gives the int8 products of the unpacked
//! weight bit for bit, eager and compiled (with a fused epilogue), in both
//! layouts and from f32, f16 and bf16 weights at odd shapes; any other use of
//! it is an error naming the op, never a wrong answer.

mod common;

use common::*;
use emily::{compile, DType, Tensor};

#[test]
fn packed_weights_multiply_as_the_unpacked_ones() {
    for (s, &(m, n, k)) in [(1, 1, 1), (7, 47, 45), (77, 33, 96), (3, 1000, 7)]
        .iter()
        .enumerate()
    {
        let s = 10 * s as u64;
        let x = randn(&[m, k], s + 1).0;
        let bias = randn(&[n], s + 2).0;
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            // A `Linear` weight (n, k), multiplied transposed.
            let w = randn(&[n, k], s + 3).0.cast(dtype).unwrap().eval().unwrap();
            let packed = w.pack_int8_weight(true).unwrap();
            assert_eq!(packed.shape(), w.shape());
            assert_eq!(packed.dtype(), dtype);
            let want = x.matmul_int8(&w.t().unwrap()).unwrap();
            let got = x.matmul_int8(&packed.t().unwrap()).unwrap();
            assert_eq!(
                f32_bits(&got),
                f32_bits(&want),
                "m={m} n={n} k={k} {dtype:?}"
            );

            // Compiled, with the bias and GELU folded into the product.
            let f = |xs: &[Tensor]| -> emily::Result<Vec<Tensor>> {
                Ok(vec![xs[0].matmul_int8(&xs[1].t()?)?.add(&xs[2])?.gelu()?])
            };
            let eager = f(&[x.clone(), w.clone(), bias.clone()]).unwrap();
            let c = compile(f);
            let args = [x.clone(), packed.clone(), bias.clone()];
            let ops = c.plan(&args).unwrap().op_frequencies();
            assert!(ops.iter().any(|(o, _)| *o == "matmul_int8_then"), "{ops:?}");
            for _ in 0..2 {
                let out = c.call(&args).unwrap();
                assert_eq!(
                    f32_bits(&out[0]),
                    f32_bits(&eager[0]),
                    "compiled m={m} n={n} k={k}"
                );
            }

            // A `(k, n)` operand, multiplied as stored.
            let b = randn(&[k, n], s + 4).0.cast(dtype).unwrap().eval().unwrap();
            let packed_b = b.pack_int8_weight(false).unwrap();
            let want = x.matmul_int8(&b).unwrap();
            let got = x.matmul_int8(&packed_b).unwrap();
            assert_eq!(
                f32_bits(&got),
                f32_bits(&want),
                "as stored m={m} n={n} k={k}"
            );
        }
    }
}

#[test]
fn packed_weights_refuse_every_other_use() {
    let x = randn(&[3, 8], 1).0;
    let w = randn(&[5, 8], 2).0;
    let packed = w.pack_int8_weight(true).unwrap();
    let err = |r: emily::Result<Tensor>| match r.and_then(|t| t.eval()) {
        Ok(_) => panic!("an error, not a value"),
        Err(e) => e.to_string(),
    };
    // Another op reading it.
    let e = err(packed.add(&w));
    assert!(e.contains("read only as the weight of matmul_int8"), "{e}");
    let e = err(x.matmul(&packed.t().unwrap()));
    assert!(e.contains("matmul") && e.contains("read only as"), "{e}");
    // As the activations of an int8 product.
    let e = err(packed.matmul_int8(&w.t().unwrap()));
    assert!(e.contains("read only as"), "{e}");
    // The product in the other layout than it was packed for.
    let wide = randn(&[8, 5], 3).0.pack_int8_weight(true).unwrap();
    let e = err(x.matmul_int8(&wide));
    assert!(e.contains("matmul_int8") && e.contains("packed"), "{e}");
    // Its bytes on the host.
    let e = match packed.to_vec::<f32>() {
        Ok(_) => panic!("a packed weight has no host form"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("no host form"), "{e}");
    // Not a matrix.
    let e = err(randn(&[2, 3, 4], 4).0.pack_int8_weight(true));
    assert!(e.contains("pack_int8_weight") && e.contains("2-D"), "{e}");
}
