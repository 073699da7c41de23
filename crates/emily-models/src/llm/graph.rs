//! The decoder of every supported architecture as one `emily-nn` graph.
//! Node names make the parameter store keys equal to the GGUF tensor names
//! (`blk.3.attn_q.weight`), so the file's tensors bind without renaming.
//!
//! Inputs: `input_ids (B, T)` i64, `offset` (scalar i64, the cache position
//! of the first token), and as [`GraphOptions`] asks, `lengths (B,)` i64
//! (logits at position `lengths[b] − 1` of each row: right-padded prompts)
//! or `key_padding (B, cache)` i64 (1 = real token: left-padded batches).
//! Output `logits`: `(B, 1, vocab)`, or `(B, T, vocab)` with every position.

use emily::DType;
use emily_nn::{
    Activation, AttentionCoreOptions, AttentionMask, DenseOptions, EmbeddingOptions,
    KvCacheOptions, Model, ModelBuilder, NodeRef, RmsNormOptions, RopeConfig, RotaryOptions,
    RotaryPositions,
};

use super::config::LlmConfig;

/// Input and output node names.
pub mod names {
    /// Token ids `(B, T)`.
    pub const INPUT_IDS: &str = "input_ids";
    /// Cache position of the first token (scalar i64).
    pub const OFFSET: &str = "offset";
    /// Real lengths of right-padded rows `(B,)`.
    pub const LENGTHS: &str = "lengths";
    /// Key padding mask `(B, cache)`, 1 = real token.
    pub const KEY_PADDING: &str = "key_padding";
    /// The logits output.
    pub const LOGITS: &str = "logits";
}

/// Which variant of the graph to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GraphOptions {
    /// Positions of the static KV cache.
    pub cache: usize,
    /// Logits of the last position only (picked per row by a `lengths`
    /// input when `lengths` is set), instead of every position.
    pub last_only: bool,
    /// A `lengths` input picks each row's last real position.
    pub lengths: bool,
    /// A `key_padding` input masks padded keys (left-padded batches).
    pub key_padding: bool,
}

impl GraphOptions {
    /// The generation step: last-position logits of right-padded rows.
    pub fn step(cache: usize) -> GraphOptions {
        GraphOptions {
            cache,
            last_only: true,
            lengths: true,
            key_padding: false,
        }
    }

    /// Every position's logits (scoring a text).
    pub fn all_positions(cache: usize) -> GraphOptions {
        GraphOptions {
            cache,
            last_only: false,
            lengths: false,
            key_padding: false,
        }
    }

    /// A left-padded batch: last-position logits, padded keys masked.
    pub fn padded_batch(cache: usize) -> GraphOptions {
        GraphOptions {
            cache,
            last_only: true,
            lengths: false,
            key_padding: true,
        }
    }
}

/// Builds the decoder graph for `c` (composed implementations; rewrite with
/// `emily_nn::fast_kernels::apply`).
pub fn decoder_model(c: &LlmConfig, o: GraphOptions) -> emily_nn::Result<Model> {
    let mut b = ModelBuilder::new();
    let ids = b.input(names::INPUT_IDS, &[None, None], DType::I64)?;
    let offset = b.input(names::OFFSET, &[], DType::I64)?;
    let lengths = if o.lengths {
        Some(b.input(names::LENGTHS, &[None], DType::I64)?)
    } else {
        None
    };
    let padding = if o.key_padding {
        Some(b.input(names::KEY_PADDING, &[None, Some(o.cache)], DType::I64)?)
    } else {
        None
    };
    let mut emb = EmbeddingOptions::new(c.vocab, c.hidden).with_output_dtype(DType::F32);
    if let Some(s) = c.embedding_scale() {
        emb = emb.with_scale(s);
    }
    let mut x = b.embedding("token_embd", &ids, emb)?;
    for il in 0..c.layers {
        x = block(&mut b, c, o, il, &x, &offset, padding.as_ref())?;
    }
    let mut h = b.rms_norm("output_norm", &x, RmsNormOptions::new(c.hidden).eps(c.eps))?;
    if o.last_only {
        h = b.last_position("last_position", &h, lengths.as_ref())?;
    }
    let logits = b.dense(
        "output",
        &h,
        DenseOptions::new(c.hidden, c.vocab).without_bias(),
    )?;
    let logits = b.cast(names::LOGITS, &logits, DType::F32)?;
    b.output(&logits)?;
    b.build()
}

