//! Building a `tokenizers` pipeline from a [`GgufVocab`]: byte-level BPE with
//! the pre-tokenizer regexes llama.cpp uses for the file's `tokenizer.ggml.pre`
//! (GPT-2-style models). SentencePiece vocabularies (Gemma, Llama 2) run
//! through [`super::spm`] instead.

use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::vocab::{GgufVocab, TokenType};

/// GPT-2's pre-tokenizer regex.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Qwen2's (case-insensitive contractions, single digits, newline runs).
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The regexes applied in turn (each splits the pieces of the previous one)
/// for a `tokenizer.ggml.pre` name; `None` for a name this crate does not know.
pub fn pre_tokenizer_regexes(pre: &str) -> Option<Vec<&'static str>> {
    Some(match pre {
        "default" | "gpt-2" | "gpt2" | "mpt" | "olmo" => vec![GPT2],
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" => {
            vec![r"\p{N}", GPT2]
        }
        "qwen2" | "stablelm2" | "deepseek-r1-qwen" => vec![QWEN2],
        "llama3" | "llama-bpe" | "llama-v3" => vec![LLAMA3],
        _ => return None,
    })
}

/// An error message for [`build`].
pub type BuildError = String;

/// The `tokenizers` pipeline for `vocab`.
pub fn build(vocab: &GgufVocab) -> Result<Tokenizer, BuildError> {
    let mut tok = match vocab.model.as_str() {
        "gpt2" => byte_level_bpe(vocab)?,
        m => {
            return Err(format!(
                "tokenizer.ggml.model `{m}` is not supported (gpt2 or llama)"
            ))
        }
    };
    let added: Vec<AddedToken> = vocab
        .tokens
        .iter()
        .zip(&vocab.types)
        .filter_map(|(t, ty)| match ty {
            TokenType::Control => Some(AddedToken::from(t, true)),
            TokenType::UserDefined => Some(AddedToken::from(t, false).normalized(false)),
            _ => None,
        })
        .collect();
    tok.add_tokens(&added);
    Ok(tok)
}

fn vocab_map(vocab: &GgufVocab) -> Vocab {
    let mut map = Vocab::default();
    for (i, t) in vocab.tokens.iter().enumerate() {
        // The first id wins when a string repeats (as llama.cpp's lookup does).
        map.entry(t.to_string()).or_insert(i as u32);
    }
    map
}

fn byte_level_bpe(vocab: &GgufVocab) -> Result<Tokenizer, BuildError> {
    let pre = vocab.pre.as_deref().unwrap_or("default");
    let regexes = pre_tokenizer_regexes(pre)
        .ok_or_else(|| format!("tokenizer.ggml.pre `{pre}` is not a known pre-tokenizer"))?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab_map(vocab), vocab.merges.clone())
        .build()
        .map_err(|e| format!("BPE: {e}"))?;
    let mut tok = Tokenizer::new(bpe);
    let mut steps = Vec::new();
    for r in regexes {
        let split = Split::new(
            SplitPattern::Regex(r.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| format!("pre-tokenizer regex: {e}"))?;
        steps.push(split.into());
    }
    steps.push(tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, false, false).into());
    tok.with_pre_tokenizer(Some(Sequence::new(steps)));
    tok.with_decoder(Some(ByteLevel::new(false, false, false)));
    Ok(tok)
}
