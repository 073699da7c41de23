//! The text decoder as a shape-stable step: static-size self-attention KV
//! caches written at a run-time offset, cross-attention K/V computed once per
//! audio window, logits through the tied token embedding.

use emily::{DType, Tensor};

use super::layers::{attention, merge_heads, split_heads, LayerNorm, Linear, Mlp};
use super::{param, param_stored, Kernels, ModelError};
use crate::weights::Weights;
use crate::whisper::WhisperDims;

struct Block {
    self_ln: LayerNorm,
    sq: Linear,
    sk: Linear,
    sv: Linear,
    so: Linear,
    cross_ln: LayerNorm,
    cq: Linear,
    ck: Linear,
    cv: Linear,
    co: Linear,
    mlp_ln: LayerNorm,
    mlp: Mlp,
}

/// Decoder weights.
pub struct DecoderWeights {
    embed: Tensor,
    positions: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
    heads: usize,
    ctx: usize,
}

/// Per-sequence decoder state: self-attention caches (B, H, ctx, D) per layer,
/// and the cross-attention K/V of the current audio window.
#[derive(Clone)]
pub struct DecoderState {
    /// Self-attention key caches, one per layer.
    pub k_cache: Vec<Tensor>,
    /// Self-attention value caches, one per layer.
    pub v_cache: Vec<Tensor>,
    /// Cross-attention keys, one per layer (B, H, 1500, D).
    pub cross_k: Vec<Tensor>,
    /// Cross-attention values, one per layer.
    pub cross_v: Vec<Tensor>,
}

impl DecoderWeights {
    /// Loads `model.decoder.*`.
    pub fn load(w: &Weights, dims: &WhisperDims) -> Result<DecoderWeights, ModelError> {
        let blocks = (0..dims.n_text_layers)
            .map(|i| {
                let p = format!("model.decoder.layers.{i}");
                let lin = |n: &str, b: bool| Linear::load_stored(w, &format!("{p}.{n}"), b);
                Ok(Block {
                    self_ln: LayerNorm::load(w, &format!("{p}.self_attn_layer_norm"))?,
                    sq: lin("self_attn.q_proj", true)?,
                    sk: lin("self_attn.k_proj", false)?,
                    sv: lin("self_attn.v_proj", true)?,
                    so: lin("self_attn.out_proj", true)?,
                    cross_ln: LayerNorm::load(w, &format!("{p}.encoder_attn_layer_norm"))?,
                    cq: lin("encoder_attn.q_proj", true)?,
                    ck: lin("encoder_attn.k_proj", false)?,
                    cv: lin("encoder_attn.v_proj", true)?,
                    co: lin("encoder_attn.out_proj", true)?,
                    mlp_ln: LayerNorm::load(w, &format!("{p}.final_layer_norm"))?,
                    mlp: Mlp::load(w, &p, true)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(DecoderWeights {
            embed: param_stored(w, "model.decoder.embed_tokens.weight")?,
            positions: param(w, "model.decoder.embed_positions.weight")?,
            blocks,
            ln: LayerNorm::load(w, "model.decoder.layer_norm")?,
            heads: dims.n_text_heads,
            ctx: dims.n_text_ctx,
        })
    }

    /// Number of decoder layers.
    pub fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// Maximum decoder positions.
    pub fn context(&self) -> usize {
        self.ctx
    }

    /// Fresh state for audio features `enc` (B, 1500, d): zeroed caches and the
    /// cross-attention K/V of this window.
    pub fn start(&self, enc: &Tensor, k: Kernels) -> emily::Result<DecoderState> {
        let _ = k;
        let (b, d) = (enc.shape()[0], enc.shape()[2]);
        let hd = d / self.heads;
        let zeros = Tensor::zeros(&[b, self.heads, self.ctx, hd], DType::F32).eval()?;
        let mut st = DecoderState {
            k_cache: vec![],
            v_cache: vec![],
            cross_k: vec![],
            cross_v: vec![],
        };
        for blk in &self.blocks {
            st.k_cache.push(zeros.clone());
            st.v_cache.push(zeros.clone());
            st.cross_k
                .push(split_heads(&blk.ck.forward(enc)?, self.heads)?.eval()?);
            st.cross_v
                .push(split_heads(&blk.cv.forward(enc)?, self.heads)?.eval()?);
        }
        Ok(st)
    }

    /// One step over `tokens` (B, T) i64 at positions `offset..offset+T`
    /// (`offset` a one-element i64 tensor): returns the last position's logits
    /// (B, vocab) and the updated caches (k then v per layer).
    pub fn step(
        &self,
        tokens: &Tensor,
        offset: &Tensor,
        caches: &[Tensor],
        cross: &[Tensor],
        kern: Kernels,
    ) -> emily::Result<(Tensor, Vec<Tensor>)> {
        let (b, t) = (tokens.shape()[0], tokens.shape()[1]);
        let off = offset.reshape_to(&[])?;
        let pos = Tensor::arange(t, DType::I64).add(&off)?;
        let x = self
            .embed
            .gather(&tokens.flatten()?, 0)?
            .reshape_to(&[b, t, self.embed.shape()[1]])?
            .cast(DType::F32)?;
        let mut x = x.add(&self.positions.gather(&pos, 0)?)?;
        // Query i (absolute position offset+i) sees cache slots j <= offset+i.
        let qi = Tensor::iota(&[t, self.ctx], 0, DType::I64)?.add(&off)?;
        let kj = Tensor::iota(&[t, self.ctx], 1, DType::I64)?;
        let keep = kj.le(&qi)?;
        let n = self.blocks.len();
        let mut new_caches = Vec::with_capacity(2 * n);
        for (l, blk) in self.blocks.iter().enumerate() {
            let h = blk.self_ln.forward(&x, kern)?;
            let q = split_heads(&blk.sq.forward(&h)?, self.heads)?;
            let k_new = split_heads(&blk.sk.forward(&h)?, self.heads)?;
            let v_new = split_heads(&blk.sv.forward(&h)?, self.heads)?;
            let kc = caches[l].slice_update(&k_new, offset, 2)?;
            let vc = caches[n + l].slice_update(&v_new, offset, 2)?;
            let a = merge_heads(&attention(&q, &kc, &vc, Some(&keep), kern)?)?;
            x = x.add(&blk.so.forward(&a)?)?;
            new_caches.push(kc);
            new_caches.push(vc);
            let h = blk.cross_ln.forward(&x, kern)?;
            let q = split_heads(&blk.cq.forward(&h)?, self.heads)?;
            let a = merge_heads(&attention(&q, &cross[l], &cross[n + l], None, kern)?)?;
            x = x.add(&blk.co.forward(&a)?)?;
            x = x.add(&blk.mlp.forward(&blk.mlp_ln.forward(&x, kern)?)?)?;
        }
        let last = x.narrow(1, t - 1, 1)?;
        let logits = self
            .ln
            .forward(&last, kern)?
            .matmul(&self.embed.t()?)?
            .reshape_to(&[b, self.embed.shape()[0]])?;
        // Reorder caches as k_0..k_n-1, v_0..v_n-1.
        let (ks, vs): (Vec<_>, Vec<_>) = new_caches
            .chunks(2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .unzip();
        Ok((logits, ks.into_iter().chain(vs).collect()))
    }
}
