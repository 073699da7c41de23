//! One decoder step as an `emily-nn` graph: the tokens' embedding rows
//! (gathered outside the graph, see [`super::TokenTable`]) plus learned
//! positions read at a run-time offset, pre-LN blocks of causal
//! self-attention over a static-size KV cache, cross-attention over the
//! window's precomputed keys and values, and a GELU MLP. The final layer norm
//! and the logits live in the head graph (see [`super::decoder_head_model`]),
//! so a prompt of `T` tokens pays for one row of logits, not `T`.

use emily::DType;
use emily_nn::{
    AttentionCoreOptions, AttentionMask, AttentionOptions, DenseOptions, EmbeddingOptions,
    LayerNormOptions, Model, ModelBuilder, PositionalEmbeddingOptions, Result,
};

use super::blocks::{mlp_block, projection_bias};
use super::names::{
    cross_keys, cross_values, decoder_layer, INPUT_EMBEDS, KEY_MASK, OFFSET, POSITION_IDS,
};
use crate::whisper::WhisperDims;

/// The decoder step. Inputs: [`INPUT_EMBEDS`] `(B, T, d)` f32, [`OFFSET`] `[1]`
/// i64 (the position of the first token), and per layer the cross keys and
/// values `(B, H, 1500, d/H)` named [`cross_keys`]/[`cross_values`]. Output:
/// the last block's residual sum, `(B, T, d)`. The cross keys and values are
/// `cross` (f32 or f16; with f16 the cross-attention core runs on f16
/// queries, f32 inside, and its output is widened back to f32). The self-attention nodes hold static caches of
/// `n_text_ctx` positions as model state (`"{node}.key_cache"`,
/// `"{node}.value_cache"`), written at the offset, so every step with the
/// same `T` replays one compiled plan.
pub fn decoder_step_model(dims: &WhisperDims, cross: DType) -> Result<Model> {
    decoder_model(dims, cross, Variant::Step)
}

/// The decoder step with more outputs, for word alignment: after the hidden
/// states, every layer's cross-attention queries `(B, H, T, d/H)` (the
/// `"{layer}.encoder_attn.query_heads"` nodes), from which the alignment
/// heads' attention weights are computed outside the graph. Same nodes and
/// parameters as [`decoder_step_model`].
pub fn decoder_align_model(dims: &WhisperDims, cross: DType) -> Result<Model> {
    decoder_model(dims, cross, Variant::Align)
}

/// The decoder step for a batch of sequences that share one cache write
/// offset but not their positions: row `r`'s tokens occupy cache slots
/// `start_r..`, so rows that joined the batch at different times decode in
/// one step. Inputs as [`decoder_step_model`], plus [`POSITION_IDS`] `(B, T)`
/// i64 (each token's position in its own sequence) and [`KEY_MASK`]
/// `(B, n_text_ctx)` bool (the cache slots that belong to the row). Same
/// nodes and parameters otherwise.
pub fn decoder_batch_step_model(dims: &WhisperDims, cross: DType) -> Result<Model> {
    decoder_model(dims, cross, Variant::Batch)
}

/// The single-token step of several rows of one window (beams, samples):
/// inputs as [`decoder_step_model`] with `T` = 1, but the cross keys and
/// values are the window's own `(1, H, 1500, d/H)`, shared by every row —
/// the `B` queries attend to them as `B` query positions of one sequence, so
/// the keys and values are read once per step, not once per row. Same nodes
/// and parameters (and cache state) as [`decoder_step_model`].
pub fn decoder_rows_step_model(dims: &WhisperDims, cross: DType) -> Result<Model> {
    decoder_model(dims, cross, Variant::Rows)
}

/// Which form of the decoder step to build.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// One row per sequence, positions from the offset.
    Step,
    /// [`Variant::Step`] with the cross-attention queries as outputs.
    Align,
    /// Rows at their own positions, with a key mask.
    Batch,
    /// Single-token rows of one window sharing its cross keys/values.
    Rows,
}

