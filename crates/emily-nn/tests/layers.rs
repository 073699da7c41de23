//! Each layer's composed form against a float64 reference computed here,
//! and its fused form (where it has one) against the composed form.

mod common;

use common::{max_abs_diff, position, randn};
use emily::{DType, Tensor};
use emily_nn::{
    fast_kernels, AttentionCoreOptions, AttentionMask, AttentionOptions, Conv1dOptions,
    EmbeddingOptions, LayerNormOptions, Mode, Model, ModelBuilder, NodeRef, ParamStore,
    PositionalEmbeddingOptions, RmsNormOptions, RopeConfig, RotaryOptions, RotaryPositions,
    SinusoidalLayout,
};

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_f64_vec().unwrap()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let err = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err <= tol, "{what}: max abs error {err} > {tol}");
}

/// A model with the given inputs and one layer added by `add`; returns the
/// model with its output named "y".
fn one_layer(
    inputs: &[(&str, &[Option<usize>], DType)],
    add: impl FnOnce(&mut ModelBuilder, &[NodeRef]) -> emily_nn::Result<NodeRef>,
) -> Model {
    let mut b = ModelBuilder::new();
    let ins: Vec<NodeRef> = inputs
        .iter()
        .map(|(n, s, d)| b.input(n, s, *d).unwrap())
        .collect();
    let y = add(&mut b, &ins).unwrap();
    b.output(&y).unwrap();
    b.build().unwrap()
}

/// Runs the composed and the fused (fast_kernels) model; checks that the
/// fused plan runs one fused kernel per fused node and the composed plan none,
/// that they agree, and returns the composed output.
fn run_both(model: &Model, params: &ParamStore, inputs: &[(&str, &Tensor)]) -> Tensor {
    let name = model.outputs()[0].to_string();
    let base = model.build(params, Mode::Inference).unwrap();
    let fast = fast_kernels::apply(model).unwrap();
    let fused = fast.model.build(params, Mode::Inference).unwrap();
    assert_eq!(base.num_fast_ops(inputs).unwrap(), 0, "{name}");
    assert_eq!(
        fused.num_fast_ops(inputs).unwrap(),
        fast.report.fused.len(),
        "{name}: fused nodes in the plan ({})",
        fast.report
    );
    let y0 = base.call(inputs).unwrap()[name.as_str()].clone();
    let y1 = fused.call(inputs).unwrap()[name.as_str()].clone();
    let diff = max_abs_diff(&y0, &y1);
    assert!(
        diff <= 1e-5,
        "{name}: fused vs composed {diff} ({})",
        fast.report
    );
    y0
}

fn ln_ref(x: &[f64], rows: usize, d: usize, w: &[f64], b: &[f64], eps: f64, rms: bool) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for r in 0..rows {
        let row = &x[r * d..(r + 1) * d];
        let mean = if rms {
            0.0
        } else {
            row.iter().sum::<f64>() / d as f64
        };
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
        for i in 0..d {
            out[r * d + i] =
                (row[i] - mean) / (var + eps).sqrt() * w[i] + if rms { 0.0 } else { b[i] };
        }
    }
    out
}

#[test]
fn layer_norm_and_rms_norm_match_float64() {
    let x = randn(&[3, 5, 16], 1);
    let shape: &[Option<usize>] = &[None, None, Some(16)];
    let ln = one_layer(&[("x", shape, DType::F32)], |b, i| {
        b.layer_norm("ln", &i[0], LayerNormOptions::new(16))
    });
    let p = ParamStore::random(&ln, 1, DType::F32).unwrap();
    let y = run_both(&ln, &p, &[("x", &x)]);
    let want = ln_ref(
        &f64s(&x),
        15,
        16,
        &f64s(p.get("ln.weight").unwrap()),
        &f64s(p.get("ln.bias").unwrap()),
        1e-5,
        false,
    );
    assert_close(&f64s(&y), &want, 1e-5, "layer_norm");

    let rms = one_layer(&[("x", shape, DType::F32)], |b, i| {
        b.rms_norm("rms", &i[0], RmsNormOptions::new(16))
    });
    let p = ParamStore::random(&rms, 2, DType::F32).unwrap();
    let y = run_both(&rms, &p, &[("x", &x)]);
    let want = ln_ref(
        &f64s(&x),
        15,
        16,
        &f64s(p.get("rms.weight").unwrap()),
        &[],
        1e-6,
        true,
    );
    assert_close(&f64s(&y), &want, 1e-5, "rms_norm");
}

