//! LLM benchmark: prefill tok/s on a 128-token prompt and decode tok/s over
//! 128 tokens, base vs fast-kernel graphs (and the fast graph with f32
//! activations in its quantized products), at 1 and 2 threads (each in a
//! child process, since the thread pool is sized once per process), with
//! peak RSS and the decode floor (weight bytes read per token ÷ streaming-read
//! bandwidth measured at the same thread count); then llama.cpp
//! (`bench/peers/llama_cpp.sh`) when built. The f32-activation rows take most
//! of the time and no target needs them: `EMILY_BENCH_LLM_EXACT=1` adds them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use emily_models::llm::{GenerateOptions, LlmModel, LoadOptions};

use super::whisper::peak_rss_mb;

/// Prompt and generated tokens.
const TOKENS: usize = 128;
/// KV-cache positions (prompt + generated), as llama.cpp's `-c 512`.
const CONTEXT: usize = 512;

const TEXT: &str = "The old lighthouse stood at the edge of the cliff, its white paint peeling in the salt wind. Every night for a hundred years it had turned its lamp toward the sea, guiding fishing boats safely home through fog and storm. ";

/// The models benchmarked: the fetched GGUF files that exist.
fn models() -> Vec<PathBuf> {
    [
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "qwen2.5-coder-0.5b-instruct.gguf",
        "gemma-3-270m-q4_k_m.gguf",
    ]
    .iter()
    .map(|f| Path::new("models/llm").join(f))
    .filter(|p| p.is_file())
    .collect()
}

/// One configuration in this process: prints a result line.
pub fn run_child(model: &Path, composed: bool, runs: usize) -> Result<()> {
    let opts = LoadOptions {
        context: Some(CONTEXT),
        fast_kernels: !composed,
    };
    let m = LlmModel::load(model, opts)?;
    let mut prompt = m.tokenizer().encode(&TEXT.repeat(8), false)?;
    prompt.truncate(TOKENS);
    let gen = GenerateOptions {
        max_tokens: TOKENS + 1,
        model_stop_tokens: false,
        ..GenerateOptions::default()
    };
    // Warm-up: compiles the prefill and decode plans.
    m.generator(&prompt, &gen)?.run(|_| true)?;
    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        let g = m.generator(&prompt, &gen)?.run(|_| true)?;
        prefill.push(g.timings.prefill_tokens_per_second());
        decode.push(g.timings.decode_tokens_per_second());
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // Every matrix is read once per token; the token embedding only row by
    // row (unless it is also the tied output projection); a tied tensor
    // counts once.
    let mut seen = std::collections::HashSet::new();
    let weight_mb: f64 = m
        .params()
        .iter()
        .filter(|(k, t)| *k != "token_embd.weight" && seen.insert(t.id()))
        .map(|(_, t)| t.dtype().storage_bytes(t.shape()).unwrap_or(0) as f64 / 1e6)
        .sum();
    println!(
        "emily {:<10} threads {}: prefill {:>7.1} tok/s, decode {:>6.1} tok/s, peak RSS {:>5.0} MB, weights read per token {:>6.0} MB",
        match (composed, emily_kernels::quant::exact_products()) {
            (true, false) => "base",
            (false, false) => "fast",
            (true, true) => "base exact",
            (false, true) => "fast exact",
        },
        emily_kernels::parallel::num_threads(),
        med(&mut prefill),
        med(&mut decode),
        peak_rss_mb(),
        weight_mb
    );
    // Measured after the peak RSS was read: the probe's 256 MiB must not
    // count in it.
    let read = super::floor::read_bandwidth_gbs();
    println!(
        "  decode floor {:.1} tok/s ({weight_mb:.0} MB per token / {read:.1} GB/s streaming read at {} threads)",
        read * 1e3 / weight_mb,
        emily_kernels::parallel::num_threads()
    );
    // What the buffer pool holds, to tell tensors from the mapped weights,
    // the tokenizer and code in the peak RSS.
    let mem = emily::memory::stats();
    println!(
        "  buffers: peak {:.0} MB, active {:.0} MB, cached {:.0} MB, plans {:.0} MB in {}",
        mem.peak_bytes as f64 / 1e6,
        mem.active_bytes as f64 / 1e6,
        mem.cached_bytes as f64 / 1e6,
        mem.plan_cache_bytes as f64 / 1e6,
        mem.plan_cache_entries
    );
    Ok(())
}

/// Runs every model and configuration in child processes, then llama.cpp.
pub fn run(runs: usize) -> Result<()> {
    let exe = std::env::current_exe()?;
    let models = models();
    if models.is_empty() {
        println!("no models/llm/*.gguf: run scripts/fetch-models.sh llm (or llm-all)");
        return Ok(());
    }
    let exact_rows = std::env::var("EMILY_BENCH_LLM_EXACT").is_ok_and(|v| v == "1");
    let bw = super::floor::copy_bandwidth_gbs();
    println!(
        "LLM: {TOKENS}-token prompt, {TOKENS} decoded tokens, context {CONTEXT}, median of {runs}; copy bandwidth {bw:.1} GB/s"
    );
    for model in &models {
        let file = emily_models::gguf::GgufFile::open(model)?;
        let gguf_mb = file.tensors().iter().map(|t| t.size as f64).sum::<f64>() / 1e6;
        println!(
            "== {} ({gguf_mb:.0} MB of GGUF tensors) ==",
            model.display()
        );
        for threads in [1, 2] {
            // The fast graph also with f32 activations in the quantized
            // products (the prefill kernel before 8-bit activations).
            for (composed, exact) in [(true, false), (false, false), (false, true)] {
                if exact && !exact_rows {
                    continue;
                }
                let mut cmd = Command::new(&exe);
                cmd.args(["--threads", &threads.to_string(), "bench-llm-child"])
                    .args(["--runs", &runs.to_string()])
                    .arg("--model")
                    .arg(model);
                if composed {
                    cmd.arg("--composed");
                }
                if exact {
                    cmd.arg("--exact");
                }
                let st = cmd.status().context("running the benchmark child")?;
                anyhow::ensure!(st.success(), "benchmark child failed");
            }
        }
        let peer = Path::new("bench/peers/llama_cpp.sh");
        let st = Command::new("bash")
            .arg(peer)
            .arg("run")
            .arg(model)
            .status();
        if !matches!(st, Ok(s) if s.success()) {
            println!("peer llama.cpp: not run (bash bench/peers/llama_cpp.sh build)");
        }
    }
    Ok(())
}
