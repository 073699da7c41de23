//! A small Llama-style byte language model: byte embeddings, pre-norm blocks
//! of RMSNorm, causal grouped-query self-attention with RoPE and a SiLU-gated
//! MLP, a final RMSNorm and a byte head, trained on a text's raw bytes.

use std::path::Path;

use emily::{DType, Tensor};
use emily_nn::train::{cross_entropy, Adam, Precision, StepReport, Trainer, WarmupCosine};
use emily_nn::{
    AttentionOptions, DenseOptions, EmbeddingOptions, Forward, Mode, Model, ModelBuilder,
    ParamStore, ProjectionBias, RmsNormOptions, RopeConfig,
};

use super::rng::Shuffler;
use super::{Error, Result};

/// The model's input node: byte ids `(B, T)` i64.
pub const INPUT: &str = "ids";
/// The model's output node: logits `(B, T, 256)`.
pub const LOGITS: &str = "lm_head";
/// Vocabulary: one entry per byte value.
pub const VOCAB: usize = 256;

/// A text as bytes, split into training and held-out parts.
#[derive(Clone, Debug, PartialEq)]
pub struct ByteCorpus {
    /// The training bytes.
    pub train: Vec<u8>,
    /// The held-out bytes (the end of the text).
    pub held_out: Vec<u8>,
}

impl ByteCorpus {
    /// Reads a text file, holding out its last `held_out_fraction`.
    pub fn load(
        path: impl AsRef<Path>,
        held_out_fraction: f64,
        seq_len: usize,
    ) -> Result<ByteCorpus> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::Data {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        let cut = ((bytes.len() as f64) * (1.0 - held_out_fraction.clamp(0.0, 1.0))) as usize;
        if cut <= seq_len + 1 || bytes.len() - cut <= seq_len + 1 {
            return Err(Error::Data {
                path: path.display().to_string(),
                msg: format!(
                    "{} bytes are too few for windows of {seq_len} in both the training and held-out parts",
                    bytes.len()
                ),
            });
        }
        Ok(ByteCorpus {
            held_out: bytes[cut..].to_vec(),
            train: bytes[..cut].to_vec(),
        })
    }
}

/// `batch` windows of `seq_len + 1` bytes starting at `starts`, as inputs
/// `(B, T)` and next-byte targets `(B, T)`.
pub fn windows(bytes: &[u8], starts: &[usize], seq_len: usize) -> Result<(Tensor, Tensor)> {
    let mut ids = Vec::with_capacity(starts.len() * seq_len);
    let mut next = Vec::with_capacity(starts.len() * seq_len);
    for &s in starts {
        ids.extend(bytes[s..s + seq_len].iter().map(|&b| b as i64));
        next.extend(bytes[s + 1..s + seq_len + 1].iter().map(|&b| b as i64));
    }
    let shape = [starts.len(), seq_len];
    Ok((
        Tensor::from_vec(ids, &shape)?,
        Tensor::from_vec(next, &shape)?,
    ))
}

/// The model's sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// Hidden size.
    pub dim: usize,
    /// Blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (dividing `heads`: grouped-query attention).
    pub kv_heads: usize,
    /// MLP hidden size.
    pub ffn: usize,
    /// Longest context (RoPE tables).
    pub max_len: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            dim: 64,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            ffn: 172,
            max_len: 256,
        }
    }
}

/// The byte LM graph (names follow Hugging Face Llama checkpoints; like
/// Llama, no projection has a bias).
pub fn model(c: &Config) -> emily_nn::Result<Model> {
    let mut b = ModelBuilder::new();
    let ids = b.input(INPUT, &[None, None], DType::I64)?;
    let mut x = b.embedding(
        "model.embed_tokens",
        &ids,
        EmbeddingOptions::new(VOCAB, c.dim),
    )?;
    let rope = RopeConfig::new(c.dim / c.heads, c.max_len);
    for i in 0..c.layers {
        let p = format!("model.layers.{i}");
        let h = b.rms_norm(
            &format!("{p}.input_layernorm"),
            &x,
            RmsNormOptions::new(c.dim),
        )?;
        let attn = AttentionOptions::new(c.dim, c.heads)
            .kv_heads(c.kv_heads)
            .bias(ProjectionBias::none())
            .causal()
            .rope(rope.clone());
        let a = b.self_attention(&format!("{p}.self_attn"), &h, None, None, attn)?;
        let x1 = b.add(&format!("{p}.attn_residual"), &x, &a)?;
        let h = b.rms_norm(
            &format!("{p}.post_attention_layernorm"),
            &x1,
            RmsNormOptions::new(c.dim),
        )?;
        let dense = |n: usize, m: usize| DenseOptions::new(n, m).without_bias();
        let g = b.dense(&format!("{p}.mlp.gate_proj"), &h, dense(c.dim, c.ffn))?;
        let g = b.silu(&format!("{p}.mlp.act_fn"), &g)?;
        let u = b.dense(&format!("{p}.mlp.up_proj"), &h, dense(c.dim, c.ffn))?;
        let m = b.multiply(&format!("{p}.mlp.gated"), &g, &u)?;
        let m = b.dense(&format!("{p}.mlp.down_proj"), &m, dense(c.ffn, c.dim))?;
        x = b.add(&format!("{p}.mlp_residual"), &x1, &m)?;
    }
    let x = b.rms_norm("model.norm", &x, RmsNormOptions::new(c.dim))?;
    let y = b.dense(LOGITS, &x, DenseOptions::new(c.dim, VOCAB).without_bias())?;
    b.output(&y)?;
    b.build()
}

