//! The CTranslate2 and Hugging Face loaders on the real tiny.en model, the converter
//! between them, and their errors on missing, truncated and hostile files.

mod common;

use std::path::Path;

use common::{model_dir, scratch};
use emily_models::ct2::{load_ct2_dir, read_model_bin};
use emily_models::hf::{convert_ct2_to_hf, load_hf_dir};
use emily_models::weights::DType;
use emily_models::whisper::{load_whisper, CheckpointFormat, WhisperDims};

#[test]
fn tiny_en_loads_with_expected_dims() {
    let ckpt = load_whisper(&model_dir("whisper-tiny.en")).unwrap();
    assert_eq!(ckpt.format, CheckpointFormat::CTranslate2);
    let d = ckpt.dims;
    assert_eq!(
        d,
        WhisperDims {
            n_mels: 80,
            d_model: 384,
            ffn_dim: 1536,
            n_audio_heads: 6,
            n_text_heads: 6,
            n_audio_layers: 4,
            n_text_layers: 4,
            n_vocab: 51864,
            n_audio_ctx: 1500,
            n_text_ctx: 448,
        }
    );
    assert!(!d.is_multilingual());
    assert_eq!(d.head_dim(), 64);
    // Exactly the Whisper tensors, all memory-mapped f16.
    assert_eq!(ckpt.weights.len(), d.tensor_shapes().len());
    for (name, record) in ckpt.weights.iter() {
        assert!(record.is_mapped() && record.dtype() == DType::F16, "{name}");
    }
    assert_eq!(ckpt.generation.begin_suppress_tokens, vec![220, 50256]);
    assert!(ckpt.generation.suppress_tokens.len() > 50);
    assert_eq!(ckpt.generation.alignment_heads[0], (1, 0));
    assert!(ckpt.tokenizer_path.is_file());
}

#[test]
fn fused_projections_split_into_hf_rows() {
    let dir = model_dir("whisper-tiny.en");
    let raw = read_model_bin(&dir.join("model.bin")).unwrap();
    assert_eq!(
        (raw.binary_version, raw.spec_name.as_str()),
        (6, "WhisperSpec")
    );
    let ckpt = load_ct2_dir(&dir).unwrap();
    let fused = raw
        .variables
        .get_f32("decoder/layer_2/self_attention/linear_0/weight")
        .unwrap();
    let d = 384 * 384;
    for (i, proj) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
        let part = ckpt
            .weights
            .get_f32(&format!("model.decoder.layers.2.self_attn.{proj}.weight"))
            .unwrap();
        assert_eq!(part, fused[i * d..(i + 1) * d], "{proj}");
    }
    let kv_bias = raw
        .variables
        .get_f32("decoder/layer_0/attention/linear_1/bias")
        .unwrap();
    assert!(kv_bias[..384].iter().all(|&b| b == 0.0), "K bias is zero");
    let v_bias = ckpt
        .weights
        .get_f32("model.decoder.layers.0.encoder_attn.v_proj.bias")
        .unwrap();
    assert_eq!(v_bias, kv_bias[384..]);
    assert!(!ckpt
        .weights
        .contains("model.decoder.layers.0.encoder_attn.k_proj.bias"));
    // The tied projection alias resolves to the embedding's bytes.
    let proj = raw.variables.get("decoder/projection/weight").unwrap();
    assert_eq!(
        proj.bytes(),
        raw.variables
            .get("decoder/embeddings/weight")
            .unwrap()
            .bytes()
    );
}

#[test]
fn converting_to_hf_then_loading_gives_identical_weights() {
    let from = model_dir("whisper-tiny.en");
    let to = scratch("convert-tiny");
    convert_ct2_to_hf(&from, &to).unwrap();
    for f in [
        "config.json",
        "generation_config.json",
        "preprocessor_config.json",
        "tokenizer.json",
    ] {
        assert!(to.join(f).is_file(), "{f} written");
    }
    let ct2 = load_ct2_dir(&from).unwrap();
    let hf = load_whisper(&to).unwrap();
    assert_eq!(hf.format, CheckpointFormat::HuggingFace);
    assert_eq!(hf.dims, ct2.dims);
    assert_eq!(hf.generation, ct2.generation);
    let names: Vec<&str> = hf.weights.names().collect();
    assert_eq!(names, ct2.weights.names().collect::<Vec<_>>());
    for (name, a) in ct2.weights.iter() {
        let b = hf.weights.get(name).unwrap();
        assert_eq!((a.shape(), a.dtype()), (b.shape(), b.dtype()), "{name}");
        assert!(a.bytes() == b.bytes(), "{name} differs");
        assert!(b.is_mapped());
    }
    assert!(
        convert_ct2_to_hf(&from, &from).is_err(),
        "converting in place is refused"
    );
}

