//! Word-level timestamps: which audio frames each text token attends to,
//! through the cross-attention of the model's alignment heads and dynamic
//! time warping ([`dtw`]), turned into timed words ([`split`]) with
//! faster-whisper's punctuation merging and boundary corrections.

mod align;
pub mod dtw;
pub mod split;

use emily::Tensor;

use super::decoding::RawSegment;
use super::transcriber::{Whisper, WhisperError};
use super::TranscribeOptions;
use crate::tokenizer::{TokenizerError, WhisperTokenizer};

/// Audio frames per second after the encoder's stride-2 convolution (one
/// cross-attention position every 20 ms).
pub const ALIGNMENT_FRAMES_PER_SECOND: f64 = 50.0;

/// Width of the median filter over the attention weights.
pub const MEDIAN_FILTER_WIDTH: usize = 7;

/// Punctuation joined to the following word (faster-whisper's default).
pub const PREPEND_PUNCTUATIONS: &str = "\"'“¿([{-";
/// Punctuation joined to the preceding word (faster-whisper's default).
pub const APPEND_PUNCTUATIONS: &str = "\"'.。,，!！?？:：”)]}、";

/// Marks that end a sentence.
const SENTENCE_END_MARKS: &str = ".。!！?？";

/// A word with its time span in the audio and the mean probability of its tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    /// The text, with its leading space (as the tokens decode).
    pub word: String,
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// Mean probability of its tokens.
    pub probability: f32,
}

/// A word during alignment (window-relative times, its tokens).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TimedWord {
    pub word: String,
    pub tokens: Vec<u32>,
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// Timed words from a DTW `path` over `text_tokens` (plus the end-of-text
/// row) and each text token's probability: a word starts at the first frame
/// of its first token and ends where the next word starts.
pub(crate) fn words_from_path(
    tokenizer: &WhisperTokenizer,
    text_tokens: &[u32],
    token_probs: &[f32],
    path: &[(usize, usize)],
    language: Option<&str>,
) -> Result<Vec<TimedWord>, TokenizerError> {
    let mut with_eot = text_tokens.to_vec();
    with_eot.push(tokenizer.special().eot);
    let words = split::split_to_word_tokens(tokenizer, &with_eot, language)?;
    if words.len() <= 1 {
        return Ok(Vec::new());
    }
    // The time of the first frame of each token row (the path visits rows in order).
    let mut jump_times = Vec::new();
    let mut last_row = None;
    for &(row, frame) in path {
        if last_row != Some(row) {
            jump_times.push(frame as f64 / ALIGNMENT_FRAMES_PER_SECOND);
            last_row = Some(row);
        }
    }
    let mut out = Vec::with_capacity(words.len() - 1);
    let mut first = 0usize;
    for (word, tokens) in &words[..words.len() - 1] {
        let last = first + tokens.len();
        let (Some(&start), Some(&end)) = (jump_times.get(first), jump_times.get(last)) else {
            break;
        };
        let probs = &token_probs[first.min(token_probs.len())..last.min(token_probs.len())];
        let probability = if probs.is_empty() {
            0.0
        } else {
            probs.iter().sum::<f32>() / probs.len() as f32
        };
        out.push(TimedWord {
            word: word.clone(),
            tokens: tokens.clone(),
            start,
            end,
            probability,
        });
        first = last;
    }
    Ok(out)
}

