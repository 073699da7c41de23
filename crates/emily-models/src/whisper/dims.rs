//! Whisper model dimensions, derived from the weights themselves.

use crate::weights::{Weights, WeightsError};

/// The sizes that define a Whisper model (OpenAI's `ModelDimensions`).
///
/// Derived from tensor shapes (HF names) plus the head counts, which shapes cannot
/// tell; every Whisper tensor is then checked against these sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WhisperDims {
    /// Mel bins of the input features (80, or 128 for large-v3).
    pub n_mels: usize,
    /// Hidden size of encoder and decoder.
    pub d_model: usize,
    /// Hidden size of the MLP blocks.
    pub ffn_dim: usize,
    /// Encoder attention heads.
    pub n_audio_heads: usize,
    /// Decoder attention heads.
    pub n_text_heads: usize,
    /// Encoder blocks.
    pub n_audio_layers: usize,
    /// Decoder blocks.
    pub n_text_layers: usize,
    /// Vocabulary size (rows of the token embedding; timestamps included).
    pub n_vocab: usize,
    /// Encoder positions (1500 = 3000 mel frames after the stride-2 conv).
    pub n_audio_ctx: usize,
    /// Decoder positions (448).
    pub n_text_ctx: usize,
}

/// Number of `model.{side}.layers.N` blocks, counted from 0 until one is missing.
fn count_layers(w: &Weights, side: &str) -> usize {
    (0..)
        .take_while(|i| w.contains(&format!("model.{side}.layers.{i}.fc1.weight")))
        .count()
}

impl WhisperDims {
    /// Derive the dims from HF-named `weights` and the head counts, then check every
    /// Whisper tensor has the shape these dims imply (errors name the tensor).
    pub fn from_weights(
        weights: &Weights,
        n_audio_heads: usize,
        n_text_heads: usize,
    ) -> Result<Self, WeightsError> {
        let dim = |name: &str, axis: usize| -> Result<usize, WeightsError> {
            let record = weights.get(name)?;
            record
                .shape()
                .get(axis)
                .copied()
                .ok_or_else(|| WeightsError::Inconsistent {
                    source_file: weights.source_file().to_path_buf(),
                    reason: format!("`{name}` has shape {:?}, needs axis {axis}", record.shape()),
                })
        };
        let dims = WhisperDims {
            n_mels: dim("model.encoder.conv1.weight", 1)?,
            d_model: dim("model.encoder.conv1.weight", 0)?,
            ffn_dim: dim("model.encoder.layers.0.fc1.weight", 0)?,
            n_audio_heads,
            n_text_heads,
            n_audio_layers: count_layers(weights, "encoder"),
            n_text_layers: count_layers(weights, "decoder"),
            n_vocab: dim("model.decoder.embed_tokens.weight", 0)?,
            n_audio_ctx: dim("model.encoder.embed_positions.weight", 0)?,
            n_text_ctx: dim("model.decoder.embed_positions.weight", 0)?,
        };
        for (heads, what) in [(n_audio_heads, "encoder"), (n_text_heads, "decoder")] {
            if heads == 0 || !dims.d_model.is_multiple_of(heads) {
                return Err(WeightsError::Inconsistent {
                    source_file: weights.source_file().to_path_buf(),
                    reason: format!(
                        "{what} head count {heads} does not divide d_model {}",
                        dims.d_model
                    ),
                });
            }
        }
        for (name, shape) in dims.tensor_shapes() {
            let record = weights.get_shaped(&name, &shape)?;
            if !record.dtype().is_float() {
                return Err(WeightsError::Inconsistent {
                    source_file: weights.source_file().to_path_buf(),
                    reason: format!(
                        "`{name}` holds {} integers with no scale to turn them into weights (a quantized weight needs its scale)",
                        record.dtype()
                    ),
                });
            }
        }
        Ok(dims)
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_audio_heads
    }

    /// Whether the vocabulary is the multilingual one (51865 tokens or more).
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }

    /// Every tensor of a Whisper model under its Hugging Face name, with its shape.
    /// The tied output projection (`proj_out.weight`) is not listed: it is
    /// `model.decoder.embed_tokens.weight`.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, f) = (self.d_model, self.ffn_dim);
        let mut v: Vec<(String, Vec<usize>)> = vec![
            ("model.encoder.conv1.weight".into(), vec![d, self.n_mels, 3]),
            ("model.encoder.conv1.bias".into(), vec![d]),
            ("model.encoder.conv2.weight".into(), vec![d, d, 3]),
            ("model.encoder.conv2.bias".into(), vec![d]),
            (
                "model.encoder.embed_positions.weight".into(),
                vec![self.n_audio_ctx, d],
            ),
            (
                "model.decoder.embed_tokens.weight".into(),
                vec![self.n_vocab, d],
            ),
            (
                "model.decoder.embed_positions.weight".into(),
                vec![self.n_text_ctx, d],
            ),
        ];
        let linear = |v: &mut Vec<_>, name: String, out: usize, inp: usize, bias: bool| {
            v.push((format!("{name}.weight"), vec![out, inp]));
            if bias {
                v.push((format!("{name}.bias"), vec![out]));
            }
        };
        for (side, layers) in [
            ("encoder", self.n_audio_layers),
            ("decoder", self.n_text_layers),
        ] {
            let mut attentions = vec!["self_attn"];
            if side == "decoder" {
                attentions.push("encoder_attn");
            }
            for i in 0..layers {
                let p = format!("model.{side}.layers.{i}");
                for att in &attentions {
                    linear(&mut v, format!("{p}.{att}.q_proj"), d, d, true);
                    linear(&mut v, format!("{p}.{att}.k_proj"), d, d, false);
                    linear(&mut v, format!("{p}.{att}.v_proj"), d, d, true);
                    linear(&mut v, format!("{p}.{att}.out_proj"), d, d, true);
                    v.push((format!("{p}.{att}_layer_norm.weight"), vec![d]));
                    v.push((format!("{p}.{att}_layer_norm.bias"), vec![d]));
                }
                linear(&mut v, format!("{p}.fc1"), f, d, true);
                linear(&mut v, format!("{p}.fc2"), d, f, true);
                v.push((format!("{p}.final_layer_norm.weight"), vec![d]));
                v.push((format!("{p}.final_layer_norm.bias"), vec![d]));
            }
            v.push((format!("model.{side}.layer_norm.weight"), vec![d]));
            v.push((format!("model.{side}.layer_norm.bias"), vec![d]));
        }
        v
    }
}
