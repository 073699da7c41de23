//! Large language models from GGUF files: tokenizer and chat template from
//! the file's metadata, `llama` / `qwen2` / `qwen3` / `gemma3` as `emily-nn`
//! graphs, and generation (prefill, then a decode step compiled once over a
//! static KV cache).
//!
//! [`LlmModel::load`] reads a file; the model is `Send + Sync` and meant to
//! be shared (`Arc`) by many requests, each of which runs its own
//! [`Generator`] (KV caches, sampler, text stream).

mod batch;
pub mod chat;
pub mod config;
mod generate;
pub mod graph;
pub(crate) mod heap;
mod model;
pub mod params;
pub mod quantize;
mod resident;
mod running;
pub mod sampling;
mod sequence;
pub mod tokenizer;
mod warm_up;

use std::path::PathBuf;

pub use batch::BatchRequest;
pub use chat::{ChatMessage, ChatTemplate, ChatTemplateError};
pub use config::{Arch, LlmConfig};
pub use generate::{GenerateOptions, Generation, Generator, Timings};
pub use model::{LlmModel, LoadOptions};
pub use running::{Finished, RunningBatch};
pub use sampling::{Sampler, SamplingOptions};
pub use sequence::{FinishReason, TokenEvent};
pub use tokenizer::{LlmTokenizer, LlmTokenizerError, TextStream};
pub use warm_up::warm_up;

use crate::gguf::GgufError;

/// Errors loading or running a language model; each names the file, key,
/// tensor, node or input involved.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Reading the GGUF file.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// Building or using the tokenizer.
    #[error(transparent)]
    Tokenizer(#[from] LlmTokenizerError),
    /// The chat template.
    #[error(transparent)]
    Template(#[from] ChatTemplateError),
    /// Building or running a graph.
    #[error(transparent)]
    Nn(#[from] emily_nn::Error),
    /// A tensor op outside the graphs.
    #[error(transparent)]
    Tensor(#[from] emily::Error),
    /// Something the file asks for that this crate does not implement.
    #[error("{path}: unsupported {what}")]
    Unsupported {
        /// The model file.
        path: PathBuf,
        /// What.
        what: String,
    },
    /// Hyperparameters that do not fit together.
    #[error("{path}: bad model configuration: {what}")]
    Config {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A bad request (empty or too long prompt, bad options).
    #[error("{0}")]
    Input(String),
}
