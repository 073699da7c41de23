//! Whisper benchmark (issue: Whisper parity): ours in f32, `auto` and int8
//! (greedy), f32 beam 5 and f32 on the composed graph (no fast kernels: their
//! gain per model), side by side with faster-whisper (float32, int8,
//! float32 beam 5) and whisper.cpp (f16, q8_0, f16 beam 5) when installed,
//! on every model of `EMILY_BENCH_WHISPER_MODELS` (default tiny.en and
//! base), JFK and a 5-minute long-form input, at 1 and 2 threads. Every
//! configuration runs in its own processes: warm in-process (model loaded,
//! one warm-up on JFK, then the median of the runs) and whole-process (a
//! fresh process that loads the model and transcribes once, wall time and
//! peak RSS). All decode the same way: timestamps, temperature 0 without
//! fallback, English, the previous text as prompt, no VAD.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use emily::Kernels;
use emily_models::whisper::{ComputeType, TranscribeOptions, Whisper};

use super::whisper_procs::{self as procs, measure};

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

/// The decoding every implementation is run with (beam `beam`).
fn bench_options(beam: usize) -> TranscribeOptions {
    TranscribeOptions {
        timestamps: true,
        language: Some("en".into()),
        beam_size: beam,
        temperatures: vec![0.0],
        ..TranscribeOptions::default()
    }
}

/// The warm-up input of every implementation.
const WARM_UP: &str = "samples/jfk.wav";

/// One warm in-process measurement (the `bench-whisper-child` command):
/// prints a JSON line `{"warm_ms", "warm_cpu_ms", "encoder_ms", "text", "step"}` (`step`:
/// the 1-row decoder step against its floor, [`super::whisper_step`]).
pub fn run_child(
    model: &Path,
    audio: &Path,
    runs: usize,
    compute: ComputeType,
    beam: usize,
    kernels: Kernels,
) -> Result<()> {
    let w = Whisper::load_with(model, kernels, compute)?;
    let samples = emily_models::audio::load_audio(audio)?;
    let opts = bench_options(beam);
    w.transcribe(&emily_models::audio::load_audio(Path::new(WARM_UP))?, &opts)?;
    let mut total = Vec::new();
    let mut cpu = Vec::new();
    let mut enc = Vec::new();
    let mut text = String::new();
    for _ in 0..runs.max(1) {
        let c = super::timer::process_usage().0;
        let t = Instant::now();
        let tr = w.transcribe(&samples, &opts)?;
        total.push(t.elapsed().as_secs_f64() * 1e3);
        cpu.push((super::timer::process_usage().0 - c) * 1e3);
        enc.push(tr.timings.encoder.as_secs_f64() * 1e3);
        anyhow::ensure!(
            text.is_empty() || tr.text == text,
            "non-deterministic transcript"
        );
        text = tr.text;
    }
    if emily::telemetry::profiling() {
        // Encoder and decoding of the timed runs (the step below starts afresh).
        eprintln!("transcribe op profile (per run, {} runs):", runs.max(1));
        for (op, secs, n) in emily::telemetry::take_op_profile() {
            let per = runs.max(1) as f64;
            eprintln!(
                "  {op:<40} {:>8.3} ms {:>8.1} runs",
                secs * 1e3 / per,
                n as f64 / per
            );
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "warm_ms": median(&mut total),
            // CPU time of the whole process per run (all threads): the
            // measure that survives a loaded machine at one thread.
            "warm_cpu_ms": median(&mut cpu),
            "encoder_ms": median(&mut enc),
            "text": text.trim(),
            // The step is the same under beam search: measured once, greedy.
            "step": if beam == 1 { super::whisper_step::measure(&w)? } else { serde_json::Value::Null },
        })
    );
    Ok(())
}

