//! Products of one input with several block-quantised weights (a decode
//! step's q, k and v; gate and up) quantize the input to 8-bit blocks once
//! (the CPU backend keeps the last product's blocks with a handle on their
//! buffer): each product, compiled and eager, equals bit for bit the same
//! product alone on an equal copy of the input in its own buffer; fresh
//! inputs of one shape, each dropped before the next (their memory handed
//! out again), and a view of the same buffer at another shape, get their own
//! blocks.

mod common;

use common::*;
use emily::{compile, BlockFormat, DType, Tensor};

const FORMATS: [BlockFormat; 3] = [BlockFormat::Q4_1, BlockFormat::Q8_0, BlockFormat::Q4_0];

/// `x · wᵢᵀ` for the weights `xs[1..]` quantised to the formats above (a
/// bias add on the second, as q/k/v have).
fn products(xs: &[Tensor]) -> emily::Result<Vec<Tensor>> {
    let x = &xs[0];
    let p = |w: usize| x.matmul(&xs[1 + w].cast(DType::Quantized(FORMATS[w]))?.t()?);
    Ok(vec![p(0)?, p(1)?.add_scalar(0.5)?, p(2)?])
}

/// Product `w` alone, on an own copy of `x`.
fn alone(x: &Tensor, weights: &[Tensor], w: usize) -> Vec<u32> {
    let wq = weights[w].cast(DType::Quantized(FORMATS[w])).unwrap();
    let p = own_copy(x).matmul(&wq.t().unwrap()).unwrap();
    f32_bits(&if w == 1 {
        p.add_scalar(0.5).unwrap()
    } else {
        p
    })
}

#[test]
fn one_input_is_quantized_once_for_several_weights() {
    for (s, &(m, n, k)) in [(1, 47, 64), (3, 33, 96), (8, 70, 32), (1, 5, 256)]
        .iter()
        .enumerate()
    {
        let s = 10 * s as u64;
        let mut args = vec![randn(&[m, k], s + 1).0];
        args.extend((0..3).map(|w| randn(&[n, k], s + 2 + w).0));
        let want: Vec<Vec<u32>> = (0..3).map(|w| alone(&args[0], &args[1..], w)).collect();
        let c = compile(products);
        for _ in 0..2 {
            let compiled = c.call(&args).unwrap();
            let eager = products(&args).unwrap();
            for w in 0..3 {
                assert_eq!(
                    f32_bits(&compiled[w]),
                    want[w],
                    "compiled {w} m={m} n={n} k={k}"
                );
                assert_eq!(f32_bits(&eager[w]), want[w], "eager {w} m={m} n={n} k={k}");
            }
        }
        // Fresh inputs of one shape, each dropped before the next is made.
        let wq = args[1]
            .cast(DType::Quantized(FORMATS[0]))
            .unwrap()
            .eval()
            .unwrap();
        for seed in 0..4 {
            let x = randn(&[m, k], 100 + seed).0;
            let got = f32_bits(&x.matmul(&wq.t().unwrap()).unwrap());
            let want = f32_bits(&own_copy(&x).matmul(&wq.t().unwrap()).unwrap());
            assert_eq!(got, want, "fresh input {seed} m={m} n={n} k={k}");
        }
        // The same buffer read as one row of m·k values: another quantization.
        if m > 1 {
            let x = &args[0];
            let wide = randn(&[n, m * k], s + 9).0;
            let wide = wide.cast(DType::Quantized(FORMATS[0])).unwrap();
            let _ = f32_bits(&x.matmul(&wq.t().unwrap()).unwrap());
            let flat = x.reshape_to(&[1, m * k]).unwrap();
            let got = f32_bits(&flat.matmul(&wide.t().unwrap()).unwrap());
            let want = f32_bits(&own_copy(&flat).matmul(&wide.t().unwrap()).unwrap());
            assert_eq!(got, want, "reshaped view m={m} n={n} k={k}");
        }
    }
}
