//! Hyperparameters of a GGUF language model, read from its metadata.

use super::LlmError;
use crate::gguf::GgufFile;

/// The architectures this crate builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// Llama (SmolLM2): RMSNorm, SwiGLU, GQA, interleaved RoPE (llama.cpp's
    /// converter permutes the Q/K rows for it).
    Llama,
    /// Qwen2: Llama plus Q/K/V biases, split-half RoPE.
    Qwen2,
    /// Qwen3: Llama plus per-head RMSNorm of q and k before RoPE, split-half RoPE.
    Qwen3,
    /// Gemma 3: embeddings × √d, per-head q/k norms, norms before and after
    /// attention and MLP, GELU-tanh gated MLP, sliding-window attention on 5
    /// of every 6 layers (local RoPE base), split-half RoPE.
    Gemma3,
}

impl Arch {
    /// The architecture named by `general.architecture`.
    pub fn from_name(name: &str) -> Option<Arch> {
        Some(match name {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "gemma3" => Arch::Gemma3,
            _ => return None,
        })
    }

    /// The GGUF name (metadata key prefix).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
        }
    }
}

/// A model's sizes and options.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmConfig {
    /// The architecture.
    pub arch: Arch,
    /// Transformer blocks.
    pub layers: usize,
    /// Residual width.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Features per head.
    pub head_dim: usize,
    /// MLP width.
    pub ffn: usize,
    /// Rows of the token embedding (and logits).
    pub vocab: usize,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// RoPE base of global-attention layers.
    pub rope_base: f32,
    /// RoPE base of sliding-window layers (Gemma 3).
    pub rope_base_local: f32,
    /// Position multiplier of global layers (linear scaling: 1 / factor).
    pub rope_scale: f32,
    /// Rotated features per head.
    pub rope_dims: usize,
    /// Context length the model was trained for.
    pub context: usize,
    /// Sliding window of local layers (Gemma 3).
    pub sliding_window: Option<usize>,
    /// Every `swa_period`-th layer (the last of each period) is global.
    pub swa_period: usize,
}

impl LlmConfig {
    /// Reads the configuration from `file`'s `{arch}.*` metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<LlmConfig, LlmError> {
        let name = file.architecture()?;
        let arch = Arch::from_name(name).ok_or_else(|| LlmError::Unsupported {
            path: file.path().to_path_buf(),
            what: format!("architecture `{name}` (supported: llama, qwen2, qwen3, gemma3)"),
        })?;
        let key = |k: &str| format!("{name}.{k}");
        let heads = file.usize(&key("attention.head_count"))?;
        let hidden = file.usize(&key("embedding_length"))?;
        let head_dim = match file.usize_opt(&key("attention.key_length"))? {
            Some(d) => d,
            None => hidden.checked_div(heads).unwrap_or(0),
        };
        let vocab = match file.usize_opt(&key("vocab_size"))? {
            Some(v) => v,
            None => file.tensor("token_embd.weight")?.shape()[0],
        };
        let rope_scale = match file.str_opt(&key("rope.scaling.type"))? {
            None | Some("none") => 1.0,
            Some("linear") => 1.0 / file.f32_opt(&key("rope.scaling.factor"))?.unwrap_or(1.0),
            Some(other) => {
                return Err(LlmError::Unsupported {
                    path: file.path().to_path_buf(),
                    what: format!("RoPE scaling `{other}`"),
                })
            }
        };
        let gemma = arch == Arch::Gemma3;
        let c = LlmConfig {
            arch,
            layers: file.usize(&key("block_count"))?,
            hidden,
            heads,
            kv_heads: file
                .usize_opt(&key("attention.head_count_kv"))?
                .unwrap_or(heads),
            head_dim,
            ffn: file.usize(&key("feed_forward_length"))?,
            vocab,
            eps: file.f32(&key("attention.layer_norm_rms_epsilon"))?,
            rope_base: file.f32_opt(&key("rope.freq_base"))?.unwrap_or(10000.0),
            rope_base_local: if gemma { 10000.0 } else { 0.0 },
            rope_scale,
            rope_dims: file
                .usize_opt(&key("rope.dimension_count"))?
                .unwrap_or(head_dim),
            context: file.usize_opt(&key("context_length"))?.unwrap_or(2048),
            sliding_window: if gemma {
                file.usize_opt(&key("attention.sliding_window"))?
            } else {
                None
            },
            swa_period: 6,
        };
        c.validate().map_err(|what| LlmError::Config {
            path: file.path().to_path_buf(),
            what,
        })?;
        Ok(c)
    }

    /// Checks the sizes agree.
    pub fn validate(&self) -> Result<(), String> {
        let c = self;
        if [
            c.layers, c.hidden, c.heads, c.kv_heads, c.head_dim, c.ffn, c.vocab,
        ]
        .contains(&0)
        {
            return Err(format!("zero size in {c:?}"));
        }
        if !c.heads.is_multiple_of(c.kv_heads) {
            return Err(format!(
                "{} kv heads do not divide {} heads",
                c.kv_heads, c.heads
            ));
        }
        if c.rope_dims == 0 || !c.rope_dims.is_multiple_of(2) || c.rope_dims > c.head_dim {
            return Err(format!(
                "rope dims {} for head dim {}",
                c.rope_dims, c.head_dim
            ));
        }
        let positive = |v: f32| v.is_finite() && v > 0.0;
        if !positive(c.eps) || !positive(c.rope_base) || !positive(c.rope_scale) {
            return Err(format!(
                "eps {}, rope base {}, rope scale {}",
                c.eps, c.rope_base, c.rope_scale
            ));
        }
        if c.sliding_window == Some(0) {
            return Err("sliding window 0".into());
        }
        Ok(())
    }

    /// Interleaved RoPE pairs (GGUF `llama`), else split halves.
    pub fn rope_interleaved(&self) -> bool {
        self.arch == Arch::Llama
    }

    /// The sliding window of layer `il`, if it is a local layer.
    pub fn layer_window(&self, il: usize) -> Option<usize> {
        let w = self.sliding_window?;
        (il % self.swa_period < self.swa_period - 1).then_some(w)
    }

    /// RoPE base and position scale of layer `il`.
    pub fn layer_rope(&self, il: usize) -> (f32, f32) {
        match self.layer_window(il) {
            Some(_) => (self.rope_base_local, 1.0),
            None => (self.rope_base, self.rope_scale),
        }
    }

    /// Q/K/V projections have biases (Qwen2).
    pub fn qkv_bias(&self) -> bool {
        self.arch == Arch::Qwen2
    }

    /// Per-head RMSNorm of queries and keys (Qwen3, Gemma 3).
    pub fn qk_norm(&self) -> bool {
        matches!(self.arch, Arch::Qwen3 | Arch::Gemma3)
    }

    /// Norms after attention and after the MLP too (Gemma 3).
    pub fn sandwich_norms(&self) -> bool {
        self.arch == Arch::Gemma3
    }

    /// The factor embeddings are multiplied by (Gemma 3: √hidden).
    pub fn embedding_scale(&self) -> Option<f32> {
        (self.arch == Arch::Gemma3).then(|| (self.hidden as f32).sqrt())
    }

    /// GELU-tanh gate (Gemma 3) instead of SiLU.
    pub fn gelu_gate(&self) -> bool {
        self.arch == Arch::Gemma3
    }
}
