//! Training mode: dropout is live, and attention that drops probabilities
//! stays on its composed implementation — and says so.

mod common;

use common::blocks::{bert_layer, Dims};
use common::{freq, max_abs_diff, randn};
use emily::Kernels;
use emily::{DType, Tensor};
use emily_nn::{fast_kernels, Mode, ParamStore};

const D: Dims = Dims {
    hidden: 32,
    heads: 4,
    kv_heads: 4,
    ffn: 64,
};
const ATTN: &str = "encoder.layer.0.attention";
const OUT: &str = "encoder.layer.0.output.LayerNorm";

fn inputs() -> (Tensor, Tensor) {
    (
        randn(&[2, 6, 32], 9),
        Tensor::ones(&[2, 6], DType::I64).unwrap(),
    )
}

#[test]
fn rewriting_for_training_keeps_attention_with_dropout_composed_and_reports_it() {
    let model = bert_layer(D, 0.1).unwrap();
    let r = fast_kernels::apply_for(&model, Mode::Train).unwrap();
    assert_eq!(r.report.kept.len(), 1, "{}", r.report);
    let kept = &r.report.kept[0];
    assert_eq!((kept.node.as_str(), kept.op), (ATTN, "attention"));
    assert!(
        kept.reason.contains("dropout") && kept.reason.contains("training"),
        "{}",
        kept.reason
    );
    assert!(r.report.to_string().contains(ATTN));
    assert_eq!(
        r.model.node(ATTN).unwrap().implementation(),
        Some(Kernels::Composed)
    );
    let f = freq(&r.model);
    assert_eq!(
        (
            f.get("attention"),
            f.get("fast.attention"),
            f.get("fast.layer_norm")
        ),
        (Some(&1), None, Some(&2))
    );

    // The same model rewritten for inference fuses the attention too.
    let inf = fast_kernels::apply(&model).unwrap();
    assert!(inf.report.kept.is_empty());
    assert_eq!(
        inf.model.node(ATTN).unwrap().implementation(),
        Some(Kernels::Fused)
    );

    // Without dropout, training can fuse it.
    let no_dropout = fast_kernels::apply_for(&bert_layer(D, 0.0).unwrap(), Mode::Train).unwrap();
    assert!(no_dropout.report.kept.is_empty());
}

#[test]
fn a_fused_attention_built_for_training_runs_composed_and_says_so() {
    let model = bert_layer(D, 0.1).unwrap();
    let params = ParamStore::random(&model, 21, DType::F32).unwrap();
    let fused_model = fast_kernels::apply(&model).unwrap().model;
    let train = fused_model.build(&params, Mode::Train).unwrap();
    let kept: Vec<&str> = train
        .kept_composed()
        .iter()
        .map(|k| k.node.as_str())
        .collect();
    assert_eq!(kept, [ATTN]);
    assert!(fused_model
        .build(&params, Mode::Inference)
        .unwrap()
        .kept_composed()
        .is_empty());

    // It runs the composed dropout path: with the same noise seed it matches
    // the composed model exactly up to the (fused) layer norms' round-off.
    let base = model.build(&params, Mode::Train).unwrap();
    assert!(base.kept_composed().is_empty());
    let (x, mask) = inputs();
    let ins = [("hidden_states", &x), ("attention_mask", &mask)];
    base.set_seed(5);
    train.set_seed(5);
    let (a, b) = (base.call(&ins).unwrap(), train.call(&ins).unwrap());
    assert!(max_abs_diff(&a[OUT], &b[OUT]) <= 1e-5);
}

#[test]
fn dropout_is_live_in_training_seeded_and_off_in_inference() {
    let model = bert_layer(D, 0.1).unwrap();
    let params = ParamStore::random(&model, 22, DType::F32).unwrap();
    let (x, mask) = inputs();
    let ins = [("hidden_states", &x), ("attention_mask", &mask)];
    let train = model.build(&params, Mode::Train).unwrap();
    train.set_seed(1);
    let a = train.call(&ins).unwrap()[OUT].clone();
    let b = train.call(&ins).unwrap()[OUT].clone();
    train.set_seed(1);
    let a2 = train.call(&ins).unwrap()[OUT].clone();
    assert_eq!(
        a.to_vec::<f32>().unwrap(),
        a2.to_vec::<f32>().unwrap(),
        "same seed, same masks"
    );
    assert!(max_abs_diff(&a, &b) > 1e-3, "fresh noise every call");

    let infer = model
        .build(&params, Mode::Inference)
        .unwrap()
        .call(&ins)
        .unwrap()[OUT]
        .clone();
    let no_dropout = bert_layer(D, 0.0)
        .unwrap()
        .build(&params, Mode::Inference)
        .unwrap()
        .call(&ins)
        .unwrap();
    assert_eq!(
        infer.to_vec::<f32>().unwrap(),
        no_dropout[OUT].to_vec::<f32>().unwrap()
    );
    assert!(max_abs_diff(&a, &infer) > 1e-3);
}
