//! Hugging Face Whisper directories: loading ([`load_hf_dir`]) and writing one from a
//! CTranslate2 directory ([`convert_ct2_to_hf`]).
//!
//! A directory holds `config.json` ([`HfWhisperConfig`]), `model.safetensors`
//! (memory-mapped; names like `model.encoder.layers.0.self_attn.q_proj.weight`),
//! `tokenizer.json`, and optionally `generation_config.json`
//! ([`HfGenerationConfig`]) and `preprocessor_config.json`
//! ([`HfPreprocessorConfig`]). Sharded checkpoints
//! (`model.safetensors.index.json`) are not supported.

mod config;
mod convert;
mod load;

use std::path::PathBuf;

pub use config::{HfGenerationConfig, HfPreprocessorConfig, HfWhisperConfig};
pub use convert::{convert_ct2_to_hf, ConvertError};
pub use load::{load_hf_dir, read_safetensors};

use crate::weights::WeightsError;

/// Errors reading or writing a Hugging Face directory; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    /// A file could not be opened, read, mapped or written (for example it is missing).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file is not valid or lacks a required field.
    #[error("{path}: invalid JSON: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// A safetensors file is corrupt or could not be written.
    #[error("{path}: invalid safetensors file: {reason}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor has an element type this crate does not handle.
    #[error("{path}: tensor `{tensor}` has unsupported dtype {dtype}")]
    UnsupportedDType {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// The dtype found.
        dtype: String,
    },
    /// `config.json` disagrees with the weights.
    #[error("{path}: `{field}` is {config} but the weights say {weights}")]
    ConfigMismatch {
        /// The config file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// Value in the config.
        config: usize,
        /// Value implied by the tensor shapes.
        weights: usize,
    },
    /// The model or its features are not standard Whisper.
    #[error("{path}: unsupported model settings: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        reason: String,
    },
    /// A tensor is missing or has the wrong shape.
    #[error(transparent)]
    Weights(#[from] WeightsError),
}
