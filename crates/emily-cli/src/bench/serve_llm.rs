//! `emily bench serve`'s language-model rows: `emily serve --llm` with
//! SmolLM2 under C = 1 and 4 concurrent clients, each streaming greedy chat
//! completions of a fixed length in a closed loop. Requests waiting together
//! are decoded as one batch, so the generated tokens per second at C = 4 over
//! C = 1 is what batching wins.

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Result};
use tokio::task::JoinSet;

use super::serve::{quantile, ServerChild};

/// The language model the rows use (fetched by `make models`).
const LLM: &str = "models/llm/SmolLM2-135M-Instruct.Q4_1.gguf";
/// Most tokens each answer generates (the answers' usage counts them).
const MAX_TOKENS: usize = 64;
/// Requests each client sends per level.
const PER_CLIENT: usize = 3;

/// One streamed chat completion; returns its seconds and its completion
/// tokens (from the usage chunk).
async fn chat(client: &reqwest::Client, url: &str, seed: usize) -> Result<(f64, usize)> {
    let body = serde_json::json!({
        "messages": [{"role": "user", "content": format!("Tell me a story about the number {seed}.")}],
        "temperature": 0, "max_tokens": MAX_TOKENS, "stream": true,
        "stream_options": {"include_usage": true},
    });
    let t0 = Instant::now();
    let r = client
        .post(format!("{url}/v1/chat/completions"))
        .json(&body)
        .send()
        .await?;
    ensure!(r.status().is_success(), "status {}", r.status());
    let text = r.text().await?;
    let tokens = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| v["usage"]["completion_tokens"].as_u64())
        .next_back()
        .unwrap_or(0) as usize;
    Ok((t0.elapsed().as_secs_f64(), tokens))
}

/// `clients` clients each streaming `per_client` chat completions one after
/// another: their latencies, the completion tokens and the wall seconds.
async fn chat_loop(url: &str, clients: usize, per_client: usize) -> Result<(Vec<f64>, usize, f64)> {
    let client = reqwest::Client::new();
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for k in 0..clients {
        let (client, url) = (client.clone(), url.to_string());
        set.spawn(async move {
            let mut out = Vec::new();
            for i in 0..per_client {
                out.push(chat(&client, &url, k * per_client + i).await?);
            }
            anyhow::Ok(out)
        });
    }
    let (mut lat, mut tokens) = (Vec::new(), 0);
    while let Some(r) = set.join_next().await {
        for (s, t) in r?? {
            lat.push(s);
            tokens += t;
        }
    }
    Ok((lat, tokens, t0.elapsed().as_secs_f64()))
}

/// Prints the rows (skipped, saying so, when the model is not fetched).
pub fn run(whisper: &Path, rt: &tokio::runtime::Runtime) -> Result<()> {
    let llm = Path::new(LLM);
    if !llm.is_file() {
        println!("llm serving: skipped ({LLM} is missing; run `make models`)");
        return Ok(());
    }
    let server = ServerChild::start(whisper, 64, &["--llm".as_ref(), llm.as_os_str()], rt)?;
    println!(
        "llm serving: {LLM}, streamed greedy chat completions of {MAX_TOKENS} tokens (each level after one untimed round)\n{:>3} {:>5} {:>9} {:>8} {:>8} {:>10}",
        "C", "reqs", "tok/s", "p50 ms", "p99 ms", "vs C=1"
    );
    let mut base = None;
    for c in [1usize, 4] {
        // One untimed round per level first (buffers grown, plans compiled).
        rt.block_on(chat_loop(&server.url, c, 1))?;
        let (mut lat, tokens, wall) = rt.block_on(chat_loop(&server.url, c, PER_CLIENT))?;
        lat.sort_by(f64::total_cmp);
        let tps = tokens as f64 / wall;
        let b = *base.get_or_insert(tps);
        println!(
            "{c:>3} {:>5} {tps:>9.1} {:>8.0} {:>8.0} {:>9.2}x",
            lat.len(),
            quantile(&lat, 0.5) * 1e3,
            quantile(&lat, 0.99) * 1e3,
            tps / b
        );
    }
    println!("llm server peak RSS {:.0} MB", server.memory_mb("VmHWM:"));
    ensure!(server.stop()?, "the server did not exit cleanly on SIGTERM");
    Ok(())
}
