//! Where one Whisper encoder pass spends its time (the hidden
//! `bench-encoder-child` command): the pass timed alone, back to back or with
//! a whole JFK transcription between passes (what `bench whisper` measures),
//! its page faults per pass, and with `EMILY_PROFILE=1` the plan's kernels
//! one by one (`EMILY_PROFILE_SHAPES=1` splits them by output shape),
//! summed against the pass's wall time.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use emily::{Kernels, Tensor};
use emily_models::log_mel::CHUNK_FRAMES;
use emily_models::whisper::{ComputeType, Session, TranscribeOptions, Whisper};

/// Minor page faults and CPU seconds (user + system, every thread) of this
/// process so far (zeros where `getrusage` fails).
fn usage() -> (u64, f64) {
    // SAFETY: `getrusage` writes one plain struct that we own.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return (0, 0.0);
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        (u.ru_minflt as u64, secs(u.ru_utime) + secs(u.ru_stime))
    }
}

/// Adds `profile` (label, seconds, runs) into `into`.
fn accumulate(into: &mut Vec<(&'static str, f64, u64)>, profile: Vec<(&'static str, f64, u64)>) {
    for (op, secs, n) in profile {
        match into.iter_mut().find(|e| e.0 == op) {
            Some(e) => {
                e.1 += secs;
                e.2 += n;
            }
            None => into.push((op, secs, n)),
        }
    }
}

/// Times `runs` encoder passes of `model` under `compute` on the JFK window
/// (with a whole transcription of `audio` before each pass when
/// `transcribe_between`), printing the median, the page faults per pass and,
/// when profiling, the per-kernel table of the passes.
pub fn run_child(
    model: &Path,
    audio: &Path,
    runs: usize,
    compute: ComputeType,
    transcribe_between: bool,
) -> Result<()> {
    let w = Whisper::load_with(model, Kernels::Fused, compute)?;
    let samples = emily_models::audio::load_audio(audio)?;
    let opts = TranscribeOptions::greedy();
    let mut session = Session::from_samples(&w, &samples, &opts)?;
    let Some(window) = session.next_window()? else {
        anyhow::bail!("{}: no window", audio.display());
    };
    let window = window.to_vec();
    let x = Tensor::from_slice(&window, &[1, w.dims().n_mels, CHUNK_FRAMES])?;
    // Warm-up: plans compiled, weights packed, scratch pooled.
    w.transcribe(&samples, &opts)?;
    w.graph().encode(&x)?.eval()?;
    let profiling = emily::telemetry::profiling();
    let mut ops = Vec::new();
    let (mut times, mut cpu, mut faults) = (Vec::new(), Vec::new(), 0u64);
    for _ in 0..runs.max(1) {
        if transcribe_between {
            w.transcribe(&samples, &opts)?;
        }
        if profiling {
            emily::telemetry::take_op_profile();
        }
        let (f0, c0) = usage();
        let t = Instant::now();
        w.graph().encode(&x)?.eval()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        let (f1, c1) = usage();
        faults += f1 - f0;
        cpu.push((c1 - c0) * 1e3);
        if profiling {
            accumulate(&mut ops, emily::telemetry::take_op_profile());
        }
    }
    let n = times.len() as f64;
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    cpu.sort_by(f64::total_cmp);
    println!(
        "encoder ({} = {}, {} threads{}): median {median:.1} ms, min {:.1}, max {:.1} over {} passes; process CPU median {:.1} ms, min {:.1} per pass; {:.0} minor page faults per pass",
        compute.name(),
        compute.resolve().name(),
        emily_kernels::parallel::num_threads(),
        if transcribe_between {
            ", a JFK transcription before each pass"
        } else {
            ", back to back"
        },
        sorted[0],
        sorted[sorted.len() - 1],
        times.len(),
        cpu[cpu.len() / 2],
        cpu[0],
        faults as f64 / n
    );
    if profiling {
        ops.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = ops.iter().map(|e| e.1).sum::<f64>() * 1e3 / n;
        let mean: f64 = times.iter().sum::<f64>() / n;
        println!("  per pass: kernels sum {total:.2} ms of {mean:.2} ms mean wall ({:.2} ms between kernels)", mean - total);
        for (op, secs, k) in &ops {
            let ms = secs * 1e3 / n;
            println!(
                "  {op:<44} {ms:>8.3} ms {:>5.1}% {:>6.1} runs",
                100.0 * ms / mean,
                *k as f64 / n
            );
        }
    }
    Ok(())
}