#[test]
fn norms_over_a_non_last_axis_stay_composed_and_are_reported() {
    // (B, C, L) normalised over C (axis 1), as some conv stacks do.
    let model = one_layer(&[("x", &[None, Some(8), Some(6)], DType::F32)], |b, i| {
        let h = b.layer_norm("channel_ln", &i[0], LayerNormOptions::new(8).axis(1))?;
        let h = b.rms_norm("channel_rms", &h, RmsNormOptions::new(8).axis(-2))?;
        b.rms_norm("last_rms", &h, RmsNormOptions::new(6).axis(2))
    });
    let r = fast_kernels::apply(&model).unwrap();
    let kept: Vec<&str> = r.report.kept.iter().map(|k| k.node.as_str()).collect();
    assert_eq!(kept, ["channel_ln", "channel_rms"]);
    assert!(
        r.report.kept[0].reason.contains("not the last axis"),
        "{}",
        r.report.kept[0]
    );
    assert_eq!(
        r.report.fused,
        ["last_rms"],
        "axis 2 of a rank-3 input is the last"
    );

    let p = ParamStore::random(&model, 3, DType::F32).unwrap();
    let x = randn(&[2, 8, 6], 4);
    let y = run_both(&model, &p, &[("x", &x)]);
    // The channel layer norm alone, against float64 over axis 1.
    let ln = one_layer(&[("x", &[None, Some(8), None], DType::F32)], |b, i| {
        b.layer_norm("channel_ln", &i[0], LayerNormOptions::new(8).axis(1))
    });
    let y_ln = ln
        .build(&p, Mode::Inference)
        .unwrap()
        .call(&[("x", &x)])
        .unwrap()["channel_ln"]
        .clone();
    let xt = f64s(&x.transpose(1, 2).unwrap()); // (2, 6, 8): rows over channels
    let w = f64s(p.get("channel_ln.weight").unwrap());
    let b = f64s(p.get("channel_ln.bias").unwrap());
    let want = ln_ref(&xt, 12, 8, &w, &b, 1e-5, false);
    assert_close(
        &f64s(&y_ln.transpose(1, 2).unwrap()),
        &want,
        1e-5,
        "layer_norm axis 1",
    );
    assert_eq!(y.shape(), &[2, 8, 6]);
}

fn rope_ref(
    x: &[f64],
    t: usize,
    d: usize,
    dims: usize,
    start: usize,
    traditional: bool,
) -> Vec<f64> {
    let mut out = x.to_vec();
    let half = dims / 2;
    for (row, chunk) in out.chunks_mut(d).enumerate() {
        let p = (start + row % t) as f64;
        let src = &x[row * d..(row + 1) * d];
        for i in 0..half {
            let w = 10000f64.powf(-2.0 * i as f64 / dims as f64);
            let (c, s) = ((p * w).cos(), (p * w).sin());
            let (a, b) = if traditional {
                (2 * i, 2 * i + 1)
            } else {
                (i, i + half)
            };
            chunk[a] = src[a] * c - src[b] * s;
            chunk[b] = src[b] * c + src[a] * s;
        }
    }
    out
}

