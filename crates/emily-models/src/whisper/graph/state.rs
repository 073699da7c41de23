//! The running state of decoding one audio window through the graph: the
//! self-attention KV caches (model state of the decoder step) and the
//! window's cross-attention keys and values.

use emily::Tensor;
use emily_nn::State;

/// Decoder state for one window, made by [`super::WhisperGraph::start`] and
/// advanced by [`super::WhisperGraph::step`].
#[derive(Clone, Debug)]
pub struct GraphDecoderState {
    /// Self-attention caches `(B, H, n_text_ctx, D)` per layer, empty until
    /// the first step fills them with zeros.
    pub caches: State,
    /// `(input name, tensor)` of every layer's cross keys and values.
    pub cross: Vec<(String, Tensor)>,
}

impl GraphDecoderState {
    /// Starts over on the same window (the caches are zeroed by the next step).
    pub fn reset(&mut self) {
        self.caches.clear();
    }
}
