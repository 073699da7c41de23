//! `emily::fast` through the graph: fused nodes against their decompositions
//! (compiled with `Kernels::Composed`) on random inputs, and against the
//! float64 goldens.

mod common;
use common::*;
use emily::fast::{self, RopeOffset, RopeOptions, SdpaMask, SdpaOptions};
use emily::{compile, compile_with, CompileOptions, DType, Kernels, Result, Tensor};

/// Builds the op under test from its inputs.
type Build = fn(&[Tensor]) -> Result<Tensor>;

/// A named case: inputs and the op under test.
type Case = (&'static str, Vec<Tensor>, Build);

/// Builds `f` once with fused kernels and once composed (compiled both ways),
/// checks that the fused plan really runs one fused kernel and the composed
/// plan none, and returns the max abs difference and the fused result.
fn fused_vs_composed(args: &[Tensor], f: Build) -> (f32, Vec<f64>) {
    let g = move |xs: &[Tensor]| Ok(vec![f(xs)?]);
    let fused_plan = compile(g);
    let composed_plan = compile_with(
        g,
        CompileOptions {
            kernels: Kernels::Composed,
            ..Default::default()
        },
    );
    assert_eq!(fused_plan.plan(args).unwrap().num_fast_ops(), 1);
    assert_eq!(composed_plan.plan(args).unwrap().num_fast_ops(), 0);
    let fused = fused_plan.call(args).unwrap().remove(0);
    let composed = composed_plan.call(args).unwrap().remove(0);
    let d = fused
        .cast(DType::F32)
        .unwrap()
        .sub(&composed.cast(DType::F32).unwrap())
        .unwrap();
    let max = d
        .abs()
        .unwrap()
        .max(&[], false)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    (max, fused.to_f64_vec().unwrap())
}

#[test]
fn norms_fused_match_composed_at_odd_sizes() {
    for (i, &d) in [1usize, 7, 77, 1000, 4099].iter().enumerate() {
        let (x, _) = randn(&[3, d], i as u64);
        let (w, _) = randn(&[d], 10 + i as u64);
        let (b, _) = randn(&[d], 20 + i as u64);
        let (e, _) = fused_vs_composed(&[x.clone(), w.clone()], |a| {
            fast::rms_norm(&a[0], Some(&a[1]), 1e-6)
        });
        assert!(e <= 1e-5, "rms_norm d={d}: {e}");
        let (e, _) = fused_vs_composed(&[x, w, b], |a| {
            fast::layer_norm(&a[0], Some(&a[1]), Some(&a[2]), 1e-5)
        });
        assert!(e <= 1e-5, "layer_norm d={d}: {e}");
    }
    let (x, _) = randn(&[4, 128, 1024], 3);
    let (e, _) = fused_vs_composed(&[x], |a| fast::rms_norm(&a[0], None, 1e-5));
    assert!(e <= 1e-5, "seed shape {e}");
}

#[test]
fn half_precision_norms_and_attention() {
    for dtype in [DType::F16, DType::BF16] {
        let (x, _) = randn(&[5, 77], 1);
        let x = x.cast(dtype).unwrap();
        let (e, _) = fused_vs_composed(&[x], |a| fast::layer_norm(&a[0], None, None, 1e-5));
        assert!(e <= 0.02, "{dtype} layer_norm {e}");
        // Weights and biases in the same half type, at sizes that break SIMD tails.
        for d in [1usize, 7, 77, 1000] {
            let half = |shape: &[usize], seed| randn(shape, seed).0.cast(dtype).unwrap();
            let (x, w, b) = (half(&[3, d], 10), half(&[d], 11), half(&[d], 12));
            let (e, _) = fused_vs_composed(&[x.clone(), w.clone()], |a| {
                fast::rms_norm(&a[0], Some(&a[1]), 1e-6)
            });
            assert!(e <= 0.02, "{dtype} rms_norm d={d}: {e}");
            let (e, _) = fused_vs_composed(&[x, w, b], |a| {
                fast::layer_norm(&a[0], Some(&a[1]), Some(&a[2]), 1e-5)
            });
            assert!(e <= 0.02, "{dtype} layer_norm d={d}: {e}");
        }
        let (r, _) = randn(&[2, 3, 7, 16], 5);
        let (e, _) = fused_vs_composed(&[r.cast(dtype).unwrap()], |a| {
            fast::rope(&a[0], RopeOptions::new(16))
        });
        assert!(e <= 0.02, "{dtype} rope {e}");
        let (q, _) = randn(&[1, 2, 9, 16], 2);
        let args = [
            q.cast(dtype).unwrap(),
            q.mul_scalar(0.5).unwrap().cast(dtype).unwrap(),
            q.cast(dtype).unwrap(),
        ];
        let (e, _) = fused_vs_composed(&args, |a| {
            fast::scaled_dot_product_attention(&a[0], &a[1], &a[2], SdpaOptions::default())
        });
        assert!(e <= 0.02, "{dtype} sdpa {e}");
    }
}

#[test]
fn rope_variants_fused_match_composed() {
    let (x, _) = randn(&[2, 3, 37, 80], 4);
    let pos = Tensor::from_slice(
        &(0..37).map(|i| (i * 7 + 1000) as i64).collect::<Vec<_>>(),
        &[37],
    )
    .unwrap();
    let off = Tensor::from_slice(&[4095i64], &[]).unwrap();
    let freqs = Tensor::from_slice(
        &(0..16)
            .map(|i| 1.0 / (500.0f32).powf(i as f32 / 16.0))
            .collect::<Vec<_>>(),
        &[16],
    )
    .unwrap();
    let cases: [Case; 5] = [
        ("split, all dims", vec![x.clone()], |a| {
            fast::rope(&a[0], RopeOptions::new(80))
        }),
        ("traditional, 32 dims, offset 5", vec![x.clone()], |a| {
            fast::rope(
                &a[0],
                RopeOptions {
                    traditional: true,
                    offset: RopeOffset::Static(5),
                    ..RopeOptions::new(32)
                },
            )
        }),
        ("per-token positions, scale", vec![x.clone(), pos], |a| {
            fast::rope(
                &a[0],
                RopeOptions {
                    scale: 0.25,
                    offset: RopeOffset::Positions(a[1].clone()),
                    ..RopeOptions::new(64)
                },
            )
        }),
        ("offset tensor", vec![x.clone(), off], |a| {
            fast::rope(
                &a[0],
                RopeOptions {
                    offset: RopeOffset::Scalar(a[1].clone()),
                    ..RopeOptions::new(80)
                },
            )
        }),
        ("custom inverse freqs", vec![x, freqs], |a| {
            fast::rope_with_freqs(&a[0], &a[1], RopeOptions::new(32))
        }),
    ];
    for (name, args, f) in cases {
        let (e, _) = fused_vs_composed(&args, f);
        assert!(e <= 2e-5, "rope {name}: {e}");
    }
}

#[test]
fn attention_masks_gqa_sinks_fused_match_composed() {
    let (q, _) = randn(&[2, 8, 5, 64], 5);
    let (k, _) = randn(&[2, 2, 11, 64], 6);
    let (v, _) = randn(&[2, 2, 11, 64], 7);
    // Additive mask with -inf entries and one fully masked row (query 2).
    let mut m = vec![0f32; 5 * 11];
    for (i, x) in m.iter_mut().enumerate() {
        *x = ((i * 37 % 11) as f32 - 5.0) * 0.3;
    }
    m[3] = f32::NEG_INFINITY;
    m[2 * 11..3 * 11].fill(f32::NEG_INFINITY);
    let add = Tensor::from_slice(&m, &[1, 1, 5, 11]).unwrap();
    let keep = add.gt_scalar(f64::NEG_INFINITY).unwrap();
    let sinks = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.0, 1.0, -0.5, 0.25, 3.0], &[8]).unwrap();
    let base = vec![q, k, v];
    let with = |extra: &Tensor| {
        let mut a = base.clone();
        a.push(extra.clone());
        a
    };
    let cases: [Case; 5] = [
        ("plain gqa", base.clone(), |a| {
            fast::scaled_dot_product_attention(&a[0], &a[1], &a[2], SdpaOptions::default())
        }),
        ("causal, q<k", base.clone(), |a| {
            fast::scaled_dot_product_attention(
                &a[0],
                &a[1],
                &a[2],
                SdpaOptions {
                    mask: SdpaMask::Causal,
                    ..Default::default()
                },
            )
        }),
        ("additive -inf", with(&add), |a| {
            fast::scaled_dot_product_attention(
                &a[0],
                &a[1],
                &a[2],
                SdpaOptions {
                    mask: SdpaMask::Additive(a[3].clone()),
                    ..Default::default()
                },
            )
        }),
        ("boolean", with(&keep), |a| {
            fast::scaled_dot_product_attention(
                &a[0],
                &a[1],
                &a[2],
                SdpaOptions {
                    mask: SdpaMask::Boolean(a[3].clone()),
                    ..Default::default()
                },
            )
        }),
        ("sinks + causal", with(&sinks), |a| {
            let o = SdpaOptions {
                mask: SdpaMask::Causal,
                sinks: Some(a[3].clone()),
                scale: Some(0.1),
            };
            fast::scaled_dot_product_attention(&a[0], &a[1], &a[2], o)
        }),
    ];
    for (name, args, f) in cases {
        let (e, out) = fused_vs_composed(&args, f);
        assert!(e <= 1e-5, "sdpa {name}: {e}");
        if name == "additive -inf" || name == "boolean" {
            // Query 2 sees no key: zeros, in both implementations.
            for b in 0..2 {
                for h in 0..8 {
                    let row = ((b * 8 + h) * 5 + 2) * 64;
                    assert!(
                        out[row..row + 64].iter().all(|&x| x == 0.0),
                        "{name}: fully masked row is zero"
                    );
                }
            }
        }
    }
    let (q, _) = randn(&[1, 6, 1500, 64], 8);
    let (e, _) = fused_vs_composed(&[q.clone(), q.mul_scalar(0.7).unwrap(), q], |a| {
        fast::scaled_dot_product_attention(&a[0], &a[1], &a[2], SdpaOptions::default())
    });
    assert!(e <= 1e-5, "whisper encoder shape: {e}");
}

