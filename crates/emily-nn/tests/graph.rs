//! The graph API: builder checks, parameter binding errors that name the
//! node, input checks, rewriting rules, inspection and shape inference.

mod common;

use common::blocks::{llama_layer, whisper_encoder_layer, Dims};
use common::{position, randn};
use emily::{BlockFormat, DType, Kernels, Tensor};
use emily_nn::{
    fast_kernels, AttentionOptions, DenseOptions, EmbeddingOptions, Error, Forward, KvCacheOptions,
    LayerNormOptions, Mode, ModelBuilder, Op, ParamStore, RmsNormOptions, RopeConfig,
    RotaryOptions, RotaryPositions, State,
};

const D: Dims = Dims {
    hidden: 32,
    heads: 4,
    kv_heads: 2,
    ffn: 64,
};

#[test]
fn builder_rejects_bad_graphs_naming_the_node() {
    let mut b = ModelBuilder::new();
    let x = b.input("x", &[None, Some(8)], DType::F32).unwrap();
    assert!(
        matches!(b.dense("x", &x, DenseOptions::new(8, 8)), Err(Error::DuplicateName(n)) if n == "x")
    );
    assert!(matches!(
        b.dense("bad name", &x, DenseOptions::new(8, 8)),
        Err(Error::InvalidName(_))
    ));
    let mut other = ModelBuilder::new();
    let ghost = other.input("ghost", &[None], DType::F32).unwrap();
    let e = b.dense("fc", &ghost, DenseOptions::new(8, 8)).unwrap_err();
    assert!(
        matches!(&e, Error::UnknownInput { node, input } if node == "fc" && input == "ghost"),
        "{e}"
    );
    // Rotary positions from an offset input, but no input given.
    let opts = RotaryOptions::new(RopeConfig::new(8, 16)).positions(RotaryPositions::Offset);
    let e = b.rotary_embedding("rope", &x, None, opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "node `rope` (rotary_embedding): expects 2 inputs (x, offset), got 1"
    );
    let e = b
        .self_attention(
            "attn",
            &x,
            None,
            None,
            AttentionOptions::new(8, 4).kv_heads(3),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("node `attn` (attention): invalid options: 3 kv heads do not divide 4"),
        "{e}"
    );
    let e = b
        .layer_norm("ln", &x, LayerNormOptions::new(8).eps(-1.0))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidOptions { node, .. } if node == "ln"));
    assert!(matches!(ModelBuilder::new().build(), Err(Error::NoOutputs)));
}

#[test]
fn binding_checks_every_parameter_and_names_the_node() {
    let model = whisper_encoder_layer(D).unwrap();
    let good = ParamStore::random(&model, 1, DType::F32).unwrap();
    assert_eq!(good.len(), model.param_specs().len());
    assert_eq!(good.num_elements(), model.num_params());
    assert_eq!(
        good.for_node("encoder.layers.0.self_attn").count(),
        7,
        "q/v/out weight+bias, k weight"
    );
    assert!(
        !good.contains("encoder.layers.0.self_attn.k_proj.bias"),
        "Whisper's k_proj has no bias"
    );

    let mut missing = good.clone();
    missing.remove("encoder.layers.0.fc1.bias");
    let e = model.build(&missing, Mode::Inference).unwrap_err();
    assert_eq!(
        e.to_string(),
        "node `encoder.layers.0.fc1`: parameter `encoder.layers.0.fc1.bias` is missing from the parameter store"
    );
    let mut wrong = good.clone();
    wrong.insert(
        "encoder.layers.0.self_attn.q_proj.weight",
        Tensor::zeros(&[32, 31], DType::F32).unwrap(),
    );
    let e = model.build(&wrong, Mode::Inference).unwrap_err();
    assert!(
        matches!(&e, Error::ParamShape { node, expected, actual, .. }
        if node == "encoder.layers.0.self_attn" && expected == &[32, 32] && actual == &[32, 31]),
        "{e}"
    );
    let mut ints = good.clone();
    ints.insert(
        "encoder.layers.0.final_layer_norm.weight",
        Tensor::zeros(&[32], DType::I32).unwrap(),
    );
    assert!(matches!(
        model.build(&ints, Mode::Inference),
        Err(Error::ParamDType { .. })
    ));
}

