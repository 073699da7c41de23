//! The audio encoder: two GELU convolutions, sinusoidal positions, pre-LN
//! blocks, final LayerNorm.

use emily::Tensor;

use super::layers::{attention, merge_heads, split_heads, LayerNorm, Linear, Mlp};
use super::{param, Kernels, ModelError};
use crate::weights::Weights;
use crate::whisper::WhisperDims;

struct Block {
    attn_ln: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    mlp_ln: LayerNorm,
    mlp: Mlp,
}

/// Encoder weights.
pub struct EncoderWeights {
    conv1_w: Tensor,
    conv1_b: Tensor,
    conv2_w: Tensor,
    conv2_b: Tensor,
    positions: Tensor,
    blocks: Vec<Block>,
    ln_post: LayerNorm,
    heads: usize,
}

impl EncoderWeights {
    /// Loads `model.encoder.*`.
    pub fn load(w: &Weights, dims: &WhisperDims) -> Result<EncoderWeights, ModelError> {
        let blocks = (0..dims.n_audio_layers)
            .map(|i| {
                let p = format!("model.encoder.layers.{i}");
                Ok(Block {
                    attn_ln: LayerNorm::load(w, &format!("{p}.self_attn_layer_norm"))?,
                    q: Linear::load(w, &format!("{p}.self_attn.q_proj"), true)?,
                    k: Linear::load(w, &format!("{p}.self_attn.k_proj"), false)?,
                    v: Linear::load(w, &format!("{p}.self_attn.v_proj"), true)?,
                    o: Linear::load(w, &format!("{p}.self_attn.out_proj"), true)?,
                    mlp_ln: LayerNorm::load(w, &format!("{p}.final_layer_norm"))?,
                    mlp: Mlp::load(w, &p, false)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let d = dims.d_model;
        Ok(EncoderWeights {
            conv1_w: param(w, "model.encoder.conv1.weight")?,
            conv1_b: param(w, "model.encoder.conv1.bias")?.reshape_to(&[d, 1])?,
            conv2_w: param(w, "model.encoder.conv2.weight")?,
            conv2_b: param(w, "model.encoder.conv2.bias")?.reshape_to(&[d, 1])?,
            positions: param(w, "model.encoder.embed_positions.weight")?,
            blocks,
            ln_post: LayerNorm::load(w, "model.encoder.layer_norm")?,
            heads: dims.n_audio_heads,
        })
    }

    /// mel (B, n_mels, 3000) → hidden states (B, 1500, d).
    pub fn forward(&self, mel: &Tensor, k: Kernels) -> emily::Result<Tensor> {
        let x = mel
            .conv1d(&self.conv1_w, 1, 1, 1, 1)?
            .add(&self.conv1_b)?
            .gelu()?;
        let x = x
            .conv1d(&self.conv2_w, 2, 1, 1, 1)?
            .add(&self.conv2_b)?
            .gelu()?;
        let mut x = x.transpose(1, 2)?.add(&self.positions)?;
        for b in &self.blocks {
            let h = b.attn_ln.forward(&x, k)?;
            let (q, kk, v) = (
                split_heads(&b.q.forward(&h)?, self.heads)?,
                split_heads(&b.k.forward(&h)?, self.heads)?,
                split_heads(&b.v.forward(&h)?, self.heads)?,
            );
            let a = merge_heads(&attention(&q, &kk, &v, None, k)?)?;
            x = x.add(&b.o.forward(&a)?)?;
            x = x.add(&b.mlp.forward(&b.mlp_ln.forward(&x, k)?)?)?;
        }
        self.ln_post.forward(&x, k)
    }
}
