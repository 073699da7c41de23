//! `emily transcribe`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use emily::Kernels;
use emily_models::audio::AudioSource;
use emily_models::tokenizer::Task;
use emily_models::whisper::{ComputeType, TranscribeOptions, Whisper};

use emily_models::whisper::render::{render_with, TranscriptFormat};

use crate::batch::{self, Shard};
use crate::decode_args::DecodeArgs;
use crate::format::Format;
use crate::subtitle_args::SubtitleArgs;

/// Arguments of `emily transcribe`.
#[derive(clap::Args)]
pub struct Args {
    /// Audio files; `-` reads standard input (e.g. `ffmpeg -i x.mp4 -f wav - | emily transcribe -`).
    /// Every input is attempted; the exit status is non-zero if any failed.
    #[arg(required_unless_present = "manifest")]
    files: Vec<PathBuf>,
    /// Batch mode: a text file listing audio files, one per line (relative
    /// paths from the manifest's folder; `#` comments). Each transcript is
    /// written under --output-dir; inputs whose transcript exists are skipped.
    #[arg(long, requires = "output_dir", conflicts_with = "files")]
    manifest: Option<PathBuf>,
    /// Batch mode: where the transcripts go (input paths mirrored, extension
    /// of --format).
    #[arg(long, requires = "manifest")]
    output_dir: Option<PathBuf>,
    /// Batch mode: transcribe only entries i, i+n, i+2n, … of the manifest
    /// (0-based), e.g. `--shard $JOB_COMPLETION_INDEX/8` in a Kubernetes
    /// indexed Job or `--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`.
    #[arg(long, value_parser = batch::parse_shard, requires = "manifest")]
    shard: Option<Shard>,
    /// Batch mode: files transcribed at once (sharing the loaded model and
    /// the --threads pool). Default 1.
    #[arg(long, requires = "manifest")]
    jobs: Option<usize>,
    /// Model directory (CTranslate2 or Hugging Face layout).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "txt")]
    format: Format,
    /// Timestamped segments.
    #[arg(long)]
    timestamps: bool,
    /// Use the composed (unfused) norms and attention.
    #[arg(long)]
    no_fast_kernels: bool,
    /// Language code for multilingual models (default: detect).
    #[arg(long)]
    language: Option<String>,
    /// Translate to English instead of transcribing (multilingual models).
    #[arg(long)]
    translate: bool,
    /// Number type of the matrix products: auto (the fastest encoder type
    /// this CPU runs on a matrix engine), f32, bf16, int8-encoder (int8
    /// encoder projections) or int8 (also int8 decoder weights, as
    /// faster-whisper's int8).
    #[arg(long, default_value = "auto", value_parser = parse_compute_type)]
    compute_type: ComputeType,
    #[command(flatten)]
    decode: Box<DecodeArgs>,
    #[command(flatten)]
    subtitles: SubtitleArgs,
}

/// Parses `--compute-type`.
pub fn parse_compute_type(s: &str) -> Result<ComputeType, String> {
    match s {
        "auto" => Ok(ComputeType::Auto),
        "f32" => Ok(ComputeType::F32),
        "bf16" => Ok(ComputeType::Bf16),
        "int8-encoder" => Ok(ComputeType::Int8Encoder),
        "int8" => Ok(ComputeType::Int8),
        _ => Err(format!(
            "unknown compute type `{s}` (auto, f32, bf16, int8-encoder, int8)"
        )),
    }
}

