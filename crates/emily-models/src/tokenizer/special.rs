//! Whisper's special tokens, read from a `tokenizer.json`'s added tokens.
//!
//! English-only and multilingual models number them differently (every id from
//! `<|endoftext|>` on is one higher in multilingual vocabularies), so nothing is
//! hard-coded: ids are looked up by their text. Timestamp tokens are not in
//! `tokenizer.json`; every id from `<|notimestamps|>` + 1 on is a timestamp,
//! `<|0.00|>` first, [`SECONDS_PER_TIMESTAMP`] apart.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::TokenizerError;

/// Seconds between consecutive timestamp tokens.
pub const SECONDS_PER_TIMESTAMP: f32 = 0.02;

/// Ids of Whisper's special tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    /// `<|endoftext|>`: end of transcript.
    pub eot: u32,
    /// `<|startoftranscript|>`.
    pub sot: u32,
    /// `<|translate|>` task token.
    pub translate: u32,
    /// `<|transcribe|>` task token.
    pub transcribe: u32,
    /// `<|startoflm|>`, if the vocabulary has it.
    pub sot_lm: Option<u32>,
    /// `<|startofprev|>`: precedes the previous window's text used as a prompt.
    pub sot_prev: u32,
    /// `<|nocaptions|>` (or `<|nospeech|>`): the no-speech probability token.
    pub no_speech: Option<u32>,
    /// `<|notimestamps|>`.
    pub no_timestamps: u32,
    /// The first timestamp token, `<|0.00|>` (= `no_timestamps + 1`).
    pub timestamp_begin: u32,
    /// Language tokens as `(code, id)` in id order, e.g. `("en", 50259)`.
    pub languages: Vec<(String, u32)>,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
}

#[derive(Deserialize)]
struct TokenizerFile {
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
}

impl SpecialTokens {
    /// Read the added tokens of the `tokenizer.json` at `path`.
    pub fn from_tokenizer_json(path: &Path) -> Result<Self, TokenizerError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_tokenizer_json_text(&text, path)
    }

    /// [`SpecialTokens::from_tokenizer_json`] of the file's `text` (`path`
    /// names it in errors).
    pub fn from_tokenizer_json_text(text: &str, path: &Path) -> Result<Self, TokenizerError> {
        let file: TokenizerFile =
            serde_json::from_str(text).map_err(|e| TokenizerError::Parse {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Self::from_added_tokens(
            file.added_tokens.into_iter().map(|t| (t.content, t.id)),
            path,
        )
    }

    /// Find the special tokens among `(text, id)` pairs; `path` names the source in errors.
    pub fn from_added_tokens(
        tokens: impl IntoIterator<Item = (String, u32)>,
        path: &Path,
    ) -> Result<Self, TokenizerError> {
        let by_text: HashMap<String, u32> = tokens.into_iter().collect();
        let find = |text: &str| by_text.get(text).copied();
        let need = |text: &str| {
            find(text).ok_or_else(|| TokenizerError::MissingSpecial {
                path: path.to_path_buf(),
                token: text.to_string(),
            })
        };
        let sot = need("<|startoftranscript|>")?;
        let translate = need("<|translate|>")?;
        let mut languages: Vec<(String, u32)> = by_text
            .iter()
            .filter(|(_, &id)| id > sot && id < translate)
            .filter_map(|(text, &id)| {
                let code = text.strip_prefix("<|")?.strip_suffix("|>")?;
                Some((code.to_string(), id))
            })
            .collect();
        languages.sort_by_key(|&(_, id)| id);
        let no_timestamps = need("<|notimestamps|>")?;
        Ok(SpecialTokens {
            eot: need("<|endoftext|>")?,
            sot,
            translate,
            transcribe: need("<|transcribe|>")?,
            sot_lm: find("<|startoflm|>"),
            sot_prev: need("<|startofprev|>")?,
            no_speech: find("<|nocaptions|>").or_else(|| find("<|nospeech|>")),
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
            languages,
        })
    }

    /// The token of language `code` (e.g. `"en"`), if the vocabulary has it.
    pub fn language(&self, code: &str) -> Option<u32> {
        self.languages
            .iter()
            .find(|(c, _)| c == code)
            .map(|&(_, id)| id)
    }

    /// The language code of token `id`, if it is a language token.
    pub fn language_code(&self, id: u32) -> Option<&str> {
        self.languages
            .iter()
            .find(|&&(_, i)| i == id)
            .map(|(c, _)| c.as_str())
    }

    /// Whether `id` is a timestamp token.
    pub fn is_timestamp(&self, id: u32) -> bool {
        id >= self.timestamp_begin
    }

    /// Whether `id` is any special token (control, language or timestamp): every
    /// id from `<|endoftext|>` on.
    pub fn is_special(&self, id: u32) -> bool {
        id >= self.eot
    }

    /// The time of timestamp token `id` in seconds, or `None` if it is not one.
    pub fn timestamp_seconds(&self, id: u32) -> Option<f32> {
        self.is_timestamp(id)
            .then(|| (id - self.timestamp_begin) as f32 * SECONDS_PER_TIMESTAMP)
    }

    /// The timestamp token nearest to `seconds` (negative times clamp to `<|0.00|>`).
    pub fn timestamp_token(&self, seconds: f32) -> u32 {
        self.timestamp_begin + (seconds.max(0.0) / SECONDS_PER_TIMESTAMP).round() as u32
    }
}

/// Render a timestamp as Whisper writes it, e.g. `<|8.00|>`.
pub fn format_timestamp(seconds: f32) -> String {
    format!("<|{seconds:.2}|>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multilingual_ids_and_timestamps() {
        let tokens = [
            ("<|endoftext|>", 50257),
            ("<|startoftranscript|>", 50258),
            ("<|en|>", 50259),
            ("<|zh|>", 50260),
            ("<|translate|>", 50358),
            ("<|transcribe|>", 50359),
            ("<|startofprev|>", 50361),
            ("<|nospeech|>", 50362),
            ("<|notimestamps|>", 50363),
        ];
        let s = SpecialTokens::from_added_tokens(
            tokens.iter().map(|&(t, i)| (t.to_string(), i)),
            Path::new("t.json"),
        )
        .unwrap();
        assert_eq!(s.timestamp_begin, 50364);
        assert_eq!(s.language("zh"), Some(50260));
        assert_eq!(s.language_code(50259), Some("en"));
        assert_eq!(s.no_speech, Some(50362));
        assert_eq!(s.timestamp_seconds(50364 + 400), Some(8.0));
        assert_eq!(s.timestamp_token(8.0), 50764);
        assert_eq!(format_timestamp(7.74), "<|7.74|>");
        let err = SpecialTokens::from_added_tokens(Vec::new(), Path::new("t.json")).unwrap_err();
        assert!(err.to_string().contains("t.json"), "{err}");
    }
}
