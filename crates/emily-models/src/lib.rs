//! Emily models: loaders, audio input, featurizers and tokenizers for Whisper.
//!
//! This layer does not depend on the tensor engine. It turns what a user has on
//! disk into plain data a model builder consumes:
//!
//! - [`whisper::load_whisper`] reads a CTranslate2 ([`ct2`]) or Hugging Face ([`hf`])
//!   model directory into a [`whisper::WhisperCheckpoint`]: dims, weights under
//!   Hugging Face names ([`weights::Weights`], memory-mapped), suppress tokens and
//!   the tokenizer path. [`hf::convert_ct2_to_hf`] writes the HF layout.
//! - [`audio`] decodes WAV/FLAC/MP3/OGG files to 16 kHz mono f32.
//! - [`log_mel`] computes Whisper's log-mel features.
//! - [`tokenizer`] wraps `tokenizer.json` with Whisper's special tokens.
//! - [`npy`] reads NumPy `.npy` files (reference data in tests).
//! - [`training`] trains a digits classifier and a byte language model on real data.
//! - [`fuzzing`] holds the parsers' fuzz entry points (`make fuzz`).

#![deny(missing_docs)]

pub mod argmax;
pub mod audio;
pub mod batch_rows;
pub mod ct2;
pub mod fuzzing;
pub mod gguf;
pub mod hf;
pub mod llm;
pub mod log_mel;
pub mod npy;
pub mod tokenizer;
pub mod training;
pub mod weights;
pub mod whisper;

#[cfg(test)]
mod tests {
    /// Loaded models are shared by many workers: the data types must be `Send + Sync`.
    #[test]
    fn shared_types_are_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<crate::weights::Weights>();
        shared::<crate::whisper::WhisperCheckpoint>();
        shared::<crate::tokenizer::WhisperTokenizer>();
        shared::<crate::log_mel::LogMelFeaturizer>();
    }
}
