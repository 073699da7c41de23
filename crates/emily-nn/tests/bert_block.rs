//! A BERT-style encoder layer (LayerNorm, GELU MLP, bidirectional attention
//! over a padding mask): the fast-kernels rewrite keeps names, edges and
//! parameters, changes exactly the expected op labels, and gives the same
//! outputs.

mod common;

use common::blocks::{bert_layer, Dims};
use common::{freq, max_abs_diff, randn, snapshot};
use emily::Kernels;
use emily::{DType, Tensor};
use emily_nn::{fast_kernels, Mode, ParamStore};

const D: Dims = Dims {
    hidden: 32,
    heads: 4,
    kv_heads: 4,
    ffn: 64,
};
const OUT: &str = "encoder.layer.0.output.LayerNorm";

/// Batch 0: 7 tokens; batch 1: 4 tokens then 3 padding positions.
fn padding_mask() -> Tensor {
    let m: Vec<i64> = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0].to_vec();
    Tensor::from_vec(m, &[2, 7]).unwrap()
}

#[test]
fn rewrite_keeps_topology_and_params_and_switches_exactly_the_norms_and_attention() {
    let model = bert_layer(D, 0.1).unwrap();
    let params = ParamStore::random(&model, 42, DType::F32).unwrap();
    let before = snapshot(&params);
    let fast = fast_kernels::apply(&model).unwrap();

    let names = |m: &emily_nn::Model| {
        m.nodes()
            .iter()
            .map(|n| n.name().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&model), names(&fast.model));
    assert_eq!(model.edges(), fast.model.edges());
    assert_eq!(model.param_specs(), fast.model.param_specs());
    assert_eq!(
        fast.report.fused,
        [
            "encoder.layer.0.attention",
            "encoder.layer.0.attention.output.LayerNorm",
            OUT
        ]
    );
    assert!(fast.report.kept.is_empty(), "{}", fast.report);

    // Op labels: exactly the two layer norms and the attention change.
    let (mut f0, f1) = (freq(&model), freq(&fast.model));
    assert_eq!(f0.remove("layer_norm"), Some(2));
    assert_eq!(f0.remove("attention"), Some(1));
    f0.insert("fast.layer_norm".into(), 2);
    f0.insert("fast.attention".into(), 1);
    assert_eq!(f0, f1);
    for ((n0, op0), (n1, op1)) in model.properties().iter().zip(fast.model.properties()) {
        assert_eq!(*n0, n1);
        let switched = fast.report.fused.contains(n0);
        assert_eq!(op0 != &op1, switched, "{n0}: {op0} -> {op1}");
        if switched {
            assert_eq!(op1, format!("fast.{op0}"));
        }
    }
    // The original model is untouched.
    assert!(model
        .nodes()
        .iter()
        .all(|n| n.implementation() != Some(Kernels::Fused)));

    let base = model.build(&params, Mode::Inference).unwrap();
    let fused = fast.model.build(&params, Mode::Inference).unwrap();
    let x = randn(&[2, 7, 32], 1);
    let mask = padding_mask();
    let inputs = [("hidden_states", &x), ("attention_mask", &mask)];
    let y0 = base.call(&inputs).unwrap();
    let y1 = fused.call(&inputs).unwrap();
    assert_eq!(y0[OUT].shape(), &[2, 7, 32]);
    let diff = max_abs_diff(&y0[OUT], &y1[OUT]);
    assert!(diff <= 1e-5, "fused vs composed max abs diff {diff}");
    // Replaying the cached plan gives the same result.
    let y2 = fused.call(&inputs).unwrap();
    assert_eq!(
        y1[OUT].to_vec::<f32>().unwrap(),
        y2[OUT].to_vec::<f32>().unwrap()
    );

    assert_eq!(
        snapshot(&params),
        before,
        "building and running must not touch the store"
    );
}

#[test]
fn padding_mask_hides_padded_keys_in_both_implementations() {
    let model = bert_layer(D, 0.0).unwrap();
    let params = ParamStore::random(&model, 3, DType::F32).unwrap();
    let fast = fast_kernels::apply(&model).unwrap().model;
    let x = randn(&[2, 7, 32], 5);
    // Changing the padded tokens' hidden states must not change real tokens' outputs.
    let mut noisy = x.to_vec::<f32>().unwrap();
    for t in 4..7 {
        for c in 0..32 {
            noisy[(7 + t) * 32 + c] += 3.0;
        }
    }
    let x2 = Tensor::from_vec(noisy, &[2, 7, 32]).unwrap();
    let mask = padding_mask();
    for m in [&model, &fast] {
        let f = m.build(&params, Mode::Inference).unwrap();
        let a = f
            .call(&[("hidden_states", &x), ("attention_mask", &mask)])
            .unwrap();
        let b = f
            .call(&[("hidden_states", &x2), ("attention_mask", &mask)])
            .unwrap();
        let real = |t: &Tensor| {
            t.narrow(0, 1, 1)
                .unwrap()
                .narrow(1, 0, 4)
                .unwrap()
                .eval()
                .unwrap()
        };
        assert!(max_abs_diff(&real(&a[OUT]), &real(&b[OUT])) <= 1e-5);
        // ... while without the mask they do change.
        let ones = Tensor::ones(&[2, 7], DType::I64).unwrap();
        let c = f
            .call(&[("hidden_states", &x2), ("attention_mask", &ones)])
            .unwrap();
        assert!(max_abs_diff(&real(&a[OUT]), &real(&c[OUT])) > 1e-3);
    }
}