/// Joins opening punctuation (`prepend`) to the following word and closing
/// punctuation (`append`) to the preceding one, leaving the absorbed entries
/// empty (faster-whisper's `merge_punctuations`).
pub(crate) fn merge_punctuations(words: &mut [TimedWord], prepend: &str, append: &str) {
    if words.len() < 2 {
        return;
    }
    let mut j = words.len() - 1;
    for i in (0..words.len() - 1).rev() {
        let w = &words[i].word;
        if w.starts_with(' ') && prepend.contains(w.trim()) {
            let (head, tail) = words.split_at_mut(j);
            let (previous, following) = (&mut head[i], &mut tail[0]);
            following.word = std::mem::take(&mut previous.word) + &following.word;
            let mut tokens = std::mem::take(&mut previous.tokens);
            tokens.append(&mut following.tokens);
            following.tokens = tokens;
        } else {
            j = i;
        }
    }
    let mut i = 0;
    for j in 1..words.len() {
        let (head, tail) = words.split_at_mut(j);
        let (previous, following) = (&mut head[i], &mut tail[0]);
        if !previous.word.ends_with(' ') && append.contains(following.word.as_str()) {
            previous.word.push_str(&std::mem::take(&mut following.word));
            previous.tokens.append(&mut following.tokens);
        } else {
            i = j;
        }
    }
}

/// Median word duration (non-zero durations, at most 0.7 s) and twice it.
pub(crate) fn duration_limits(words: &[TimedWord]) -> (f64, f64) {
    let mut d: Vec<f64> = words
        .iter()
        .map(|w| w.end - w.start)
        .filter(|&d| d != 0.0)
        .collect();
    let median = if d.is_empty() {
        0.0
    } else {
        d.sort_by(f64::total_cmp);
        let n = d.len();
        if n % 2 == 1 {
            d[n / 2]
        } else {
            (d[n / 2 - 1] + d[n / 2]) / 2.0
        }
    };
    let median = median.min(0.7);
    (median, 2.0 * median)
}

/// Shortens words longer than `max_duration` at sentence boundaries: a
/// sentence-ending mark keeps only its start, a word after one only its end.
pub(crate) fn truncate_at_sentence_ends(words: &mut [TimedWord], max_duration: f64) {
    if words.iter().all(|w| w.end - w.start == 0.0) {
        return;
    }
    let is_end = |w: &str| !w.is_empty() && SENTENCE_END_MARKS.contains(w);
    for i in 1..words.len() {
        if words[i].end - words[i].start > max_duration {
            if is_end(&words[i].word) {
                words[i].end = words[i].start + max_duration;
            } else if is_end(&words[i - 1].word) {
                words[i].start = words[i].end - max_duration;
            }
        }
    }
}

/// One segment of a window awaiting its words: its time span (corrected by
/// the words) and how many text tokens it holds.
pub(crate) struct SegmentSpan<'a> {
    pub start: &'a mut f64,
    pub end: &'a mut f64,
    pub text_tokens: usize,
}

/// Hands the window's merged words (window-relative) to its segments in
/// order, with absolute times rounded to 10 ms, applying faster-whisper's
/// corrections at pauses and segment edges; returns each segment's words and
/// the new last speech time.
pub(crate) fn distribute(
    words: &[TimedWord],
    segments: &mut [SegmentSpan<'_>],
    time_offset: f64,
    median: f64,
    max_duration: f64,
    mut last_speech: f64,
) -> (Vec<Vec<Word>>, f64) {
    let round = |t: f64| (t * 100.0).round() / 100.0;
    let mut out = Vec::with_capacity(segments.len());
    let mut index = 0;
    for seg in segments.iter_mut() {
        let mut saved = 0;
        let mut ws: Vec<Word> = Vec::new();
        while index < words.len() && saved < seg.text_tokens {
            let t = &words[index];
            if !t.word.is_empty() {
                ws.push(Word {
                    word: t.word.clone(),
                    start: round(time_offset + t.start),
                    end: round(time_offset + t.end),
                    probability: t.probability,
                });
            }
            saved += t.tokens.len();
            index += 1;
        }
        if !ws.is_empty() {
            // The first (and second) word after a pause is not longer than
            // twice the median word duration.
            let first_long = ws[0].end - ws[0].start > max_duration;
            let pair_long = ws.len() > 1 && ws[1].end - ws[0].start > max_duration * 2.0;
            if ws[0].end - last_speech > median * 4.0 && (first_long || pair_long) {
                if ws.len() > 1 && ws[1].end - ws[1].start > max_duration {
                    let boundary = (ws[1].end / 2.0).max(ws[1].end - max_duration);
                    ws[0].end = boundary;
                    ws[1].start = boundary;
                }
                ws[0].start = (ws[0].end - max_duration).max(0.0);
            }
            // Prefer the segment's start if the first word is too long.
            if *seg.start < ws[0].end && *seg.start - 0.5 > ws[0].start {
                ws[0].start = (ws[0].end - median).min(*seg.start).max(0.0);
            } else {
                *seg.start = ws[0].start;
            }
            // Prefer the segment's end if the last word is too long.
            let last = ws.len() - 1;
            if *seg.end > ws[last].start && *seg.end + 0.5 < ws[last].end {
                ws[last].end = (ws[last].start + median).max(*seg.end);
            } else {
                *seg.end = ws[last].end;
            }
            last_speech = *seg.end;
        }
        out.push(ws);
    }
    (out, last_speech)
}

/// Where a window is and what it holds, for its word alignment.
pub(crate) struct WindowWords<'a> {
    /// Start of the window in the audio, seconds.
    pub time_offset: f64,
    /// Log-mel frames of audio in the window (100 per second).
    pub num_frames: usize,
    /// The language decoded.
    pub language: Option<&'a str>,
}