/// How to train the byte LM.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recipe {
    /// The model's sizes.
    pub config: Config,
    /// Optimizer steps.
    pub steps: u64,
    /// Windows per step.
    pub batch: usize,
    /// Bytes per window.
    pub seq_len: usize,
    /// Peak learning rate (AdamW, warmup then cosine).
    pub lr: f64,
    /// Seed of the parameters and the windows.
    pub seed: u64,
    /// Compute precision.
    pub precision: Precision,
}

impl Default for Recipe {
    fn default() -> Recipe {
        Recipe {
            config: Config::default(),
            steps: 300,
            batch: 16,
            seq_len: 64,
            lr: 3e-3,
            seed: 0,
            precision: Precision::Full,
        }
    }
}

/// Trains the byte LM on `corpus.train`; `on_step(step, report)` sees every
/// step. Parameters are initialised small (embeddings N(0, 0.02²)).
pub fn train(
    corpus: &ByteCorpus,
    recipe: &Recipe,
    mut on_step: impl FnMut(u64, &StepReport),
) -> Result<(Model, ParamStore)> {
    let model = model(&recipe.config)?;
    let mut params = ParamStore::random(&model, recipe.seed, DType::F32)?;
    let table = Tensor::randn(
        &[VOCAB, recipe.config.dim],
        0.0,
        0.02,
        recipe.seed ^ 7,
        DType::F32,
    )?;
    params.insert("model.embed_tokens.weight", table.eval()?);
    let step = model.build(&params, Mode::Train)?.train_step(
        |out, t| cross_entropy(&out[LOGITS], &t[0]),
        recipe.precision,
    )?;
    let warmup = recipe.steps / 10 + 1;
    let mut trainer = Trainer::new(
        step,
        Adam::adamw(0.01),
        WarmupCosine::new(recipe.lr, warmup, recipe.steps),
    )
    .clip_grad_norm(1.0);
    let mut rng = Shuffler::new(recipe.seed ^ 0xB17E);
    let span = corpus.train.len() - recipe.seq_len - 1;
    for s in 0..recipe.steps {
        let starts: Vec<usize> = (0..recipe.batch).map(|_| rng.below(span)).collect();
        let (x, y) = windows(&corpus.train, &starts, recipe.seq_len)?;
        let report = trainer.step(&mut params, &[(INPUT, &x)], &[&y])?;
        on_step(s, &report);
    }
    Ok((model, params))
}

/// Mean next-byte loss over non-overlapping windows of `bytes`.
pub fn evaluate(model: &Model, params: &ParamStore, bytes: &[u8], seq_len: usize) -> Result<f64> {
    let forward = model.build(params, Mode::Inference)?;
    let starts: Vec<usize> = (0..(bytes.len() - 1) / seq_len)
        .map(|i| i * seq_len)
        .collect();
    let (x, y) = windows(bytes, &starts, seq_len)?;
    let logits = forward.call(&[(INPUT, &x)])?[LOGITS].clone();
    Ok(cross_entropy(&logits, &y)?.to_scalar::<f32>()? as f64)
}

/// Greedy continuation of `prompt` by `n` bytes (the whole context is run
/// each step, cut to the last `max_len` bytes).
pub fn generate(forward: &Forward, prompt: &[u8], n: usize, max_len: usize) -> Result<Vec<u8>> {
    let mut text = prompt.to_vec();
    for _ in 0..n {
        let ctx = &text[text.len().saturating_sub(max_len)..];
        let ids: Vec<i64> = ctx.iter().map(|&b| b as i64).collect();
        let x = Tensor::from_vec(ids, &[1, ctx.len()])?;
        let logits = forward.call(&[(INPUT, &x)])?[LOGITS].clone();
        let last = logits.narrow(1, ctx.len() - 1, 1)?.argmax(-1, false)?;
        text.push(last.to_vec::<i64>()?[0] as u8);
    }
    Ok(text)
}
