//! A real server on an ephemeral loopback port, and helpers to call it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use emily_serve::state::AppState;
use emily_serve::{ServeConfig, Server};
use tokio::sync::oneshot;

/// The greedy JFK text (the server decodes windows step by step, greedily;
/// faster-whisper's greedy text).
pub const JFK: &str = "And so my fellow Americans ask not what your country can do for you ask what you can do for your country.";

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The question the chat tests ask.
pub const QUESTION: &str = "What is the capital of France?";

/// The fetched SmolLM2 GGUF file.
pub fn llm_path() -> PathBuf {
    let p = root().join("models/llm/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.is_file(), "run `make models` first");
    p
}

/// The fetched tiny.en model directory.
pub fn model_dir() -> PathBuf {
    let d = root().join("models/whisper-tiny.en");
    assert!(d.join("model.bin").is_file(), "run `make models` first");
    d
}

/// The bytes of `samples/jfk.wav`.
pub fn jfk_wav() -> Vec<u8> {
    std::fs::read(root().join("samples/jfk.wav")).unwrap()
}

/// A 16 kHz mono 16-bit WAV of `samples`.
pub fn wav(samples: &[i16]) -> Vec<u8> {
    let data = (samples.len() * 2) as u32;
    let mut v = Vec::with_capacity(44 + data as usize);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&16_000u32.to_le_bytes());
    v.extend_from_slice(&32_000u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

/// JFK's PCM samples.
pub fn jfk_pcm() -> Vec<i16> {
    let b = jfk_wav();
    let at = b.windows(4).position(|w| w == b"data").unwrap();
    b[at + 8..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// JFK repeated with 2 s pauses until `seconds` long (a long, several-window clip).
pub fn long_jfk_wav(seconds: usize) -> Vec<u8> {
    let clip = jfk_pcm();
    let mut out = Vec::new();
    while out.len() < seconds * 16_000 {
        out.extend_from_slice(&clip);
        out.extend(std::iter::repeat_n(0i16, 32_000));
    }
    out.truncate(seconds * 16_000);
    wav(&out)
}

/// A running server; dropping it does not stop it (call `stop`).
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    done: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Running {
    /// `http://addr`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Starts graceful shutdown and waits for the server to exit.
    pub fn stop(&mut self) -> Result<(), String> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.done
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or(Ok(()))
    }

    /// Starts graceful shutdown without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Waits for the server thread to exit.
    pub fn join(&mut self) -> Result<(), String> {
        self.done
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or(Ok(()))
    }
}

/// Starts a server for `config` (port 0 on loopback) on its own thread and
/// runtime, and waits until `/health` says ready.
pub fn start(mut config: ServeConfig) -> Running {
    config.port = 0;
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let done = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let server = Server::bind(config).await.map_err(|e| e.to_string())?;
            addr_tx
                .send((server.local_addr(), server.state().clone()))
                .unwrap();
            server
                .run(async move {
                    let _ = stop_rx.await;
                })
                .await
                .map_err(|e| e.to_string())
        })
    });
    let (addr, state) = addr_rx.recv().expect("server bound");
    let t0 = Instant::now();
    while state.engine().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(60), "model never loaded");
        std::thread::sleep(Duration::from_millis(20));
    }
    Running {
        addr,
        state,
        stop: Some(stop_tx),
        done: Some(done),
    }
}

/// A multipart form with `file` = `bytes` and the given text fields.
pub fn form(bytes: Vec<u8>, fields: &[(&str, &str)]) -> reqwest::multipart::Form {
    let mut f = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name("audio.wav"),
    );
    for (k, v) in fields {
        f = f.text(k.to_string(), v.to_string());
    }
    f
}

/// The value of metric line `name{labels}` in `/metrics` text, if present.
pub fn metric(text: &str, line_prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
