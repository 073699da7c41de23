//! Transcript output formats shared by the CLI and the server: plain text,
//! SubRip, WebVTT (cues laid out by [`super::subtitles`], as openai-whisper's
//! writers do) and JSON.

use super::subtitles::{cues, SubtitleLayout};
use super::Transcript;

/// A transcript output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranscriptFormat {
    /// The text, trimmed, with a trailing newline (one timestamped line per
    /// segment when rendered with timestamps).
    Text,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
    /// Pretty JSON: text, language, and segments with times, tokens and
    /// (when aligned) words.
    Json,
}

impl TranscriptFormat {
    /// Whether the format needs timestamped segments.
    pub fn needs_timestamps(self) -> bool {
        matches!(self, TranscriptFormat::Srt | TranscriptFormat::Vtt)
    }
}

/// `seconds` as `HH:MM:SS{sep}mmm`, rounded to the millisecond.
pub fn clock(seconds: f64, sep: char) -> String {
    clock_ms((seconds.max(0.0) * 1000.0).round() as u64, sep)
}

/// `ms` milliseconds as `HH:MM:SS{sep}mmm`.
fn clock_ms(ms: u64, sep: char) -> String {
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// `milliseconds` as WebVTT writes them: `MM:SS.mmm`, with `HH:` in front
/// from the first hour on (openai-whisper's VTT writer).
fn vtt_clock(milliseconds: u64) -> String {
    let full = clock_ms(milliseconds, '.');
    if milliseconds < 3_600_000 {
        full[3..].to_string()
    } else {
        full
    }
}

/// Renders a transcript; `timestamps` switches plain text to one
/// `[start --> end]text` line per segment (subtitles always have times).
/// Subtitles of word-timed segments use the default layout (one cue per
/// segment); see [`render_with`].
pub fn render(t: &Transcript, format: TranscriptFormat, timestamps: bool) -> String {
    render_with(t, format, timestamps, &SubtitleLayout::default())
}

/// [`render`] with SRT and VTT cues laid out by `layout` (word-timed
/// segments only; other formats ignore it).
pub fn render_with(
    t: &Transcript,
    format: TranscriptFormat,
    timestamps: bool,
    layout: &SubtitleLayout,
) -> String {
    match format {
        TranscriptFormat::Text if timestamps => t
            .segments
            .iter()
            .map(|s| {
                format!(
                    "[{} --> {}]{}\n",
                    clock(s.start, '.'),
                    clock(s.end, '.'),
                    s.text
                )
            })
            .collect(),
        TranscriptFormat::Text => format!("{}\n", t.text.trim()),
        TranscriptFormat::Srt => cues(t, layout)
            .iter()
            .enumerate()
            .map(|(i, c)| {
                format!(
                    "{}\n{} --> {}\n{}\n\n",
                    i + 1,
                    clock_ms(c.start_ms, ','),
                    clock_ms(c.end_ms, ','),
                    c.text
                )
            })
            .collect(),
        TranscriptFormat::Vtt => {
            let body: String = cues(t, layout)
                .iter()
                .map(|c| {
                    format!(
                        "{} --> {}\n{}\n\n",
                        vtt_clock(c.start_ms),
                        vtt_clock(c.end_ms),
                        c.text
                    )
                })
                .collect();
            format!("WEBVTT\n\n{body}")
        }
        TranscriptFormat::Json => {
            let segs: Vec<serde_json::Value> = t
                .segments
                .iter()
                .map(|s| {
                    let mut v = serde_json::json!({
                        "start": s.start, "end": s.end, "text": s.text, "tokens": s.tokens
                    });
                    if !s.words.is_empty() {
                        v["words"] = s
                            .words
                            .iter()
                            .map(|w| {
                                serde_json::json!({
                                    "word": w.word, "start": w.start, "end": w.end,
                                    "probability": w.probability
                                })
                            })
                            .collect();
                    }
                    v
                })
                .collect();
            let v = serde_json::json!({
                "text": t.text,
                "language": t.language,
                "language_probability": t.language_probability,
                "segments": segs
            });
            let pretty = serde_json::to_string_pretty(&v)
                .unwrap_or_else(|_| unreachable!("a json! value always serialises"));
            format!("{pretty}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whisper::{Segment, Timings};

    fn two_segments() -> Transcript {
        let seg = |start, end, text: &str| Segment {
            start,
            end,
            text: text.into(),
            tokens: vec![1, 2],
            words: Vec::new(),
            avg_logprob: 0.0,
            no_speech_prob: 0.0,
            compression_ratio: 1.0,
            temperature: 0.0,
        };
        Transcript {
            segments: vec![seg(0.0, 1.5, " Hello."), seg(1.5, 3661.2345, " World.")],
            text: " Hello. World.".into(),
            language: None,
            language_probability: None,
            timings: Timings::default(),
        }
    }

    #[test]
    fn clocks_round_to_milliseconds() {
        assert_eq!(clock(3661.2345, ','), "01:01:01,235");
        assert_eq!(clock(0.0, '.'), "00:00:00.000");
    }

    #[test]
    fn every_format_renders_both_segments() {
        let t = two_segments();
        assert_eq!(render(&t, TranscriptFormat::Text, false), "Hello. World.\n");
        assert_eq!(
            render(&t, TranscriptFormat::Text, true),
            "[00:00:00.000 --> 00:00:01.500] Hello.\n[00:00:01.500 --> 01:01:01.235] World.\n"
        );
        assert_eq!(
            render(&t, TranscriptFormat::Srt, true),
            "1\n00:00:00,000 --> 00:00:01,500\nHello.\n\n2\n00:00:01,500 --> 01:01:01,235\nWorld.\n\n"
        );
        assert!(render(&t, TranscriptFormat::Vtt, true)
            .starts_with("WEBVTT\n\n00:00.000 --> 00:01.500\nHello.\n\n"));
        assert!(render(&t, TranscriptFormat::Vtt, true)
            .ends_with("00:01.500 --> 01:01:01.235\nWorld.\n\n"));
        let v: serde_json::Value =
            serde_json::from_str(&render(&t, TranscriptFormat::Json, true)).unwrap();
        assert_eq!(v["segments"].as_array().unwrap().len(), 2);
        assert_eq!(v["segments"][1]["tokens"], serde_json::json!([1, 2]));
    }
}
