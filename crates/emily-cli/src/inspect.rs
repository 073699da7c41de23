//! `emily inspect`: what a model directory holds and what its compiled graphs run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use emily::Kernels;
use emily_models::whisper::Whisper;

/// Arguments of `emily inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// Model directory.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Inspect the composed (unfused) graphs.
    #[arg(long)]
    no_fast_kernels: bool,
}

/// Runs the command.
pub fn run(a: Args) -> Result<()> {
    let dir = a.model.unwrap_or_else(crate::default_model_dir);
    let kernels = if a.no_fast_kernels {
        Kernels::Composed
    } else {
        Kernels::Fused
    };
    let w = Whisper::load(&dir, kernels).with_context(|| format!("loading {}", dir.display()))?;
    println!("{}: {:?}", dir.display(), w.dims());
    println!("{}", w.graph().summary());
    println!("top-10 op frequencies ({kernels:?}):");
    for (op, n) in w.graph().op_frequencies().iter().take(10) {
        println!("  {op:<32} {n:>5}");
    }
    Ok(())
}
