//! An LLM's tokenizer, built from its GGUF file's metadata: byte-level BPE
//! (SmolLM2, Qwen) through the `tokenizers` crate with the pre-tokenizer the
//! file names, or SentencePiece-style BPE with byte fallback (Gemma) run
//! straight from the vocabulary's scores (the `spm` module). Control tokens (chat
//! markers) are matched whole in the text.

mod build;
mod spm;
mod table;
mod vocab;

use std::path::PathBuf;

pub use build::pre_tokenizer_regexes;
pub use table::TokenTable;
pub use vocab::{GgufVocab, TokenType};

use crate::gguf::{GgufError, GgufFile};

/// Errors building or using an LLM tokenizer; each names the model file.
#[derive(Debug, thiserror::Error)]
pub enum LlmTokenizerError {
    /// The file's tokenizer metadata is missing or malformed.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The tokenizer cannot be built from the metadata.
    #[error("{path}: tokenizer: {msg}")]
    Build {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Encoding or decoding failed.
    #[error("{path}: tokenizer: {msg}")]
    Codec {
        /// The model file.
        path: PathBuf,
        /// The library's message.
        msg: String,
    },
}

/// A loaded tokenizer; `Send + Sync`, shareable across threads.
pub struct LlmTokenizer {
    path: PathBuf,
    vocab: GgufVocab,
    inner: Codec,
    stop: Vec<u32>,
}

/// The encoder and decoder behind an [`LlmTokenizer`].
enum Codec {
    /// Byte-level BPE through the `tokenizers` crate.
    Bpe(Box<tokenizers::Tokenizer>),
    /// SentencePiece-style BPE from the scores.
    Spm(Box<spm::Spm>),
}

impl std::fmt::Debug for LlmTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmTokenizer")
            .field("path", &self.path)
            .field("model", &self.vocab.model)
            .field("pre", &self.vocab.pre)
            .field("tokens", &self.vocab.len())
            .finish()
    }
}

impl LlmTokenizer {
    /// Builds the tokenizer from `file`'s `tokenizer.ggml.*` metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<LlmTokenizer, LlmTokenizerError> {
        let path = file.path().to_path_buf();
        let mut vocab = GgufVocab::from_gguf(file)?;
        let inner = match vocab.model.as_str() {
            "llama" => spm::Spm::new(&vocab).map(|s| Codec::Spm(Box::new(s))),
            _ => build::build(&vocab).map(|t| Codec::Bpe(Box::new(t))),
        }
        .map_err(|msg| LlmTokenizerError::Build {
            path: path.clone(),
            msg,
        })?;
        // The built tokenizer holds the merges (by id); the strings would
        // only take memory (5 MB for SmolLM2, 17 MB for Qwen2.5).
        vocab.merges = Vec::new();
        let stop = vocab.end_of_generation();
        Ok(LlmTokenizer {
            path,
            vocab,
            inner,
            stop,
        })
    }

    /// The vocabulary data (its `merges` are left empty: the built
    /// tokenizer holds them).
    pub fn vocab(&self) -> &GgufVocab {
        &self.vocab
    }

    /// Number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Beginning-of-sequence token, if the vocabulary has one.
    pub fn bos(&self) -> Option<u32> {
        self.vocab.bos
    }

    /// End-of-sequence token, if the vocabulary has one.
    pub fn eos(&self) -> Option<u32> {
        self.vocab.eos
    }

    /// Tokens that end generation (EOS, EOT, end-of-turn markers).
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stop
    }

    /// The chat template stored in the file, if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.vocab.chat_template.as_deref()
    }

    /// The text of token `id` as stored (`"Ġthe"`, `"<|im_end|>"`).
    pub fn token(&self, id: u32) -> Option<&str> {
        self.vocab.tokens.get(id)
    }

    /// The id of token text `piece` (exact match).
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.vocab.tokens.id(piece)
    }

    /// Encodes `text`; control tokens written in the text (`<|im_start|>`)
    /// become their ids. With `add_special`, BOS is prepended when the file
    /// asks for it (`tokenizer.ggml.add_bos_token`).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, LlmTokenizerError> {
        let mut ids = Vec::new();
        if add_special && self.vocab.add_bos {
            ids.extend(self.vocab.bos);
        }
        match &self.inner {
            Codec::Bpe(t) => {
                let enc = t.encode_fast(text, false).map_err(|e| self.codec(e))?;
                ids.extend_from_slice(enc.get_ids());
            }
            Codec::Spm(s) => ids.extend(s.encode(&self.vocab, text).map_err(|e| self.codec(e))?),
        }
        Ok(ids)
    }

    /// Decodes `ids` to text; with `skip_special`, control tokens are left out.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, LlmTokenizerError> {
        match &self.inner {
            Codec::Bpe(t) => t.decode(ids, skip_special).map_err(|e| self.codec(e)),
            Codec::Spm(s) => s
                .decode(&self.vocab, ids, skip_special)
                .map_err(|e| self.codec(e)),
        }
    }

    /// An incremental decoder: feed ids one at a time, get text as soon as it
    /// forms whole characters.
    pub fn stream(&self, skip_special: bool) -> TextStream<'_> {
        TextStream {
            tokenizer: self,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
            skip_special,
        }
    }

    fn codec(&self, e: impl std::fmt::Display) -> LlmTokenizerError {
        LlmTokenizerError::Codec {
            path: self.path.clone(),
            msg: e.to_string(),
        }
    }
}

/// Incremental detokenisation: text is released only when it no longer ends
/// in an incomplete UTF-8 sequence (a byte-level token can carry part of a
/// character). Each step decodes only the tokens since the last release.
pub struct TextStream<'a> {
    tokenizer: &'a LlmTokenizer,
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
    skip_special: bool,
}

impl TextStream<'_> {
    /// Adds one token; returns the new text it completes (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String, LlmTokenizerError> {
        self.ids.push(id);
        let tok = self.tokenizer;
        let before = tok.decode(&self.ids[self.prefix..self.read], self.skip_special)?;
        let now = tok.decode(&self.ids[self.prefix..], self.skip_special)?;
        if now.ends_with('\u{FFFD}') || now.len() <= before.len() {
            return Ok(String::new());
        }
        let Some(new) = now.get(before.len()..) else {
            return Ok(String::new());
        };
        self.prefix = self.read;
        self.read = self.ids.len();
        Ok(new.to_string())
    }

    /// Every token pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}
