//! GGUF, llama.cpp's single-file model format: a header of typed metadata
//! (hyperparameters, tokenizer, chat template) and tensor infos, then the
//! tensors' bytes, aligned, in plain or block-quantised GGML types.
//!
//! [`GgufFile::open`] memory-maps and parses versions 2 and 3, checking every
//! count, string length, offset and size against the file with checked
//! arithmetic; errors name the file and the field. [`GgufWriter`] writes
//! version 3 (for `emily quantize` and for tests).

mod cursor;
mod reader;
mod types;
mod value;
mod writer;

use std::path::PathBuf;

pub use reader::{FileBytes, GgufFile, TensorInfo, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS};
pub use types::{GgmlType, INT4_G64_ID};
pub use value::{Array, Value, ValueType};
pub use writer::GgufWriter;

/// Errors reading or writing GGUF; each names the file and the field, key or
/// tensor.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened, mapped or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid GGUF file.
    #[error("{path}: not a valid GGUF file: {field}: {msg}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was being read (`"tensor_info[3] `blk.0.attn_q.weight` type"`).
        field: String,
        /// What is wrong.
        msg: String,
    },
    /// A metadata key the model needs is absent.
    #[error("{path}: metadata key `{key}` is missing")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A metadata value has the wrong type.
    #[error("{path}: metadata `{key}` should be {expected}, found {found}")]
    KeyType {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What was expected.
        expected: String,
        /// The value's type.
        found: String,
    },
    /// A tensor the model needs is absent.
    #[error("{path}: no tensor named `{name}`")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// A tensor has the wrong shape or an unusable type.
    #[error("{path}: tensor `{name}`: {msg}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// What is wrong.
        msg: String,
    },
}
