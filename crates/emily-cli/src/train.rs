//! `emily train digits|bytelm`: train a recipe on real data with a progress
//! bar (loss, throughput), evaluate held out, save the parameters, then load
//! the saved file back and evaluate (or generate from) it. `--eval FILE`
//! skips training and evaluates a saved checkpoint.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use emily_models::training::{bytelm, digits};
use emily_nn::train::{load_params, save_params, Precision, StepReport};
use emily_nn::Mode;

/// Which recipe.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Task {
    /// A two-layer classifier on the 8×8 digits (scikit-learn's bundled set).
    Digits,
    /// A small Llama-style byte language model on a public-domain text.
    Bytelm,
}

/// `emily train` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// What to train.
    #[arg(value_enum)]
    task: Task,
    /// Optimizer steps (default: the recipe's).
    #[arg(long)]
    steps: Option<u64>,
    /// Seed of the parameters, batches and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// bf16 mixed precision (f32 master weights, dynamic loss scaling).
    #[arg(long)]
    bf16: bool,
    /// Dataset: the digits CSV or a text file (default: data/digits/digits.csv,
    /// testdata/text/declaration_of_independence.txt).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where to save the trained parameters (safetensors).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Evaluate this saved checkpoint instead of training.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Prompt for the byte LM's sample.
    #[arg(long, default_value = "We hold these truths")]
    prompt: String,
}

/// `rel` under the current directory, else under the checkout the binary was
/// built in.
fn repo_file(rel: &str) -> PathBuf {
    let p = PathBuf::from(rel);
    if p.exists() {
        return p;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join(rel)))
        .filter(|p| p.exists())
        .unwrap_or(p)
}

fn progress(steps: u64, task: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed} elapsed, {eta} left)",
        )
        .expect("valid template"),
    );
    bar.set_prefix(task.to_string());
    bar
}

/// A step callback that moves the bar and shows loss and throughput.
fn reporter<'a>(
    bar: &'a indicatif::ProgressBar,
    per_step: usize,
    unit: &'a str,
) -> impl FnMut(u64, &StepReport) + 'a {
    let start = Instant::now();
    move |s, r| {
        let rate = (s + 1) as f64 * per_step as f64 / start.elapsed().as_secs_f64();
        let skipped = if r.skipped { " skipped" } else { "" };
        bar.set_message(format!(
            "loss {:.4} lr {:.2e} {rate:.0} {unit}/s{skipped}",
            r.loss, r.lr
        ));
        bar.inc(1);
    }
}

fn precision(bf16: bool) -> Precision {
    if bf16 {
        Precision::MixedBf16
    } else {
        Precision::Full
    }
}

/// Runs `emily train`.
pub fn run(a: Args) -> Result<()> {
    match a.task {
        Task::Digits => run_digits(a),
        Task::Bytelm => run_bytelm(a),
    }
}

fn run_digits(a: Args) -> Result<()> {
    let path = a
        .data
        .clone()
        .unwrap_or_else(|| repo_file("data/digits/digits.csv"));
    let data = digits::Digits::load(&path)?;
    let (train, held_out) = data.split(360, 42);
    let recipe = digits::Recipe {
        steps: a.steps.unwrap_or(digits::Recipe::default().steps),
        seed: a.seed,
        precision: precision(a.bf16),
        ..digits::Recipe::default()
    };
    let model = digits::classifier(recipe.hidden, recipe.dropout)?;
    let ckpt = match &a.eval {
        Some(p) => p.clone(),
        None => {
            println!(
                "digits: {} training images, {} held out",
                train.len(),
                held_out.len()
            );
            let bar = progress(recipe.steps, "digits");
            let (_, params) =
                digits::train(&train, &recipe, reporter(&bar, recipe.batch, "images"))?;
            bar.finish();
            let (loss, acc) = digits::evaluate(&model, &params, &held_out)?;
            println!("held out: loss {loss:.4}, accuracy {:.2}%", acc * 100.0);
            let out = a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("digits.safetensors"));
            save_params(&out, &params).with_context(|| format!("saving {}", out.display()))?;
            println!("saved {}", out.display());
            out
        }
    };
    let params = load_params(&ckpt)?;
    let (loss, acc) = digits::evaluate(&model, &params, &held_out)?;
    println!(
        "{} held out: loss {loss:.4}, accuracy {:.2}%",
        ckpt.display(),
        acc * 100.0
    );
    Ok(())
}

fn run_bytelm(a: Args) -> Result<()> {
    let path = a
        .data
        .clone()
        .unwrap_or_else(|| repo_file("testdata/text/declaration_of_independence.txt"));
    let recipe = bytelm::Recipe {
        steps: a.steps.unwrap_or(bytelm::Recipe::default().steps),
        seed: a.seed,
        precision: precision(a.bf16),
        ..bytelm::Recipe::default()
    };
    let corpus = bytelm::ByteCorpus::load(&path, 0.1, recipe.seq_len)?;
    let model = bytelm::model(&recipe.config)?;
    let ckpt = match &a.eval {
        Some(p) => p.clone(),
        None => {
            println!(
                "bytelm: {} training bytes, {} held out, {} parameters",
                corpus.train.len(),
                corpus.held_out.len(),
                model.num_params()
            );
            let bar = progress(recipe.steps, "bytelm");
            let per_step = recipe.batch * recipe.seq_len;
            let (_, params) = bytelm::train(&corpus, &recipe, reporter(&bar, per_step, "bytes"))?;
            bar.finish();
            let out = a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("bytelm.safetensors"));
            save_params(&out, &params).with_context(|| format!("saving {}", out.display()))?;
            println!("saved {}", out.display());
            out
        }
    };
    sample(&model, &ckpt, &corpus, &recipe, &a.prompt)
}

fn sample(
    model: &emily_nn::Model,
    ckpt: &Path,
    corpus: &bytelm::ByteCorpus,
    recipe: &bytelm::Recipe,
    prompt: &str,
) -> Result<()> {
    let params = load_params(ckpt)?;
    let loss = bytelm::evaluate(model, &params, &corpus.held_out, recipe.seq_len)?;
    println!(
        "{} held out: loss {loss:.4} nats/byte ({:.3} bits/byte)",
        ckpt.display(),
        loss / std::f64::consts::LN_2
    );
    let forward = model.build(&params, Mode::Inference)?;
    let text = bytelm::generate(&forward, prompt.as_bytes(), 120, recipe.config.max_len)?;
    println!("sample: {}", String::from_utf8_lossy(&text));
    Ok(())
}
