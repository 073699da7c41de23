//! `emily demo`: the seed notebook's part 2 — Whisper tiny.en on the JFK clip
//! with composed and with fused kernels, same words, both timed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use emily::Kernels;
use emily_models::whisper::{TranscribeOptions, Whisper};

/// Arguments of `emily demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Model directory.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Audio file (default: samples/jfk.wav).
    #[arg(long, default_value = "samples/jfk.wav")]
    audio: PathBuf,
    /// Timed runs per variant (after one warm-up).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

fn median_ms(w: &Whisper, audio: &[f32], runs: usize) -> Result<(String, f64)> {
    let opts = TranscribeOptions::default();
    let text = w.transcribe(audio, &opts)?.text;
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let again = w.transcribe(audio, &opts)?.text;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(again == text, "non-deterministic transcript");
    }
    times.sort_by(f64::total_cmp);
    Ok((text, times[times.len() / 2]))
}

/// Runs the demo.
pub fn run(a: Args) -> Result<()> {
    let dir = a.model.unwrap_or_else(crate::default_model_dir);
    let audio = emily_models::audio::load_audio(&a.audio)
        .with_context(|| format!("reading {}", a.audio.display()))?;
    println!(
        "Whisper {} on {} ({:.1} s)",
        dir.display(),
        a.audio.display(),
        audio.len() as f64 / 16000.0
    );
    let base = Whisper::load(&dir, Kernels::Composed)
        .with_context(|| format!("loading {}", dir.display()))?;
    let fast = Whisper::load(&dir, Kernels::Fused)?;
    let (t_base, ms_base) = median_ms(&base, &audio, a.runs)?;
    let (t_fast, ms_fast) = median_ms(&fast, &audio, a.runs)?;
    println!("baseline:     {t_base}");
    println!("fast kernels: {t_fast}");
    println!("identical text: {}", t_base == t_fast);
    println!(
        "baseline {ms_base:.1} ms, fast kernels {ms_fast:.1} ms, speedup {:.2}x (median of {})",
        ms_base / ms_fast,
        a.runs
    );
    println!("top-10 op frequencies of the rewritten graphs:");
    for (op, n) in fast.graph().op_frequencies().iter().take(10) {
        println!("  {op:<32} {n:>5}");
    }
    ensure!(t_base == t_fast, "the two servings disagree");
    crate::keep_until_exit((base, fast));
    Ok(())
}
