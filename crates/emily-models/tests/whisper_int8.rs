//! Quantized Whisper: CTranslate2's own int8 model files, and int8 compute
//! (`ComputeType::Int8`: encoder projections on the int8 GEMM engine, the
//! decoder's matrices and the token embedding held as per-row int8 codes
//! packed for the int8-row GEMV, `Q8_0` weights to the graph).
//!
//! Whole-model int8 is held to the reference's greedy tokens up to JFK's one
//! near tie and to its words throughout: generated token 14 is `,` with a
//! margin of 0.078 logits over `.` in float32 (CTranslate2 4.8.5 float32 on
//! `jfk_logmel.npy`; 0.105 in its int8), below the 0.5-logit rule the LLM
//! goldens use for quantized weights, and our int8 decoder picks `.` there
//! (`... for you. Ask what ...`). The int8 *encoder* keeps the text exact
//! (`whisper_compute_types`, and the int8 model below).
//!
//! The int8 model is written by the test from tiny.en's f16 weights with
//! CTranslate2's converter rule (`emily_models::ct2::write_int8_model`). That
//! it is what CTranslate2 itself writes was checked with its converter
//! (`scripts/ct2-quantize.py models/whisper-tiny.en OUT int8_float16`,
//! CTranslate2 4.8.5): every int8 weight, every scale, every other tensor
//! and the alias table are byte-identical; CTranslate2's file has two more
//! scalar flags that its newer spec adds with their defaults
//! (`decoder/alibi_use_positive_positions`, `decoder/scale_alibi`, both 0).
//! The FNV-1a hash below pins this writer's output.

mod common;

use common::{golden_ids, jfk_samples_reference, model_dir, scratch};
use emily::Kernels;
use emily_models::ct2::{quantize_int8, read_model_bin, write_int8_model};
use emily_models::weights::DType;
use emily_models::whisper::{load_whisper, ComputeType, TranscribeOptions, Whisper};

/// faster-whisper's greedy JFK text (float32 and int8 alike).
const JFK: &str = " And so my fellow Americans ask not what your country can do for you ask what you can do for your country.";

/// FNV-1a 64 of `write_int8_model`'s conversion of tiny.en (see the top).
const INT8_FNV: u64 = 0x74f2_5141_2e10_0b4b;

fn int8_dir(name: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    let n = write_int8_model(&model_dir("whisper-tiny.en"), &dir).unwrap();
    // 4 encoder + 4 decoder layers: 4 (+ 3 cross-attention) matrices each,
    // two convolutions and the embedding.
    assert_eq!(n, 4 * 4 + 4 * 7 + 3);
    dir
}

fn jfk(w: &Whisper) -> String {
    w.transcribe(&jfk_samples_reference(), &TranscribeOptions::greedy())
        .unwrap()
        .text
}

#[test]
fn ct2_int8_file_has_codes_and_scales() {
    let dir = int8_dir("int8-file");
    let bin = read_model_bin(&dir.join("model.bin")).unwrap();
    let w = bin
        .variables
        .get("decoder/layer_0/ffn/linear_0/weight")
        .unwrap();
    assert_eq!((w.dtype(), w.shape()), (DType::I8, &[1536usize, 384][..]));
    let s = bin
        .variables
        .get("decoder/layer_0/ffn/linear_0/weight_scale")
        .unwrap();
    assert_eq!((s.dtype(), s.shape()), (DType::F32, &[1536usize][..]));
    let conv = bin.variables.get("encoder/conv1/weight").unwrap();
    assert_eq!(conv.dtype(), DType::I8);
    let pos = bin
        .variables
        .get("encoder/position_encodings/encodings")
        .unwrap();
    assert_eq!(pos.dtype(), DType::F16, "position encodings stay float");
    let bytes = std::fs::read(dir.join("model.bin")).unwrap();
    let hash = fnv1a(&bytes);
    assert_eq!(
        hash, INT8_FNV,
        "model.bin (FNV-1a {hash:#x}) differs from the checked conversion"
    );
}

#[test]
fn ct2_int8_model_loads_and_dequantized_codes_round_trip() {
    let dir = int8_dir("int8-roundtrip");
    let ck = load_whisper(&dir).unwrap();
    // Dequantized to the model's float type (f16); quantizing again per row
    // recovers CTranslate2's codes exactly.
    let raw = read_model_bin(&dir.join("model.bin")).unwrap();
    for (ct2, hf) in [
        (
            "decoder/layer_2/ffn/linear_1/weight",
            "model.decoder.layers.2.fc2.weight",
        ),
        (
            "decoder/embeddings/weight",
            "model.decoder.embed_tokens.weight",
        ),
        (
            "encoder/layer_1/self_attention/linear_1/weight",
            "model.encoder.layers.1.self_attn.out_proj.weight",
        ),
    ] {
        let rec = ck.weights.get(hf).unwrap();
        assert_eq!(rec.dtype(), DType::F16, "{hf}");
        let (codes, _) = quantize_int8(&rec.to_f32_vec(), rec.shape()[0]);
        let want: Vec<i8> = raw
            .variables
            .get(ct2)
            .unwrap()
            .bytes()
            .iter()
            .map(|&b| b as i8)
            .collect();
        assert_eq!(codes, want, "{ct2}: requantized codes differ");
    }
}

