//! Whisper tiny.en with the encoder in bf16 and int8 (`ComputeType`): the
//! JFK transcript is identical to f32 and the encoder output stays within the
//! stated tolerance of the reference encoder output.
//!
//! Tolerances against the reference encoder output (1500 × 384 values after
//! the final LayerNorm): bf16 max |diff| ≤ 0.25, 99.99th percentile ≤ 0.08,
//! 99.9th ≤ 0.05 and mean ≤ 0.01; int8 max ≤ 2.0, 99.99th percentile ≤ 0.35,
//! 99.9th ≤ 0.2 and mean ≤ 0.04 (the f32 graph is within 1e-3, whisper_e2e).
//!
//! Why int8's max is 2.0 and a 99.99th-percentile bound holds the tail (from
//! session 9): on an AVX2-only Zen 2 (no VNNI, so the int8 types' attention
//! runs on bf16 products) int8-encoder measured max 1.154 / 99.99 % 0.232 /
//! 99.9 % 0.158 / mean 0.0216, and under `EMILY_ISA=baseline` (the portable
//! engines) max 1.672 / 0.238 / 0.158 / 0.0219: the few largest of the
//! 576,000 differences swing by 1.5× between engines whose sums differ only
//! in order and rounding, while the 58th largest (99.99 %) and everything
//! below it move by 3 %. bf16 on the same host: max 0.151 / 0.134, 99.99 %
//! 0.050 / 0.047.
//! Measured on AMD Zen 4 (AVX512-BF16/VNNI engines): bf16 max 0.196 / 99.9 %
//! 0.033 / mean 0.0047 (bf16 attention core since session 5; 0.114 / 0.032
//! / 0.0043 with the f32 core); int8 max 0.739 / 99.9 % 0.155 / mean 0.021.
//!
//! Earlier, on Zen 4 (why the max was 1.0, up from 0.75): since the int8 encoder's
//! self-attention runs on bf16 q, k, v with bf16 products, the single worst
//! of the 576,000 values moves with any rounding of the attention inputs
//! while the bulk does not: rounding only v to bf16 gave max 0.42, k and v
//! 0.96, q, k and v 0.62, the bf16 products 0.74 (int8 with f32 attention:
//! 0.485), with the 99.9th percentile 0.153–0.155 and the mean 0.0211–0.0217
//! in every case. The percentile bound is what holds the bulk.
//!
//! Since session 6 the int8 types' attention products run on int8 codes
//! where the CPU has VNNI (`ComputeType::int8_attention`): int8-encoder on
//! Zen 4 max 0.401 / 99.9 % 0.156 / mean 0.0229 (int8 scores alone: 0.612
//! / 0.152 / 0.0214); the bounds are unchanged.

mod common;

use common::{golden_ids, goldens, jfk_samples_reference, max_abs_diff, model_dir};
use emily::{DType, Kernels, Tensor};
use emily_models::npy::read_npy;
use emily_models::whisper::graph::WhisperGraph;
use emily_models::whisper::{load_whisper, ComputeType, TranscribeOptions, Whisper};

/// faster-whisper's greedy JFK text.
const JFK: &str = " And so my fellow Americans ask not what your country can do for you ask what you can do for your country.";

/// Checks `compute`'s encoder output on JFK against the reference within
/// `tol` (max), `p9999_tol` / `p999_tol` (99.99th / 99.9th percentile) and
/// `mean_tol` (mean |diff|), then its greedy JFK text.
fn check(compute: ComputeType, tol: f32, p9999_tol: f32, p999_tol: f32, mean_tol: f32) {
    let w = Whisper::load_with(&model_dir("whisper-tiny.en"), Kernels::Fused, compute)
        .expect("run `make models` first");
    let mel = read_npy(&goldens().join("jfk_logmel.npy")).unwrap();
    let enc = w.encode(&mel.data).unwrap().to_vec::<f32>().unwrap();
    let want = read_npy(&goldens().join("jfk_encoder_out.npy")).unwrap();
    let d = max_abs_diff(&enc, &want.data);
    let mean = enc
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / enc.len() as f32;
    let mut diffs: Vec<f32> = enc
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .collect();
    diffs.sort_by(f32::total_cmp);
    let p999 = diffs[diffs.len() * 999 / 1000];
    let p9999 = diffs[diffs.len() * 9999 / 10000];
    println!(
        "{}: encoder max |diff| {d:.4}, 99.99th percentile {p9999:.4}, 99.9th percentile {p999:.4}, mean |diff| {mean:.5}",
        compute.name()
    );
    assert!(
        d <= tol,
        "{}: encoder max abs diff {d} > {tol}",
        compute.name()
    );
    assert!(
        p9999 <= p9999_tol,
        "{}: encoder 99.99th percentile abs diff {p9999} > {p9999_tol}",
        compute.name()
    );
    assert!(
        p999 <= p999_tol,
        "{}: encoder 99.9th percentile abs diff {p999} > {p999_tol}",
        compute.name()
    );
    assert!(
        mean <= mean_tol,
        "{}: encoder mean abs diff {mean} > {mean_tol}",
        compute.name()
    );
    let t = w
        .transcribe(&jfk_samples_reference(), &TranscribeOptions::greedy())
        .unwrap();
    assert_eq!(t.text, JFK, "{}", compute.name());
}

