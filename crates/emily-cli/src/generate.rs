//! `emily generate` and `emily chat`: text generation with a GGUF model,
//! streamed to stdout.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use emily_models::llm::{
    ChatMessage, GenerateOptions, Generation, LlmModel, LoadOptions, SamplingOptions,
};

/// Model and sampling arguments shared by `generate` and `chat`.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// GGUF model file (default: the SmolLM2 file `make models` fetches).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Use the composed (unfused) norms, RoPE and attention.
    #[arg(long)]
    no_fast_kernels: bool,
    /// KV-cache positions (prompt plus reply).
    #[arg(long, default_value_t = 2048)]
    context: usize,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Keep the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Drop tokens below this fraction of the top probability.
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    /// Penalty on recently seen tokens (1 = none).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop at this string (repeatable).
    #[arg(long = "stop")]
    stop: Vec<String>,
}

impl ModelArgs {
    /// Loads the model (timed with `verbose`).
    pub fn load(&self, verbose: bool) -> Result<LlmModel> {
        let path = self.model.clone().unwrap_or_else(default_llm);
        if !path.is_file() {
            bail!(
                "{} not found: run `scripts/fetch-models.sh llm` (or `make models`), or pass --model FILE.gguf",
                path.display()
            );
        }
        let t = std::time::Instant::now();
        let opts = LoadOptions {
            context: Some(self.context),
            fast_kernels: !self.no_fast_kernels,
        };
        let m = LlmModel::load(&path, opts)
            .with_context(|| format!("loading model {}", path.display()))?;
        if verbose {
            let c = m.config();
            eprintln!(
                "{}: {} ({} layers, d {}, {}/{} heads), loaded in {:.0} ms, {} kernels",
                path.display(),
                c.arch.name(),
                c.layers,
                c.hidden,
                c.heads,
                c.kv_heads,
                t.elapsed().as_secs_f64() * 1e3,
                if m.fast_kernels() {
                    "fused"
                } else {
                    "composed"
                }
            );
        }
        Ok(m)
    }

    /// The generation options.
    pub fn options(&self) -> GenerateOptions {
        GenerateOptions {
            max_tokens: self.max_tokens,
            sampling: SamplingOptions {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                repetition_penalty: self.repetition_penalty,
                seed: self.seed,
                ..SamplingOptions::default()
            },
            stop_strings: self.stop.clone(),
            ..GenerateOptions::default()
        }
    }
}

/// The default model: `$EMILY_LLM_MODEL`, else `models/llm/SmolLM2-…gguf`
/// under the current directory or the checkout the binary was built in.
pub fn default_llm() -> PathBuf {
    if let Some(p) = std::env::var_os("EMILY_LLM_MODEL") {
        return PathBuf::from(p);
    }
    let rel = PathBuf::from("models/llm/SmolLM2-135M-Instruct.Q4_1.gguf");
    if rel.is_file() {
        return rel;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join(&rel)))
        .filter(|p| p.is_file())
        .unwrap_or(rel)
}

/// Arguments of `emily generate`.
#[derive(clap::Args)]
pub struct Args {
    /// The prompt (plain text; BOS added when the model wants it).
    #[arg(long)]
    prompt: String,
    #[command(flatten)]
    model: ModelArgs,
}

fn report(g: &Generation) {
    let t = &g.timings;
    eprintln!(
        "prefill {} tokens in {:.1} ms ({:.1} tok/s), decode {} tokens in {:.1} ms ({:.1} tok/s), finish {:?}",
        t.prompt_tokens,
        t.prefill.as_secs_f64() * 1e3,
        t.prefill_tokens_per_second(),
        t.decode_steps,
        t.decode.as_secs_f64() * 1e3,
        t.decode_tokens_per_second(),
        g.finish
    );
}

/// Runs `emily generate`.
pub fn run(a: Args, verbose: bool) -> Result<()> {
    let m = a.model.load(verbose)?;
    let mut out = std::io::stdout().lock();
    let g = m.generate(&a.prompt, &a.model.options(), |ev| {
        let _ = out.write_all(ev.text.as_bytes());
        let _ = out.flush();
        true
    })?;
    writeln!(out)?;
    if verbose {
        report(&g);
    }
    crate::keep_until_exit(m);
    Ok(())
}

/// Arguments of `emily chat`.
#[derive(clap::Args)]
pub struct ChatArgs {
    /// A system message to start the conversation with.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
}

/// Runs `emily chat`: reads a line per user turn from stdin (an empty line
/// or end of input quits; `/reset` clears the history) and streams replies.
pub fn chat(a: ChatArgs, verbose: bool) -> Result<()> {
    let m = a.model.load(verbose)?;
    if m.chat_template().is_none() {
        bail!("{}: the model has no chat template", m.path().display());
    }
    let opts = a.model.options();
    let mut history: Vec<ChatMessage> = a.system.iter().map(|s| ChatMessage::system(s)).collect();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut out = std::io::stdout();
    loop {
        write!(out, "> ")?;
        out.flush()?;
        let Some(line) = lines.next().transpose()? else {
            break;
        };
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        if line == "/reset" {
            history.retain(|m| m.role == "system");
            continue;
        }
        history.push(ChatMessage::user(line));
        let g = m.chat(&history, &opts, |ev| {
            let _ = out.write_all(ev.text.as_bytes());
            let _ = out.flush();
            true
        })?;
        writeln!(out)?;
        if verbose {
            report(&g);
        }
        history.push(ChatMessage::assistant(g.text.trim()));
    }
    crate::keep_until_exit(m);
    Ok(())
}
