//! The nodes language models need: a cast, the last position of a prompt,
//! and sliding-window attention over a static KV cache (fused and composed
//! against a float64 reference).

mod common;

use common::{max_abs_diff, position, randn};
use emily::{DType, Tensor};
use emily_nn::{
    fast_kernels, AttentionCoreOptions, KvCacheOptions, Mode, ModelBuilder, ParamStore, State,
};

#[test]
fn cast_and_last_position() {
    let mut b = ModelBuilder::new();
    let x = b.input("x", &[None, None, Some(5)], DType::F32).unwrap();
    let h = b.cast("half", &x, DType::F16).unwrap();
    let last = b.last_position("last", &h, None).unwrap();
    let back = b.cast("back", &last, DType::F32).unwrap();
    b.output(&h).unwrap();
    b.output(&back).unwrap();
    let m = b.build().unwrap();
    assert_eq!(
        m.op_frequencies()
            .iter()
            .find(|(o, _)| o == "cast")
            .unwrap()
            .1,
        2
    );
    let f = m.build(&ParamStore::new(), Mode::Inference).unwrap();
    let x = randn(&[2, 7, 5], 1);
    let out = f.call(&[("x", &x)]).unwrap();
    assert_eq!(out["half"].dtype(), DType::F16);
    assert_eq!(out["back"].shape(), &[2, 1, 5]);
    let want = x.narrow(1, 6, 1).unwrap();
    assert!(max_abs_diff(&out["back"], &want) < 2e-3);
    // One position passes through.
    let one = randn(&[2, 1, 5], 2);
    let out = f.call(&[("x", &one)]).unwrap();
    assert!(max_abs_diff(&out["back"], &one) < 2e-3);
}

/// softmax(q·kᵀ/√d) v with query `i` at position `offset + i` seeing keys in
/// `(offset + i − window, offset + i]`, in f64; q `(B, Hq, Tq, D)`, k/v the
/// cache contents `(B, Hkv, offset + Tq, D)`.
fn reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dims: [usize; 6],
    offset: usize,
    window: usize,
) -> Vec<f32> {
    let [b, hq, hkv, tq, tk, d] = dims;
    let mut out = vec![0f32; b * hq * tq * d];
    for bi in 0..b {
        for h in 0..hq {
            let g = h / (hq / hkv);
            for i in 0..tq {
                let pos = offset + i;
                let qi = &q[((bi * hq + h) * tq + i) * d..][..d];
                let keys: Vec<usize> = (0..tk).filter(|&j| j <= pos && j + window > pos).collect();
                let scores: Vec<f64> = keys
                    .iter()
                    .map(|&j| {
                        let kj = &k[((bi * hkv + g) * tk + j) * d..][..d];
                        qi.iter()
                            .zip(kj)
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
                let sum: f64 = w.iter().sum();
                for e in 0..d {
                    let acc: f64 = keys
                        .iter()
                        .zip(&w)
                        .map(|(&j, wj)| wj * v[((bi * hkv + g) * tk + j) * d + e] as f64)
                        .sum();
                    out[((bi * hq + h) * tq + i) * d + e] = (acc / sum) as f32;
                }
            }
        }
    }
    out
}

#[test]
fn sliding_window_attention_over_a_cache_matches_the_reference() {
    const CACHE: usize = 24;
    let (hq, hkv, d, window) = (4, 2, 16, 5);
    let mut b = ModelBuilder::new();
    let q = b
        .input("q", &[None, Some(hq), None, Some(d)], DType::F32)
        .unwrap();
    let k = b
        .input("k", &[None, Some(hkv), None, Some(d)], DType::F32)
        .unwrap();
    let v = b
        .input("v", &[None, Some(hkv), None, Some(d)], DType::F32)
        .unwrap();
    let off = b.input("offset", &[], DType::I64).unwrap();
    let kc = b
        .kv_cache("k_cache", &k, &off, KvCacheOptions::new(CACHE))
        .unwrap();
    let vc = b
        .kv_cache("v_cache", &v, &off, KvCacheOptions::new(CACHE))
        .unwrap();
    let opts = AttentionCoreOptions::new().causal().window(window);
    let a = b
        .attention_core("attn", &q, &kc, &vc, None, Some(&off), opts)
        .unwrap();
    b.output(&a).unwrap();
    let model = b.build().unwrap();
    let fast = fast_kernels::apply(&model).unwrap().model;
    let (qa, ka, va) = (
        randn(&[2, hq, 20, d], 3),
        randn(&[2, hkv, 20, d], 4),
        randn(&[2, hkv, 20, d], 5),
    );
    let flat = |t: &Tensor| t.to_vec::<f32>().unwrap();
    for m in [&model, &fast] {
        let f = m.build(&ParamStore::new(), Mode::Inference).unwrap();
        let mut state = State::new();
        // A prompt of 9, then single steps.
        let mut at = 0;
        for len in [9, 1, 1, 1, 1, 1, 1, 5] {
            let sl = |t: &Tensor| t.narrow(2, at, len).unwrap().eval().unwrap();
            let (qs, ks, vs) = (sl(&qa), sl(&ka), sl(&va));
            let pos = position(at as i64);
            let out = f
                .call_with_state(
                    &[("q", &qs), ("k", &ks), ("v", &vs), ("offset", &pos)],
                    &mut state,
                )
                .unwrap();
            let kseen = ka.narrow(2, 0, at + len).unwrap();
            let vseen = va.narrow(2, 0, at + len).unwrap();
            let want = reference(
                &flat(&qs),
                &flat(&kseen),
                &flat(&vseen),
                [2, hq, hkv, len, at + len, d],
                at,
                window,
            );
            let got = flat(&out["attn"]);
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-5, "at {at} len {len}: {err}");
            at += len;
        }
    }
    let bad = AttentionCoreOptions::new().window(3);
    let mut b = ModelBuilder::new();
    let q = b.input("q", &[None, None, None, None], DType::F32).unwrap();
    assert!(b.attention_core("a", &q, &q, &q, None, None, bad).is_err());
}
