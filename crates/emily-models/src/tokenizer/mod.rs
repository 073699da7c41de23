//! Whisper's tokenizer: byte-level BPE from `tokenizer.json` (the `tokenizers` crate,
//! pure-Rust regex) plus the special tokens read from the same file.

mod bpe_json;
mod special;

use std::path::{Path, PathBuf};

pub use special::{format_timestamp, SpecialTokens, SECONDS_PER_TIMESTAMP};

/// Errors loading or using a tokenizer; each names the `tokenizer.json` involved.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The tokenizer file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid `tokenizer.json`.
    #[error("{path}: invalid tokenizer file: {reason}")]
    Parse {
        /// The tokenizer file.
        path: PathBuf,
        /// Parser message.
        reason: String,
    },
    /// A required Whisper special token is not among the added tokens.
    #[error("{path}: special token `{token}` is missing (is this a Whisper tokenizer?)")]
    MissingSpecial {
        /// The tokenizer file.
        path: PathBuf,
        /// The missing token text.
        token: String,
    },
    /// A language code the vocabulary lacks.
    #[error("{path}: no language token for `{code}`")]
    UnknownLanguage {
        /// The tokenizer file.
        path: PathBuf,
        /// The requested code.
        code: String,
    },
    /// Encoding or decoding failed inside the `tokenizers` crate.
    #[error("{path}: {reason}")]
    Codec {
        /// The tokenizer file.
        path: PathBuf,
        /// The library's message.
        reason: String,
    },
}

/// What the decoder is asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Task {
    /// Transcribe in the spoken language.
    #[default]
    Transcribe,
    /// Translate to English.
    Translate,
}

/// A Whisper tokenizer: text <-> token ids, with the special tokens of its model.
#[derive(Clone)]
pub struct WhisperTokenizer {
    inner: tokenizers::Tokenizer,
    special: SpecialTokens,
    path: PathBuf,
}

impl std::fmt::Debug for WhisperTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperTokenizer")
            .field("path", &self.path)
            .field("special", &self.special)
            .finish()
    }
}

impl WhisperTokenizer {
    /// Load `tokenizer.json` from `path`.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // The special tokens as the file declares them (their ids are then
        // checked against the model's vocabulary by the loader).
        let special = SpecialTokens::from_tokenizer_json_text(&text, path)?;
        let inner = bpe_json::read(&text)
            .map_or_else(|| text.parse::<tokenizers::Tokenizer>(), Ok)
            .map_err(|e| TokenizerError::Parse {
                path: path.to_path_buf(),
                reason: format!("{e}"),
            })?;
        Ok(WhisperTokenizer {
            inner,
            special,
            path: path.to_path_buf(),
        })
    }

    /// The special token ids.
    pub fn special(&self) -> &SpecialTokens {
        &self.special
    }

    /// Entries in the vocabulary, added (special) tokens included; timestamp
    /// tokens, which `tokenizer.json` does not list, are not counted.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The file this tokenizer was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn codec_err(&self, e: impl std::fmt::Display) -> TokenizerError {
        TokenizerError::Codec {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// Token ids of `text` (no special tokens added), e.g. for a prompt.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| self.codec_err(e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, skipping special and timestamp tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let text: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&id| !self.special.is_special(id))
            .collect();
        self.inner
            .decode(&text, false)
            .map_err(|e| self.codec_err(e))
    }

    /// Text of `ids` with timestamp tokens rendered as `<|1.23|>` and other special
    /// tokens skipped.
    pub fn decode_with_timestamps(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let mut out = String::new();
        let mut run: Vec<u32> = Vec::new();
        for &id in ids {
            if let Some(seconds) = self.special.timestamp_seconds(id) {
                out += &self.decode(&run)?;
                run.clear();
                out += &format_timestamp(seconds);
            } else {
                run.push(id);
            }
        }
        out += &self.decode(&run)?;
        Ok(out)
    }

    /// The text of one token id as stored in the vocabulary (byte-level form, e.g.
    /// `ĠAnd`); timestamps are rendered as `<|1.23|>`.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        match self.special.timestamp_seconds(id) {
            Some(seconds) => Some(format_timestamp(seconds)),
            None => self.inner.id_to_token(id),
        }
    }

    /// The id of a vocabulary entry (byte-level form or special token text).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The decoder prompt: `<|startoftranscript|>`, then for a multilingual model the
    /// language (if given) and task tokens, then `<|notimestamps|>` unless
    /// `timestamps`. English-only models get no language or task token.
    pub fn sot_sequence(
        &self,
        multilingual: bool,
        language: Option<&str>,
        task: Task,
        timestamps: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let s = &self.special;
        let mut seq = vec![s.sot];
        if multilingual {
            if let Some(code) = language {
                seq.push(
                    s.language(code)
                        .ok_or_else(|| TokenizerError::UnknownLanguage {
                            path: self.path.clone(),
                            code: code.to_string(),
                        })?,
                );
            }
            seq.push(match task {
                Task::Transcribe => s.transcribe,
                Task::Translate => s.translate,
            });
        }
        if !timestamps {
            seq.push(s.no_timestamps);
        }
        Ok(seq)
    }
}
