//! What a server is told at start: where the models are, where to listen,
//! how much work to accept.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use emily::Kernels;
use emily_models::whisper::ComputeType;

/// Server settings (the `emily serve` flags).
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Whisper model directory (CTranslate2 or Hugging Face layout).
    pub whisper: PathBuf,
    /// GGUF language model for the chat and completion routes, if any.
    pub llm: Option<PathBuf>,
    /// KV-cache positions per generation (prompt plus reply).
    pub llm_context: usize,
    /// Which kernels the Whisper graphs use.
    pub kernels: Kernels,
    /// The Whisper encoder's compute type (`Auto`, as the CLI: the 8-bit
    /// encoder where the CPU has a fast integer engine).
    pub compute_type: ComputeType,
    /// Address to bind (loopback unless told otherwise).
    pub host: IpAddr,
    /// Port to bind (0 = any free port).
    pub port: u16,
    /// Inference workers; each owns its per-request state and shares the weights.
    pub workers: usize,
    /// Requests that may wait for a worker; more are answered 429.
    pub queue: usize,
    /// Most requests one worker decodes together in one batch (transcriptions
    /// and generations alike).
    pub max_batch: usize,
    /// Bearer token every `/v1` request must carry, if set.
    pub api_key: Option<String>,
    /// Largest request body accepted (bytes); larger is 413.
    pub max_body_bytes: usize,
    /// Longest a request may take from arrival to answer; then 504.
    pub timeout: Duration,
    /// Most bytes of freed tensor buffers kept for reuse: more are returned
    /// to the system between decoder steps (batches of changing sizes leave
    /// buffers of many sizes behind).
    pub pool_cache_bytes: usize,
    /// Run each served model once before reporting ready, so the first
    /// requests do not pay its first-use compiles (as llama.cpp's server
    /// does; `--no-warmup` skips it).
    pub warm_up: bool,
}

impl ServeConfig {
    /// Defaults for a model directory: 127.0.0.1:8080, one worker, a queue of
    /// 64, batches of up to 8, 25 MB bodies (OpenAI's limit), 300 s timeout,
    /// 256 MiB of cached tensor buffers, warm-up on.
    pub fn new(whisper: PathBuf) -> ServeConfig {
        ServeConfig {
            whisper,
            llm: None,
            llm_context: 2048,
            kernels: Kernels::Fused,
            compute_type: ComputeType::Auto,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            workers: 1,
            queue: 64,
            max_batch: 8,
            api_key: None,
            max_body_bytes: 25 * 1024 * 1024,
            timeout: Duration::from_secs(300),
            pool_cache_bytes: 256 << 20,
            warm_up: true,
        }
    }

    /// The socket address to bind.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The served Whisper model's id (its directory name).
    pub fn whisper_id(&self) -> String {
        self.whisper
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "whisper".into())
    }

    /// The served language model's id (its file name without `.gguf`).
    pub fn llm_id(&self) -> Option<String> {
        let p = self.llm.as_ref()?;
        Some(
            p.file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "llm".into()),
        )
    }

    /// The ids of every served model.
    pub fn model_ids(&self) -> Vec<String> {
        std::iter::once(self.whisper_id())
            .chain(self.llm_id())
            .collect()
    }

    /// Checks the numbers; a clear message names the bad setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers == 0 || self.workers > 64 {
            return Err(format!("--workers must be 1..=64, got {}", self.workers));
        }
        if self.max_batch == 0 || self.max_batch > 64 {
            return Err(format!(
                "--max-batch must be 1..=64, got {}",
                self.max_batch
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(format!(
                "--max-body-mb gives {} bytes; at least 1 KiB is needed",
                self.max_body_bytes
            ));
        }
        if self.llm_context < 16 {
            return Err(format!(
                "--llm-context must be at least 16, got {}",
                self.llm_context
            ));
        }
        if self.timeout.is_zero() {
            return Err("--timeout-s must be positive".into());
        }
        if matches!(&self.api_key, Some(k) if k.is_empty()) {
            return Err("--api-key must not be empty".into());
        }
        Ok(())
    }
}