#[test]
fn eager_composed_forms_build_no_fast_node_and_match() {
    let (x, _) = randn(&[3, 77], 30);
    let (w, _) = randn(&[77], 31);
    let (q, _) = randn(&[1, 4, 9, 16], 32);
    let cases: [(Vec<Tensor>, Build, Build); 4] = [
        (
            vec![x.clone(), w.clone()],
            |a| fast::rms_norm(&a[0], Some(&a[1]), 1e-6),
            |a| fast::composed::rms_norm(&a[0], Some(&a[1]), 1e-6),
        ),
        (
            vec![x, w.clone(), w],
            |a| fast::layer_norm(&a[0], Some(&a[1]), Some(&a[2]), 1e-5),
            |a| fast::composed::layer_norm(&a[0], Some(&a[1]), Some(&a[2]), 1e-5),
        ),
        (
            vec![q.clone()],
            |a| fast::rope(&a[0], RopeOptions::new(16)),
            |a| fast::composed::rope(&a[0], RopeOptions::new(16)),
        ),
        (
            vec![q.clone(), q.mul_scalar(0.3).unwrap(), q],
            |a| fast::scaled_dot_product_attention(&a[0], &a[1], &a[2], SdpaOptions::default()),
            |a| {
                fast::composed::scaled_dot_product_attention(
                    &a[0],
                    &a[1],
                    &a[2],
                    SdpaOptions::default(),
                )
            },
        ),
    ];
    for (args, fused, composed) in cases {
        let fused_fast = compile(move |xs: &[Tensor]| Ok(vec![fused(xs)?]));
        let composed_fast = compile(move |xs: &[Tensor]| Ok(vec![composed(xs)?]));
        assert_eq!(fused_fast.plan(&args).unwrap().num_fast_ops(), 1);
        assert_eq!(composed_fast.plan(&args).unwrap().num_fast_ops(), 0);
        let a = fused(&args).unwrap().to_f64_vec().unwrap();
        let b = composed(&args).unwrap().to_f64_vec().unwrap();
        assert_close(&a, &b, 1e-5, 1e-5, "eager fused vs composed");
    }
}

