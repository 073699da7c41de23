//! `emily`: transcribe audio with Whisper, run the fast-kernels demo, inspect
//! and convert models, benchmark.

mod batch;
mod bench;
mod decode_args;
mod demo;
mod format;
mod generate;
mod inspect;
mod quantize;
mod serve;
mod subtitle_args;
mod train;
mod transcribe;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Emily for Rust: a lazy-graph ML runtime with fused transformer kernels.
#[derive(Parser)]
#[command(name = "emily", version, about)]
struct Cli {
    /// Worker threads (default: `EMILY_NUM_THREADS`, else all cores). 0 is an
    /// error; more than 4 per core is clamped to that, with a warning.
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Log per-stage timings and compiler events.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Transcribe audio files (WAV, FLAC, MP3, OGG) or standard input (`-`).
    Transcribe(transcribe::Args),
    /// Generate text after a prompt with a GGUF language model (streams to stdout).
    Generate(generate::Args),
    /// Chat with a GGUF language model: one user turn per line of stdin.
    Chat(generate::ChatArgs),
    /// Rewrite a GGUF model's weight matrices as q8_0, q4_0 or int4-g64.
    Quantize(quantize::Args),
    /// The fast-kernels demo: JFK with and without fused kernels, side by side.
    Demo(demo::Args),
    /// Serve models over HTTP (OpenAI-compatible routes, web page at /).
    Serve(serve::Args),
    /// Print a model's dimensions and its compiled graphs' op frequencies.
    Inspect(inspect::Args),
    /// Benchmarks printed side by side with ratios and machine floors.
    Bench {
        /// Which suite.
        #[arg(value_enum, default_value = "all")]
        suite: bench::Suite,
    },
    /// (internal) one Whisper benchmark configuration, run by `bench whisper`.
    #[command(hide = true)]
    BenchWhisperChild {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        audio: PathBuf,
        #[arg(long, default_value_t = 7)]
        runs: usize,
        #[arg(long, default_value = "f32", value_parser = transcribe::parse_compute_type)]
        compute_type: emily_models::whisper::ComputeType,
        #[arg(long, default_value_t = 1)]
        beam_size: usize,
        /// The composed graph (no fast kernels), as `transcribe --no-fast-kernels`.
        #[arg(long)]
        composed: bool,
        /// Only the decoder step against its floor, `runs` times (one JSON
        /// line each; no transcription): for A/B runs of the step alone.
        #[arg(long)]
        step_only: bool,
    },
    /// (internal) Whisper encoder passes timed alone (and per kernel under
    /// `EMILY_PROFILE=1`): where one pass spends its time.
    #[command(hide = true)]
    BenchEncoderChild {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "samples/jfk.wav")]
        audio: PathBuf,
        #[arg(long, default_value_t = 7)]
        runs: usize,
        #[arg(long, default_value = "auto", value_parser = transcribe::parse_compute_type)]
        compute_type: emily_models::whisper::ComputeType,
        /// Transcribe the audio before each pass (as `bench whisper` does).
        #[arg(long)]
        transcribe_between: bool,
    },
    /// Train a recipe on real data (digits classifier or byte LM), evaluate
    /// held out, save and reload the parameters.
    Train(train::Args),
    /// (internal) one LLM benchmark configuration, run by `bench llm`.
    #[command(hide = true)]
    BenchLlmChild {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long)]
        composed: bool,
        /// Keep the activations of quantized products in f32.
        #[arg(long)]
        exact: bool,
    },
    /// Convert a CTranslate2 Whisper directory to the Hugging Face layout.
    Convert {
        /// CTranslate2 directory (model.bin, config.json, tokenizer.json).
        #[arg(long)]
        from: PathBuf,
        /// Output directory.
        #[arg(long)]
        to: PathBuf,
    },
}

/// The default model directory: `$EMILY_MODEL_DIR`, else `models/whisper-tiny.en`
/// under the current directory, else under the checkout the binary was built in
/// (`target/release/emily` → `../../models/…`), so `emily` works from anywhere.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EMILY_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    let rel = PathBuf::from("models/whisper-tiny.en");
    if rel.is_dir() {
        return rel;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join(&rel)))
        .filter(|p| p.is_dir())
        .unwrap_or(rel)
}

/// Leaves a loaded model to the end of the process instead of dropping it:
/// a one-shot command ends right after, and the system takes the memory
/// back at once, while unmapping and freeing it piece by piece took ~8 ms
/// (Whisper tiny.en) before the process could exit.
pub(crate) fn keep_until_exit<T>(model: T) {
    std::mem::forget(model);
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Size the one thread pool before any tensor work (and refuse `--threads 0`
    // or an unparsable EMILY_NUM_THREADS instead of ignoring them).
    let threads = emily_kernels::parallel::configure(cli.threads)?;
    if let Some(asked) = threads.clamped_from {
        eprintln!(
            "warning: {asked} threads requested; using {} ({} per core on {} cores)",
            threads.threads,
            emily_kernels::parallel::MAX_THREADS_PER_CORE,
            emily_kernels::parallel::available_cores()
        );
    }
    if cli.verbose {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("emily=debug"))
            .with_writer(std::io::stderr)
            .init();
    }
    match cli.command {
        Command::Transcribe(a) => transcribe::run(a, cli.verbose),
        Command::Generate(a) => generate::run(a, cli.verbose),
        Command::Chat(a) => generate::chat(a, cli.verbose),
        Command::Quantize(a) => quantize::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Bench { suite } => bench::run(suite),
        Command::Train(a) => train::run(a),
        Command::BenchWhisperChild {
            model,
            audio,
            runs,
            compute_type,
            beam_size,
            composed,
            step_only,
        } => {
            let kernels = if composed {
                emily::Kernels::Composed
            } else {
                emily::Kernels::Fused
            };
            if step_only {
                return bench::whisper::run_step_child(&model, runs, compute_type, kernels);
            }
            bench::whisper::run_child(&model, &audio, runs, compute_type, beam_size, kernels)
        }
        Command::BenchEncoderChild {
            model,
            audio,
            runs,
            compute_type,
            transcribe_between,
        } => bench::encoder_profile::run_child(
            &model,
            &audio,
            runs,
            compute_type,
            transcribe_between,
        ),
        Command::BenchLlmChild {
            model,
            runs,
            composed,
            exact,
        } => emily_kernels::quant::with_exact_products(exact, || {
            bench::llm::run_child(&model, composed, runs)
        }),
        Command::Convert { from, to } => {
            emily_models::hf::convert_ct2_to_hf(&from, &to)?;
            println!("wrote {}", to.display());
            Ok(())
        }
    }
}
