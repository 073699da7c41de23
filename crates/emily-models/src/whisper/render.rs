//! Transcript output formats shared by the CLI and the server: plain text,
//! SubRip, WebVTT and JSON.

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
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Renders a transcript; `timestamps` switches plain text to one
/// `[start --> end]text` line per segment (subtitles always have times).
pub fn render(t: &Transcript, format: TranscriptFormat, timestamps: bool) -> String {
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
        TranscriptFormat::Srt => t
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "{}\n{} --> {}\n{}\n\n",
                    i + 1,
                    clock(s.start, ','),
                    clock(s.end, ','),
                    s.text.trim()
                )
            })
            .collect(),
        TranscriptFormat::Vtt => {
            let body: String = t
                .segments
                .iter()
                .map(|s| {
                    format!(
                        "{} --> {}\n{}\n\n",
                        clock(s.start, '.'),
                        clock(s.end, '.'),
                        s.text.trim()
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
            .starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello.\n\n"));
        let v: serde_json::Value =
            serde_json::from_str(&render(&t, TranscriptFormat::Json, true)).unwrap();
        assert_eq!(v["segments"].as_array().unwrap().len(), 2);
        assert_eq!(v["segments"][1]["tokens"], serde_json::json!([1, 2]));
    }
}
