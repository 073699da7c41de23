//! The `emily` binary end to end: transcription output formats and errors.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn emily(args: &[&str]) -> std::process::Output {
    let model = root().join("models/whisper-tiny.en");
    assert!(model.join("model.bin").is_file(), "run `make models` first");
    Command::new(env!("CARGO_BIN_EXE_emily"))
        .current_dir(root())
        .env("EMILY_MODEL_DIR", &model)
        .args(args)
        .output()
        .expect("run emily")
}

#[test]
fn transcribes_jfk_as_text_and_srt() {
    let out = emily(&["transcribe", "samples/jfk.wav"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim(), "And so my fellow Americans ask not what your country can do for you, ask what you can do for your country.");

    let out = emily(&["transcribe", "samples/jfk.wav", "--format", "srt"]);
    assert!(out.status.success());
    let srt = String::from_utf8(out.stdout).unwrap();
    assert!(srt.starts_with("1\n00:00:00,000 --> 00:00:0"), "{srt}");
    assert!(srt.contains("\n2\n"), "two cues: {srt}");
}

#[test]
fn json_output_has_segments() {
    let out = emily(&[
        "transcribe",
        "samples/jfk.wav",
        "--format",
        "json",
        "--timestamps",
        "--no-fast-kernels",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["segments"].as_array().unwrap().len(), 2);
    assert!(v["text"]
        .as_str()
        .unwrap()
        .contains("ask not what your country"));
}

#[test]
fn bad_input_exits_nonzero_naming_the_file() {
    let dir = std::env::temp_dir().join("emily-cli-test");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("not-audio.mp3");
    std::fs::write(&bad, b"this is not audio at all").unwrap();
    let out = emily(&["transcribe", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not-audio.mp3"), "{err}");
    let out = emily(&[
        "transcribe",
        "samples/jfk.wav",
        "--model",
        "/nonexistent-model-dir",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-model-dir"));
}
