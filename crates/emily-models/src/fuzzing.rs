//! Entry points for the parsers' fuzz targets (`fuzz/`, run by `make fuzz`) and
//! for the regression test that replays every input they found
//! (`testdata/fuzz-regressions/<target>/`). Each takes arbitrary bytes and
//! must return, never panic, whatever the bytes; errors are the expected
//! outcome for almost every input.
//!
//! [`TARGETS`] lists them by name; a new parser is one function here and one
//! entry there (plus its `fuzz_targets/<name>.rs` calling [`run`]).

use std::path::Path;

use crate::audio::{AudioStream, SampleChunks};
use crate::gguf::GgufFile;
use crate::hf::load_hf_dir;
use crate::llm::{LlmModel, LlmTokenizer, LoadOptions};
use crate::tokenizer::WhisperTokenizer;

/// A fuzz target's entry point.
pub type Entry = fn(&[u8]);

/// Every fuzz target: `(name, entry point)`.
pub const TARGETS: &[(&str, Entry)] = &[
    ("audio_decode", audio_decode),
    ("ct2_model_bin", ct2_model_bin),
    ("hf_safetensors", hf_safetensors),
    ("tokenizer_json", tokenizer_json),
    ("gguf", gguf),
];

/// Run target `name` on `data`; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, entry)) => {
            entry(data);
            true
        }
        None => false,
    }
}

/// Samples decoded at most per input: enough to reach every code path of a
/// stream, little enough that a valid hour-long header costs no time.
const MAX_SAMPLES: usize = 1 << 20;

/// Any bytes as an audio file (WAV, FLAC, MP3, OGG: the probe decides) through
/// decode → mono → resample to 16 kHz.
pub fn audio_decode(data: &[u8]) {
    let Ok(mut stream) = AudioStream::open_bytes(data.to_vec(), "fuzz") else {
        return;
    };
    let mut n = 0;
    while let Ok(Some(chunk)) = stream.next_chunk() {
        assert!(chunk.iter().all(|s| s.is_finite()), "non-finite sample");
        n += chunk.len();
        if n > MAX_SAMPLES {
            break;
        }
    }
}

/// A scratch directory for one input, removed when dropped.
fn scratch() -> Option<tempfile::TempDir> {
    tempfile::Builder::new().prefix("emily-fuzz").tempdir().ok()
}

/// Any bytes as a CTranslate2 `model.bin`, loaded as a Whisper directory (the
/// parser, then the renaming and the dims checks).
pub fn ct2_model_bin(data: &[u8]) {
    let Some(dir) = scratch() else { return };
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).is_ok();
    if write("model.bin", data) && write("config.json", b"{}") && write("tokenizer.json", b"{}") {
        let _ = crate::ct2::load_ct2_dir(dir.path());
    }
}

/// Any bytes as a Hugging Face directory: the first two bytes (little endian)
/// are the length of `config.json`, which follows; the rest is
/// `model.safetensors`.
pub fn hf_safetensors(data: &[u8]) {
    let Some((config, weights)) = split_config(data) else {
        return;
    };
    let Some(dir) = scratch() else { return };
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).is_ok();
    if write("config.json", config)
        && write("model.safetensors", weights)
        && write("tokenizer.json", b"{}")
    {
        let _ = load_hf_dir(dir.path());
    }
}

/// `(config.json, model.safetensors)` of an [`hf_safetensors`] input.
pub fn split_config(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let len = u16::from_le_bytes(*len) as usize;
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// Any bytes as a `tokenizer.json`; a tokenizer that loads must encode and
/// decode.
pub fn tokenizer_json(data: &[u8]) {
    let Some(dir) = scratch() else { return };
    let path = dir.path().join("tokenizer.json");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(tokenizer) = WhisperTokenizer::from_file(Path::new(&path)) {
        if let Ok(ids) = tokenizer.encode(" And so, my fellow Americans") {
            let _ = tokenizer.decode(&ids);
            let _ = tokenizer.decode_with_timestamps(&ids);
        }
        let sp = tokenizer.special().clone();
        let _ = tokenizer.decode(&[sp.eot, sp.sot, sp.timestamp_begin, u32::MAX]);
        let _ = tokenizer.id_to_token(u32::MAX);
    }
}

/// Any bytes as a GGUF language model: the container, the tokenizer (which
/// must then encode and decode) and the whole model (config checks, every
/// tensor read) with a small KV cache.
pub fn gguf(data: &[u8]) {
    let Ok(file) = GgufFile::parse(std::sync::Arc::new(data.to_vec()), "fuzz.gguf") else {
        return;
    };
    if let Ok(tokenizer) = LlmTokenizer::from_gguf(&file) {
        if let Ok(ids) = tokenizer.encode("And so, my fellow Americans: ask not", true) {
            let _ = tokenizer.decode(&ids, false);
            let _ = tokenizer.decode(&ids, true);
        }
        let _ = tokenizer.decode(&[u32::MAX, 0], false);
    }
    let options = LoadOptions {
        context: Some(8),
        ..LoadOptions::default()
    };
    let _ = LlmModel::from_gguf(&file, options);
}
