//! The `emily` binary end to end: transcription output formats and errors.

use std::io::Write;
use std::process::{Command, Stdio};

mod common;

use common::{emily, root, JFK};

/// `emily ARGS` with `input` written to its standard input.
fn emily_with_stdin(args: &[&str], input: Vec<u8>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_emily"))
        .current_dir(root())
        .env("EMILY_MODEL_DIR", root().join("models/whisper-tiny.en"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run emily");
    let mut stdin = child.stdin.take().unwrap();
    // Written from a thread, as a pipe from another program would be.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("emily ran");
    writer.join().unwrap();
    out
}

/// The JFK WAV as a program writing to a pipe emits it: RIFF and data chunk
/// lengths are 0xFFFFFFFF (unknown), as `ffmpeg ... -f wav -` writes them.
fn jfk_streamed_wav() -> Vec<u8> {
    let mut wav = std::fs::read(root().join("samples/jfk.wav")).unwrap();
    wav[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let data = wav.windows(4).position(|w| w == b"data").unwrap();
    wav[data + 4..data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    wav
}

#[test]
fn transcribes_standard_input() {
    let jfk = std::fs::read(root().join("samples/jfk.wav")).unwrap();
    for (what, input) in [("jfk.wav", jfk), ("streamed header", jfk_streamed_wav())] {
        let out = emily_with_stdin(&["transcribe", "--compute-type", "f32", "-"], input);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: {err}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), JFK, "{what}");
    }
    let out = emily_with_stdin(&["transcribe", "-"], b"not audio".to_vec());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("-: not a recognised audio file"));
}

#[test]
fn one_bad_file_does_not_stop_a_batch() {
    let dir = std::env::temp_dir().join("emily-cli-batch");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.wav");
    std::fs::write(&bad, b"RIFF\x10\x00\x00\x00WAVEjunk").unwrap();
    let out = emily(&[
        "transcribe",
        "--compute-type",
        "f32",
        "samples/jfk.wav",
        bad.to_str().unwrap(),
        "samples/jfk.wav",
    ]);
    assert!(
        !out.status.success(),
        "a failed input makes the exit status non-zero"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.matches(JFK).count(),
        2,
        "both good files transcribed: {text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.wav") && err.contains("1 of 3 inputs failed"),
        "{err}"
    );
}

#[test]
fn transcribes_jfk_as_text_and_srt() {
    let out = emily(&["transcribe", "samples/jfk.wav", "--compute-type", "f32"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim(), JFK);
    // Greedy decoding without fallback: faster-whisper's greedy text.
    let out = emily(&[
        "transcribe",
        "samples/jfk.wav",
        "--beam-size",
        "1",
        "--temperature",
        "0",
    ]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "And so my fellow Americans ask not what your country can do for you ask what you can do for your country."
    );

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

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn word_timestamps_in_json_and_bad_decoding_flags() {
    let out = emily(&[
        "transcribe",
        "samples/jfk.wav",
        "--format",
        "json",
        "--word-timestamps",
        "--compute-type",
        "f32",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let segments = v["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2);
    let words: Vec<&serde_json::Value> = segments
        .iter()
        .flat_map(|s| s["words"].as_array().unwrap())
        .collect();
    assert_eq!(words.len(), 22);
    assert_eq!(words[1]["word"], " so,");
    assert_eq!(words[21]["word"], " country.");
    assert_eq!(words[21]["end"].as_f64(), Some(10.5));
    for (flag, value) in [
        ("--beam-size", "0"),
        ("--temperature", "-1"),
        ("--patience", "0"),
        ("--log-prob-threshold", "x"),
    ] {
        let out = emily(&["transcribe", "samples/jfk.wav", flag, value]);
        assert!(!out.status.success(), "{flag} {value}");
        assert!(stderr(&out).contains(flag), "{flag}: {}", stderr(&out));
    }
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

#[test]
fn whisper_bench_names_a_model_path_without_a_model() {
    let out = Command::new(env!("CARGO_BIN_EXE_emily"))
        .current_dir(root())
        .env(
            "EMILY_BENCH_WHISPER_MODELS",
            "models/whisper-tiny.en,/nonexistent-bench-model",
        )
        .args(["bench", "whisper"])
        .output()
        .expect("run emily");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("EMILY_BENCH_WHISPER_MODELS") && err.contains("/nonexistent-bench-model"),
        "{err}"
    );
}

/// `emily ARGS` with `EMILY_NUM_THREADS` set to `threads`.
fn emily_with_threads_env(threads: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_emily"))
        .current_dir(root())
        .env("EMILY_NUM_THREADS", threads)
        .args(args)
        .output()
        .expect("run emily")
}

#[test]
fn thread_counts_are_checked() {
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let jfk = ["transcribe", "samples/jfk.wav"];
    let out = emily(&[&["--threads", "0"][..], &jfk].concat());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--threads: 0 threads requested"),
        "{}",
        stderr(&out)
    );
    for bad in ["abc", "0", "-2", ""] {
        let out = emily_with_threads_env(bad, &jfk);
        assert!(!out.status.success(), "EMILY_NUM_THREADS={bad}");
        assert!(
            stderr(&out).contains("EMILY_NUM_THREADS"),
            "{bad}: {}",
            stderr(&out)
        );
    }
    // Far above the cores: clamped with a warning (the command then fails on
    // its missing model, so the idle pool never runs work).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for huge in ["100000", &usize::MAX.to_string()] {
        let out = emily(&[
            "--threads",
            huge,
            "inspect",
            "--model",
            "/nonexistent-model",
        ]);
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "warning: {huge} threads requested; using {}",
                4 * cores
            )),
            "{err}"
        );
    }
    let out = emily_with_threads_env("100000", &["inspect", "--model", "/nonexistent-model"]);
    assert!(
        stderr(&out).contains(&format!(
            "warning: 100000 threads requested; using {}",
            4 * cores
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn subtitle_layout_flags_wrap_word_timed_cues() {
    let out = emily(&[
        "transcribe",
        "samples/jfk.wav",
        "--word-timestamps",
        "--format",
        "srt",
        "--max-line-width",
        "20",
        "--max-line-count",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let srt = String::from_utf8(out.stdout).unwrap();
    let cues: Vec<&str> = srt.trim_end().split("\n\n").collect();
    assert!(cues.len() >= 3, "{srt}");
    let mut words = 0;
    for cue in cues {
        let lines: Vec<&str> = cue.lines().skip(2).collect();
        assert!((1..=2).contains(&lines.len()), "{cue:?}");
        assert!(lines.iter().all(|l| l.chars().count() <= 20), "{cue:?}");
        words += lines
            .iter()
            .map(|l| l.split_whitespace().count())
            .sum::<usize>();
    }
    assert_eq!(words, 22, "{srt}");

    let out = emily(&[
        "transcribe",
        "samples/jfk.wav",
        "--word-timestamps",
        "--format",
        "vtt",
        "--highlight-words",
    ]);
    assert!(out.status.success());
    let vtt = String::from_utf8(out.stdout).unwrap();
    assert!(vtt.starts_with("WEBVTT\n\n00:00.000 --> "), "{vtt}");
    assert!(vtt.matches("<u>").count() >= 22, "{vtt}");

    // As openai-whisper: the layout needs word timestamps.
    let out = emily(&["transcribe", "samples/jfk.wav", "--max-line-width", "20"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--word-timestamps"));
}