#[test]
fn bf16_encoder_keeps_the_jfk_text() {
    check(ComputeType::Bf16, 0.25, 0.08, 0.05, 0.01);
}

#[test]
fn int8_encoder_keeps_the_jfk_text() {
    check(ComputeType::Int8Encoder, 2.0, 0.35, 0.2, 0.04);
}

/// The int8 encoder's projection matrices stay in the checkpoint's stored
/// precision (read in place; the engine packs its own int8 copy), not an f32
/// copy; the f32 model keeps f32 matrices.
#[test]
fn int8_encoder_holds_no_f32_copy_of_its_projections() {
    let dir = model_dir("whisper-tiny.en");
    let key = "model.encoder.layers.0.fc1.weight";
    let dtype = |compute| {
        let w = Whisper::load_with(&dir, Kernels::Fused, compute).expect("run `make models` first");
        w.graph().params().get(key).expect(key).dtype()
    };
    assert_eq!(dtype(ComputeType::F32), emily::DType::F32);
    assert_ne!(dtype(ComputeType::Int8Encoder), emily::DType::F32);
}

/// The int8 types run the convolutions on the bf16 GEMM (bf16 weights held)
/// only where that GEMM has a matrix engine; on an AVX2-only CPU the
/// emulated bf16 GEMM runs at under half the f32 rate, so they stay f32.
/// Their attention core is bf16 exactly where its products run on int8 codes.
#[test]
fn int8_convolutions_and_attention_core_follow_the_engines() {
    use emily_kernels::gemm::{Engine, Precision};
    let bf16_engine = matches!(Engine::best(Precision::Bf16), Engine::Amx | Engine::Avx512);
    let dir = model_dir("whisper-tiny.en");
    let w = Whisper::load_with(&dir, Kernels::Fused, ComputeType::Int8)
        .expect("run `make models` first");
    let conv = w
        .graph()
        .params()
        .get("model.encoder.conv2.weight")
        .expect("conv2")
        .dtype();
    let want = if bf16_engine {
        emily::DType::BF16
    } else {
        emily::DType::F32
    };
    assert_eq!(conv, want);
    for t in [ComputeType::Int8Encoder, ComputeType::Int8] {
        assert_eq!(t.bf16_convolutions(), bf16_engine);
        assert_eq!(t.bf16_attention_core(), t.int8_attention());
    }
    assert!(ComputeType::Bf16.bf16_convolutions());
    assert!(!ComputeType::F32.bf16_convolutions() && !ComputeType::F32.bf16_attention_core());
}

