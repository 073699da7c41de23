//! Names shared by the Whisper graphs and their callers: model inputs and
//! outputs, and the Hugging Face prefixes every node name starts from.
//!
//! Nodes carrying parameters are named after the Hugging Face module that
//! holds them (`model.encoder.layers.0.self_attn`), so each parameter's
//! store key `"{node}.{param}"` is its Hugging Face name.

/// Encoder input: log-mel features `(B, n_mels, 3000)` f32.
pub const INPUT_FEATURES: &str = "input_features";
/// Encoder output node: the final layer norm, `(B, 1500, d)`.
pub const ENCODER_OUTPUT: &str = "model.encoder.layer_norm";
/// Cross-K/V input: the encoder output `(B, 1500, d)`.
pub const ENCODER_HIDDEN_STATES: &str = "encoder_hidden_states";
/// Decoder step input: the token embedding rows of the step's tokens
/// `(B, T, d)` f32, gathered outside the graph ([`super::TokenTable`]).
pub const INPUT_EMBEDS: &str = "inputs_embeds";
/// Decoder step input: the position of the first token, `[1]` i64.
pub const OFFSET: &str = "offset";
/// Batched decoder step input: each token's position in its own sequence,
/// `(B, T)` i64.
pub const POSITION_IDS: &str = "position_ids";
/// Batched decoder step input: which cache slots hold each row's tokens,
/// `(B, n_text_ctx)` bool.
pub const KEY_MASK: &str = "key_mask";
/// Decoder head input: hidden states `(B, T, d)` (the step's output at the
/// positions that need logits).
pub const DECODER_HIDDEN_STATES: &str = "decoder_hidden_states";
/// The decoder's final layer norm (a node of the head).
pub const DECODER_NORM: &str = "model.decoder.layer_norm";
/// Decoder head output node: logits `(B, T, vocab)` through the tied embedding.
pub const LOGITS: &str = "proj_out";

/// `model.encoder.layers.{i}`.
pub fn encoder_layer(i: usize) -> String {
    format!("model.encoder.layers.{i}")
}

/// `model.decoder.layers.{i}`.
pub fn decoder_layer(i: usize) -> String {
    format!("model.decoder.layers.{i}")
}

/// The cross-attention keys of decoder layer `i`, `(B, H, 1500, D)`: an
/// output of the cross-K/V model and an input of the decoder step.
pub fn cross_keys(i: usize) -> String {
    format!("{}.encoder_attn.keys", decoder_layer(i))
}

/// The cross-attention values of decoder layer `i` (see [`cross_keys`]).
pub fn cross_values(i: usize) -> String {
    format!("{}.encoder_attn.values", decoder_layer(i))
}