/// The decoder step alone (`bench-whisper-child --step-only`): `runs`
/// measurements ([`super::whisper_step::measure`]), one JSON line each.
pub fn run_step_child(
    model: &Path,
    runs: usize,
    compute: ComputeType,
    kernels: Kernels,
) -> Result<()> {
    let w = Whisper::load_with(model, kernels, compute)?;
    for _ in 0..runs.max(1) {
        println!("{}", super::whisper_step::measure(&w)?);
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One row of a table.
struct Row {
    who: &'static str,
    config: String,
    warm_ms: f64,
    process_ms: f64,
    rss_mb: f64,
    text: String,
    /// The decoder-step line ([`super::whisper_step::describe`]), ours only.
    step: Option<String>,
}

impl Row {
    /// A row from a warm-run result line (`warm_ms`, `text`) and the
    /// whole-process run of the same configuration.
    fn from_runs(
        who: &'static str,
        config: String,
        warm: &serde_json::Value,
        whole: &procs::ProcRun,
    ) -> Row {
        Row {
            who,
            config,
            warm_ms: warm["warm_ms"].as_f64().unwrap_or(f64::NAN),
            process_ms: whole.wall_ms,
            rss_mb: whole.peak_rss_mb,
            text: warm["text"].as_str().unwrap_or("").to_string(),
            step: super::whisper_step::describe(who, &warm["step"]),
        }
    }
}

/// The comparisons the targets name: (ours, peers to beat).
const TARGETS: [(&str, &[&str]); 4] = [
    ("emily f32", &["faster-whisper float32", "whisper.cpp f16"]),
    ("emily auto", &["faster-whisper float32", "whisper.cpp f16"]),
    ("emily int8", &["faster-whisper int8"]),
    ("emily f32 beam 5", &["faster-whisper float32 beam 5"]),
];

/// Our f32 greedy configuration on the composed graph (no fast kernels):
/// the fast kernels' gain is `emily f32` against it, per model (the
/// original's claim: larger models see bigger wins).
const COMPOSED: &str = "emily f32 composed graph";

/// The peak-memory comparisons: (ours, the peer of the same precision class).
const RSS_TARGETS: [(&str, &str); 2] = [
    ("emily auto", "whisper.cpp f16"),
    ("emily int8", "whisper.cpp q8_0"),
];

/// Settings read from the environment.
struct Plan {
    models: Vec<PathBuf>,
    inputs: Vec<(String, PathBuf, usize)>,
    threads: Vec<usize>,
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn plan(default_model: &Path, runs: usize) -> Result<Plan> {
    let default_models = format!("{},models/whisper-base", default_model.display());
    let given = std::env::var_os("EMILY_BENCH_WHISPER_MODELS").is_some();
    let mut models = Vec::new();
    for m in env_list("EMILY_BENCH_WHISPER_MODELS", &default_models) {
        let m = PathBuf::from(m);
        if m.join("model.bin").is_file() || m.join("model.safetensors").is_file() {
            models.push(m);
        } else if given {
            anyhow::bail!(
                "EMILY_BENCH_WHISPER_MODELS: {} holds no Whisper model (no model.bin or model.safetensors; `make models` fetches tiny.en and base)",
                m.display()
            );
        } else {
            println!("model {}: not fetched (make models), skipped", m.display());
        }
    }
    let mut inputs = Vec::new();
    for name in env_list("EMILY_BENCH_WHISPER_INPUTS", "jfk,long") {
        match name.as_str() {
            "jfk" => inputs.push(("JFK 11 s".into(), PathBuf::from("samples/jfk.wav"), runs)),
            "long" => inputs.push(("long-form 5 min".into(), procs::long_form_audio(5.0)?, 1)),
            other => {
                anyhow::bail!("EMILY_BENCH_WHISPER_INPUTS: unknown input `{other}` (jfk, long)")
            }
        }
    }
    let threads = env_list("EMILY_BENCH_WHISPER_THREADS", "1,2")
        .iter()
        .map(|t| t.parse::<usize>().context("EMILY_BENCH_WHISPER_THREADS"))
        .collect::<Result<_>>()?;
    Ok(Plan {
        models,
        inputs,
        threads,
    })
}

/// Runs every configuration (each in child processes), table by table.
pub fn run(model: &Path, runs: usize) -> Result<()> {
    let plan = plan(model, runs)?;
    let exe = std::env::current_exe()?;
    let fw = procs::faster_whisper_available();
    let wcpp = procs::whisper_cpp_cli();
    println!(
        "Whisper: timestamps, temperature 0 (no fallback), English, no VAD; warm = median in one process after a JFK warm-up \
         (JFK: {runs} runs, long-form: 1), whole process = load + one transcription, peak RSS of that process"
    );
    if !fw {
        println!("peer faster-whisper: not installed (python3 -m pip install faster-whisper, or link a venv as bench/peers/.venv)");
    }
    if wcpp.is_none() {
        println!("peer whisper.cpp: not built (bash bench/peers/whisper_cpp.sh build)");
    }
    for model in &plan.models {
        let ggml = match &wcpp {
            Some(_) => match procs::whisper_cpp_models(model) {
                Ok(m) => Some(m),
                Err(e) => {
                    println!("peer whisper.cpp: no model for {}: {e:#}", model.display());
                    None
                }
            },
            None => None,
        };
        for (input, audio, runs) in &plan.inputs {
            for &threads in &plan.threads {
                let mut rows = ours(&exe, model, audio, threads, *runs)?;
                if fw {
                    rows.extend(faster_whisper_rows(model, audio, threads, *runs)?);
                }
                if let (Some(cli), Some((f16, q8))) = (&wcpp, &ggml) {
                    rows.extend(whisper_cpp_rows(cli, f16, q8, audio, threads, *runs)?);
                }
                print_table(model, input, threads, &rows);
            }
        }
    }
    Ok(())
}

fn ours(exe: &Path, model: &Path, audio: &Path, threads: usize, runs: usize) -> Result<Vec<Row>> {
    let auto = ComputeType::Auto.resolve().name();
    // (compute type, label, beam, composed graph)
    let configs = [
        ("f32", "f32".to_string(), 1, false),
        ("auto", format!("auto = {auto}"), 1, false),
        ("int8", "int8".to_string(), 1, false),
        ("f32", "f32 beam 5".to_string(), 5, false),
        ("f32", "f32 composed graph".to_string(), 1, true),
    ];
    let mut rows = Vec::new();
    for (compute, label, beam, composed) in configs {
        let mut child = Command::new(exe);
        child
            .args(["--threads", &threads.to_string(), "bench-whisper-child"])
            .args(["--runs", &runs.to_string(), "--compute-type", compute])
            .args(["--beam-size", &beam.to_string()])
            .arg("--model")
            .arg(model)
            .arg("--audio")
            .arg(audio);
        if composed {
            child.arg("--composed");
        }
        let warm: serde_json::Value = serde_json::from_str(measure(&mut child)?.stdout.trim())
            .context("the benchmark child's result line")?;
        let mut whole = Command::new(exe);
        whole
            .args([
                "--threads",
                &threads.to_string(),
                "transcribe",
                "--timestamps",
            ])
            .args(["--compute-type", compute, "--beam-size", &beam.to_string()])
            .args(["--temperature", "0", "--language", "en", "--model"])
            .arg(model)
            .arg(audio);
        if composed {
            whole.arg("--no-fast-kernels");
        }
        let p = measure(&mut whole)?;
        let who = match (compute, beam, composed) {
            (_, _, true) => COMPOSED,
            ("f32", 5, _) => "emily f32 beam 5",
            ("f32", _, _) => "emily f32",
            ("auto", _, _) => "emily auto",
            _ => "emily int8",
        };
        let config = format!(
            "{label} (encoder {:.0} ms)",
            warm["encoder_ms"].as_f64().unwrap_or(f64::NAN)
        );
        let mut row = Row::from_runs(who, config, &warm, &p);
        if composed {
            // Its step is no target's; the fused f32 row reports the step.
            row.step = None;
        }
        rows.push(row);
    }
    Ok(rows)
}

fn faster_whisper_rows(
    model: &Path,
    audio: &Path,
    threads: usize,
    runs: usize,
) -> Result<Vec<Row>> {
    let configs = [
        ("float32", 1, "faster-whisper float32"),
        ("int8", 1, "faster-whisper int8"),
        ("float32", 5, "faster-whisper float32 beam 5"),
    ];
    let mut rows = Vec::new();
    for (ct, beam, who) in configs {
        let warm = measure(&mut procs::faster_whisper(
            model, audio, threads, ct, beam, runs,
        ))?;
        let warm: serde_json::Value = serde_json::from_str(warm.stdout.trim())
            .context("bench/peers/faster_whisper.py's result line")?;
        let p = measure(&mut procs::faster_whisper(
            model, audio, threads, ct, beam, 0,
        ))?;
        let config = who.trim_start_matches("faster-whisper ").to_string();
        rows.push(Row::from_runs(who, config, &warm, &p));
    }
    Ok(rows)
}

/// whisper.cpp's warm time: one process transcribing the warm-up and then
/// the input `runs` times, minus one process transcribing the warm-up alone,
/// per run.
fn whisper_cpp_rows(
    cli: &Path,
    f16: &Path,
    q8: &Path,
    audio: &Path,
    threads: usize,
    runs: usize,
) -> Result<Vec<Row>> {
    let configs = [
        (f16, 1, "whisper.cpp f16"),
        (q8, 1, "whisper.cpp q8_0"),
        (f16, 5, "whisper.cpp f16 beam 5"),
    ];
    let warm_up = Path::new(WARM_UP);
    let mut rows = Vec::new();
    for (ggml, beam, who) in configs {
        let base = measure(&mut procs::whisper_cpp(
            cli,
            ggml,
            threads,
            beam,
            &[warm_up],
        ))?;
        let mut files = vec![warm_up];
        files.extend(std::iter::repeat_n(audio, runs.max(1)));
        let many = measure(&mut procs::whisper_cpp(cli, ggml, threads, beam, &files))?;
        let once = measure(&mut procs::whisper_cpp(cli, ggml, threads, beam, &[audio]))?;
        let text = procs::whisper_cpp_text(&once.stdout);
        rows.push(Row {
            who,
            config: who.trim_start_matches("whisper.cpp ").to_string(),
            warm_ms: (many.wall_ms - base.wall_ms) / runs.max(1) as f64,
            process_ms: once.wall_ms,
            rss_mb: once.peak_rss_mb,
            text,
            step: None,
        });
    }
    Ok(rows)
}

fn print_table(model: &Path, input: &str, threads: usize, rows: &[Row]) {
    let name = model.file_name().map_or_else(
        || model.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    println!("\n{name} · {input} · {threads} thread(s)\n");
    println!("| implementation | warm in-process | whole process | peak RSS | text |");
    println!("|---|---|---|---|---|");
    for r in rows {
        let words = r.text.split_whitespace().count();
        let head: String = r.text.chars().take(40).collect();
        println!(
            "| {} {} | {:.0} ms | {:.0} ms | {:.0} MB | {words} words: {head}… |",
            r.who.split(' ').next().unwrap_or(""),
            r.config,
            r.warm_ms,
            r.process_ms,
            r.rss_mb
        );
    }
    let find = |who: &str| rows.iter().find(|r| r.who == who);
    for (ours, peers) in TARGETS {
        let Some(o) = find(ours) else { continue };
        let best = peers
            .iter()
            .filter_map(|p| find(p))
            .min_by(|a, b| a.warm_ms.total_cmp(&b.warm_ms));
        if let Some(p) = best {
            println!(
                "{ours} / {}: warm {:.2}×, whole process {:.2}× (target ≤ 0.70×)",
                p.who,
                o.warm_ms / p.warm_ms,
                o.process_ms / p.process_ms
            );
        }
    }
    if let (Some(f), Some(c)) = (find("emily f32"), find(COMPOSED)) {
        println!(
            "fast kernels ({name}): emily f32 {:.0} ms, composed graph {:.0} ms warm: composed / fused {:.2}×",
            f.warm_ms,
            c.warm_ms,
            c.warm_ms / f.warm_ms
        );
    }
    for line in rows.iter().filter_map(|r| r.step.as_deref()) {
        println!("{line}");
    }
    for (ours, peer) in RSS_TARGETS {
        if let (Some(o), Some(p)) = (find(ours), find(peer)) {
            println!(
                "peak RSS {ours} / {peer}: {:.2}× (target ≤ 1)",
                o.rss_mb / p.rss_mb
            );
        }
    }
}

/// Warm runs per configuration on JFK: `EMILY_BENCH_WHISPER_RUNS`, default 5.
pub fn runs() -> Result<usize> {
    match std::env::var("EMILY_BENCH_WHISPER_RUNS") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("EMILY_BENCH_WHISPER_RUNS={v}: a positive count")),
        Err(_) => Ok(5),
    }
}
