//! A Llama-style decoder layer (RMSNorm, RoPE, causal grouped-query
//! attention, SiLU-gated MLP): fused and composed agree on the full sequence
//! and over KV-cached decode steps, and cached decoding reproduces the full
//! sequence.

mod common;

use common::blocks::{llama_layer, llama_layer_mha, Dims};
use common::{freq, max_abs_diff, position, randn, snapshot};
use emily::{DType, Tensor};
use emily_nn::{fast_kernels, Forward, Mode, Model, ParamStore, State};

const D: Dims = Dims {
    hidden: 48,
    heads: 6,
    kv_heads: 2,
    ffn: 96,
};
const OUT: &str = "model.layers.0.mlp_residual";
const T: usize = 8;
const PROMPT: usize = 5;
const CACHE: usize = 16;

fn run(f: &Forward, x: &Tensor) -> Tensor {
    f.call(&[("hidden_states", x)]).unwrap()[OUT].clone()
}

/// Prompt of `PROMPT` tokens then one token per step up to `T`; returns each
/// call's output.
fn decode(f: &Forward, x: &Tensor) -> Vec<Tensor> {
    let mut state = State::new();
    let mut outs = Vec::new();
    let mut at = 0;
    for len in std::iter::once(PROMPT).chain(std::iter::repeat_n(1, T - PROMPT)) {
        let chunk = x.narrow(1, at, len).unwrap();
        let pos = position(at as i64);
        let y = f
            .call_with_state(&[("hidden_states", &chunk), ("position", &pos)], &mut state)
            .unwrap();
        outs.push(y[OUT].clone());
        at += len;
    }
    let names: Vec<&str> = state.iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(state
        .iter()
        .all(|(_, t)| t.shape() == [2, D.kv_heads, CACHE, D.head_dim()]));
    outs
}

fn rows(x: &Tensor, start: usize, len: usize) -> Tensor {
    x.narrow(1, start, len).unwrap().eval().unwrap()
}

#[test]
fn full_sequence_fused_matches_composed_and_labels_change_as_expected() {
    let model = llama_layer(D, None, 64).unwrap();
    let params = ParamStore::random(&model, 11, DType::F32).unwrap();
    let before = snapshot(&params);
    let fast = fast_kernels::apply(&model).unwrap();
    assert_eq!(model.edges(), fast.model.edges());
    assert!(fast.report.kept.is_empty());

    let (mut f0, f1) = (freq(&model), freq(&fast.model));
    for (op, n) in [
        ("rms_norm", 2),
        ("rotary_embedding", 2),
        ("attention_core", 1),
    ] {
        assert_eq!(f0.remove(op), Some(n), "{op}");
        f0.insert(format!("fast.{op}"), n);
    }
    assert_eq!(f0, f1);

    let x = randn(&[2, T, D.hidden], 2);
    let y0 = run(&model.build(&params, Mode::Inference).unwrap(), &x);
    let y1 = run(&fast.model.build(&params, Mode::Inference).unwrap(), &x);
    let diff = max_abs_diff(&y0, &y1);
    assert!(diff <= 1e-5, "max abs diff {diff}");
    assert_eq!(snapshot(&params), before);
}

#[test]
fn kv_cache_decoding_matches_the_full_sequence_composed_and_fused() {
    let full = llama_layer(D, None, 64).unwrap();
    let cached = llama_layer(D, Some(CACHE), 64).unwrap();
    assert_eq!(
        full.param_specs(),
        cached.param_specs(),
        "cache nodes add no parameters"
    );
    let params = ParamStore::random(&full, 12, DType::F32).unwrap();
    let before = snapshot(&params);
    let x = randn(&[2, T, D.hidden], 3);
    let reference = run(&full.build(&params, Mode::Inference).unwrap(), &x);

    let fast = fast_kernels::apply(&cached).unwrap();
    let (mut f0, f1) = (freq(&cached), freq(&fast.model));
    assert_eq!(f0.get("kv_cache"), Some(&2));
    for (op, n) in [
        ("rms_norm", 2),
        ("rotary_embedding", 2),
        ("attention_core", 1),
    ] {
        assert_eq!(f0.remove(op), Some(n), "{op}");
        f0.insert(format!("fast.{op}"), n);
    }
    assert_eq!(f0, f1);

    let steps: Vec<Vec<Tensor>> = [&cached, &fast.model]
        .iter()
        .map(|m| decode(&m.build(&params, Mode::Inference).unwrap(), &x))
        .collect();
    let mut at = 0;
    for (i, (base, fused)) in steps[0].iter().zip(&steps[1]).enumerate() {
        let len = base.shape()[1];
        let want = rows(&reference, at, len);
        let (e0, e1, e2) = (
            max_abs_diff(base, &want),
            max_abs_diff(fused, &want),
            max_abs_diff(base, fused),
        );
        assert!(
            e0 <= 1e-5 && e1 <= 1e-5 && e2 <= 1e-5,
            "step {i}: composed {e0}, fused {e1}, between {e2}"
        );
        at += len;
    }
    assert_eq!(at, T);
    assert_eq!(snapshot(&params), before);
}

#[test]
fn one_attention_node_with_rope_cache_and_gqa_matches_the_fine_grained_layer() {
    let fine = llama_layer(D, Some(CACHE), 64).unwrap();
    let mha = llama_layer_mha(D, Some(CACHE), 64).unwrap();
    let keys = |m: &Model| {
        m.param_specs()
            .into_iter()
            .map(|(k, s)| (k, s.shape))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(
        keys(&fine),
        keys(&mha),
        "the same Hugging Face parameter names"
    );
    let params = ParamStore::random(&fine, 13, DType::F32).unwrap();
    let x = randn(&[2, T, D.hidden], 4);
    let fast_mha = fast_kernels::apply(&mha).unwrap();
    assert_eq!(
        fast_mha.report.fused.len(),
        3,
        "two norms and the attention node: {:?}",
        fast_mha.report.fused
    );
    let want = decode(&fine.build(&params, Mode::Inference).unwrap(), &x);
    for m in [&mha, &fast_mha.model] {
        let got = decode(&m.build(&params, Mode::Inference).unwrap(), &x);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let diff = max_abs_diff(g, w);
            assert!(diff <= 1e-5, "step {i}: {diff}");
        }
    }
}

#[test]
fn decoding_compiles_one_plan_for_the_prompt_and_one_for_every_step() {
    let cached = fast_kernels::apply(&llama_layer(D, Some(CACHE), 64).unwrap())
        .unwrap()
        .model;
    let params = ParamStore::random(&cached, 14, DType::F32).unwrap();
    let f = cached.build(&params, Mode::Inference).unwrap();
    let x = randn(&[2, T, D.hidden], 5);
    decode(&f, &x);
    // The cache and the offset are arguments, so every decode position replays one plan.
    assert_eq!(f.num_plans(), 2);
    let step = x.narrow(1, 0, 1).unwrap();
    let pos = position(0);
    assert!(
        f.num_kernels(&[("hidden_states", &step), ("position", &pos)])
            .unwrap()
            > 0
    );
    assert_eq!(f.num_plans(), 2);
}
