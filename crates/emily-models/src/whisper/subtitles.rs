//! Subtitle cues as openai-whisper's writers lay them out (`whisper/utils.py`,
//! `SubtitlesWriter.iterate_result`): with word timestamps the cues are built
//! from the words — wrapped at `max_line_width` characters, at most
//! `max_line_count` lines per cue (then a long pause of more than 3 s also
//! starts a cue), each segment its own cue unless both limits are given,
//! `max_words_per_line` words per chunk — and `highlight_words` repeats a cue
//! once per word with that word underlined (`<u>…</u>`). Without words each
//! segment is one cue.

use super::{Segment, Transcript};

/// How word-level subtitles are laid out (all off: one cue per segment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubtitleLayout {
    /// Characters per line at most (a word longer than this gets a line of its own).
    pub max_line_width: Option<usize>,
    /// Lines per cue at most (only with `max_line_width`; then segments no
    /// longer force cue breaks, and a pause over 3 s does).
    pub max_line_count: Option<usize>,
    /// Words per chunk of a segment (a new cue per chunk while segments are kept).
    pub max_words_per_line: Option<usize>,
    /// One cue per word, the word underlined.
    pub highlight_words: bool,
}

/// One subtitle: times in milliseconds and its text (lines split by `\n`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cue {
    /// Start, ms.
    pub start_ms: u64,
    /// End, ms.
    pub end_ms: u64,
    /// Text.
    pub text: String,
}

/// Seconds to whole milliseconds (negative times clamp to 0).
fn ms(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1000.0).round() as u64
}

/// A word of a cue being built (its text with the whitespace or line break
/// that leads it).
#[derive(Clone, Debug)]
struct Placed {
    word: String,
    start: f64,
    end: f64,
}

/// The cues of `t` laid out by `layout`.
pub fn cues(t: &Transcript, layout: &SubtitleLayout) -> Vec<Cue> {
    if t.segments.first().is_none_or(|s| s.words.is_empty()) {
        return t
            .segments
            .iter()
            .map(|s| Cue {
                start_ms: ms(s.start),
                end_ms: ms(s.end),
                text: s.text.trim().replace("-->", "->"),
            })
            .collect();
    }
    let mut out = Vec::new();
    for cue in word_cues(&t.segments, layout) {
        let text: String = cue.iter().map(|w| w.word.as_str()).collect();
        let (start, end) = (ms(cue[0].start), ms(cue[cue.len() - 1].end));
        if !layout.highlight_words {
            out.push(Cue {
                start_ms: start,
                end_ms: end,
                text,
            });
            continue;
        }
        let mut last = start;
        for (i, w) in cue.iter().enumerate() {
            let (ws, we) = (ms(w.start), ms(w.end));
            if last != ws {
                out.push(Cue {
                    start_ms: last,
                    end_ms: ws,
                    text: text.clone(),
                });
            }
            let underlined: String = cue
                .iter()
                .enumerate()
                .map(|(j, o)| {
                    if j == i {
                        underline(&o.word)
                    } else {
                        o.word.clone()
                    }
                })
                .collect();
            out.push(Cue {
                start_ms: ws,
                end_ms: we,
                text: underlined,
            });
            last = we;
        }
    }
    out
}

/// `word` with everything after its leading whitespace in `<u>…</u>`.
fn underline(word: &str) -> String {
    let body = word.trim_start();
    let lead = &word[..word.len() - body.len()];
    format!("{lead}<u>{body}</u>")
}

/// The words of each cue, with the spaces and line breaks between them.
fn word_cues(segments: &[Segment], layout: &SubtitleLayout) -> Vec<Vec<Placed>> {
    let preserve_segments = layout.max_line_count.is_none() || layout.max_line_width.is_none();
    let max_width = layout.max_line_width.unwrap_or(1000);
    let per_chunk = layout.max_words_per_line.unwrap_or(1000).max(1);
    let mut cues = Vec::new();
    let mut cue: Vec<Placed> = Vec::new();
    let (mut line_len, mut line_count) = (0usize, 1usize);
    let mut last = segments
        .iter()
        .flat_map(|s| s.words.first())
        .next()
        .map_or(segments[0].start, |w| w.start);
    for segment in segments {
        for chunk in segment.words.chunks(per_chunk) {
            for (i, w) in chunk.iter().enumerate() {
                let mut word = w.word.clone();
                let len = word.chars().count();
                let long_pause = !preserve_segments && w.start - last > 3.0;
                let has_room = line_len + len <= max_width;
                let seg_break = i == 0 && !cue.is_empty() && preserve_segments;
                if line_len > 0 && has_room && !long_pause && !seg_break {
                    line_len += len;
                } else {
                    word = word.trim().to_string();
                    let full = layout
                        .max_line_count
                        .is_some_and(|n| long_pause || line_count >= n);
                    if (!cue.is_empty() && full) || seg_break {
                        cues.push(std::mem::take(&mut cue));
                        line_count = 1;
                    } else if line_len > 0 {
                        line_count += 1;
                        word = format!("\n{word}");
                    }
                    line_len = word.trim().chars().count();
                }
                cue.push(Placed {
                    word,
                    start: w.start,
                    end: w.end,
                });
                last = w.start;
            }
        }
    }
    if !cue.is_empty() {
        cues.push(cue);
    }
    cues
}
