//! The quantized self-attention layer (int8 projections, with a bf16 or an
//! f32 attention core) and the bf16-core layer (f32 projections, bf16
//! attention core) against the same steps composed by hand in the order
//! their docs state: project, split heads, round q/k/v to bf16 (bf16 core),
//! attend, widen, merge, project.
//! The layer rounds before the head split and widens after the merge;
//! rounding commutes with those copies, so the bits must agree.

mod common;

use common::randn;
use emily::fast::{scaled_dot_product_attention, SdpaMask, SdpaOptions};
use emily::{DType, Tensor};
use emily_nn::{fast_kernels, AttentionOptions, Mode, ModelBuilder, ParamStore};

/// `x @ wᵀ + b` with int8 (`int8`) or f32 products, over the last axis of
/// `(B, T, in)`.
fn project(x: &Tensor, p: &ParamStore, name: &str, int8: bool) -> Tensor {
    let (bt, t, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let w = p.get(&format!("{name}.weight")).unwrap();
    let n = w.shape()[0];
    let x2 = x.reshape_to(&[bt * t, d]).unwrap();
    let y = if int8 {
        x2.matmul_int8(&w.t().unwrap())
    } else {
        x2.matmul(&w.t().unwrap())
    };
    let y = y.unwrap().reshape_to(&[bt, t, n]).unwrap();
    match p.get(&format!("{name}.bias")) {
        Some(b) => y.add(b).unwrap(),
        None => y,
    }
}

fn split_heads(x: &Tensor, heads: usize) -> Tensor {
    let s = x.shape();
    x.reshape_to(&[s[0], s[1], heads, s[2] / heads])
        .unwrap()
        .permute(&[0, 2, 1, 3])
        .unwrap()
}

#[test]
fn quantized_self_attention_matches_the_composed_steps_bit_for_bit() {
    check(true, true);
}

#[test]
fn quantized_self_attention_with_an_f32_core_matches_the_composed_steps_bit_for_bit() {
    check(true, false);
}

#[test]
fn bf16_core_self_attention_matches_the_composed_steps_bit_for_bit() {
    check(false, true);
}

/// The layer with int8 projections (`int8`) or f32 ones, and its core on
/// q, k, v rounded to bf16 (`bf16_core`) or in f32, against the composed
/// steps.
fn check(int8: bool, bf16_core: bool) {
    // Odd sizes: 7 and 33 positions, 5 heads of 7 features.
    for (batch, t, seed) in [(1, 33, 21), (2, 7, 22)] {
        let (d, heads) = (35, 5);
        let mut b = ModelBuilder::new();
        let x_in = b.input("x", &[None, None, Some(d)], DType::F32).unwrap();
        let opts = AttentionOptions {
            quantized: int8,
            bf16_core,
            ..AttentionOptions::new(d, heads)
        };
        let y = b.self_attention("attn", &x_in, None, None, opts).unwrap();
        b.output(&y).unwrap();
        let model = b.build().unwrap();
        let fast = fast_kernels::apply(&model).unwrap();
        let p = ParamStore::random(&model, seed, DType::F32).unwrap();
        let layer = fast.model.build(&p, Mode::Inference).unwrap();
        let x = randn(&[batch, t, d], seed + 100);
        let out = model.outputs()[0].to_string();
        let got = layer.call(&[("x", &x)]).unwrap()[out.as_str()].clone();

        let core = if bf16_core { DType::BF16 } else { DType::F32 };
        let split = |name: &str| {
            split_heads(&project(&x, &p, name, int8), heads)
                .cast(core)
                .unwrap()
        };
        let (q, k, v) = (
            split("attn.q_proj"),
            split("attn.k_proj"),
            split("attn.v_proj"),
        );
        let opts = SdpaOptions {
            scale: Some(1.0 / ((d / heads) as f32).sqrt()),
            mask: SdpaMask::None,
            sinks: None,
        };
        let o = scaled_dot_product_attention(&q, &k, &v, opts)
            .unwrap()
            .cast(DType::F32)
            .unwrap()
            .permute(&[0, 2, 1, 3])
            .unwrap()
            .reshape_to(&[batch, t, d])
            .unwrap();
        let want = project(&o, &p, "attn.out_proj", int8);

        assert_eq!(got.shape(), &[batch, t, d]);
        // f32 values widened to f64 exactly: equal f64s are equal bits.
        let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
        assert!(w.iter().all(|v| v.is_finite()) && w.iter().any(|&v| v != 0.0));
        for (i, (a, e)) in g.iter().zip(&w).enumerate() {
            assert!(a == e, "element {i}: {a} vs {e} (T = {t})");
        }
    }
}
