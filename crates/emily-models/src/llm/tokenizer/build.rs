//! Building a `tokenizers` pipeline from a [`GgufVocab`]: byte-level BPE with
//! the pre-tokenizer regexes llama.cpp uses for the file's `tokenizer.ggml.pre`
//! (GPT-2-style models), or SentencePiece-style BPE whose merge order follows
//! the token scores, with byte fallback (Gemma, Llama 2).

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, NormalizerWrapper, SplitDelimiterBehavior, Tokenizer};

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
        "llama" => sentencepiece_bpe(vocab)?,
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
            TokenType::Control => Some(AddedToken::from(t.clone(), true)),
            TokenType::UserDefined => Some(AddedToken::from(t.clone(), false).normalized(false)),
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
        map.entry(t.clone()).or_insert(i as u32);
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

/// Merges implied by SentencePiece scores: every split of a normal token
/// into two tokens is a merge, ranked by the merged token's score (highest
/// first), as llama.cpp's SentencePiece tokenizer prefers the best-scoring
/// bigram.
fn score_merges(vocab: &GgufVocab, map: &Vocab) -> Vec<(String, String)> {
    let mut ranked: Vec<(f32, u32, usize)> = Vec::new();
    for (id, t) in vocab.tokens.iter().enumerate() {
        if vocab.types[id] != TokenType::Normal && vocab.types[id] != TokenType::UserDefined {
            continue;
        }
        for (k, _) in t.char_indices().skip(1) {
            let (a, b) = t.split_at(k);
            if map.contains_key(a) && map.contains_key(b) {
                ranked.push((vocab.scores[id], id as u32, k));
            }
        }
    }
    ranked.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    ranked
        .into_iter()
        .map(|(_, id, k)| {
            let (a, b) = vocab.tokens[id as usize].split_at(k);
            (a.to_string(), b.to_string())
        })
        .collect()
}

fn sentencepiece_bpe(vocab: &GgufVocab) -> Result<Tokenizer, BuildError> {
    if vocab.scores.len() != vocab.len() {
        return Err("a SentencePiece vocabulary needs tokenizer.ggml.scores".into());
    }
    let map = vocab_map(vocab);
    let merges = score_merges(vocab, &map);
    let mut builder = BPE::builder()
        .vocab_and_merges(map, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = vocab.unk {
        builder = builder.unk_token(vocab.tokens[unk as usize].clone());
    }
    let bpe = builder.build().map_err(|e| format!("BPE: {e}"))?;
    let mut tok = Tokenizer::new(bpe);
    let space = Replace::new(" ", "▁").map_err(|e| format!("normalizer: {e}"))?;
    let mut norm: Vec<NormalizerWrapper> = Vec::new();
    if vocab.add_space_prefix {
        norm.push(Prepend::new("▁".into()).into());
    }
    norm.push(space.into());
    tok.with_normalizer(Some(tokenizers::normalizers::Sequence::new(norm)));
    let unspace = Replace::new("▁", " ").map_err(|e| format!("decoder: {e}"))?;
    let mut dec = vec![
        unspace.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if vocab.add_space_prefix {
        dec.push(tokenizers::decoders::strip::Strip::new(' ', 1, 0).into());
    }
    tok.with_decoder(Some(DecoderSequence::new(dec)));
    Ok(tok)
}
