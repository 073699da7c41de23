//! The audio encoder as an `emily-nn` graph: two GELU convolutions, learned
//! (stored sinusoidal) positions, pre-LN self-attention blocks with GELU
//! MLPs, and a final layer norm.

use emily::DType;
use emily_nn::{
    AttentionOptions, Conv1dOptions, LayerNormOptions, Model, ModelBuilder,
    PositionalEmbeddingOptions, Result,
};

use super::blocks::{mlp_block, projection_bias};
use super::names::{encoder_layer, ENCODER_OUTPUT, INPUT_FEATURES};
use crate::whisper::{ComputeType, WhisperDims};

/// The encoder: input [`INPUT_FEATURES`] `(B, n_mels, 2·n_audio_ctx)`,
/// output [`ENCODER_OUTPUT`] `(B, n_audio_ctx, d)`, its self-attention
/// cores set up for `compute` (a concrete type: `Auto` resolved): on bf16
/// q, k and v where [`ComputeType::bf16_attention_core`] says so, with
/// int8 products where [`ComputeType::int8_attention`] does. (The int8
/// types' projections are switched on by
/// `emily_nn::quantize::int8_projections` afterwards.)
pub fn encoder_model(dims: &WhisperDims, compute: ComputeType) -> Result<Model> {
    let (d, ctx) = (dims.d_model, dims.n_audio_ctx);
    let mut b = ModelBuilder::new();
    let mel = b.input(
        INPUT_FEATURES,
        &[None, Some(dims.n_mels), Some(2 * ctx)],
        DType::F32,
    )?;
    let x = if compute.bf16_convolutions() {
        // Time-major from the features on: each convolution's windows are
        // contiguous rows of its input, read in place by the bf16 GEMM (no
        // im2col copy), and no transpose follows (Whisper tiny.en's front
        // end: 1.9 of 4.6 ms per encoder pass).
        let mel = b.transpose("model.encoder.time_major", &mel, &[0, 2, 1])?;
        let x = b.conv1d(
            "model.encoder.conv1",
            &mel,
            Conv1dOptions::new(dims.n_mels, d, 3)
                .padding(1)
                .channels_last(),
        )?;
        let x = b.gelu("model.encoder.conv1_gelu", &x)?;
        let x = b.conv1d(
            "model.encoder.conv2",
            &x,
            Conv1dOptions::new(d, d, 3)
                .stride(2)
                .padding(1)
                .channels_last(),
        )?;
        b.gelu("model.encoder.conv2_gelu", &x)?
    } else {
        let x = b.conv1d(
            "model.encoder.conv1",
            &mel,
            Conv1dOptions::new(dims.n_mels, d, 3).padding(1),
        )?;
        let x = b.gelu("model.encoder.conv1_gelu", &x)?;
        let x = b.conv1d(
            "model.encoder.conv2",
            &x,
            Conv1dOptions::new(d, d, 3).stride(2).padding(1),
        )?;
        let x = b.gelu("model.encoder.conv2_gelu", &x)?;
        b.transpose("model.encoder.time_major", &x, &[0, 2, 1])?
    };
    let mut x = b.positional_embedding(
        "model.encoder.embed_positions",
        &x,
        None,
        PositionalEmbeddingOptions::learned(ctx, d),
    )?;
    for i in 0..dims.n_audio_layers {
        let p = encoder_layer(i);
        let h = b.layer_norm(
            &format!("{p}.self_attn_layer_norm"),
            &x,
            LayerNormOptions::new(d),
        )?;
        let mut options = AttentionOptions::new(d, dims.n_audio_heads).bias(projection_bias());
        if compute.bf16_attention_core() {
            options = options.bf16_core();
        }
        if compute.int8_attention() {
            options = options.int8_products();
        }
        let a = b.self_attention(&format!("{p}.self_attn"), &h, None, None, options)?;
        let x1 = b.add(&format!("{p}.self_attn_residual"), &x, &a)?;
        x = mlp_block(&mut b, &p, &x1, d, dims.ffn_dim)?;
    }
    let y = b.layer_norm(ENCODER_OUTPUT, &x, LayerNormOptions::new(d))?;
    b.output(&y)?;
    b.build()
}
