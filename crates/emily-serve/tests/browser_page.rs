//! The web page in headless Chromium against a real server with Whisper and
//! SmolLM2 loaded: the fake microphone (`--use-file-for-fake-audio-capture`
//! with the JFK clip) through the page's live mode shows the JFK sentence, a
//! file upload shows timed segments, and the chat box streams the model's
//! greedy reply; a screenshot is saved as `target/tmp/serve-page.png`.
//!
//! What it needs, installed on first use as the OpenAI client test installs
//! `openai`: Debian's `chromium` (`apt-get install chromium`, as root, when
//! `/usr/bin/chromium` is missing) and `puppeteer-core` from the npm registry
//! (which drives the system Chromium; it downloads no browser). When they
//! cannot be installed the test fails with the reason. Outside CI, and only
//! there, `EMILY_SKIP_BROWSER_TEST=1` skips it, saying so; under CI (`CI`
//! set) it always runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{llm_path, model_dir, root, start, QUESTION};
use emily_models::llm::{ChatMessage, GenerateOptions};
use emily_serve::ServeConfig;

const CHROMIUM: &str = "/usr/bin/chromium";

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

fn check(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Debian's Chromium, installed with apt-get when missing (needs root and
/// the package registry).
fn chromium() -> PathBuf {
    let path = PathBuf::from(CHROMIUM);
    if path.is_file() {
        return path;
    }
    let uid = run(Command::new("id").arg("-u"));
    let root_user = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    assert!(
        root_user,
        "{CHROMIUM} is missing and this user is not root, so `apt-get install chromium` cannot run: \
         install Debian's chromium package (or set EMILY_SKIP_BROWSER_TEST=1 outside CI)"
    );
    check(
        run(Command::new("apt-get").args(["update", "-qq"])),
        "apt-get update",
    );
    check(
        run(Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "chromium",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")),
        "apt-get install chromium",
    );
    assert!(
        path.is_file(),
        "apt-get installed chromium but {CHROMIUM} is missing"
    );
    path
}

/// A node_modules folder holding puppeteer-core, installed with npm on first use.
fn puppeteer(dir: &Path) -> PathBuf {
    let modules = dir.join("node_modules");
    if modules.join("puppeteer-core/package.json").is_file() {
        return modules;
    }
    std::fs::create_dir_all(dir).unwrap();
    check(
        run(Command::new("npm")
            .args([
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "puppeteer-core@25",
            ])
            .current_dir(dir)
            .env("PUPPETEER_SKIP_DOWNLOAD", "1")),
        "npm install puppeteer-core (needs node, npm and the npm registry)",
    );
    modules
}

#[test]
fn the_page_transcribes_the_microphone_and_chats_in_headless_chromium() {
    if std::env::var_os("CI").is_none()
        && std::env::var("EMILY_SKIP_BROWSER_TEST").is_ok_and(|v| v == "1")
    {
        eprintln!("SKIPPED: the headless-Chromium page test (EMILY_SKIP_BROWSER_TEST=1)");
        return;
    }
    let chromium = chromium();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let modules = puppeteer(&tmp.join("page-node"));
    let mut c = ServeConfig::new(model_dir());
    c.api_key = Some("page-test-key".into());
    c.llm = Some(llm_path());
    c.llm_context = 512;
    // One generation at a time: the replies are compared with the library's
    // exactly (a batch may flip near ties; see llm_batching.rs).
    c.max_batch = 1;
    let mut s = start(c);
    let llm = s.state.llm().unwrap();
    let expected = llm
        .model()
        .chat(
            &[ChatMessage::user(QUESTION)],
            &GenerateOptions::default(),
            |_| true,
        )
        .unwrap();
    let jfk = root().join("samples/jfk.wav");
    let screenshot = tmp.join("serve-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let out = run(Command::new("node")
        .arg(root().join("crates/emily-serve/tests/clients/page.mjs"))
        .env("EMILY_URL", format!("http://{}", s.addr))
        .env("EMILY_API_KEY", "page-test-key")
        // Chromium reads the fake microphone's file only by a plain absolute path.
        .env("JFK_WAV", jfk.canonicalize().unwrap())
        .env("SCREENSHOT", &screenshot)
        .env("NODE_PATH", &modules)
        .env("CHROMIUM", &chromium)
        .env("QUESTION", QUESTION)
        .env("EXPECT_CHAT", &expected.text));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the page test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("page ok"), "{stdout}");
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
    s.stop().unwrap();
}