/// faster-whisper's `add_word_timestamps` for one window: aligns the text
/// tokens of its `segments` (absolute times, corrected in place by the
/// words), applies the duration and punctuation rules, and returns each
/// segment's words and the new end of the last speech.
pub(crate) fn add_word_timestamps(
    w: &Whisper,
    enc: &Tensor,
    segments: &mut [RawSegment],
    window: &WindowWords<'_>,
    opts: &TranscribeOptions,
    last_speech: f64,
) -> Result<(Vec<Vec<Word>>, f64), WhisperError> {
    let text: Vec<u32> = segments
        .iter()
        .flat_map(|s| s.tokens.iter().copied())
        .collect();
    if text.is_empty() {
        return Ok((vec![Vec::new(); segments.len()], last_speech));
    }
    let mut words =
        align::align_words(w, enc, &text, window.num_frames, window.language, opts.task)?;
    let (median, max_duration) = duration_limits(&words);
    truncate_at_sentence_ends(&mut words, max_duration);
    merge_punctuations(
        &mut words,
        &opts.prepend_punctuations,
        &opts.append_punctuations,
    );
    let mut spans: Vec<SegmentSpan<'_>> = segments
        .iter_mut()
        .map(|s| SegmentSpan {
            text_tokens: s.tokens.len(),
            start: &mut s.start,
            end: &mut s.end,
        })
        .collect();
    Ok(distribute(
        &words,
        &mut spans,
        window.time_offset,
        median,
        max_duration,
        last_speech,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(word: &str, start: f64, end: f64) -> TimedWord {
        TimedWord {
            word: word.into(),
            tokens: vec![word.len() as u32],
            start,
            end,
            probability: 0.5,
        }
    }

    #[test]
    fn punctuation_joins_its_neighbours() {
        let mut words = vec![
            w(" \"", 0.0, 0.1),
            w(" Hello", 0.1, 0.5),
            w(",", 0.5, 0.6),
            w(" world", 0.6, 1.0),
            w(".", 1.0, 1.1),
        ];
        merge_punctuations(&mut words, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        let texts: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(texts, vec!["", " \" Hello,", "", " world.", ""]);
        assert_eq!(words[1].tokens, vec![2, 6, 1]);
    }

    #[test]
    fn median_and_sentence_truncation() {
        let mut words = vec![w(" a", 0.0, 0.2), w(" b", 0.2, 0.6), w(".", 0.6, 3.0)];
        let (median, max) = duration_limits(&words);
        assert!((median - 0.4).abs() < 1e-12 && (max - 0.8).abs() < 1e-12);
        truncate_at_sentence_ends(&mut words, max);
        assert!((words[2].end - 1.4).abs() < 1e-12);
    }
}
