//! Large language models from GGUF files: tokenizer and chat template from
//! the file's metadata, `llama` / `qwen2` / `qwen3` / `gemma3` as `emily-nn`
//! graphs, and generation (prefill, then a decode step compiled once over a
//! static KV cache).

pub mod chat;
pub mod tokenizer;

pub use chat::{ChatMessage, ChatTemplate, ChatTemplateError};
pub use tokenizer::{LlmTokenizer, LlmTokenizerError, TextStream};