#[test]
fn rotary_embedding_matches_float64_for_every_layout_and_position_source() {
    let (t, d) = (5, 8);
    let x = randn(&[2, 3, t, d], 5);
    let shape: &[Option<usize>] = &[None, None, None, Some(d)];
    for (dims, traditional) in [(8, false), (8, true), (4, false)] {
        let mut cfg = RopeConfig::new(dims, 32);
        if traditional {
            cfg = cfg.traditional();
        }
        let want = rope_ref(&f64s(&x), t, d, dims, 3, traditional);
        // Fixed start.
        let opts = RotaryOptions::new(cfg.clone()).positions(RotaryPositions::Start(3));
        let m = one_layer(&[("x", shape, DType::F32)], |b, i| {
            b.rotary_embedding("rope", &i[0], None, opts)
        });
        let y = run_both(&m, &ParamStore::new(), &[("x", &x)]);
        assert_close(
            &f64s(&y),
            &want,
            1e-5,
            &format!("rope dims {dims} traditional {traditional}"),
        );
        // Offset input.
        let opts = RotaryOptions::new(cfg.clone()).positions(RotaryPositions::Offset);
        let m = one_layer(
            &[("x", shape, DType::F32), ("offset", &[], DType::I64)],
            |b, i| b.rotary_embedding("rope", &i[0], Some(&i[1]), opts),
        );
        let off = position(3);
        let y = run_both(&m, &ParamStore::new(), &[("x", &x), ("offset", &off)]);
        assert_close(&f64s(&y), &want, 1e-5, "rope offset");
        // Position ids.
        let opts = RotaryOptions::new(cfg).positions(RotaryPositions::Ids);
        let m = one_layer(
            &[("x", shape, DType::F32), ("ids", &[None], DType::I32)],
            |b, i| b.rotary_embedding("rope", &i[0], Some(&i[1]), opts),
        );
        let ids = Tensor::from_slice(&[3i32, 4, 5, 6, 7], &[5]).unwrap();
        let y = run_both(&m, &ParamStore::new(), &[("x", &x), ("ids", &ids)]);
        assert_close(&f64s(&y), &want, 1e-5, "rope ids");
    }
}

