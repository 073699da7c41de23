//! `emily transcribe --manifest`: shards, parallel jobs, resuming after a
//! partial run, a bad entry among good ones.

use std::path::{Path, PathBuf};

mod common;

use common::{emily, root, JFK};

/// `emily transcribe --manifest LIST --output-dir OUT EXTRA…`.
fn batch(list: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "transcribe",
        "--compute-type",
        "f32",
        "--manifest",
        s(list),
        "--output-dir",
        s(out),
    ];
    args.extend_from_slice(extra);
    emily(&args)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A scratch folder with `a.wav`, `sub/a.wav` (copies of JFK), `bad.wav`
/// (not audio) and a manifest listing them (with a comment and a blank line).
fn setup(name: &str, with_bad: bool) -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("in/sub")).unwrap();
    let jfk = root().join("samples/jfk.wav");
    std::fs::copy(&jfk, dir.join("in/a.wav")).unwrap();
    std::fs::copy(&jfk, dir.join("in/sub/a.wav")).unwrap();
    std::fs::write(dir.join("in/bad.wav"), b"RIFF\x10\x00\x00\x00WAVEjunk").unwrap();
    let mut list = String::from("# two copies of JFK\na.wav\n\nsub/a.wav\n");
    if with_bad {
        list.push_str("bad.wav\n");
    }
    std::fs::write(dir.join("in/list.txt"), list).unwrap();
    (dir.join("in/list.txt"), dir.join("out"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn manifest_shards_cover_the_list_once_and_runs_resume() {
    let (list, out) = setup("emily-batch-shards", false);
    for shard in ["0/2", "1/2"] {
        let o = batch(&list, &out, &["--shard", shard]);
        assert!(o.status.success(), "shard {shard}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("1 written, 0 already done, 0 failed"),
            "{}",
            stderr(&o)
        );
    }
    for file in ["a.txt", "sub/a.txt"] {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert_eq!(text.trim(), JFK, "{file}");
    }
    // Everything exists: a rerun of the whole list skips both.
    let o = batch(&list, &out, &["--jobs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("0 written, 2 already done"),
        "{}",
        stderr(&o)
    );
    // A lost output (and a stale partial file) is redone on the next run.
    std::fs::remove_file(out.join("sub/a.txt")).unwrap();
    std::fs::write(out.join("sub/.a.txt.999.partial"), "half").unwrap();
    let o = batch(&list, &out, &[]);
    assert!(
        stderr(&o).contains("1 written, 1 already done"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("sub/a.txt"))
            .unwrap()
            .trim(),
        JFK
    );
}

#[test]
fn manifest_with_a_bad_entry_writes_the_rest_and_fails() {
    let (list, out) = setup("emily-batch-bad", true);
    let o = batch(&list, &out, &["--jobs", "2", "--format", "srt"]);
    assert!(
        !o.status.success(),
        "a failed entry makes the exit status non-zero"
    );
    let err = stderr(&o);
    assert!(
        err.contains("bad.wav") && err.contains("1 of 3 inputs failed"),
        "{err}"
    );
    let srt = std::fs::read_to_string(out.join("sub/a.srt")).unwrap();
    assert!(srt.starts_with("1\n00:00:00,000 --> "), "{srt}");
    assert!(out.join("a.srt").is_file());
    assert!(!out.join("bad.srt").exists());
}

#[test]
fn manifest_flags_are_checked() {
    let (list, out) = setup("emily-batch-flags", false);
    let o = emily(&["transcribe", "--manifest", s(&list)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--output-dir"), "{}", stderr(&o));
    let o = batch(&list, &out, &["--shard", "2/2"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("need 0 <= i < n"), "{}", stderr(&o));
    let o = emily(&[
        "transcribe",
        "--manifest",
        "/nonexistent/list.txt",
        "--output-dir",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/nonexistent/list.txt"),
        "{}",
        stderr(&o)
    );
}
