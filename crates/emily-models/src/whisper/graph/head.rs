//! The decoder head as an `emily-nn` graph: the final layer norm and the
//! logits through the tied token embedding (`proj_out`, whose weight is
//! `model.decoder.embed_tokens.weight`). It is its own graph so that a step
//! over `T` prompt tokens projects only the last position onto the
//! vocabulary (emily-nn has no node that selects positions).

use emily::DType;
use emily_nn::{DenseOptions, LayerNormOptions, Model, ModelBuilder, Result};

use super::names::{DECODER_HIDDEN_STATES, DECODER_NORM, LOGITS};
use crate::whisper::WhisperDims;

/// The head: input [`DECODER_HIDDEN_STATES`] `(B, T, d)`, output [`LOGITS`]
/// `(B, T, vocab)`.
pub fn decoder_head_model(dims: &WhisperDims) -> Result<Model> {
    let d = dims.d_model;
    let mut b = ModelBuilder::new();
    let x = b.input(DECODER_HIDDEN_STATES, &[None, None, Some(d)], DType::F32)?;
    let x = b.layer_norm(DECODER_NORM, &x, LayerNormOptions::new(d))?;
    let logits = b.dense(
        LOGITS,
        &x,
        DenseOptions::new(d, dims.n_vocab).without_bias(),
    )?;
    b.output(&logits)?;
    b.build()
}

/// The head's final layer norm alone: input [`DECODER_HIDDEN_STATES`]
/// `(B, T, d)`, output the normed states `(B, T, d)` (node
/// [`DECODER_NORM`]), for logits computed outside the graph by the int8
/// GEMV (`logits::int8_logits`).
pub fn decoder_norm_model(dims: &WhisperDims) -> Result<Model> {
    let d = dims.d_model;
    let mut b = ModelBuilder::new();
    let x = b.input(DECODER_HIDDEN_STATES, &[None, None, Some(d)], DType::F32)?;
    let x = b.layer_norm(DECODER_NORM, &x, LayerNormOptions::new(d))?;
    b.output(&x)?;
    b.build()
}