/// Naive float64 attention over (B, Hq, Tq, D) / (B, Hkv, Tk, D) with a
/// keep/bias function of (b, h, i, j).
fn attention_ref(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    bias: impl Fn(usize, usize, usize, usize) -> f64,
) -> Vec<f64> {
    let (qs, ks) = (q.shape().to_vec(), k.shape().to_vec());
    let (b_, hq, tq, d) = (qs[0], qs[1], qs[2], qs[3]);
    let (hkv, tk) = (ks[1], ks[2]);
    let (q, k, v) = (f64s(q), f64s(k), f64s(v));
    let mut out = vec![0.0; b_ * hq * tq * d];
    for b in 0..b_ {
        for h in 0..hq {
            let kh = h / (hq / hkv);
            for i in 0..tq {
                let qrow = &q[((b * hq + h) * tq + i) * d..][..d];
                let s: Vec<f64> = (0..tk)
                    .map(|j| {
                        let krow = &k[((b * hkv + kh) * tk + j) * d..][..d];
                        qrow.iter().zip(krow).map(|(x, y)| x * y).sum::<f64>() * scale
                            + bias(b, h, i, j)
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for j in 0..tk {
                    let vrow = &v[((b * hkv + kh) * tk + j) * d..][..d];
                    for c in 0..d {
                        out[((b * hq + h) * tq + i) * d + c] += e[j] / z * vrow[c];
                    }
                }
            }
        }
    }
    out
}

#[test]
fn attention_core_matches_float64_with_gqa_and_every_mask() {
    let (b, hq, hkv, tq, tk, d) = (2, 4, 2, 3, 5, 8);
    let q = randn(&[b, hq, tq, d], 6);
    let k = randn(&[b, hkv, tk, d], 7);
    let v = randn(&[b, hkv, tk, d], 8);
    let qkv: [(&str, &[Option<usize>], DType); 3] = [
        ("q", &[None, Some(hq), None, Some(d)], DType::F32),
        ("k", &[None, Some(hkv), None, Some(d)], DType::F32),
        ("v", &[None, Some(hkv), None, Some(d)], DType::F32),
    ];
    let scale = 1.0 / (d as f64).sqrt();
    let base = [("q", &q), ("k", &k), ("v", &v)];
    let inf = f64::NEG_INFINITY;

    // Causal, aligned to the end of the keys.
    let m = one_layer(&qkv, |bld, i| {
        bld.attention_core(
            "attn",
            &i[0],
            &i[1],
            &i[2],
            None,
            None,
            AttentionCoreOptions::new().causal(),
        )
    });
    let y = run_both(&m, &ParamStore::new(), &base);
    let want = attention_ref(
        &q,
        &k,
        &v,
        scale,
        |_, _, i, j| if j <= i + tk - tq { 0.0 } else { inf },
    );
    assert_close(&f64s(&y), &want, 1e-5, "causal");

    // Key padding (i64, as tokenizers give it) with a custom scale.
    let mut ins = qkv.to_vec();
    ins.push(("mask", &[None, None], DType::I64));
    let m = one_layer(&ins, |bld, i| {
        let o = AttentionCoreOptions::new()
            .mask(AttentionMask::KeyPadding)
            .scale(0.2);
        bld.attention_core("attn", &i[0], &i[1], &i[2], Some(&i[3]), None, o)
    });
    let pad = Tensor::from_vec(vec![1i64, 1, 1, 1, 1, 1, 1, 0, 0, 0], &[2, 5]).unwrap();
    let mut with_mask = base.to_vec();
    with_mask.push(("mask", &pad));
    let y = run_both(&m, &ParamStore::new(), &with_mask);
    let want = attention_ref(
        &q,
        &k,
        &v,
        0.2,
        |b, _, _, j| if b == 1 && j >= 2 { inf } else { 0.0 },
    );
    assert_close(&f64s(&y), &want, 1e-5, "key padding");

    // Additive bias (B, 1, Tq, Tk) combined with causal masking.
    let mut ins = qkv.to_vec();
    ins.push(("bias", &[None, Some(1), None, None], DType::F32));
    let m = one_layer(&ins, |bld, i| {
        let o = AttentionCoreOptions::new()
            .mask(AttentionMask::Additive)
            .causal();
        bld.attention_core("attn", &i[0], &i[1], &i[2], Some(&i[3]), None, o)
    });
    let bias = randn(&[b, 1, tq, tk], 9);
    let bv = f64s(&bias);
    let mut with_bias = base.to_vec();
    with_bias.push(("bias", &bias));
    let y = run_both(&m, &ParamStore::new(), &with_bias);
    let want = attention_ref(&q, &k, &v, scale, |b, _, i, j| {
        if j <= i + tk - tq {
            bv[(b * tq + i) * tk + j]
        } else {
            inf
        }
    });
    assert_close(&f64s(&y), &want, 1e-5, "additive + causal");

    // Boolean keep-mask (Tq, Tk).
    let keep_shape = [Some(tq), Some(tk)];
    let mut ins = qkv.to_vec();
    ins.push(("keep", &keep_shape, DType::Bool));
    let m = one_layer(&ins, |bld, i| {
        let o = AttentionCoreOptions::new().mask(AttentionMask::Boolean);
        bld.attention_core("attn", &i[0], &i[1], &i[2], Some(&i[3]), None, o)
    });
    let keep_v: Vec<bool> = (0..tq * tk).map(|n| n % 3 != 1).collect();
    let keep = Tensor::from_vec(
        keep_v.iter().map(|&k| emily::Bool(k as u8)).collect(),
        &[tq, tk],
    )
    .unwrap();
    let mut with_keep = base.to_vec();
    with_keep.push(("keep", &keep));
    let y = run_both(&m, &ParamStore::new(), &with_keep);
    let want = attention_ref(&q, &k, &v, scale, |_, _, i, j| {
        if keep_v[i * tk + j] {
            0.0
        } else {
            inf
        }
    });
    assert_close(&f64s(&y), &want, 1e-5, "boolean");
}

#[test]
fn cross_attention_fused_matches_composed() {
    let m = one_layer(
        &[
            ("x", &[None, None, Some(24)], DType::F32),
            ("enc", &[None, None, Some(16)], DType::F32),
        ],
        |b, i| {
            b.cross_attention(
                "encoder_attn",
                &i[0],
                &i[1],
                None,
                AttentionOptions::new(24, 3).context_size(16),
            )
        },
    );
    let specs: Vec<(String, Vec<usize>)> = m
        .param_specs()
        .into_iter()
        .map(|(k, s)| (k, s.shape))
        .collect();
    assert!(specs.contains(&("encoder_attn.k_proj.weight".into(), vec![24, 16])));
    let p = ParamStore::random(&m, 10, DType::F32).unwrap();
    let (x, enc) = (randn(&[2, 3, 24], 11), randn(&[2, 7, 16], 12));
    let y = run_both(&m, &p, &[("x", &x), ("enc", &enc)]);
    assert_eq!(y.shape(), &[2, 3, 24]);
}

#[test]
fn conv1d_embedding_and_position_embeddings_match_references() {
    // conv1d, Whisper's second conv: kernel 3, stride 2, padding 1.
    let m = one_layer(&[("x", &[None, Some(3), None], DType::F32)], |b, i| {
        b.conv1d(
            "conv2",
            &i[0],
            Conv1dOptions::new(3, 4, 3).stride(2).padding(1),
        )
    });
    let p = ParamStore::random(&m, 13, DType::F32).unwrap();
    let x = randn(&[1, 3, 9], 14);
    let y = run_both(&m, &p, &[("x", &x)]);
    assert_eq!(y.shape(), &[1, 4, 5]);
    let (xv, w, bias) = (
        f64s(&x),
        f64s(p.get("conv2.weight").unwrap()),
        f64s(p.get("conv2.bias").unwrap()),
    );
    let mut want = vec![0.0; 20];
    for o in 0..4 {
        for t in 0..5 {
            let mut acc = bias[o];
            for c in 0..3 {
                for tap in 0..3 {
                    let pos = (2 * t + tap) as isize - 1;
                    if (0..9).contains(&pos) {
                        acc += w[(o * 3 + c) * 3 + tap] * xv[c * 9 + pos as usize];
                    }
                }
            }
            want[o * 5 + t] = acc;
        }
    }
    assert_close(&f64s(&y), &want, 1e-5, "conv1d");

    // Embedding + learned positions from an offset: rows of the tables.
    let m = one_layer(
        &[
            ("ids", &[None, None], DType::I64),
            ("offset", &[], DType::I64),
        ],
        |b, i| {
            let e = b.embedding("embed_tokens", &i[0], EmbeddingOptions::new(10, 4))?;
            b.positional_embedding(
                "embed_positions",
                &e,
                Some(&i[1]),
                PositionalEmbeddingOptions::learned(8, 4),
            )
        },
    );
    let p = ParamStore::random(&m, 15, DType::F32).unwrap();
    let ids = Tensor::from_vec(vec![3i64, 9, 0], &[1, 3]).unwrap();
    let y = run_both(&m, &p, &[("ids", &ids), ("offset", &position(2))]);
    let (tok, pos) = (
        f64s(p.get("embed_tokens.weight").unwrap()),
        f64s(p.get("embed_positions.weight").unwrap()),
    );
    let want: Vec<f64> = [3usize, 9, 0]
        .iter()
        .enumerate()
        .flat_map(|(t, &id)| (0..4).map(move |c| (id, t, c)))
        .map(|(id, t, c)| tok[id * 4 + c] + pos[(2 + t) * 4 + c])
        .collect();
    assert_close(&f64s(&y), &want, 1e-6, "embedding + learned positions");

    // Sinusoids, both layouts, on zeros: the table itself.
    for (layout, p1) in [
        (
            SinusoidalLayout::Concatenated,
            [1f64.sin(), (1.0 * (-10000f64.ln() / 3.0)).exp().sin()],
        ),
        (SinusoidalLayout::Interleaved, [1f64.sin(), 1f64.cos()]),
    ] {
        let m = one_layer(&[("x", &[None, None, Some(8)], DType::F32)], |b, i| {
            b.positional_embedding(
                "pos",
                &i[0],
                None,
                PositionalEmbeddingOptions::sinusoidal(16, 8, layout),
            )
        });
        let y = f64s(&run_both(
            &m,
            &ParamStore::new(),
            &[("x", &Tensor::zeros(&[1, 3, 8], DType::F32).unwrap())],
        ));
        let row0: Vec<f64> = match layout {
            SinusoidalLayout::Concatenated => vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
            SinusoidalLayout::Interleaved => vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
        };
        assert_close(&y[..8], &row0, 1e-7, "position 0");
        assert_close(&[y[8], y[9]], &p1, 1e-6, &format!("{layout:?} position 1"));
    }
}
