//! Whisper benchmark (issue: Whisper): JFK transcription, model load excluded,
//! one warm-up, median of N runs, at 1 and 2 threads (each in a child process,
//! since the thread pool is sized once per process), composed vs fused kernels,
//! the fused graphs in every encoder compute type (f32, bf16, int8), with peak RSS; then the peers in `bench/peers/` if their Python packages are
//! installed, on the same audio and thread counts.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use emily::Kernels;
use emily_models::whisper::{ComputeType, TranscribeOptions, Whisper};

/// Peak resident set size of this process in MB (Linux `VmHWM`).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// One measurement in this process: prints a result line.
pub fn run_child(
    model: &Path,
    audio: &Path,
    runs: usize,
    composed: bool,
    compute: ComputeType,
) -> Result<()> {
    let kernels = if composed {
        Kernels::Composed
    } else {
        Kernels::Fused
    };
    let w = Whisper::load_with(model, kernels, compute)?;
    let samples = emily_models::audio::load_audio(audio)?;
    // Greedy, as the peers are run (bench/peers/faster_whisper.py: beam 1).
    let opts = TranscribeOptions::greedy();
    let first = w.transcribe(&samples, &opts)?;
    let mut total = Vec::new();
    let mut enc = Vec::new();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let tr = w.transcribe(&samples, &opts)?;
        total.push(t.elapsed().as_secs_f64() * 1e3);
        enc.push(tr.timings.encoder.as_secs_f64() * 1e3);
        anyhow::ensure!(tr.text == first.text, "non-deterministic transcript");
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "emily {:<8} {:<4} threads {}: median {:>7.1} ms (encoder {:>6.1} ms), peak RSS {:>5.0} MB  {:?}",
        if composed { "composed" } else { "fused" },
        compute.resolve().name(),
        emily_kernels::parallel::num_threads(),
        med(&mut total),
        med(&mut enc),
        peak_rss_mb(),
        first.text.trim()
    );
    Ok(())
}

/// Runs every configuration in child processes, then the peers.
pub fn run(model: &Path, audio: &Path, runs: usize) -> Result<()> {
    let exe = std::env::current_exe()?;
    println!(
        "Whisper {} on {}, warm, model load excluded, median of {runs}",
        model.display(),
        audio.display()
    );
    let configs = [
        (true, "f32"),
        (false, "f32"),
        (false, "bf16"),
        (false, "int8-encoder"),
        (false, "int8"),
    ];
    for threads in [1, 2] {
        for (composed, compute) in configs {
            let mut cmd = Command::new(&exe);
            cmd.args([
                "--threads",
                &threads.to_string(),
                "bench-whisper-child",
                "--runs",
                &runs.to_string(),
            ])
            .arg("--model")
            .arg(model)
            .arg("--audio")
            .arg(audio);
            if composed {
                cmd.arg("--composed");
            }
            cmd.args(["--compute-type", compute]);
            let st = cmd.status().context("running the benchmark child")?;
            anyhow::ensure!(st.success(), "benchmark child failed");
        }
    }
    let peer = Path::new("bench/peers/faster_whisper.py");
    if peer.is_file() {
        let st = Command::new("python3")
            .arg(peer)
            .arg("--audio")
            .arg(audio)
            .args(["--runs", &runs.to_string()])
            .status();
        if !matches!(st, Ok(s) if s.success()) {
            println!(
                "peer faster-whisper: not run (python3 -m pip install faster-whisper to compare)"
            );
        }
    }
    Ok(())
}