#[test]
fn base_loads_from_concatenated_pieces() {
    let ckpt = load_whisper(&model_dir("whisper-base")).unwrap();
    let d = ckpt.dims;
    assert_eq!((d.d_model, d.n_audio_layers, d.n_text_layers), (512, 6, 6));
    assert_eq!((d.n_audio_heads, d.n_vocab, d.n_mels), (8, 51865, 80));
    assert!(d.is_multilingual());
    assert_eq!(ckpt.generation.begin_suppress_tokens, vec![220, 50257]);
    let to = scratch("convert-base");
    convert_ct2_to_hf(&ckpt.dir, &to).unwrap();
    let hf = load_hf_dir(&to).unwrap();
    assert_eq!(hf.dims, d);
}

/// A copy of the tiny.en directory whose model.bin is replaced by `bytes`.
fn dir_with_model_bin(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let src = model_dir("whisper-tiny.en");
    let dir = scratch(name);
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("model.bin"), bytes).unwrap();
    dir
}

fn assert_err_names(
    result: Result<impl std::fmt::Debug, impl std::fmt::Display>,
    file: &Path,
    what: &str,
) {
    let msg = result.expect_err(what).to_string();
    eprintln!("{what}: {msg}");
    assert!(
        msg.contains(&file.display().to_string()),
        "{what}: `{msg}` does not name {}",
        file.display()
    );
}