/// The element type of the KV cache.
pub(crate) const KV_DTYPE: DType = DType::F16;

/// One transformer block; returns the residual stream after it.
fn block(
    b: &mut ModelBuilder,
    c: &LlmConfig,
    o: GraphOptions,
    il: usize,
    x: &NodeRef,
    offset: &NodeRef,
    padding: Option<&NodeRef>,
) -> emily_nn::Result<NodeRef> {
    let p = format!("blk.{il}");
    let n = |s: &str| format!("{p}.{s}");
    let norm = |dim| RmsNormOptions::new(dim).eps(c.eps);
    let (hd, q_out, kv_out) = (c.head_dim, c.heads * c.head_dim, c.kv_heads * c.head_dim);
    let proj = |inp, out, bias: bool| {
        let d = DenseOptions::new(inp, out);
        if bias {
            d
        } else {
            d.without_bias()
        }
    };
    let h = b.rms_norm(&n("attn_norm"), x, norm(c.hidden))?;
    let q = b.dense(&n("attn_q"), &h, proj(c.hidden, q_out, c.qkv_bias()))?;
    let k = b.dense(&n("attn_k"), &h, proj(c.hidden, kv_out, c.qkv_bias()))?;
    let v = b.dense(&n("attn_v"), &h, proj(c.hidden, kv_out, c.qkv_bias()))?;
    let mut q = b.split_heads(&n("q_heads"), &q, c.heads)?;
    let mut k = b.split_heads(&n("k_heads"), &k, c.kv_heads)?;
    let v = b.split_heads(&n("v_heads"), &v, c.kv_heads)?;
    if c.qk_norm() {
        q = b.rms_norm(&n("attn_q_norm"), &q, norm(hd))?;
        k = b.rms_norm(&n("attn_k_norm"), &k, norm(hd))?;
    }
    let (base, scale) = c.layer_rope(il);
    let mut rope = RopeConfig::new(c.rope_dims, o.cache)
        .base(base)
        .scale(scale);
    if c.rope_interleaved() {
        rope = rope.traditional();
    }
    let rope = RotaryOptions::new(rope).positions(RotaryPositions::Offset);
    let q = b.rotary_embedding(&n("q_rope"), &q, Some(offset), rope.clone())?;
    let k = b.rotary_embedding(&n("k_rope"), &k, Some(offset), rope)?;
    // The cache holds f16 keys and values (as llama.cpp's default): half the
    // memory and half the bytes each decode step reads; attention widens
    // them to f32 per key tile.
    let k = b.cast(&n("k_half"), &k, KV_DTYPE)?;
    let v = b.cast(&n("v_half"), &v, KV_DTYPE)?;
    let k = b.kv_cache(&n("k_cache"), &k, offset, KvCacheOptions::new(o.cache))?;
    let v = b.kv_cache(&n("v_cache"), &v, offset, KvCacheOptions::new(o.cache))?;
    let mut core = AttentionCoreOptions::new().causal();
    if let Some(w) = c.layer_window(il) {
        core = core.window(w);
    }
    if padding.is_some() {
        core = core.mask(AttentionMask::KeyPadding);
    }
    let a = b.attention_core(&n("attention"), &q, &k, &v, padding, Some(offset), core)?;
    let a = b.merge_heads(&n("merge_heads"), &a)?;
    let mut a = b.dense(&n("attn_output"), &a, proj(q_out, c.hidden, false))?;
    if c.sandwich_norms() {
        a = b.rms_norm(&n("post_attention_norm"), &a, norm(c.hidden))?;
    }
    let x = b.add(&n("attn_residual"), x, &a)?;
    let h = b.rms_norm(&n("ffn_norm"), &x, norm(c.hidden))?;
    let g = b.dense(&n("ffn_gate"), &h, proj(c.hidden, c.ffn, false))?;
    let u = b.dense(&n("ffn_up"), &h, proj(c.hidden, c.ffn, false))?;
    let act = if c.gelu_gate() {
        Activation::GeluTanh
    } else {
        Activation::Silu
    };
    let g = b.activation(&n("ffn_act"), &g, act)?;
    let m = b.multiply(&n("ffn_gated"), &g, &u)?;
    let mut d = b.dense(&n("ffn_down"), &m, proj(c.ffn, c.hidden, false))?;
    if c.sandwich_norms() {
        d = b.rms_norm(&n("post_ffw_norm"), &d, norm(c.hidden))?;
    }
    b.add(&n("ffn_residual"), &x, &d)
}
