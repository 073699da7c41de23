//! `emily serve`: the OpenAI-compatible HTTP server (crate `emily-serve`).

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use emily::Kernels;
use emily_serve::{shutdown_signal, ServeConfig, Server};

/// Arguments of `emily serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Whisper model directory (default: the tiny.en model `make demo` fetches).
    #[arg(long)]
    whisper: Option<PathBuf>,
    /// GGUF language model for /v1/chat/completions and /v1/completions.
    #[arg(long)]
    llm: Option<PathBuf>,
    /// KV-cache positions per generation (prompt plus reply).
    #[arg(long, default_value_t = 2048)]
    llm_context: usize,
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port (0 = any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Inference workers sharing the weights.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Requests that may wait for a worker; more are answered 429.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Most requests one worker decodes together.
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// Require `Authorization: Bearer KEY` on every /v1 request.
    #[arg(long)]
    api_key: Option<String>,
    /// Largest request body in MiB (larger is 413).
    #[arg(long, default_value_t = 25)]
    max_body_mb: usize,
    /// Per-request time limit in seconds (then 504, and the work stops).
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
    /// Most MiB of freed tensor buffers kept for reuse (more go back to the
    /// system; bounds the memory that batches of changing sizes leave).
    #[arg(long, default_value_t = 256)]
    pool_cache_mb: usize,
    /// Whisper encoder precision: auto (as `emily transcribe`), f32, bf16,
    /// int8-encoder, int8.
    #[arg(long, default_value = "auto", value_parser = crate::transcribe::parse_compute_type)]
    compute_type: emily_models::whisper::ComputeType,
    /// Use the composed (unfused) norms and attention.
    #[arg(long)]
    no_fast_kernels: bool,
    /// Report ready without running each model once first (the first
    /// requests then pay its first-use compiles).
    #[arg(long)]
    no_warmup: bool,
}

/// Runs the server until Ctrl-C or SIGTERM, then drains.
pub fn run(a: Args) -> Result<()> {
    let mut config = ServeConfig::new(a.whisper.unwrap_or_else(crate::default_model_dir));
    config.llm = a.llm;
    config.llm_context = a.llm_context;
    config.host = a.host;
    config.port = a.port;
    config.workers = a.workers;
    config.queue = a.queue;
    config.max_batch = a.max_batch;
    config.api_key = a.api_key;
    config.max_body_bytes = a.max_body_mb.saturating_mul(1024 * 1024);
    config.timeout = Duration::from_secs(a.timeout_s);
    config.compute_type = a.compute_type;
    config.pool_cache_bytes = a.pool_cache_mb.saturating_mul(1024 * 1024);
    config.warm_up = !a.no_warmup;
    if a.no_fast_kernels {
        config.kernels = Kernels::Composed;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let server = Server::bind(config).await?;
        println!("emily serve: listening on http://{}", server.local_addr());
        std::io::stdout().flush()?;
        server.run(shutdown_signal()).await?;
        println!("emily serve: stopped");
        Ok(())
    })
}