#[test]
fn forward_checks_inputs_and_state() {
    let model = llama_layer(D, Some(8), 32).unwrap();
    let params = ParamStore::random(&model, 2, DType::F32).unwrap();
    let f = model.build(&params, Mode::Inference).unwrap();
    let x = randn(&[1, 2, 32], 3);
    let pos = position(0);
    assert!(
        matches!(f.call(&[("hidden_states", &x)]), Err(Error::MissingInput(n)) if n == "position")
    );
    let e = f
        .call(&[("hidden_states", &x), ("position", &pos), ("extra", &pos)])
        .unwrap_err();
    assert!(matches!(e, Error::UnexpectedInput(n) if n == "extra"));
    let wide = randn(&[1, 2, 31], 3);
    let e = f
        .call(&[("hidden_states", &wide), ("position", &pos)])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "input `hidden_states`: got [1, 2, 31] f32, declared [?, ?, 32] f32"
    );
    let pos32 = Tensor::from_slice(&[0i32], &[]).unwrap();
    assert!(matches!(
        f.call(&[("hidden_states", &x), ("position", &pos32)]),
        Err(Error::InputMismatch { .. })
    ));

    // A state made for batch 1 does not fit batch 2.
    let mut state = State::new();
    f.call_with_state(&[("hidden_states", &x), ("position", &pos)], &mut state)
        .unwrap();
    assert_eq!(state.len(), 2);
    assert_eq!(
        state
            .get("model.layers.0.self_attn.k_cache.cache")
            .unwrap()
            .shape(),
        &[1, 2, 8, 8]
    );
    let x2 = randn(&[2, 1, 32], 4);
    let e = f
        .call_with_state(
            &[("hidden_states", &x2), ("position", &position(2))],
            &mut state,
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::State { name, .. } if name == "model.layers.0.self_attn.k_cache.cache"),
        "{e}"
    );

    // More tokens than the cache holds: a shape error naming the cache node.
    let long = randn(&[1, 9, 32], 5);
    let e = f
        .call(&[("hidden_states", &long), ("position", &pos)])
        .unwrap_err();
    assert!(
        e.to_string().contains("model.layers.0.self_attn.k_cache"),
        "{e}"
    );
}

#[test]
fn shape_errors_while_tracing_name_the_node() {
    let mut b = ModelBuilder::new();
    let x = b.input("x", &[None, None], DType::F32).unwrap();
    let y = b.dense("fc", &x, DenseOptions::new(8, 4)).unwrap();
    b.output(&y).unwrap();
    let model = b.build().unwrap();
    let f = model
        .build(
            &ParamStore::random(&model, 0, DType::F32).unwrap(),
            Mode::Inference,
        )
        .unwrap();
    let e = f.call(&[("x", &randn(&[2, 7], 1))]).unwrap_err();
    assert!(
        matches!(&e, Error::Node { node, op: "dense", .. } if node == "fc"),
        "{e}"
    );
    assert!(e.to_string().contains("[2, 7]"), "{e}");
    assert_eq!(
        f.call(&[("x", &randn(&[2, 8], 1))]).unwrap()["fc"].shape(),
        &[2, 4]
    );
}

#[test]
fn map_nodes_rewrites_options_but_never_names_or_edges() {
    let model = whisper_encoder_layer(D).unwrap();
    let eps = model
        .map_nodes(|mut n| {
            if let Op::LayerNorm(o) = n.op_mut() {
                o.eps = 1e-3;
            }
            n
        })
        .unwrap();
    assert_eq!(eps.edges(), model.edges());
    assert!(eps
        .nodes()
        .iter()
        .all(|n| !matches!(n.op(), Op::LayerNorm(o) if o.eps != 1e-3)));
    // Returning another node (a rename) is refused.
    let other = model.nodes()[1].clone();
    let e = model
        .map_nodes(|n| {
            if n.name() == "hidden_states" {
                other.clone()
            } else {
                n
            }
        })
        .unwrap_err();
    assert!(
        matches!(&e, Error::Rewrite { node, .. } if node == "hidden_states"),
        "{e}"
    );
    // Ops without a fused form ignore an implementation.
    let dense = model
        .node("encoder.layers.0.fc1")
        .unwrap()
        .clone()
        .with_implementation(Kernels::Fused);
    assert_eq!(dense.implementation(), None);
    assert_eq!(dense.label(), "dense");
}

