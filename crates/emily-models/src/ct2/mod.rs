//! Loader for CTranslate2 Whisper model directories (as used by faster-whisper).
//!
//! A directory holds `model.bin` (all weights, see [`model_bin`] for the format),
//! `config.json` (suppress tokens, language ids, alignment heads, see
//! [`Ct2Config`]), `tokenizer.json` and optionally `vocabulary.txt`.
//! A model shipped in pieces is concatenated into one `model.bin` on disk by
//! `scripts/fetch-models.sh`; [`read_model_bin`] reads single files only.
//!
//! [`load_ct2_dir`] returns a [`WhisperCheckpoint`] whose weights use the same
//! Hugging Face names as the safetensors loader (see [`names`](self) for the
//! mapping), so a model builder does not care which format it was given.

mod config;
pub mod model_bin;
mod names;
mod quantized;
mod writer;

use std::path::{Path, PathBuf};

pub use config::Ct2Config;
pub use model_bin::{read_model_bin, Ct2ModelBin};
pub(crate) use quantized::quantize_row;
pub use quantized::{int8_rows_as_q8_0, quantize_int8, record_as_q8_0};
pub use writer::{write_int8_model, write_model_bin};

use crate::weights::WeightsError;
use crate::whisper::{CheckpointFormat, GenerationSettings, WhisperCheckpoint, WhisperDims};

/// Errors reading a CTranslate2 model directory; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    /// The file could not be opened, read or mapped (for example it is missing).
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file ends before a field it announces.
    #[error("{path}: truncated at byte {offset}: {what} needs {needed} bytes, {left} left")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Byte offset of the field.
        offset: usize,
        /// What was being read.
        what: String,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes remaining in the file.
        left: usize,
    },
    /// A field holds an impossible value.
    #[error("{path}: malformed at byte {offset}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Byte offset of the field.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// The binary version is outside the supported range.
    #[error("{path}: unsupported model.bin binary version {version} (supported: 5 and 6)")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version found.
        version: u32,
    },
    /// An alias points to no variable.
    #[error("{path}: alias `{alias}` points to missing variable `{target}`")]
    BadAlias {
        /// The file.
        path: PathBuf,
        /// Alias name.
        alias: String,
        /// Its target.
        target: String,
    },
    /// `config.json` is not valid.
    #[error("{path}: invalid CTranslate2 config: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// A variable does not fit the Whisper architecture.
    #[error("{path}: variable `{tensor}`: {reason}")]
    Mapping {
        /// The file.
        path: PathBuf,
        /// Variable name.
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor is missing or has the wrong shape.
    #[error(transparent)]
    Weights(#[from] WeightsError),
}

/// Load a CTranslate2 Whisper directory: `model.bin`, `config.json` and the path of
/// `tokenizer.json` (which must exist).
pub fn load_ct2_dir(dir: &Path) -> Result<WhisperCheckpoint, Ct2Error> {
    let bin_path = dir.join("model.bin");
    if !bin_path.exists() && dir.join("model.bin.part1").exists() {
        return Err(Ct2Error::Io {
            path: bin_path,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "missing, but model.bin.part1 exists: concatenate the pieces in order \
                 into model.bin (scripts/fetch-models.sh does this)",
            ),
        });
    }
    let bin = read_model_bin(&bin_path)?;
    if bin.spec_name != "WhisperSpec" {
        return Err(Ct2Error::Mapping {
            path: bin_path,
            tensor: "(header)".into(),
            reason: format!("spec `{}` is not a Whisper model", bin.spec_name),
        });
    }
    // Quantized models (int8 / int16 codes with scales) become float tensors
    // of the model's float type here; `--compute-type int8` requantizes them.
    let (variables, _quantized) =
        quantized::dequantize_variables(&bin.variables, &bin.aliases, &bin_path)?;
    let weights = names::ct2_to_hf(&variables, &bin_path)?;
    let heads = |side: &str| -> Result<usize, Ct2Error> {
        let name = format!("{side}/num_heads");
        let value = variables.get(&name)?.first_as_i64();
        match value {
            Some(h) if h > 0 => Ok(h as usize),
            _ => Err(Ct2Error::Mapping {
                path: bin_path.clone(),
                tensor: name,
                reason: format!("invalid head count {value:?}"),
            }),
        }
    };
    let dims = WhisperDims::from_weights(&weights, heads("encoder")?, heads("decoder")?)?;

    let config_path = dir.join("config.json");
    let config = Ct2Config::from_file(&config_path)?;
    let tokenizer_path = dir.join("tokenizer.json");
    if !tokenizer_path.is_file() {
        return Err(Ct2Error::Io {
            path: tokenizer_path,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "tokenizer.json is missing"),
        });
    }
    Ok(WhisperCheckpoint {
        dir: dir.to_path_buf(),
        format: CheckpointFormat::CTranslate2,
        dims,
        weights,
        generation: GenerationSettings {
            suppress_tokens: config.suppress_ids,
            begin_suppress_tokens: config.suppress_ids_begin,
            alignment_heads: config.alignment_heads,
        },
        tokenizer_path,
    })
}
