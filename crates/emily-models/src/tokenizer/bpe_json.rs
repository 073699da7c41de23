//! A faster read of a byte-level-BPE `tokenizer.json` (every Whisper
//! model's): the same tokenizer the `tokenizers` crate builds from the file,
//! with its model read as a [`BPE`] directly.
//!
//! `tokenizers` reads the `model` entry through its model enum, which first
//! buffers the whole entry (50k vocabulary entries, 50k merges) in a generic
//! form and then reads it again: 46–57 ms for Whisper's file, the longest
//! part of loading tiny.en. Here the entry goes to `BPE`'s own reader once
//! (24–26 ms); the other entries are read by `tokenizers`' own types, and the
//! added tokens are added after the model in the file's order, as
//! `tokenizers` does — so their ids are the same.

use serde::Deserialize;
use tokenizers::models::bpe::BPE;
use tokenizers::{
    AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, PaddingParams,
    PostProcessorWrapper, PreTokenizerWrapper, TokenizerBuilder, TruncationParams,
};

/// The entries of a `tokenizer.json` whose model is a BPE.
#[derive(Deserialize)]
struct BpeTokenizerFile {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    truncation: Option<TruncationParams>,
    #[serde(default)]
    padding: Option<PaddingParams>,
    #[serde(default)]
    added_tokens: Vec<AddedTokenEntry>,
    #[serde(default)]
    normalizer: Option<NormalizerWrapper>,
    #[serde(default)]
    pre_tokenizer: Option<PreTokenizerWrapper>,
    model: BPE,
    #[serde(default)]
    decoder: Option<DecoderWrapper>,
    #[serde(default)]
    post_processor: Option<PostProcessorWrapper>,
}

/// One entry of `added_tokens` (its `id` is the one adding it gives).
#[derive(Deserialize)]
struct AddedTokenEntry {
    #[serde(flatten)]
    token: AddedToken,
}

/// The tokenizer in `text`, or `None` when it is not a version 1.0 file with
/// a BPE model (the caller then reads it the general way, which also names
/// what is wrong with a bad file).
pub(super) fn read(text: &str) -> Option<tokenizers::Tokenizer> {
    let file: BpeTokenizerFile = serde_json::from_str(text).ok()?;
    if file.version.as_deref().is_some_and(|v| v != "1.0") {
        return None;
    }
    let mut tokenizer = TokenizerBuilder::<
        ModelWrapper,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(ModelWrapper::BPE(file.model))
    .with_normalizer(file.normalizer)
    .with_pre_tokenizer(file.pre_tokenizer)
    .with_post_processor(file.post_processor)
    .with_decoder(file.decoder)
    .with_truncation(file.truncation)
    .with_padding(file.padding)
    .build()
    .ok()?;
    let added: Vec<AddedToken> = file.added_tokens.into_iter().map(|t| t.token).collect();
    tokenizer.add_tokens(&added);
    Some(tokenizer.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tokenizer_json(model: &str) -> String {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../models")
            .join(model)
            .join("tokenizer.json");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `make models` first)", path.display()))
    }

    /// The fast read gives the tokenizer `tokenizers` builds from the same
    /// file: vocabulary with added tokens, their ids, and the encodings and
    /// decodings of text in several scripts, with special tokens in it.
    #[test]
    fn reads_the_same_tokenizer_as_the_tokenizers_crate() {
        let texts = [
            " And so my fellow Americans, ask not what your country can do for you.",
            "Hello world! 123 4567 -- \"quotes\" and 'apostrophes' (parens) [x] {y}",
            " Guten Morgen, schöne Grüße aus München. Ça va? ¿Qué tal? Ελληνικά",
            "日本語のテキスト、中文文本，한국어 텍스트 🙂🚀",
            "<|startoftranscript|><|en|><|transcribe|><|notimestamps|> text<|endoftext|>",
            "   leading spaces\tand\ttabs\nnew lines\r\n",
            "",
        ];
        for model in ["whisper-tiny.en", "whisper-base"] {
            let text = tokenizer_json(model);
            let fast = read(&text).expect("a BPE tokenizer.json");
            let slow: tokenizers::Tokenizer = text.parse().unwrap();
            assert_eq!(fast.get_vocab(true), slow.get_vocab(true), "{model}");
            assert_eq!(
                fast.get_added_tokens_decoder(),
                slow.get_added_tokens_decoder(),
                "{model}"
            );
            for t in texts {
                for special in [false, true] {
                    let (a, b) = (
                        fast.encode(t, special).unwrap(),
                        slow.encode(t, special).unwrap(),
                    );
                    assert_eq!(a.get_ids(), b.get_ids(), "{model}: {t:?}");
                    assert_eq!(
                        fast.decode(a.get_ids(), !special).unwrap(),
                        slow.decode(b.get_ids(), !special).unwrap(),
                        "{model}: {t:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn other_files_are_left_to_the_general_reader() {
        assert!(read("{}").is_none());
        assert!(read("not json").is_none());
        let wordlevel = r#"{"version":"1.0","added_tokens":[],"model":{"type":"WordLevel","vocab":{"a":0},"unk_token":"a"}}"#;
        assert!(read(wordlevel).is_none());
        let future = tokenizer_json("whisper-tiny.en").replacen("\"1.0\"", "\"9.9\"", 1);
        assert!(read(&future).is_none());
    }
}
