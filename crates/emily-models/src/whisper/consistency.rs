//! Load-time checks that a checkpoint and its tokenizer describe one model, so a
//! mismatched pair is an error naming the file and field instead of an index out
//! of bounds in decoding or text made of the wrong tokens.

use super::{LoadError, WhisperCheckpoint};
use crate::log_mel::CHUNK_FRAMES;
use crate::tokenizer::WhisperTokenizer;

/// Timestamp tokens after `<|notimestamps|>`: `<|0.00|>` to `<|30.00|>`.
pub(crate) const TIMESTAMP_TOKENS: usize = CHUNK_FRAMES / 2 + 1;

/// Tokens a window's prompt adds to the previous text (`<|startofprev|>`,
/// `<|startoftranscript|>`, language, task, `<|notimestamps|>`).
const PROMPT_OVERHEAD: usize = 5;

/// Check `tokenizer` against `ck`: every special token and suppressed id lies in
/// the vocabulary, the vocabulary is the tokenizer's plus the timestamps, the
/// encoder covers one 30 s window and the decoder's context holds a prompt.
pub(crate) fn check_tokenizer(
    ck: &WhisperCheckpoint,
    tokenizer: &WhisperTokenizer,
) -> Result<(), LoadError> {
    let d = &ck.dims;
    let weights = ck.weights.source_file();
    let tok = tokenizer.path();
    let bad = |file: &std::path::Path, field: String, reason: String| LoadError::Inconsistent {
        file: file.to_path_buf(),
        field,
        reason,
    };
    let sp = tokenizer.special();
    let mut specials = vec![
        ("<|endoftext|>", sp.eot),
        ("<|startoftranscript|>", sp.sot),
        ("<|translate|>", sp.translate),
        ("<|transcribe|>", sp.transcribe),
        ("<|startofprev|>", sp.sot_prev),
        ("<|notimestamps|>", sp.no_timestamps),
    ];
    specials.extend(sp.sot_lm.map(|id| ("<|startoflm|>", id)));
    specials.extend(sp.no_speech.map(|id| ("<|nospeech|>", id)));
    let languages: Vec<(String, u32)> = sp
        .languages
        .iter()
        .map(|(code, id)| (format!("<|{code}|>"), *id))
        .collect();
    let all = specials
        .iter()
        .map(|&(t, id)| (t, id))
        .chain(languages.iter().map(|(t, id)| (t.as_str(), *id)));
    for (token, id) in all {
        if id as usize >= d.n_vocab {
            return Err(bad(
                tok,
                format!("`{token}`"),
                format!(
                    "id {id} is outside the model's vocabulary of {} tokens ({}): the tokenizer belongs to another model",
                    d.n_vocab,
                    weights.display()
                ),
            ));
        }
    }
    let expected = sp.timestamp_begin as usize + TIMESTAMP_TOKENS;
    if d.n_vocab != expected {
        return Err(bad(
            tok,
            "`<|notimestamps|>`".into(),
            format!(
                "timestamps from id {} on give a vocabulary of {expected} tokens, but the model ({}) has {}: the tokenizer belongs to another model",
                sp.timestamp_begin,
                weights.display(),
                d.n_vocab
            ),
        ));
    }
    let text_vocab = tokenizer.vocab_size();
    if text_vocab > sp.timestamp_begin as usize {
        return Err(bad(
            tok,
            "vocabulary".into(),
            format!(
                "{text_vocab} tokens overlap the timestamp ids that start at {}",
                sp.timestamp_begin
            ),
        ));
    }
    if d.is_multilingual() && sp.languages.is_empty() {
        return Err(bad(
            tok,
            "added_tokens".into(),
            format!(
                "no language tokens, but the model ({}) is multilingual",
                weights.display()
            ),
        ));
    }
    let generation = [
        ("suppress tokens", &ck.generation.suppress_tokens),
        (
            "begin-suppress tokens",
            &ck.generation.begin_suppress_tokens,
        ),
    ];
    for (field, ids) in generation {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= d.n_vocab) {
            return Err(bad(
                &ck.dir,
                field.into(),
                format!("id {id} is outside the vocabulary of {} tokens", d.n_vocab),
            ));
        }
    }
    if d.n_audio_ctx != CHUNK_FRAMES / 2 {
        return Err(bad(
            weights,
            "`model.encoder.embed_positions.weight`".into(),
            format!(
                "{} encoder positions; Whisper's 30 s windows need {}",
                d.n_audio_ctx,
                CHUNK_FRAMES / 2
            ),
        ));
    }
    if d.n_text_ctx < 2 * PROMPT_OVERHEAD {
        return Err(bad(
            weights,
            "`model.decoder.embed_positions.weight`".into(),
            format!(
                "{} decoder positions cannot hold a prompt (at least {})",
                d.n_text_ctx,
                2 * PROMPT_OVERHEAD
            ),
        ));
    }
    Ok(())
}
