//! Pieces the encoder and decoder graphs share: Whisper's projection biases
//! (the key projection has none) and the pre-LN GELU MLP with its residual.

use emily_nn::{DenseOptions, LayerNormOptions, ModelBuilder, NodeRef, ProjectionBias, Result};

/// Whisper's attention projections: biases on q, v and out, none on k.
pub fn projection_bias() -> ProjectionBias {
    ProjectionBias {
        q: true,
        k: false,
        v: true,
        o: true,
    }
}

/// `x + fc2(gelu(fc1(final_layer_norm(x))))` under `prefix` (a layer's
/// Hugging Face name); returns the residual sum.
pub fn mlp_block(
    b: &mut ModelBuilder,
    prefix: &str,
    x: &NodeRef,
    d: usize,
    ffn: usize,
) -> Result<NodeRef> {
    let h = b.layer_norm(
        &format!("{prefix}.final_layer_norm"),
        x,
        LayerNormOptions::new(d),
    )?;
    let h = b.dense(&format!("{prefix}.fc1"), &h, DenseOptions::new(d, ffn))?;
    let h = b.gelu(&format!("{prefix}.activation_fn"), &h)?;
    let h = b.dense(&format!("{prefix}.fc2"), &h, DenseOptions::new(ffn, d))?;
    b.add(&format!("{prefix}.mlp_residual"), x, &h)
}
