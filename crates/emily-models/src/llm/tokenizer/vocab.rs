//! The vocabulary a GGUF file carries under `tokenizer.ggml.*`: token
//! strings, their types and scores, merges, and the special ids.

use crate::gguf::{GgufError, GgufFile};

use super::table::TokenTable;

/// A token's type as llama.cpp numbers it (`tokenizer.ggml.token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// An ordinary piece of text.
    Normal,
    /// The unknown token.
    Unknown,
    /// A control token (BOS, EOS, chat markers): special, matched in text.
    Control,
    /// A user-defined token: always matched as a whole in text.
    UserDefined,
    /// A reserved slot never produced by the tokenizer.
    Unused,
    /// One raw byte (`<0x0A>`), for byte fallback.
    Byte,
}

impl TokenType {
    fn from_id(id: i64) -> TokenType {
        match id {
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Normal,
        }
    }
}

/// The tokenizer data of a GGUF file.
#[derive(Clone, Debug)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE) or `"llama"` (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer's name (`"smollm"`, `"qwen2"`), if any.
    pub pre: Option<String>,
    /// Token strings by id, with a text → id index.
    pub tokens: TokenTable,
    /// Token types by id (all normal when the file has none).
    pub types: Vec<TokenType>,
    /// Token scores by id (SentencePiece merge priority; empty if absent).
    pub scores: Vec<f32>,
    /// BPE merges as `(left, right)` pairs in rank order (empty if absent).
    pub merges: Vec<(String, String)>,
    /// Beginning-of-sequence token.
    pub bos: Option<u32>,
    /// End-of-sequence token.
    pub eos: Option<u32>,
    /// End-of-turn token.
    pub eot: Option<u32>,
    /// Unknown token.
    pub unk: Option<u32>,
    /// Padding token.
    pub pad: Option<u32>,
    /// Whether encoding prepends BOS.
    pub add_bos: bool,
    /// Whether SentencePiece text gets a leading `▁`.
    pub add_space_prefix: bool,
    /// The chat template (`tokenizer.chat_template`), if any.
    pub chat_template: Option<String>,
}

impl GgufVocab {
    /// Reads the vocabulary from `file`, checking that the arrays agree in
    /// length and that special ids lie inside the vocabulary.
    pub fn from_gguf(file: &GgufFile) -> Result<GgufVocab, GgufError> {
        let bad = |key: &str, msg: String| GgufError::Format {
            path: file.path().to_path_buf(),
            field: key.to_string(),
            msg,
        };
        let model = file.str("tokenizer.ggml.model")?.to_string();
        let strings = file.strings("tokenizer.ggml.tokens")?;
        let n = strings.len();
        let tokens = TokenTable::new(strings)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("tokenizer.ggml.tokens", format!("{n} tokens")))?;
        let types = match file.get("tokenizer.ggml.token_type") {
            None => vec![TokenType::Normal; n],
            Some(_) => {
                let ids = file
                    .array("tokenizer.ggml.token_type")?
                    .to_i64s()
                    .ok_or_else(|| bad("tokenizer.ggml.token_type", "not integers".into()))?;
                ids.into_iter().map(TokenType::from_id).collect()
            }
        };
        let scores = match file.get("tokenizer.ggml.scores") {
            None => Vec::new(),
            Some(_) => file
                .array("tokenizer.ggml.scores")?
                .to_f32s()
                .ok_or_else(|| bad("tokenizer.ggml.scores", "not numbers".into()))?,
        };
        for (key, len) in [
            ("tokenizer.ggml.token_type", types.len()),
            ("tokenizer.ggml.scores", scores.len()),
        ] {
            if len != n && !(key.ends_with("scores") && len == 0) {
                return Err(bad(key, format!("{len} entries for {n} tokens")));
            }
        }
        let merges = match file.get("tokenizer.ggml.merges") {
            None => Vec::new(),
            Some(_) => file
                .strings("tokenizer.ggml.merges")?
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    m.split_once(' ')
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .ok_or_else(|| {
                            bad(
                                "tokenizer.ggml.merges",
                                format!("merge {i} `{m}` is not two pieces"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let id = |key: &str| -> Result<Option<u32>, GgufError> {
            match file.usize_opt(key)? {
                None => Ok(None),
                Some(i) if i < n => Ok(Some(i as u32)),
                Some(i) => Err(bad(
                    key,
                    format!("token id {i} is outside the {n}-token vocabulary"),
                )),
            }
        };
        let spm = model == "llama";
        Ok(GgufVocab {
            pre: file.str_opt("tokenizer.ggml.pre")?.map(str::to_string),
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            eot: id("tokenizer.ggml.eot_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            add_bos: file
                .bool_opt("tokenizer.ggml.add_bos_token")?
                .unwrap_or(spm),
            add_space_prefix: file
                .bool_opt("tokenizer.ggml.add_space_prefix")?
                .unwrap_or(spm),
            chat_template: file.str_opt("tokenizer.chat_template")?.map(str::to_string),
            model,
            tokens,
            types,
            scores,
            merges,
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the vocabulary is empty (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Tokens that end generation: EOS, EOT, and control tokens whose text
    /// is a known end-of-turn marker.
    pub fn end_of_generation(&self) -> Vec<u32> {
        const MARKERS: [&str; 6] = [
            "<|im_end|>",
            "<|endoftext|>",
            "<end_of_turn>",
            "<|eot_id|>",
            "<|end|>",
            "<eos>",
        ];
        let mut ids: Vec<u32> = self.eos.into_iter().chain(self.eot).collect();
        for (i, (t, ty)) in self.tokens.iter().zip(&self.types).enumerate() {
            if *ty == TokenType::Control && MARKERS.contains(&t) {
                ids.push(i as u32);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}