#[test]
fn truncated_and_corrupt_model_bin_are_errors() {
    let real = std::fs::read(model_dir("whisper-tiny.en").join("model.bin")).unwrap();
    let cuts = [
        0,
        3,
        7,
        20,
        60,
        1000,
        real.len() / 2,
        real.len() - 40,
        real.len() - 1,
    ];
    for (i, &cut) in cuts.iter().enumerate() {
        let dir = dir_with_model_bin(&format!("cut{i}"), &real[..cut]);
        assert_err_names(
            load_ct2_dir(&dir),
            &dir.join("model.bin"),
            &format!("cut at {cut}"),
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let mut trailing = real.clone();
    trailing.push(0);
    let dir = dir_with_model_bin("trailing", &trailing);
    assert_err_names(load_ct2_dir(&dir), &dir.join("model.bin"), "trailing byte");
    std::fs::remove_dir_all(&dir).unwrap();
    let dir = dir_with_model_bin("garbage", b"this is not a CTranslate2 model at all");
    assert_err_names(load_ct2_dir(&dir), &dir.join("model.bin"), "garbage");
}

/// A model.bin header (version 6, WhisperSpec) followed by `body`.
fn model_bin(num_variables: u32, body: &[u8]) -> Vec<u8> {
    let mut out = 6u32.to_le_bytes().to_vec();
    out.extend(12u16.to_le_bytes());
    out.extend(b"WhisperSpec\0");
    out.extend(3u32.to_le_bytes());
    out.extend(num_variables.to_le_bytes());
    out.extend(body);
    out
}

fn name(s: &str) -> Vec<u8> {
    let mut out = ((s.len() + 1) as u16).to_le_bytes().to_vec();
    out.extend(s.as_bytes());
    out.push(0);
    out
}

#[test]
fn hostile_model_bin_lengths_are_errors_not_allocations() {
    let huge_dims = [
        name("x"),
        vec![2],
        u32::MAX.to_le_bytes().to_vec(),
        u32::MAX.to_le_bytes().to_vec(),
    ]
    .concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("many variables", model_bin(u32::MAX, &[])),
        ("huge rank", model_bin(1, &[name("x"), vec![255]].concat())),
        (
            "huge dims",
            model_bin(
                1,
                &[huge_dims, vec![0], u32::MAX.to_le_bytes().to_vec()].concat(),
            ),
        ),
        (
            "byte count lies",
            model_bin(
                1,
                &[
                    name("x"),
                    vec![1],
                    4u32.to_le_bytes().to_vec(),
                    vec![0],
                    3u32.to_le_bytes().to_vec(),
                    vec![0; 3],
                ]
                .concat(),
            ),
        ),
        (
            "bad dtype",
            model_bin(
                1,
                &[
                    name("x"),
                    vec![0],
                    vec![9],
                    4u32.to_le_bytes().to_vec(),
                    vec![0; 4],
                ]
                .concat(),
            ),
        ),
        (
            "no NUL",
            model_bin(1, &[2u16.to_le_bytes().to_vec(), b"ab".to_vec()].concat()),
        ),
        (
            "bad UTF-8",
            model_bin(
                1,
                &[3u16.to_le_bytes().to_vec(), vec![0xff, 0xfe, 0]].concat(),
            ),
        ),
        (
            "dangling alias",
            model_bin(
                0,
                &[1u32.to_le_bytes().to_vec(), name("a"), name("missing")].concat(),
            ),
        ),
    ];
    for (what, bytes) in cases {
        let dir = dir_with_model_bin(&what.replace(' ', "-"), &bytes);
        assert_err_names(
            read_model_bin(&dir.join("model.bin")),
            &dir.join("model.bin"),
            what,
        );
    }
    let mut old = model_bin(0, &0u32.to_le_bytes());
    old[0] = 4;
    let dir = dir_with_model_bin("old-version", &old);
    assert_err_names(
        read_model_bin(&dir.join("model.bin")),
        &dir.join("model.bin"),
        "version 4",
    );
    // Well-formed but empty: parses, then the Whisper mapping names the missing tensor.
    let dir = dir_with_model_bin("no-tensors", &model_bin(0, &0u32.to_le_bytes()));
    assert!(read_model_bin(&dir.join("model.bin")).is_ok());
    let msg = load_ct2_dir(&dir).unwrap_err().to_string();
    assert!(msg.contains("model.bin") && msg.contains('`'), "{msg}");
}

#[test]
fn missing_files_are_named() {
    let empty = scratch("empty-dir");
    assert_err_names(
        load_ct2_dir(&empty),
        &empty.join("model.bin"),
        "no model.bin",
    );
    assert_err_names(
        load_hf_dir(&empty),
        &empty.join("config.json"),
        "no config.json",
    );
    assert_err_names(
        load_whisper(&empty.join("nope")),
        &empty.join("nope"),
        "no directory",
    );

    let split = scratch("split-pieces");
    std::fs::write(split.join("model.bin.part1"), b"first piece").unwrap();
    let msg = load_whisper(&split).unwrap_err().to_string();
    assert!(msg.contains("model.bin") && !msg.contains("part1"), "{msg}");
    let msg = load_ct2_dir(&split).unwrap_err().to_string();
    assert!(
        msg.contains("model.bin.part1") && msg.contains("concatenate"),
        "{msg}"
    );

    let real = std::fs::read(model_dir("whisper-tiny.en").join("model.bin")).unwrap();
    let dir = dir_with_model_bin("no-tokenizer", &real);
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    assert_err_names(
        load_ct2_dir(&dir),
        &dir.join("tokenizer.json"),
        "no tokenizer.json",
    );
    std::fs::remove_file(dir.join("config.json")).unwrap();
    assert_err_names(
        load_ct2_dir(&dir),
        &dir.join("config.json"),
        "no config.json",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn broken_hf_directories_are_errors() {
    let hf = scratch("hf-broken");
    convert_ct2_to_hf(&model_dir("whisper-tiny.en"), &hf).unwrap();
    let config_path = hf.join("config.json");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        config.replace("\"vocab_size\": 51864", "\"vocab_size\": 51865"),
    )
    .unwrap();
    let msg = load_hf_dir(&hf).unwrap_err().to_string();
    assert!(
        msg.contains("config.json") && msg.contains("vocab_size"),
        "{msg}"
    );
    std::fs::write(&config_path, config).unwrap();

    let st = hf.join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() - 10]).unwrap();
    assert_err_names(load_hf_dir(&hf), &st, "truncated safetensors");
    std::fs::write(&st, b"").unwrap();
    assert_err_names(load_hf_dir(&hf), &st, "empty safetensors");
    std::fs::remove_dir_all(&hf).unwrap();
}