#[test]
fn causal_band_masks_fused_match_composed() {
    // A static cache of 40 positions, queries at offsets given as a tensor
    // argument (so one compiled plan serves every offset), with and without
    // a sliding window; grouped-query heads.
    let (k, _) = randn(&[2, 3, 40, 32], 31);
    let (v, _) = randn(&[2, 3, 40, 32], 32);
    for (tq, offset) in [(7usize, 0i64), (1, 0), (1, 17), (5, 35), (1, 39)] {
        let (q, _) = randn(&[2, 6, tq, 32], 33 + offset as u64);
        let off = Tensor::from_slice(&[offset], &[1]).unwrap();
        let args = vec![q, k.clone(), v.clone(), off];
        let cases: [Case; 3] = [
            ("no window", args.clone(), |a| {
                let mask = SdpaMask::CausalBand {
                    offset: a[3].clone(),
                    window: None,
                };
                let o = SdpaOptions {
                    mask,
                    ..Default::default()
                };
                fast::scaled_dot_product_attention(&a[0], &a[1], &a[2], o)
            }),
            ("window 4", args.clone(), |a| {
                let mask = SdpaMask::CausalBand {
                    offset: a[3].clone(),
                    window: Some(4),
                };
                let o = SdpaOptions {
                    mask,
                    ..Default::default()
                };
                fast::scaled_dot_product_attention(&a[0], &a[1], &a[2], o)
            }),
            ("window 1", args.clone(), |a| {
                let mask = SdpaMask::CausalBand {
                    offset: a[3].clone(),
                    window: Some(1),
                };
                let o = SdpaOptions {
                    mask,
                    ..Default::default()
                };
                fast::scaled_dot_product_attention(&a[0], &a[1], &a[2], o)
            }),
        ];
        for (name, args, f) in cases {
            let (e, out) = fused_vs_composed(&args, f);
            assert!(e <= 1e-5, "band {name} tq={tq} offset={offset}: {e}");
            if name == "window 1" {
                // Each query sees exactly its own key: the output is that value row.
                let vals = v.to_f64_vec().unwrap();
                let (b, h, t) = (1, 4, tq - 1);
                let pos = offset as usize + t;
                let row = &out[((b * 6 + h) * tq + t) * 32..][..32];
                let want = &vals[((b * 3 + h / 2) * 40 + pos) * 32..][..32];
                for (x, y) in row.iter().zip(want) {
                    assert!((x - y).abs() < 1e-5);
                }
            }
        }
    }
    let q = Tensor::zeros(&[1, 2, 1, 8], DType::F32).unwrap();
    let bad = SdpaMask::CausalBand {
        offset: Tensor::zeros(&[2], DType::I64).unwrap(),
        window: None,
    };
    let o = SdpaOptions {
        mask: bad,
        ..Default::default()
    };
    assert!(fast::scaled_dot_product_attention(&q, &q, &q, o).is_err());
}

