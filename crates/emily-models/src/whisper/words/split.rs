//! Splitting a window's text tokens into words, as OpenAI's and
//! faster-whisper's tokenizers do: first into runs that decode to whole
//! Unicode characters, then (for languages written with spaces) into words
//! that start with a space or are punctuation.

use crate::tokenizer::{TokenizerError, WhisperTokenizer};

/// Languages written without spaces between words: split at character
/// boundaries only.
const UNSPACED_LANGUAGES: [&str; 6] = ["zh", "ja", "th", "lo", "my", "yue"];

/// Python's `string.punctuation`: a subword whose trimmed text is a substring
/// of it stands alone.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// The words of `tokens` and each word's tokens; special tokens (such as a
/// trailing end-of-text) form words of their own with empty text.
pub fn split_to_word_tokens(
    tokenizer: &WhisperTokenizer,
    tokens: &[u32],
    language: Option<&str>,
) -> Result<Vec<(String, Vec<u32>)>, TokenizerError> {
    let pieces = split_on_unicode(tokenizer, tokens)?;
    if language.is_some_and(|l| UNSPACED_LANGUAGES.contains(&l)) {
        return Ok(pieces);
    }
    let eot = tokenizer.special().eot;
    let mut words: Vec<(String, Vec<u32>)> = Vec::new();
    for (text, ids) in pieces {
        let special = ids[0] >= eot;
        let spaced = text.starts_with(' ');
        let punctuation = PUNCTUATION.contains(text.trim());
        match words.last_mut() {
            Some(last) if !(special || spaced || punctuation) => {
                last.0.push_str(&text);
                last.1.extend_from_slice(&ids);
            }
            _ => words.push((text, ids)),
        }
    }
    Ok(words)
}

/// Runs of tokens that each decode to whole characters: a run ends where its
/// text has no replacement character `U+FFFD`, or has one exactly where the
/// whole text does (a byte sequence that is invalid in the full text too).
fn split_on_unicode(
    tokenizer: &WhisperTokenizer,
    tokens: &[u32],
) -> Result<Vec<(String, Vec<u32>)>, TokenizerError> {
    const REPLACEMENT: char = '\u{FFFD}';
    let full: Vec<char> = tokenizer.decode(tokens)?.chars().collect();
    let mut out = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    let mut offset = 0;
    for &t in tokens {
        current.push(t);
        let text = tokenizer.decode(&current)?;
        let bad = text.chars().position(|c| c == REPLACEMENT);
        let complete = match bad {
            None => true,
            Some(i) => full.get(offset + i) == Some(&REPLACEMENT),
        };
        if complete {
            offset += text.chars().count();
            out.push((text, std::mem::take(&mut current)));
        }
    }
    Ok(out)
}