#[test]
fn summary_lists_nodes_shapes_params_and_frequencies() {
    let model = whisper_encoder_layer(D).unwrap();
    let fast = fast_kernels::apply(&model).unwrap().model;
    let text = fast.to_string();
    assert!(
        text.starts_with(&format!(
            "Model: 9 nodes, 1 inputs, 1 outputs, {} parameters in 15 tensors",
            {
                let n = model.num_params();
                format!("{},{:03}", n / 1000, n % 1000)
            }
        )),
        "{text}"
    );
    assert!(text.contains("encoder.layers.0.self_attn"), "{text}");
    assert!(text.contains("fast.attention"), "{text}");
    assert!(text.contains("[?, ?, 32]"), "{text}");
    assert!(text.contains("[?, ?, 64]"), "fc1's output: {text}");
    assert!(
        text.contains("4,192"),
        "self_attn parameters 4·32·32 + 3·32: {text}"
    );
    assert!(
        text.contains(
            "op frequencies: add 2, dense 2, fast.layer_norm 2, fast.attention 1, gelu 1, input 1"
        ),
        "{text}"
    );

    let shapes = model
        .infer_shapes(&[("hidden_states", &[2, 5, 32])])
        .unwrap();
    assert_eq!(shapes.len(), model.len());
    assert!(shapes
        .iter()
        .any(|(n, s)| n == "encoder.layers.0.fc1" && s == &[2, 5, 64]));
    assert!(matches!(
        model.infer_shapes(&[]),
        Err(Error::MissingInput(_))
    ));
}

#[test]
fn kv_cache_node_writes_at_the_offset() {
    let mut b = ModelBuilder::new();
    let x = b
        .input("x", &[Some(1), Some(1), None, Some(2)], DType::F32)
        .unwrap();
    let off = b.input("offset", &[], DType::I64).unwrap();
    let c = b
        .kv_cache("cache", &x, &off, KvCacheOptions::new(4))
        .unwrap();
    b.output(&c).unwrap();
    let f = b
        .build()
        .unwrap()
        .build(&ParamStore::new(), Mode::Inference)
        .unwrap();
    let mut state = State::new();
    let a = Tensor::from_vec(vec![1f32, 2., 3., 4.], &[1, 1, 2, 2]).unwrap();
    f.call_with_state(&[("x", &a), ("offset", &position(0))], &mut state)
        .unwrap();
    let b5 = Tensor::from_vec(vec![5f32, 6.], &[1, 1, 1, 2]).unwrap();
    let y = f
        .call_with_state(&[("x", &b5), ("offset", &position(2))], &mut state)
        .unwrap();
    assert_eq!(
        y["cache"].to_vec::<f32>().unwrap(),
        [1., 2., 3., 4., 5., 6., 0., 0.]
    );
    assert_eq!(
        state.get("cache.cache").unwrap().to_vec::<f32>().unwrap(),
        [1., 2., 3., 4., 5., 6., 0., 0.]
    );
}

#[test]
fn forwards_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Forward>();
    assert_send_sync::<emily_nn::Model>();
    assert_send_sync::<ParamStore>();
}