#[test]
fn goldens_pass_through_the_fast_ops() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/goldens/kernels.safetensors");
    let bytes = std::fs::read(&path).expect("testdata/goldens/kernels.safetensors");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let get = |name: &str| -> Tensor {
        let v = st.tensor(name).unwrap();
        let dt = if v.dtype() == safetensors::Dtype::F64 {
            DType::F64
        } else {
            DType::F32
        };
        Tensor::from_bytes(v.data(), v.shape(), dt).unwrap()
    };
    let check = |name: &str, got: Tensor| {
        let want = get(name).to_vec::<f64>().unwrap();
        assert_close(&got.to_f64_vec().unwrap(), &want, 1e-5, 1e-5, name);
    };
    check(
        "rms_norm.out",
        fast::rms_norm(&get("rms_norm.x"), Some(&get("rms_norm.weight")), 1e-6).unwrap(),
    );
    check(
        "layer_norm.out",
        fast::layer_norm(
            &get("layer_norm.x"),
            Some(&get("layer_norm.weight")),
            Some(&get("layer_norm.bias")),
            1e-5,
        )
        .unwrap(),
    );
    let x = get("rope.x");
    check("rope.out", fast::rope(&x, RopeOptions::new(8)).unwrap());
    check(
        "rope.out_offset3",
        fast::rope(
            &x,
            RopeOptions {
                offset: RopeOffset::Static(3),
                ..RopeOptions::new(8)
            },
        )
        .unwrap(),
    );
    check(
        "rope.out_traditional",
        fast::rope(
            &x,
            RopeOptions {
                traditional: true,
                ..RopeOptions::new(8)
            },
        )
        .unwrap(),
    );
    let sd = |p: &str, mask: SdpaMask| {
        fast::scaled_dot_product_attention(
            &get(&format!("{p}.q")),
            &get(&format!("{p}.k")),
            &get(&format!("{p}.v")),
            SdpaOptions {
                mask,
                ..Default::default()
            },
        )
        .unwrap()
    };
    check("sdpa.out", sd("sdpa", SdpaMask::None));
    check("sdpa_causal.out", sd("sdpa_causal", SdpaMask::Causal));
    check(
        "sdpa_mask.out",
        sd("sdpa_mask", SdpaMask::Additive(get("sdpa_mask.mask"))),
    );
    check("sdpa_gqa.out", sd("sdpa_gqa", SdpaMask::None));
}

