//! The decoder's cross-attention keys and values as an `emily-nn` graph: the
//! `encoder_attn.k_proj`/`v_proj` projections of every decoder layer, split
//! into heads. It runs once per 30-second window; the decoder step reads its
//! outputs as inputs, so no step re-projects the 1500 audio positions.

use emily::DType;
use emily_nn::{DenseOptions, Model, ModelBuilder, Result};

use super::blocks::projection_bias;
use super::names::{cross_keys, cross_values, decoder_layer, ENCODER_HIDDEN_STATES};
use crate::whisper::WhisperDims;

/// The cross-K/V model: input [`ENCODER_HIDDEN_STATES`] `(B, 1500, d)`;
/// outputs [`cross_keys`]`(i)` then [`cross_values`]`(i)` for every decoder
/// layer, each `(B, H, 1500, d/H)` in `dtype` (f32, or f16 to halve them).
pub fn cross_kv_model(dims: &WhisperDims, dtype: DType) -> Result<Model> {
    let d = dims.d_model;
    let bias = projection_bias();
    let mut b = ModelBuilder::new();
    let enc = b.input(ENCODER_HIDDEN_STATES, &[None, None, Some(d)], DType::F32)?;
    for i in 0..dims.n_text_layers {
        let p = format!("{}.encoder_attn", decoder_layer(i));
        for (proj, has_bias, out) in [
            ("k_proj", bias.k, cross_keys(i)),
            ("v_proj", bias.v, cross_values(i)),
        ] {
            let mut opts = DenseOptions::new(d, d);
            opts.bias = has_bias;
            let h = b.dense(&format!("{p}.{proj}"), &enc, opts)?;
            // Narrowed before the heads are split: the cast joins the
            // projection's store (an int8 product's epilogue narrows in
            // place) and the split moves half the bytes.
            let h = if dtype == DType::F32 {
                h
            } else {
                b.cast(&format!("{out}.narrow"), &h, dtype)?
            };
            let h = b.split_heads(&out, &h, dims.n_text_heads)?;
            b.output(&h)?;
        }
    }
    b.build()
}
