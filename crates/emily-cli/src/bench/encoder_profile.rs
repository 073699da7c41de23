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

/// Timed encoder passes.
struct Passes {
    /// Wall milliseconds per pass.
    wall: Vec<f64>,
    /// Process CPU milliseconds per pass.
    cpu: Vec<f64>,
    /// Minor page faults over all passes.
    faults: u64,
    /// Kernel profile over all passes (empty unless profiling).
    ops: Vec<(&'static str, f64, u64)>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// `runs` passes of `w`'s encoder on `x`, each after a transcription of
/// `samples` when `transcribe_between`; the kernel profile when `profile`.
fn measure(
    w: &Whisper,
    x: &Tensor,
    samples: &[f32],
    runs: usize,
    transcribe_between: bool,
    profile: bool,
) -> Result<Passes> {
    let opts = TranscribeOptions::greedy();
    let was = emily::telemetry::profiling();
    emily::telemetry::set_profiling(profile);
    let mut p = Passes {
        wall: Vec::new(),
        cpu: Vec::new(),
        faults: 0,
        ops: Vec::new(),
    };
    for _ in 0..runs.max(1) {
        if transcribe_between {
            w.transcribe(samples, &opts)?;
        }
        emily::telemetry::take_op_profile();
        let (f0, c0) = usage();
        let t = Instant::now();
        w.graph().encode(x)?.eval()?;
        p.wall.push(t.elapsed().as_secs_f64() * 1e3);
        let (f1, c1) = usage();
        p.faults += f1 - f0;
        p.cpu.push((c1 - c0) * 1e3);
        if profile {
            accumulate(&mut p.ops, emily::telemetry::take_op_profile());
        }
    }
    emily::telemetry::set_profiling(was);
    p.ops.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(p)
}

impl Passes {
    /// One line: wall and CPU medians, faults per pass.
    fn summary(&self) -> String {
        let n = self.wall.len() as f64;
        format!(
            "median {:.1} ms (min {:.1}) over {} passes, process CPU {:.1} ms per pass, {:.0} minor page faults per pass",
            median(&self.wall),
            self.wall.iter().copied().fold(f64::INFINITY, f64::min),
            self.wall.len(),
            median(&self.cpu),
            self.faults as f64 / n
        )
    }

    /// The kernel table, `top` rows at most, then the rest summed.
    fn print_ops(&self, top: usize) {
        let n = self.wall.len() as f64;
        let mean = self.wall.iter().sum::<f64>() / n;
        let total = self.ops.iter().map(|e| e.1).sum::<f64>() * 1e3 / n;
        println!(
            "    per pass: kernels {total:.2} ms of {mean:.2} ms wall ({:.2} ms outside kernels)",
            mean - total
        );
        let row = |op: &str, secs: f64, k: f64| {
            let ms = secs * 1e3 / n;
            println!(
                "    {op:<44} {ms:>8.3} ms {:>5.1}% {:>6.1} runs",
                100.0 * ms / mean,
                k / n
            );
        };
        for (op, secs, k) in self.ops.iter().take(top) {
            row(op, *secs, *k as f64);
        }
        if self.ops.len() > top {
            let rest = &self.ops[top..];
            row(
                "(the rest)",
                rest.iter().map(|e| e.1).sum(),
                rest.iter().map(|e| e.2 as f64).sum(),
            );
        }
    }
}

/// For `bench core`'s encoder row: five passes back to back with their
/// kernel table, and five each after a JFK transcription (what `bench
/// whisper` times), side by side.
pub fn breakdown(w: &Whisper, x: &Tensor, samples: &[f32]) -> Result<()> {
    let alone = measure(w, x, samples, 5, false, true)?;
    println!("  encoder back to back: {}", alone.summary());
    alone.print_ops(8);
    let after = measure(w, x, samples, 5, true, false)?;
    println!(
        "  encoder after a JFK transcription each: {} ({:.2}x the wall, {:.2}x the CPU of back to back)",
        after.summary(),
        median(&after.wall) / median(&alone.wall),
        median(&after.cpu) / median(&alone.cpu)
    );
    Ok(())
}

/// Times `runs` encoder passes of `model` under `compute` on the first
/// window of `audio` (with a whole transcription of it before each pass
/// when `transcribe_between`), printing the median, the CPU time and page
/// faults per pass and, with `EMILY_PROFILE=1`, the per-kernel table.
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
    let x = Tensor::from_slice(window, &[1, w.dims().n_mels, CHUNK_FRAMES])?;
    // Warm-up: plans compiled, weights packed, scratch pooled.
    w.transcribe(&samples, &opts)?;
    w.graph().encode(&x)?.eval()?;
    let profile = emily::telemetry::profiling();
    let p = measure(&w, &x, &samples, runs, transcribe_between, profile)?;
    println!(
        "encoder ({} = {}, {} threads, {}): {}",
        compute.name(),
        compute.resolve().name(),
        emily_kernels::parallel::num_threads(),
        if transcribe_between {
            "a transcription before each pass"
        } else {
            "back to back"
        },
        p.summary()
    );
    if profile {
        p.print_ops(usize::MAX);
    }
    Ok(())
}
