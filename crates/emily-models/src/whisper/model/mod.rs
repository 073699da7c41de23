//! Which implementation the Whisper network's norms and attention use.

/// The implementation of LayerNorm and attention in the Whisper graphs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// The composed graphs: primitive ops as a model library ships them
    /// (mean/variance/rsqrt; matmul + masked softmax + matmul).
    Composed,
    /// The same graphs after `emily_nn::fast_kernels::apply`: `emily::fast` nodes.
    Fused,
}