/// Where `auto` resolves to f32 (no matrix engine) it holds the encoder's
/// projection matrices and position table at the checkpoint's stored
/// precision (f16), not as f32 copies, and widens them exactly where they are
/// used: its encoder output is the f32 one bit for bit. No other type does.
#[test]
fn auto_on_f32_holds_stored_encoder_matrices_with_exact_f32_products() {
    for other in [
        ComputeType::F32,
        ComputeType::Bf16,
        ComputeType::Int8Encoder,
        ComputeType::Int8,
    ] {
        assert!(!other.encoder_stored_weights(), "{}", other.name());
    }
    let on_f32 = ComputeType::Auto.resolve() == ComputeType::F32;
    assert_eq!(ComputeType::Auto.encoder_stored_weights(), on_f32);
    if !on_f32 {
        println!(
            "auto is {} here: nothing more to check",
            ComputeType::Auto.resolve().name()
        );
        return;
    }
    let ck = load_whisper(&model_dir("whisper-tiny.en")).expect("run `make models` first");
    let (full, auto) = (
        tiny_graph(&ck, ComputeType::F32),
        tiny_graph(&ck, ComputeType::Auto),
    );
    let dtype = |g: &WhisperGraph, key: &str| g.params().get(key).expect(key).dtype();
    for key in [
        "model.encoder.layers.0.self_attn.q_proj.weight",
        "model.encoder.layers.3.fc2.weight",
        "model.encoder.embed_positions.weight",
    ] {
        assert_eq!(dtype(&full, key), DType::F32, "{key}");
        assert_eq!(dtype(&auto, key), DType::F16, "{key}");
    }
    // The convolutions take f32 (or bf16) weights only.
    assert_eq!(dtype(&auto, "model.encoder.conv2.weight"), DType::F32);
    let mel = read_npy(&goldens().join("jfk_logmel.npy")).unwrap();
    let mel = Tensor::from_slice(&mel.data, &[1, 80, 3000]).unwrap();
    let encode = |g: &WhisperGraph| g.encode(&mel).unwrap().to_vec::<f32>().unwrap();
    let (a, b) = (encode(&full), encode(&auto));
    assert_eq!(a.len(), b.len());
    let differ = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    assert_eq!(
        differ,
        0,
        "{differ} of {} encoder outputs differ from f32",
        a.len()
    );
}

/// Only the int8 types put the encoder's attention products on int8 codes,
/// and only where the int8 GEMM has a matrix engine.
#[test]
fn int8_attention_follows_the_int8_engine() {
    use emily_kernels::gemm::{Engine, Precision};
    let engine = matches!(Engine::best(Precision::Int8), Engine::Amx | Engine::Avx512);
    assert_eq!(ComputeType::Int8Encoder.int8_attention(), engine);
    assert_eq!(ComputeType::Int8.int8_attention(), engine);
    assert!(!ComputeType::F32.int8_attention());
    assert!(!ComputeType::Bf16.int8_attention());
}

#[test]
fn auto_resolves_to_a_concrete_type() {
    let r = ComputeType::Auto.resolve();
    assert_ne!(r, ComputeType::Auto);
    assert_eq!(ComputeType::Bf16.resolve(), ComputeType::Bf16);
}

/// The fast-kernel graph of tiny.en for `compute`.
fn tiny_graph(ck: &emily_models::whisper::WhisperCheckpoint, compute: ComputeType) -> WhisperGraph {
    WhisperGraph::with_compute(ck, compute)
        .unwrap()
        .with_fast_kernels()
        .unwrap()
}

/// The logits `(T, vocab)` of each graph in `graphs` at every position of
/// the JFK golden tokens, all on `graphs[0]`'s encoder output (so only the
/// decoders differ), and the cross keys' number type of each.
fn jfk_logits(graphs: &[&WhisperGraph]) -> (Vec<Vec<f32>>, Vec<DType>, usize) {
    let mel = read_npy(&goldens().join("jfk_logmel.npy")).unwrap();
    let mel = Tensor::from_slice(&mel.data, &[1, 80, 3000]).unwrap();
    let enc = graphs[0].encode(&mel).unwrap();
    let ids: Vec<i64> = golden_ids().iter().map(|&t| t as i64).collect();
    let t = ids.len();
    let tokens = Tensor::from_slice(&ids, &[1, t]).unwrap();
    let zero = Tensor::from_slice(&[0i64], &[1]).unwrap();
    let all: Vec<usize> = (0..t).collect();
    let (mut logits, mut dtypes) = (Vec::new(), Vec::new());
    for g in graphs {
        let mut state = g.start(&enc).unwrap();
        dtypes.push(g.cross_keys(&state, 0).unwrap().dtype());
        let l = g.step_at(&tokens, &zero, &mut state, &all).unwrap();
        logits.push(l.to_vec::<f32>().unwrap());
    }
    (logits, dtypes, t)
}

/// Asserts that `a` and `b` (`t` rows of logits) pick the same token at
/// every position.
fn same_tokens(a: &[f32], b: &[f32], t: usize) {
    let vocab = a.len() / t;
    for (p, (ra, rb)) in a.chunks(vocab).zip(b.chunks(vocab)).enumerate() {
        let top = |r: &[f32]| (0..r.len()).max_by(|&i, &j| r[i].total_cmp(&r[j]));
        assert_eq!(top(ra), top(rb), "position {p}");
    }
}

