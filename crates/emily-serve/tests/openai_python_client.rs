//! The official OpenAI Python client (`pip install openai` into a venv under
//! the target directory, as CI installs its models) against a real server:
//! transcriptions in every format, the model list, a refused key, and a
//! streamed chat completion whose text is the library's greedy reply.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{llm_path, model_dir, root, start, QUESTION};
use emily_models::llm::{ChatMessage, GenerateOptions};
use emily_serve::ServeConfig;

/// A venv with the `openai` package, made on first use.
fn python_with_openai() -> std::path::PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openai-venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "python3 -m venv {} failed", venv.display());
    }
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import openai"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has(&python) {
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "openai",
            ])
            .output()
            .expect("running pip");
        assert!(
            out.status.success() && has(&python),
            "pip install openai failed (the test needs the package registry, as `make models` does):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    python
}

#[test]
fn the_openai_python_client_transcribes_and_streams_a_chat() {
    let python = python_with_openai();
    let mut c = ServeConfig::new(model_dir());
    c.api_key = Some("client-test-key".into());
    c.llm = Some(llm_path());
    c.llm_context = 256;
    // One generation at a time: the replies are compared with the library's
    // exactly (a batch may flip near ties; see llm_batching.rs).
    c.max_batch = 1;
    let mut s = start(c);
    let llm = s.state.llm().unwrap();
    let opts = GenerateOptions {
        max_tokens: 24,
        ..GenerateOptions::default()
    };
    let expected = llm
        .model()
        .chat(&[ChatMessage::user(QUESTION)], &opts, |_| true)
        .unwrap();
    let out = Command::new(python)
        .arg(root().join("crates/emily-serve/tests/clients/openai_client.py"))
        .env("EMILY_URL", format!("http://{}", s.addr))
        .env("EMILY_LLM_ID", llm.id())
        .env("EXPECT_CHAT", &expected.text)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the OpenAI client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("streamed chat ok"), "{stdout}");
    s.stop().unwrap();
}
