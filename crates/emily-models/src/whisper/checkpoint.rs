//! A loaded Whisper checkpoint, independent of the on-disk format.

use std::path::{Path, PathBuf};

use super::WhisperDims;
use crate::ct2::{load_ct2_dir, Ct2Error};
use crate::hf::{load_hf_dir, HfError};
use crate::weights::Weights;

/// The on-disk format a checkpoint was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// CTranslate2 directory (`model.bin`).
    CTranslate2,
    /// Hugging Face directory (`model.safetensors`).
    HuggingFace,
}

/// Decoding settings stored with a model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenerationSettings {
    /// Tokens never to be generated.
    pub suppress_tokens: Vec<u32>,
    /// Tokens not to be generated at the first step (`[220, eot]`).
    pub begin_suppress_tokens: Vec<u32>,
    /// `(decoder layer, head)` pairs used for word-level alignment.
    pub alignment_heads: Vec<(usize, usize)>,
}

/// Everything a model builder needs from a Whisper model directory.
///
/// `weights` uses Hugging Face names (see [`WhisperDims::tensor_shapes`] for the full
/// list; every listed tensor is present with that shape). Special token ids are read
/// from the tokenizer at `tokenizer_path` (see `crate::tokenizer`).
#[derive(Clone, Debug)]
pub struct WhisperCheckpoint {
    /// The directory the model was loaded from.
    pub dir: PathBuf,
    /// Which format the directory was in.
    pub format: CheckpointFormat,
    /// Model sizes.
    pub dims: WhisperDims,
    /// Weights under Hugging Face names (memory-mapped, f16 or f32 as stored).
    pub weights: Weights,
    /// Suppress tokens and alignment heads.
    pub generation: GenerationSettings,
    /// Path of `tokenizer.json`.
    pub tokenizer_path: PathBuf,
}

/// Errors from [`load_whisper`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory holds neither `model.bin` nor `model.safetensors`.
    #[error("{dir}: not a Whisper model directory (no model.bin or model.safetensors); run `make models` to fetch the default model")]
    NotAModelDir {
        /// The directory.
        dir: PathBuf,
    },
    /// Reading a CTranslate2 directory failed.
    #[error(transparent)]
    Ct2(#[from] Ct2Error),
    /// Reading a Hugging Face directory failed.
    #[error(transparent)]
    Hf(#[from] HfError),
    /// The files of the directory disagree (a tokenizer from another model, an
    /// id outside the vocabulary, sizes Whisper cannot run).
    #[error("{file}: {field}: {reason}")]
    Inconsistent {
        /// The file holding the offending field.
        file: PathBuf,
        /// The field, token or tensor.
        field: String,
        /// What disagrees with what.
        reason: String,
    },
}

/// Load a Whisper model directory in either format: `model.safetensors` (Hugging Face)
/// is preferred when both files are present, else `model.bin` (CTranslate2).
pub fn load_whisper(dir: &Path) -> Result<WhisperCheckpoint, LoadError> {
    if dir.join("model.safetensors").is_file() {
        Ok(load_hf_dir(dir)?)
    } else if dir.join("model.bin").is_file() {
        Ok(load_ct2_dir(dir)?)
    } else {
        Err(LoadError::NotAModelDir {
            dir: dir.to_path_buf(),
        })
    }
}