/// Every type but f32 holds a window's cross-attention keys and values in
/// f16 (half the bytes per window and per decoder step). On the same encoder
/// output and the same decoder weights, the logits at every position of the
/// JFK tokens stay close to those with f32 keys and values and pick the same
/// token.
#[test]
fn half_precision_cross_keys_and_values_keep_the_logits() {
    let ck = load_whisper(&model_dir("whisper-tiny.en")).expect("run `make models` first");
    let (full, half, auto) = (
        tiny_graph(&ck, ComputeType::F32),
        tiny_graph(&ck, ComputeType::Bf16),
        tiny_graph(&ck, ComputeType::Auto),
    );
    // Bf16 keeps the f16 logits: only the cross keys and values differ.
    assert!(half.int8_logits().is_none());
    let (l, dtypes, t) = jfk_logits(&[&full, &half, &auto]);
    // `auto` too, also where it resolves to f32 (then its encoder output is
    // f32's bit for bit: only the cross keys and values differ).
    assert_eq!(dtypes, [DType::F32, DType::F16, DType::F16]);
    let mut halves = vec![&l[1]];
    if ComputeType::Auto.resolve() == ComputeType::F32 {
        halves.push(&l[2]);
    }
    for h in halves {
        let d = max_abs_diff(&l[0], h);
        println!("f16 cross keys/values: max |logit diff| {d:.4} over {t} positions");
        // Measured 0.008 on tiny.en.
        assert!(d < 0.03, "max |logit diff| {d}");
        same_tokens(&l[0], h, t);
    }
}

/// Under `Int8Encoder` (what `auto` is on a VNNI CPU) and `Int8` the logits
/// run on the int8 GEMV over the tied embedding's per-row int8 codes (the
/// final norm's output in 16-bit blocks). On the same encoder output, the
/// JFK tokens' logits (the int8 cross-K/V projections and f16 cross keys and
/// values included) stay within max |diff| 1.5, 99.9th percentile 1.0, mean
/// 0.2 and 0.75 among the tokens within 10 of each position's best f32 logit
/// (logits span ~55), and pick the same token at every position. Measured on
/// tiny.en: 1.05 / 0.62 / 0.13 / 0.53 — nearly all of it the weights' int8
/// rounding (the same codes as CTranslate2's int8; one 8-bit activation
/// pass instead of two moved nothing).
#[test]
fn int8_logits_keep_the_logits() {
    let ck = load_whisper(&model_dir("whisper-tiny.en")).expect("run `make models` first");
    let (full, int8) = (
        tiny_graph(&ck, ComputeType::F32),
        tiny_graph(&ck, ComputeType::Int8Encoder),
    );
    assert!(full.int8_logits().is_none());
    let rows = int8.int8_logits().expect("int8 logits under Int8Encoder");
    assert_eq!(
        (rows.rows(), rows.cols()),
        (ck.dims.n_vocab, ck.dims.d_model)
    );
    // No f16 copy of the table is held beside the int8 rows.
    assert!(int8
        .params()
        .get(emily_models::whisper::graph::TIED_OUTPUT)
        .is_none());
    let (l, _, t) = jfk_logits(&[&full, &int8]);
    let (a, b) = (&l[0], &l[1]);
    let d = max_abs_diff(a, b);
    let vocab = a.len() / t;
    let mut diffs: Vec<f32> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
    diffs.sort_by(f32::total_cmp);
    let p999 = diffs[diffs.len() * 999 / 1000];
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    // Near the top: tokens within 10 of each position's best f32 logit.
    let mut near = 0f32;
    let mut range = 0f32;
    for (ra, rb) in a.chunks(vocab).zip(b.chunks(vocab)) {
        let top = ra.iter().cloned().fold(f32::MIN, f32::max);
        let low = ra.iter().cloned().fold(f32::MAX, f32::min);
        range = range.max(top - low);
        for (x, y) in ra.iter().zip(rb) {
            if *x > top - 10.0 {
                near = near.max((x - y).abs());
            }
        }
    }
    println!("int8 logits: max |logit diff| {d:.4} over {t} positions, 99.9 % {p999:.4}, mean {mean:.4}, within 10 of the top {near:.4}; logit range {range:.1}");
    assert!(
        d < 1.5 && p999 < 1.0 && mean < 0.2 && near < 0.75,
        "int8 logits moved too far"
    );
    same_tokens(a, b, t);
}
