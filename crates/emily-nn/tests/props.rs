//! Property tests: fused and composed agree (≲ 1e-5 max abs, f32) on random
//! shapes, options and masks — not just on the block tests' inputs.

mod common;

use common::{max_abs_diff, randn};
use emily::{DType, Tensor};
use emily_nn::{
    fast_kernels, AttentionCoreOptions, AttentionMask, LayerNormOptions, Mode, Model, ModelBuilder,
    NodeRef, ParamStore, RmsNormOptions, RopeConfig, RotaryOptions, RotaryPositions,
};
use proptest::prelude::*;

fn model(
    inputs: &[(&str, Vec<Option<usize>>, DType)],
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

fn fused_vs_composed(m: &Model, seed: u64, inputs: &[(&str, &Tensor)]) -> f32 {
    let params = ParamStore::random(m, seed, DType::F32).unwrap();
    let fast = fast_kernels::apply(m).unwrap();
    assert!(!fast.report.fused.is_empty());
    let out = m.outputs()[0].to_string();
    let y0 = m
        .build(&params, Mode::Inference)
        .unwrap()
        .call(inputs)
        .unwrap()[out.as_str()]
    .clone();
    let y1 = fast
        .model
        .build(&params, Mode::Inference)
        .unwrap()
        .call(inputs)
        .unwrap()[out.as_str()]
    .clone();
    max_abs_diff(&y0, &y1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn norms(rows in 1usize..6, d in 1usize..80, scale in 0.01f64..10.0, seed in 0u64..1000, rms in any::<bool>()) {
        let m = model(&[("x", vec![None, Some(d)], DType::F32)], |b, i| {
            if rms { b.rms_norm("n", &i[0], RmsNormOptions::new(d)) } else { b.layer_norm("n", &i[0], LayerNormOptions::new(d)) }
        });
        let x = randn(&[rows, d], seed).mul_scalar(scale).unwrap();
        let diff = fused_vs_composed(&m, seed, &[("x", &x)]);
        prop_assert!(diff <= 1e-5, "diff {}", diff);
    }

    #[test]
    fn rotary(t in 1usize..8, half_d in 1usize..9, dims_frac in 0.0f64..1.0, traditional in any::<bool>(),
              start in 0usize..40, seed in 0u64..1000) {
        let d = 2 * half_d;
        let dims = 2 * (1 + ((half_d - 1) as f64 * dims_frac) as usize);
        let mut cfg = RopeConfig::new(dims, 64);
        if traditional {
            cfg = cfg.traditional();
        }
        let opts = RotaryOptions::new(cfg).positions(RotaryPositions::Start(start));
        let m = model(&[("x", vec![None, None, None, Some(d)], DType::F32)], |b, i| b.rotary_embedding("r", &i[0], None, opts));
        let x = randn(&[1, 2, t, d], seed);
        let diff = fused_vs_composed(&m, seed, &[("x", &x)]);
        prop_assert!(diff <= 1e-5, "diff {}", diff);
    }

    #[test]
    fn attention_core(b in 1usize..3, hkv in 1usize..3, groups in 1usize..4, tq in 1usize..6, extra in 0usize..5,
                      d in prop::sample::select(vec![4usize, 8, 16]), causal in any::<bool>(), padded in any::<bool>(),
                      seed in 0u64..1000) {
        let (hq, tk) = (hkv * groups, tq + extra);
        let mut inputs = vec![
            ("q", vec![None, Some(hq), None, Some(d)], DType::F32),
            ("k", vec![None, Some(hkv), None, Some(d)], DType::F32),
            ("v", vec![None, Some(hkv), None, Some(d)], DType::F32),
        ];
        if padded {
            inputs.push(("mask", vec![None, None], DType::I64));
        }
        let m = model(&inputs, |bl, i| {
            let mut o = AttentionCoreOptions::new();
            if causal {
                o = o.causal();
            }
            if padded {
                o = o.mask(AttentionMask::KeyPadding);
            }
            bl.attention_core("a", &i[0], &i[1], &i[2], i.get(3), None, o)
        });
        let (q, k, v) = (randn(&[b, hq, tq, d], seed), randn(&[b, hkv, tk, d], seed + 1), randn(&[b, hkv, tk, d], seed + 2));
        // Padding keeps the last query's causal window non-empty: key 0 is always visible.
        let mask: Vec<i64> = (0..b * tk).map(|n| (n % tk == 0 || !(n * 7 + seed as usize).is_multiple_of(3)) as i64).collect();
        let mask = Tensor::from_vec(mask, &[b, tk]).unwrap();
        let mut ins = vec![("q", &q), ("k", &k), ("v", &v)];
        if padded {
            ins.push(("mask", &mask));
        }
        let diff = fused_vs_composed(&m, seed, &ins);
        prop_assert!(diff <= 1e-5, "diff {}", diff);
    }
}
