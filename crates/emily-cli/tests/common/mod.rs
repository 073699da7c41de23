//! Helpers shared by the CLI tests.

use std::path::PathBuf;
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `emily ARGS` run in the workspace root with tiny.en as the default model.
pub fn emily(args: &[&str]) -> std::process::Output {
    let model = root().join("models/whisper-tiny.en");
    assert!(model.join("model.bin").is_file(), "run `make models` first");
    Command::new(env!("CARGO_BIN_EXE_emily"))
        .current_dir(root())
        .env("EMILY_MODEL_DIR", &model)
        .args(args)
        .output()
        .expect("run emily")
}

/// faster-whisper's beam-5 JFK text: what `emily transcribe` prints by
/// default with `--compute-type f32` (the int8 encoder that `auto` picks on
/// VNNI machines turns the full stop into a comma under beam search).
pub const JFK: &str = "And so my fellow Americans ask not what your country can do for you. Ask what you can do for your country.";
