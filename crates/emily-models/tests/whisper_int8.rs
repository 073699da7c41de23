//! Quantized Whisper: CTranslate2's own int8 model files.
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

use common::{jfk_samples_reference, model_dir, scratch};
use emily::Kernels;
use emily_models::ct2::{quantize_int8, read_model_bin, write_int8_model};
use emily_models::weights::DType;
use emily_models::whisper::{load_whisper, ComputeType, TranscribeOptions, Whisper};

const JFK: &str = " And so my fellow Americans ask not what your country can do for you, ask what you can do for your country.";

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
    w.transcribe(&jfk_samples_reference(), &TranscribeOptions::default())
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

#[test]
fn ct2_int8_model_transcribes_jfk_exactly() {
    let dir = int8_dir("int8-jfk");
    for compute in [ComputeType::F32, ComputeType::Int8] {
        let w = Whisper::load_with(&dir, Kernels::Fused, compute).unwrap();
        assert_eq!(jfk(&w), JFK, "int8 model, compute {}", compute.name());
    }
}

/// FNV-1a 64-bit hash (a fingerprint for equality, not a security hash).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