fn decoder_model(dims: &WhisperDims, cross: DType, variant: Variant) -> Result<Model> {
    let (d, h) = (dims.d_model, dims.n_text_heads);
    let hd = d / h;
    let per_row = variant == Variant::Batch;
    let shared_cross = variant == Variant::Rows;
    let mut b = ModelBuilder::new();
    let tokens = if shared_cross { Some(1) } else { None };
    let x = b.input(INPUT_EMBEDS, &[None, tokens, Some(d)], DType::F32)?;
    let offset = b.input(OFFSET, &[Some(1)], DType::I64)?;
    let (mut x, key_mask) = if per_row {
        let positions = b.input(POSITION_IDS, &[None, None], DType::I64)?;
        let key_mask = b.input(KEY_MASK, &[None, Some(dims.n_text_ctx)], DType::Bool)?;
        // The learned position table read by id: the same parameter as the
        // offset form's `model.decoder.embed_positions.weight`.
        let p = b.embedding(
            "model.decoder.embed_positions",
            &positions,
            EmbeddingOptions::new(dims.n_text_ctx, d).with_output_dtype(DType::F32),
        )?;
        (b.add("model.decoder.embed_sum", &x, &p)?, Some(key_mask))
    } else {
        let x = b.positional_embedding(
            "model.decoder.embed_positions",
            &x,
            Some(&offset),
            PositionalEmbeddingOptions::learned(dims.n_text_ctx, d),
        )?;
        (x, None)
    };
    let self_attention = |o: AttentionOptions| match key_mask {
        Some(_) => o.mask(AttentionMask::KeyPadding),
        None => o,
    };
    let mut queries = Vec::new();
    for i in 0..dims.n_text_layers {
        let p = decoder_layer(i);
        let n = b.layer_norm(
            &format!("{p}.self_attn_layer_norm"),
            &x,
            LayerNormOptions::new(d),
        )?;
        let a = b.self_attention(
            &format!("{p}.self_attn"),
            &n,
            key_mask.as_ref(),
            Some(&offset),
            self_attention(
                AttentionOptions::new(d, h)
                    .causal()
                    .cache(dims.n_text_ctx)
                    .bias(projection_bias()),
            ),
        )?;
        let x1 = b.add(&format!("{p}.self_attn_residual"), &x, &a)?;

        let n = b.layer_norm(
            &format!("{p}.encoder_attn_layer_norm"),
            &x1,
            LayerNormOptions::new(d),
        )?;
        let cross_rows = if shared_cross { Some(1) } else { None };
        let kv_shape = [cross_rows, Some(h), None, Some(hd)];
        let keys = b.input(&cross_keys(i), &kv_shape, cross)?;
        let values = b.input(&cross_values(i), &kv_shape, cross)?;
        // Shared keys/values: the rows' single tokens become the query
        // positions of one sequence, `(B, 1, d)` → `(1, B, d)`.
        let n = if shared_cross {
            b.reshape(
                &format!("{p}.encoder_attn.rows_as_queries"),
                &n,
                &[1, -1, d as isize],
            )?
        } else {
            n
        };
        let q = b.dense(
            &format!("{p}.encoder_attn.q_proj"),
            &n,
            DenseOptions::new(d, d),
        )?;
        let q = b.split_heads(&format!("{p}.encoder_attn.query_heads"), &q, h)?;
        queries.push(q.clone());
        let q = if cross == DType::F32 {
            q
        } else {
            b.cast(&format!("{p}.encoder_attn.query_heads_cast"), &q, cross)?
        };
        let a = b.attention_core(
            &format!("{p}.encoder_attn.core"),
            &q,
            &keys,
            &values,
            None,
            None,
            AttentionCoreOptions::new(),
        )?;
        let a = if cross == DType::F32 {
            a
        } else {
            b.cast(&format!("{p}.encoder_attn.core_f32"), &a, DType::F32)?
        };
        let a = b.merge_heads(&format!("{p}.encoder_attn.merge_heads"), &a)?;
        let a = b.dense(
            &format!("{p}.encoder_attn.out_proj"),
            &a,
            DenseOptions::new(d, d),
        )?;
        let a = if shared_cross {
            b.reshape(
                &format!("{p}.encoder_attn.queries_as_rows"),
                &a,
                &[-1, 1, d as isize],
            )?
        } else {
            a
        };
        let x2 = b.add(&format!("{p}.encoder_attn_residual"), &x1, &a)?;
        x = mlp_block(&mut b, &p, &x2, d, dims.ffn_dim)?;
    }
    b.output(&x)?;
    if variant == Variant::Align {
        for q in &queries {
            b.output(q)?;
        }
    }
    b.build()
}