/// Generated tokens of JFK before its near tie (see the top).
const BEFORE_NEAR_TIE: usize = 14;

/// `text` lowercased, words only.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect()
}

/// Whole-model int8 against the reference: the same tokens up to the near
/// tie, the same words throughout.
fn check_int8_jfk(what: &str, w: &Whisper) {
    let t = w
        .transcribe(&jfk_samples_reference(), &TranscribeOptions::default())
        .unwrap();
    let ids: Vec<u32> = t.segments.iter().flat_map(|s| s.tokens.clone()).collect();
    let golden = golden_ids();
    assert_eq!(
        ids[..BEFORE_NEAR_TIE],
        golden[..BEFORE_NEAR_TIE],
        "{what}: {:?}",
        t.text
    );
    assert_eq!(words(&t.text), words(JFK), "{what}: {:?}", t.text);
}

#[test]
fn ct2_int8_model_transcribes_jfk_exactly() {
    let dir = int8_dir("int8-jfk");
    for compute in [ComputeType::F32, ComputeType::Int8Encoder] {
        let w = Whisper::load_with(&dir, Kernels::Fused, compute).unwrap();
        assert_eq!(jfk(&w), JFK, "int8 model, compute {}", compute.name());
    }
}

/// The decoder's int8 matrices of `w` (store key; `Q8_0` weights held as
/// packed int8 rows), and the number of its parameters in all.
fn int8_params(w: &Whisper) -> (Vec<String>, usize) {
    let params = w.graph().params();
    let q8 = params
        .iter()
        .filter(|(_, t)| t.dtype() == emily::DType::Quantized(emily::BlockFormat::Q8_0))
        .map(|(k, _)| k.to_string())
        .collect();
    (q8, params.iter().count())
}

#[test]
fn int8_compute_keeps_the_decoder_matrices_int8() {
    // The f16 model quantized at load, and CTranslate2's int8 model, whose
    // codes are kept as they are: identical blocks.
    let dir = int8_dir("int8-decoder");
    let f16 = Whisper::load_with(
        &model_dir("whisper-tiny.en"),
        Kernels::Fused,
        ComputeType::Int8,
    )
    .unwrap();
    let ct2 = Whisper::load_with(&dir, Kernels::Fused, ComputeType::Int8).unwrap();
    let (names, _) = int8_params(&f16);
    // 4 decoder layers x (q, k, v, out; cross q, out; fc1, fc2); the cross
    // keys' and values' projections (1500 encoder rows a window) run on the
    // int8 GEMM instead, and the token embedding is no parameter: the logits
    // run on its int8 rows.
    assert_eq!(names.len(), 4 * 8, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("model.decoder.layers.")));
    assert!(!names
        .iter()
        .any(|n| n.contains("encoder_attn.k_proj") || n.contains("encoder_attn.v_proj")));
    let raw = read_model_bin(&dir.join("model.bin")).unwrap();
    let table = raw
        .variables
        .get("decoder/embeddings/weight")
        .unwrap()
        .bytes();
    for w in [&f16, &ct2] {
        let rows = w.graph().int8_logits().expect("int8 logits under Int8");
        assert!(matches!(
            w.graph().token_table(),
            emily_models::whisper::graph::TokenTable::Int8(_)
        ));
        let k = rows.cols();
        let mut codes = vec![0i8; k];
        for r in [0, 1, 220, 50_257, rows.rows() - 1] {
            rows.codes_of_row(r, &mut codes);
            let want: Vec<i8> = table[r * k..(r + 1) * k].iter().map(|&b| b as i8).collect();
            assert_eq!(codes, want, "embedding row {r}");
        }
    }
    let codes: Vec<u8> = raw
        .variables
        .get("decoder/layer_1/ffn/linear_0/weight")
        .unwrap()
        .bytes()
        .to_vec();
    for w in [&f16, &ct2] {
        let fc1 = w
            .graph()
            .params()
            .get("model.decoder.layers.1.fc1.weight")
            .unwrap();
        let rows = fc1.int8_rows().expect("held as packed int8 rows");
        let k = rows.cols();
        let mut got = vec![0i8; k];
        for r in 0..rows.rows() {
            rows.codes_of_row(r, &mut got);
            let want: Vec<i8> = codes[r * k..(r + 1) * k].iter().map(|&b| b as i8).collect();
            assert_eq!(got, want, "fc1 row {r}");
        }
    }
    check_int8_jfk("f16 model", &f16);
    check_int8_jfk("CTranslate2 int8 model", &ct2);
}

/// FNV-1a 64-bit hash (a fingerprint for equality, not a security hash).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
