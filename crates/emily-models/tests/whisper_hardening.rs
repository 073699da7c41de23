//! Whisper refuses inconsistent models at load, fails on non-finite logits instead
//! of printing garbage, and transcribes long files streamed exactly as in memory.

mod common;

use std::path::{Path, PathBuf};

use common::{jfk_samples_reference, model_dir, scratch};
use emily::Kernels;
use emily_models::weights::{DType, TensorRecord, WeightsError};
use emily_models::whisper::{load_whisper, TranscribeOptions, Whisper, WhisperDims, WhisperError};

/// A scratch copy of tiny.en (model.bin linked, small files copied) whose
/// `file` is rewritten by `edit`.
fn broken_model(name: &str, file: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let src = model_dir("whisper-tiny.en");
    let dir = scratch(name);
    std::os::unix::fs::symlink(
        src.join("model.bin").canonicalize().unwrap(),
        dir.join("model.bin"),
    )
    .unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let path = dir.join(file);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    dir
}

/// Set the id of added token `content` in a `tokenizer.json`.
fn set_token_id(json: &mut serde_json::Value, content: &str, id: u64) {
    let tokens = json["added_tokens"].as_array_mut().unwrap();
    let token = tokens
        .iter_mut()
        .find(|t| t["content"] == content)
        .unwrap_or_else(|| panic!("{content} in tokenizer.json"));
    token["id"] = id.into();
}

fn load_error(dir: &Path) -> String {
    match Whisper::load(dir, Kernels::Fused) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn tokenizer_that_disagrees_with_the_vocabulary_is_refused_at_load() {
    // Out of the vocabulary: decoding indexed logits[no_timestamps] and panicked.
    for (token, id) in [
        ("<|notimestamps|>", 60_000),
        ("<|endoftext|>", 51_864),
        ("<|startoftranscript|>", u32::MAX as u64),
    ] {
        let dir = broken_model("tok-out-of-range", "tokenizer.json", |j| {
            set_token_id(j, token, id)
        });
        let msg = load_error(&dir);
        assert!(
            msg.contains(&dir.join("tokenizer.json").display().to_string())
                && msg.contains(token)
                && msg.contains(&id.to_string()),
            "{msg}"
        );
    }
    // In range but shifted: the timestamps no longer end at the last row (what a
    // multilingual tokenizer on an English model looks like).
    let dir = broken_model("tok-shifted", "tokenizer.json", |j| {
        set_token_id(j, "<|notimestamps|>", 50_361);
    });
    let msg = load_error(&dir);
    assert!(
        msg.contains("tokenizer.json") && msg.contains("51864"),
        "{msg}"
    );
    // A suppressed id outside the vocabulary.
    let dir = broken_model("suppress-out-of-range", "config.json", |j| {
        j["suppress_ids"]
            .as_array_mut()
            .unwrap()
            .push(99_999.into());
    });
    let msg = load_error(&dir);
    assert!(
        msg.contains("suppress tokens") && msg.contains("99999"),
        "{msg}"
    );
}

#[test]
fn impossible_dims_and_integer_weights_are_errors_naming_the_field() {
    let ck = load_whisper(&model_dir("whisper-tiny.en")).unwrap();
    let file = ck.weights.source_file().display().to_string();
    let named = |e: WeightsError, what: &str| {
        let msg = e.to_string();
        assert!(msg.contains(&file) && msg.contains(what), "{msg}");
    };
    // Head counts that do not divide the width.
    named(
        WhisperDims::from_weights(&ck.weights, 5, 6).unwrap_err(),
        "encoder head count 5",
    );
    named(
        WhisperDims::from_weights(&ck.weights, 6, 0).unwrap_err(),
        "decoder head count 0",
    );
    // A decoder narrower than the encoder.
    let mut w = ck.weights.clone();
    let name = "model.decoder.layers.1.fc2.weight";
    w.insert(
        name,
        TensorRecord::from_f32(name, vec![320, 1536], &vec![0.0; 320 * 1536]).unwrap(),
    );
    named(WhisperDims::from_weights(&w, 6, 6).unwrap_err(), name);
    // An int8 tensor without its scale would be read as weights of +-127.
    let mut w = ck.weights.clone();
    let name = "model.encoder.layers.0.fc1.weight";
    w.insert(
        name,
        TensorRecord::from_bytes(name, vec![1536, 384], DType::I8, vec![1; 1536 * 384]).unwrap(),
    );
    named(WhisperDims::from_weights(&w, 6, 6).unwrap_err(), "no scale");
    // An encoder that does not cover one 30 s window (1500 positions).
    let mut short = ck.clone();
    let name = "model.encoder.embed_positions.weight";
    let rows = short
        .weights
        .get(name)
        .unwrap()
        .rows(name, 0, 1000)
        .unwrap();
    short.weights.insert(name, rows);
    short.dims = WhisperDims::from_weights(&short.weights, 6, 6).unwrap();
    let msg = Whisper::from_checkpoint(&short, Kernels::Fused)
        .err()
        .expect("1000 encoder positions")
        .to_string();
    assert!(
        msg.contains(&file) && msg.contains(name) && msg.contains("1500"),
        "{msg}"
    );
}

#[test]
fn nan_logits_are_an_error_not_exclamation_marks() {
    let mut ck = load_whisper(&model_dir("whisper-tiny.en")).unwrap();
    // Poison row 0 of the token embedding (token "!"), tied to the output
    // projection: its logit is NaN at every step, and a NaN-blind argmax
    // returns 0 and transcribes "!!!!...".
    let name = "model.decoder.embed_tokens.weight";
    let record = ck.weights.get(name).unwrap();
    assert_eq!(record.dtype(), DType::F16);
    let mut bytes = record.bytes().to_vec();
    bytes[..2].copy_from_slice(&half::f16::NAN.to_le_bytes());
    let poisoned = TensorRecord::from_bytes(name, record.shape().to_vec(), DType::F16, bytes);
    ck.weights.insert(name, poisoned.unwrap());
    for kernels in [Kernels::Composed, Kernels::Fused] {
        let w = Whisper::from_checkpoint(&ck, kernels).unwrap();
        for timestamps in [false, true] {
            let opts = TranscribeOptions {
                timestamps,
                ..Default::default()
            };
            let err = w.transcribe(&jfk_samples_reference(), &opts).unwrap_err();
            assert!(
                matches!(err, WhisperError::NonFiniteLogits { token: 0, .. }),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.starts_with("samples: ") && msg.contains("0.00 s"),
                "{msg}"
            );
        }
    }
}

#[test]
fn a_long_file_streams_to_the_same_transcript_as_its_samples_in_memory() {
    let clip = jfk_samples_reference();
    let mut audio = Vec::new();
    // 71 s: three windows, speech cut at window edges, a quiet stretch.
    while audio.len() < 16000 * 70 {
        audio.extend_from_slice(&clip);
        audio.extend(clip[..40_000].iter().map(|x| x * 1e-3));
    }
    let path = scratch("long-file").join("long.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for &x in &audio {
        writer.write_sample(x).unwrap();
    }
    writer.finalize().unwrap();
    let w = Whisper::load(&model_dir("whisper-tiny.en"), Kernels::Fused).unwrap();
    let opts = TranscribeOptions {
        timestamps: true,
        ..Default::default()
    };
    let in_memory = w.transcribe(&audio, &opts).unwrap();
    let streamed = w.transcribe_file(&path, &opts).unwrap();
    assert_eq!(streamed.segments, in_memory.segments);
    assert!(streamed.segments.len() >= 6, "{:?}", streamed.segments);
}