/// Runs the command.
pub fn run(a: Args, verbose: bool) -> Result<()> {
    let dir = a.model.clone().unwrap_or_else(crate::default_model_dir);
    let kernels = if a.no_fast_kernels {
        Kernels::Composed
    } else {
        Kernels::Fused
    };
    let t0 = std::time::Instant::now();
    let whisper = Whisper::load_with(&dir, kernels, a.compute_type)
        .with_context(|| format!("loading model {}", dir.display()))?;
    if verbose {
        eprintln!(
            "model loaded in {:.0} ms (compute type {})",
            t0.elapsed().as_secs_f64() * 1e3,
            a.compute_type.resolve().name()
        );
    }
    let opts = a.decode.options(TranscribeOptions {
        language: a.language.clone(),
        task: if a.translate {
            Task::Translate
        } else {
            Task::Transcribe
        },
        timestamps: a.timestamps || TranscriptFormat::from(a.format).needs_timestamps(),
        ..TranscribeOptions::default()
    })?;
    let timestamps = opts.timestamps;
    if let Some(manifest) = &a.manifest {
        let result = run_manifest(&whisper, manifest, &opts, &a, timestamps);
        crate::keep_until_exit(whisper);
        return result;
    }
    let mut failed = Vec::new();
    for f in &a.files {
        let mut source = AudioSource::from_arg(f);
        if let Err(e) = transcribe_one(&whisper, &mut source, &opts, &a, timestamps, verbose) {
            eprintln!("error: {e:#}");
            failed.push(source.name().to_string());
        }
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} inputs failed: {}",
            failed.len(),
            a.files.len(),
            failed.join(", ")
        );
    }
    crate::keep_until_exit(whisper);
    Ok(())
}

/// Batch mode: the manifest's shard, each transcript to its own file.
fn run_manifest(
    whisper: &Whisper,
    manifest: &std::path::Path,
    opts: &TranscribeOptions,
    a: &Args,
    timestamps: bool,
) -> Result<()> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading manifest {}", manifest.display()))?;
    let out_dir = a.output_dir.as_deref().expect("clap requires --output-dir");
    let extension = match a.format {
        Format::Txt => "txt",
        Format::Srt => "srt",
        Format::Vtt => "vtt",
        Format::Json => "json",
    };
    let jobs = batch::plan(
        manifest,
        &text,
        out_dir,
        extension,
        a.shard.unwrap_or(Shard::ALL),
    )?;
    let summary = batch::run(&jobs, a.jobs.unwrap_or(1), |input| {
        let tr = whisper
            .transcribe_source(&mut AudioSource::path(input), opts, &mut |_, _| {})
            .with_context(|| format!("transcribing {}", input.display()))?;
        Ok(render_with(
            &tr,
            a.format.into(),
            timestamps,
            &a.subtitles.layout(),
        ))
    });
    eprintln!(
        "{} written, {} already done, {} failed (of {} in this shard)",
        summary.done,
        summary.skipped,
        summary.failed.len(),
        jobs.len()
    );
    if !summary.failed.is_empty() {
        anyhow::bail!("{} of {} inputs failed", summary.failed.len(), jobs.len());
    }
    Ok(())
}

/// Transcribes one input and prints its transcript.
fn transcribe_one(
    whisper: &Whisper,
    source: &mut AudioSource<'_>,
    opts: &TranscribeOptions,
    a: &Args,
    timestamps: bool,
    verbose: bool,
) -> Result<()> {
    let name = source.name().to_string();
    let t = std::time::Instant::now();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut progress = |done: f64, total: f64| {
        if total <= 30.0 {
            return;
        }
        let b = bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {pos}/{len} s ({eta} left)",
                )
                .expect("valid template"),
            );
            b.set_message(name.clone());
            b
        });
        b.set_position(done as u64);
    };
    let tr = whisper
        .transcribe_source(source, opts, &mut progress)
        .with_context(|| format!("transcribing {name}"))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let (Some(code), Some(p)) = (&tr.language, tr.language_probability) {
        eprintln!("{name}: detected language '{code}' with probability {p:.2}");
    }
    if a.files.len() > 1 {
        println!("== {name}");
    }
    let layout = a.subtitles.layout();
    print!("{}", render_with(&tr, a.format.into(), timestamps, &layout));
    if verbose {
        let tm = &tr.timings;
        eprintln!(
            "{name}: total {:.0} ms (features {:.0} ms, encoder {:.0} ms, decoder {:.0} ms / {} steps)",
            t.elapsed().as_secs_f64() * 1e3,
            tm.features.as_secs_f64() * 1e3,
            tm.encoder.as_secs_f64() * 1e3,
            tm.decoder.as_secs_f64() * 1e3,
            tm.decoder_steps
        );
        for (op, secs, runs) in emily::telemetry::take_op_profile().iter().take(12) {
            eprintln!("  {op:<32} {:>8.1} ms  {runs:>6} runs", secs * 1e3);
        }
    }
    Ok(())
}
