//! The Whisper network on Emily tensors: encoder, decoder step with static-size
//! KV caches, both compiled once per input signature and replayed.
//!
//! [`Kernels::Fused`] runs LayerNorm and attention through `emily::fast` (one
//! node each, fused CPU kernels where the backend has them); [`Kernels::Composed`]
//! writes them from primitive ops as a model library would (mean, variance,
//! rsqrt; matmul, masked softmax, matmul) — the baseline of the fast-kernels demo.

mod decoder;
mod encoder;
mod layers;

pub use decoder::{DecoderState, DecoderWeights};
pub use encoder::EncoderWeights;

use emily::{DType, Tensor};

use super::{WhisperCheckpoint, WhisperDims};
use crate::weights::Weights;

/// Which implementation the norms and attention use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// Primitive ops (mean/var/rsqrt; matmul + softmax + matmul).
    Composed,
    /// `emily::fast` nodes.
    Fused,
}

/// Errors of the Whisper network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A weight is missing or malformed.
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightsError),
    /// A tensor op failed.
    #[error(transparent)]
    Tensor(#[from] emily::Error),
    /// Input of the wrong shape.
    #[error("whisper: {0}")]
    Input(String),
}

/// Loaded Whisper weights as Emily tensors (f32), plus dims.
pub struct WhisperModel {
    /// Model sizes.
    pub dims: WhisperDims,
    /// Encoder weights.
    pub encoder: EncoderWeights,
    /// Decoder weights.
    pub decoder: DecoderWeights,
}

/// Reads one weight as an f32 tensor.
pub(crate) fn param(w: &Weights, name: &str) -> Result<Tensor, ModelError> {
    let r = w.get(name)?;
    Ok(Tensor::from_slice(&r.to_f32_vec(), r.shape())?)
}

/// Reads one weight in half precision when it is stored so (f16 checkpoints),
/// else as f32. Decoder matrices stay half: a decode step streams them through
/// the mixed-precision GEMV (f32 activations, f32 accumulation), halving the
/// bytes read per token; the values are exactly the stored ones.
pub(crate) fn param_stored(w: &Weights, name: &str) -> Result<Tensor, ModelError> {
    let r = w.get(name)?;
    match r.dtype() {
        crate::weights::DType::F16 => Ok(Tensor::from_bytes(r.bytes(), r.shape(), DType::F16)?),
        crate::weights::DType::BF16 => Ok(Tensor::from_bytes(r.bytes(), r.shape(), DType::BF16)?),
        _ => param(w, name),
    }
}

impl WhisperModel {
    /// Converts a checkpoint's weights into tensors.
    pub fn from_checkpoint(ck: &WhisperCheckpoint) -> Result<WhisperModel, ModelError> {
        Ok(WhisperModel {
            dims: ck.dims,
            encoder: EncoderWeights::load(&ck.weights, &ck.dims)?,
            decoder: DecoderWeights::load(&ck.weights, &ck.dims)?,
        })
    }
}