#[test]
fn block_quantised_weights_bind_to_dense_and_embedding_in_inference_only() {
    let mut b = ModelBuilder::new();
    let ids = b.input("ids", &[None, None], DType::I64).unwrap();
    let h = b
        .embedding("embed", &ids, EmbeddingOptions::new(11, 64))
        .unwrap();
    let h = b
        .rms_norm("norm", &h, RmsNormOptions::new(64).eps(1e-5))
        .unwrap();
    let y = b
        .dense("proj", &h, DenseOptions::new(64, 7).without_bias())
        .unwrap();
    b.output(&y).unwrap();
    let model = b.build().unwrap();
    let exact = ParamStore::random(&model, 3, DType::F32).unwrap();
    let q8 = |t: &Tensor| t.quantize(BlockFormat::Q8_0).unwrap().eval().unwrap();
    let mut quant = exact.clone();
    for key in ["embed.weight", "proj.weight"] {
        quant.insert(key, q8(exact.get(key).unwrap()));
    }
    // The f32 model over the same (dequantised) weights.
    let mut dequant = exact.clone();
    for key in ["embed.weight", "proj.weight"] {
        let back = quant.get(key).unwrap().cast(DType::F32).unwrap();
        dequant.insert(key, back.eval().unwrap());
    }
    let ids = Tensor::from_slice(&[3i64, 0, 10, 7], &[2, 2]).unwrap();
    let run = |p: &ParamStore| {
        let f = model.build(p, Mode::Inference).unwrap();
        f.call(&[("ids", &ids)]).unwrap()["proj"].clone()
    };
    let (yq, yd) = (run(&quant), run(&dequant));
    assert_eq!(yq.dtype(), DType::F32);
    assert_eq!(yq.shape(), &[2, 2, 7]);
    // 4 rows: 8-bit activations, error well under 2% of the output scale.
    assert_quantised_close(&yq, &yd, 0.02);
    // Training takes float parameters only.
    assert!(matches!(
        model.build(&quant, Mode::Train),
        Err(Error::ParamDType { param, .. }) if param == "embed.weight"
    ));
    // A norm's weight is never a matmul or gather operand.
    let mut norm = exact.clone();
    norm.insert("norm.weight", q8(exact.get("norm.weight").unwrap()));
    assert!(matches!(
        model.build(&norm, Mode::Inference),
        Err(Error::ParamDType { param, .. }) if param == "norm.weight"
    ));
}

#[test]
fn block_quantised_projections_bind_to_attention_in_inference() {
    let mut b = ModelBuilder::new();
    let x = b.input("x", &[None, None, Some(64)], DType::F32).unwrap();
    let y = b
        .self_attention("attn", &x, None, None, AttentionOptions::new(64, 4))
        .unwrap();
    b.output(&y).unwrap();
    let model = b.build().unwrap();
    let exact = ParamStore::random(&model, 5, DType::F32).unwrap();
    let (mut quant, mut dequant) = (exact.clone(), exact.clone());
    let keys: Vec<String> = exact
        .iter()
        .filter(|(k, t)| k.ends_with(".weight") && t.rank() == 2)
        .map(|(k, _)| k.to_string())
        .collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    for key in &keys {
        let q = exact.get(key).unwrap().quantize(BlockFormat::Q8_0).unwrap();
        let q = q.eval().unwrap();
        dequant.insert(key, q.cast(DType::F32).unwrap().eval().unwrap());
        quant.insert(key, q);
    }
    let x = randn(&[2, 3, 64], 9);
    let run = |p: &ParamStore| {
        let f = model.build(p, Mode::Inference).unwrap();
        f.call(&[("x", &x)]).unwrap()["attn"].clone()
    };
    let (yq, yd) = (run(&quant), run(&dequant));
    // 6 rows: 8-bit activations into every projection.
    assert_quantised_close(&yq, &yd, 0.03);
    // Training takes float parameters only.
    assert!(matches!(
        model.build(&quant, Mode::Train),
        Err(Error::ParamDType { param, .. }) if param.starts_with("attn.")
    ));
}

/// `quantised` differs from `exact` (8-bit products are not exact) by at
/// most `fraction` of `exact`'s largest magnitude.
fn assert_quantised_close(quantised: &Tensor, exact: &Tensor, fraction: f32) {
    let scale = exact
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    let diff = common::max_abs_diff(quantised, exact);
    assert!(
        diff > 0.0 && diff <= fraction * scale,
        "{diff} vs scale {scale}"
    );
}