#[test]
fn validation_errors_name_the_op() {
    let x = Tensor::zeros(&[2, 1024], DType::F32).unwrap();
    let w = Tensor::zeros(&[1000], DType::F32).unwrap();
    let e = fast::rms_norm(&x, Some(&w), 1e-5).unwrap_err().to_string();
    assert!(
        e.starts_with("[rms_norm]") && e.contains("1000") && e.contains("1024"),
        "{e}"
    );
    let q = Tensor::zeros(&[1, 3, 4, 8], DType::F32).unwrap();
    let k = Tensor::zeros(&[1, 2, 4, 8], DType::F32).unwrap();
    let e = fast::scaled_dot_product_attention(&q, &k, &k, SdpaOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("[scaled_dot_product_attention]"), "{e}");
    assert!(fast::rope(&x, RopeOptions::new(7))
        .unwrap_err()
        .to_string()
        .starts_with("[rope]"));
}

/// f32 queries over f16 keys and values (a half-precision KV cache): the
/// fused kernel reads the halves in place and matches the decomposition,
/// at decode and prefill shapes with grouped heads and a causal band; the
/// output stays f32. Other mixes are rejected with the dtypes named.
#[test]
fn f32_queries_over_f16_keys_and_values() {
    for (tq, tk, seed) in [(1usize, 77usize, 20u64), (9, 40, 30)] {
        let (q, _) = randn(&[1, 6, tq, 64], seed);
        let (k, _) = randn(&[1, 2, tk, 64], seed + 1);
        let (v, _) = randn(&[1, 2, tk, 64], seed + 2);
        let (k, v) = (k.cast(DType::F16).unwrap(), v.cast(DType::F16).unwrap());
        let offset = Tensor::from_slice(&[(tk - tq) as i64 - 3], &[]).unwrap();
        let (e, out) = fused_vs_composed(&[q, k, v, offset], |a| {
            let o = SdpaOptions {
                mask: SdpaMask::CausalBand {
                    offset: a[3].clone(),
                    window: None,
                },
                ..Default::default()
            };
            let out = fast::scaled_dot_product_attention(&a[0], &a[1], &a[2], o)?;
            assert_eq!(out.dtype(), DType::F32);
            Ok(out)
        });
        assert!(e <= 1e-5, "f16 kv, {tq} x {tk}: {e}");
        assert!(out.iter().all(|x| x.is_finite()));
    }
    let (q, _) = randn(&[1, 2, 3, 8], 40);
    let half = q.cast(DType::F16).unwrap();
    for (q, k, v) in [(&half, &q, &q), (&q, &half, &q), (&q, &q, &half)] {
        let e = fast::scaled_dot_product_attention(q, k, v, SdpaOptions::default()).unwrap_err();
        assert!(e.to_string().contains("f16"), "{e}");
    }
}
