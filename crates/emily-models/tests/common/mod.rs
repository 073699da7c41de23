//! Paths shared by the integration tests: the fetched models and the goldens.
#![allow(dead_code)]

pub mod llm;
pub mod tiny_llm;

use std::path::PathBuf;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `models/<name>` under the workspace root; fails the test when it is missing
/// (the models are fetched by `make models`, which CI runs before the tests).
pub fn model_dir(name: &str) -> PathBuf {
    let dir = workspace_root().join("models").join(name);
    assert!(
        dir.join("model.bin").is_file(),
        "{} is missing: run `make models` (or scripts/fetch-models.sh all) first",
        dir.display()
    );
    dir
}

/// The golden reference data directory (`testdata/goldens` in the repository).
pub fn goldens() -> PathBuf {
    let dir = workspace_root().join("testdata/goldens");
    assert!(dir.is_dir(), "golden data missing at {}", dir.display());
    dir
}

/// The JFK clip (`samples/jfk.wav`).
pub fn jfk_wav() -> PathBuf {
    workspace_root().join("samples/jfk.wav")
}

/// A fresh scratch directory under the target directory, unique per test name.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("emily-models-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Max absolute difference of two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// JFK samples read directly from the WAV's PCM bytes as `i16 / 32768` (the golden
/// convention), independent of the decoder under test.
pub fn jfk_samples_reference() -> Vec<f32> {
    let bytes = std::fs::read(jfk_wav()).unwrap();
    let data = bytes
        .windows(4)
        .position(|w| w == b"data")
        .expect("data chunk");
    let len = u32::from_le_bytes(bytes[data + 4..data + 8].try_into().unwrap()) as usize;
    bytes[data + 8..data + 8 + len]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0)
        .collect()
}

/// The reference greedy token ids for JFK (transformers, no timestamps), from
/// `jfk_tokens.json`.
pub fn golden_ids() -> Vec<u32> {
    let text = std::fs::read_to_string(goldens().join("jfk_tokens.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["transformers"]["generated_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}
