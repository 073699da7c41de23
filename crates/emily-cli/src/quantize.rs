//! `emily quantize`: rewrite a GGUF model's weight matrices in a
//! block-quantised format.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use emily_models::gguf::GgufFile;
use emily_models::llm::quantize::{quantize_gguf, QuantType};

/// Arguments of `emily quantize`.
#[derive(clap::Args)]
pub struct Args {
    /// Input GGUF file.
    input: PathBuf,
    /// Output GGUF file.
    output: PathBuf,
    /// Target format: q8_0, q4_0 or int4-g64.
    #[arg(long = "type")]
    ty: String,
}

/// Runs the command.
pub fn run(a: Args) -> Result<()> {
    let ty = QuantType::from_name(&a.ty)
        .ok_or_else(|| anyhow!("unknown --type `{}` (q8_0, q4_0 or int4-g64)", a.ty))?;
    let file = GgufFile::open(&a.input)?;
    let (writer, r) = quantize_gguf(&file, ty)?;
    writer
        .write_file(&a.output)
        .with_context(|| format!("writing {}", a.output.display()))?;
    println!(
        "{}: {} tensors quantised to {}, {} copied; tensor data {:.1} MB -> {:.1} MB",
        a.output.display(),
        r.quantized,
        ty.ggml_type(),
        r.copied,
        r.bytes_in as f64 / 1e6,
        r.bytes_out as f64 / 1e6
    );
    Ok(())
}
