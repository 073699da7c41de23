//! Transformer blocks built with the `emily-nn` builder, named like their
//! Hugging Face checkpoints. Shared by the tests and `examples/block_bench.rs`.
#![allow(dead_code)]

use emily::DType;
use emily_nn::{
    AttentionCoreOptions, AttentionMask, AttentionOptions, DenseOptions, KvCacheOptions,
    LayerNormOptions, Model, ModelBuilder, ProjectionBias, ProjectionNames, RmsNormOptions,
    RopeConfig, RotaryOptions, RotaryPositions,
};

/// Sizes of a block.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ffn: usize,
}

impl Dims {
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

/// A BERT encoder layer (post-norm): self-attention over a `(B, T)` padding
/// mask, residual + LayerNorm, GELU MLP, residual + LayerNorm, with BERT's
/// dropouts (identity in inference). Inputs `hidden_states` (f32) and
/// `attention_mask` (i64, 1 = token). Output `encoder.layer.0.output.LayerNorm`.
pub fn bert_layer(d: Dims, dropout: f32) -> emily_nn::Result<Model> {
    let p = "encoder.layer.0";
    let mut b = ModelBuilder::new();
    let x = b.input("hidden_states", &[None, None, Some(d.hidden)], DType::F32)?;
    let mask = b.input("attention_mask", &[None, None], DType::I64)?;
    let names = ProjectionNames::new("self.query", "self.key", "self.value", "output.dense");
    let opts = AttentionOptions::new(d.hidden, d.heads)
        .mask(AttentionMask::KeyPadding)
        .names(names)
        .dropout(dropout);
    let a = b.self_attention(&format!("{p}.attention"), &x, Some(&mask), None, opts)?;
    let a = b.dropout(&format!("{p}.attention.output.dropout"), &a, dropout)?;
    let h = b.add(&format!("{p}.attention.residual"), &x, &a)?;
    let h = b.layer_norm(
        &format!("{p}.attention.output.LayerNorm"),
        &h,
        LayerNormOptions::new(d.hidden).eps(1e-12),
    )?;
    let i = b.dense(
        &format!("{p}.intermediate.dense"),
        &h,
        DenseOptions::new(d.hidden, d.ffn),
    )?;
    let i = b.gelu(&format!("{p}.intermediate.act"), &i)?;
    let o = b.dense(
        &format!("{p}.output.dense"),
        &i,
        DenseOptions::new(d.ffn, d.hidden),
    )?;
    let o = b.dropout(&format!("{p}.output.dropout"), &o, dropout)?;
    let o = b.add(&format!("{p}.output.residual"), &h, &o)?;
    let o = b.layer_norm(
        &format!("{p}.output.LayerNorm"),
        &o,
        LayerNormOptions::new(d.hidden).eps(1e-12),
    )?;
    b.output(&o)?;
    b.build()
}

/// A Llama decoder layer built from fine-grained nodes: RMSNorm, q/k/v
/// projections, split heads, RoPE on q and k, (optional) static KV caches,
/// causal grouped-query attention core, merge heads, o_proj, residual,
/// RMSNorm, SiLU-gated MLP, residual. Inputs `hidden_states` and, with a
/// cache, `position` (i64 scalar offset). Output `model.layers.0.mlp_residual`.
pub fn llama_layer(d: Dims, cache: Option<usize>, max_positions: usize) -> emily_nn::Result<Model> {
    llama_layer_in(d, cache, max_positions, DType::F32)
}

/// [`llama_layer`] taking `hidden_states` of `dtype` (f64 for gradient checks).
pub fn llama_layer_in(
    d: Dims,
    cache: Option<usize>,
    max_positions: usize,
    dtype: DType,
) -> emily_nn::Result<Model> {
    let p = "model.layers.0";
    let hd = d.head_dim();
    let mut b = ModelBuilder::new();
    let x = b.input("hidden_states", &[None, None, Some(d.hidden)], dtype)?;
    let offset = match cache {
        Some(_) => Some(b.input("position", &[], DType::I64)?),
        None => None,
    };
    let h = b.rms_norm(
        &format!("{p}.input_layernorm"),
        &x,
        RmsNormOptions::new(d.hidden).eps(1e-5),
    )?;
    let q = b.dense(
        &format!("{p}.self_attn.q_proj"),
        &h,
        DenseOptions::new(d.hidden, d.heads * hd).without_bias(),
    )?;
    let k = b.dense(
        &format!("{p}.self_attn.k_proj"),
        &h,
        DenseOptions::new(d.hidden, d.kv_heads * hd).without_bias(),
    )?;
    let v = b.dense(
        &format!("{p}.self_attn.v_proj"),
        &h,
        DenseOptions::new(d.hidden, d.kv_heads * hd).without_bias(),
    )?;
    let q = b.split_heads(&format!("{p}.self_attn.q_heads"), &q, d.heads)?;
    let k = b.split_heads(&format!("{p}.self_attn.k_heads"), &k, d.kv_heads)?;
    let v = b.split_heads(&format!("{p}.self_attn.v_heads"), &v, d.kv_heads)?;
    let positions = if offset.is_some() {
        RotaryPositions::Offset
    } else {
        RotaryPositions::Start(0)
    };
    let rope = RotaryOptions::new(RopeConfig::new(hd, max_positions)).positions(positions);
    let q = b.rotary_embedding(
        &format!("{p}.self_attn.q_rotary"),
        &q,
        offset.as_ref(),
        rope.clone(),
    )?;
    let mut k = b.rotary_embedding(
        &format!("{p}.self_attn.k_rotary"),
        &k,
        offset.as_ref(),
        rope,
    )?;
    let mut v = v;
    if let (Some(max_len), Some(off)) = (cache, &offset) {
        k = b.kv_cache(
            &format!("{p}.self_attn.k_cache"),
            &k,
            off,
            KvCacheOptions::new(max_len),
        )?;
        v = b.kv_cache(
            &format!("{p}.self_attn.v_cache"),
            &v,
            off,
            KvCacheOptions::new(max_len),
        )?;
    }
    let core = AttentionCoreOptions::new().causal();
    let a = b.attention_core(
        &format!("{p}.self_attn.attention"),
        &q,
        &k,
        &v,
        None,
        offset.as_ref(),
        core,
    )?;
    let a = b.merge_heads(&format!("{p}.self_attn.merge_heads"), &a)?;
    let o = b.dense(
        &format!("{p}.self_attn.o_proj"),
        &a,
        DenseOptions::new(d.heads * hd, d.hidden).without_bias(),
    )?;
    let h2 = b.add(&format!("{p}.attn_residual"), &x, &o)?;
    let n2 = b.rms_norm(
        &format!("{p}.post_attention_layernorm"),
        &h2,
        RmsNormOptions::new(d.hidden).eps(1e-5),
    )?;
    let mlp = llama_mlp(&mut b, p, d, &n2)?;
    let out = b.add(&format!("{p}.mlp_residual"), &h2, &mlp)?;
    b.output(&out)?;
    b.build()
}

fn llama_mlp(
    b: &mut ModelBuilder,
    p: &str,
    d: Dims,
    x: &emily_nn::NodeRef,
) -> emily_nn::Result<emily_nn::NodeRef> {
    let g = b.dense(
        &format!("{p}.mlp.gate_proj"),
        x,
        DenseOptions::new(d.hidden, d.ffn).without_bias(),
    )?;
    let g = b.silu(&format!("{p}.mlp.act_fn"), &g)?;
    let u = b.dense(
        &format!("{p}.mlp.up_proj"),
        x,
        DenseOptions::new(d.hidden, d.ffn).without_bias(),
    )?;
    let m = b.multiply(&format!("{p}.mlp.gated"), &g, &u)?;
    b.dense(
        &format!("{p}.mlp.down_proj"),
        &m,
        DenseOptions::new(d.ffn, d.hidden).without_bias(),
    )
}

/// The same Llama layer with one multi-head attention node (projections,
/// RoPE, KV cache and GQA inside it). Its parameters have the same names as
/// [`llama_layer`]'s, so one store serves both.
pub fn llama_layer_mha(
    d: Dims,
    cache: Option<usize>,
    max_positions: usize,
) -> emily_nn::Result<Model> {
    let p = "model.layers.0";
    let mut b = ModelBuilder::new();
    let x = b.input("hidden_states", &[None, None, Some(d.hidden)], DType::F32)?;
    let offset = match cache {
        Some(_) => Some(b.input("position", &[], DType::I64)?),
        None => None,
    };
    let h = b.rms_norm(
        &format!("{p}.input_layernorm"),
        &x,
        RmsNormOptions::new(d.hidden).eps(1e-5),
    )?;
    let mut opts = AttentionOptions::new(d.hidden, d.heads)
        .kv_heads(d.kv_heads)
        .causal()
        .rope(RopeConfig::new(d.head_dim(), max_positions))
        .bias(ProjectionBias::none())
        .names(ProjectionNames::new("q_proj", "k_proj", "v_proj", "o_proj"));
    if let Some(max_len) = cache {
        opts = opts.cache(max_len);
    }
    let o = b.self_attention(&format!("{p}.self_attn"), &h, None, offset.as_ref(), opts)?;
    let h2 = b.add(&format!("{p}.attn_residual"), &x, &o)?;
    let n2 = b.rms_norm(
        &format!("{p}.post_attention_layernorm"),
        &h2,
        RmsNormOptions::new(d.hidden).eps(1e-5),
    )?;
    let mlp = llama_mlp(&mut b, p, d, &n2)?;
    let out = b.add(&format!("{p}.mlp_residual"), &h2, &mlp)?;
    b.output(&out)?;
    b.build()
}

/// A Whisper encoder layer (pre-norm): LayerNorm, self-attention (k_proj
/// without bias), residual, LayerNorm, GELU MLP, residual. Input
/// `hidden_states`; output `encoder.layers.0.residual2`.
pub fn whisper_encoder_layer(d: Dims) -> emily_nn::Result<Model> {
    whisper_encoder_layer_in(d, DType::F32)
}

/// [`whisper_encoder_layer`] taking `hidden_states` of `dtype` (f64 for
/// gradient checks).
pub fn whisper_encoder_layer_in(d: Dims, dtype: DType) -> emily_nn::Result<Model> {
    let p = "encoder.layers.0";
    let mut b = ModelBuilder::new();
    let x = b.input("hidden_states", &[None, None, Some(d.hidden)], dtype)?;
    let h = b.layer_norm(
        &format!("{p}.self_attn_layer_norm"),
        &x,
        LayerNormOptions::new(d.hidden),
    )?;
    let bias = ProjectionBias {
        q: true,
        k: false,
        v: true,
        o: true,
    };
    let a = b.self_attention(
        &format!("{p}.self_attn"),
        &h,
        None,
        None,
        AttentionOptions::new(d.hidden, d.heads).bias(bias),
    )?;
    let h = b.add(&format!("{p}.residual1"), &x, &a)?;
    let n = b.layer_norm(
        &format!("{p}.final_layer_norm"),
        &h,
        LayerNormOptions::new(d.hidden),
    )?;
    let f = b.dense(&format!("{p}.fc1"), &n, DenseOptions::new(d.hidden, d.ffn))?;
    let f = b.gelu(&format!("{p}.activation_fn"), &f)?;
    let f = b.dense(&format!("{p}.fc2"), &f, DenseOptions::new(d.ffn, d.hidden))?;
    let out = b.add(&format!("{p}.residual2"), &h, &f)?;
    b.output(&out)?;
    b.build()
}
