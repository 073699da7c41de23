//! SRT and VTT laid out as openai-whisper's writers do, against their own
//! output (`testdata/goldens/openai_subtitles.json`, made by
//! `scripts/goldens/openai_subtitles.py` with openai-whisper's utils.py):
//! word-level cues wrapped by width, line count, words per line, long pauses
//! and highlighted words, and segment-level cues.

mod common;

use common::goldens;
use emily_models::whisper::render::{render_with, TranscriptFormat};
use emily_models::whisper::subtitles::{cues, SubtitleLayout};
use emily_models::whisper::{Segment, Timings, Transcript, Word};
use serde_json::Value;

fn golden() -> Value {
    let path = goldens().join("openai_subtitles.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn transcript(segments: &Value) -> Transcript {
    let f = |v: &Value| v.as_f64().unwrap();
    let segments: Vec<Segment> = segments
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Segment {
            start: f(&s["start"]),
            end: f(&s["end"]),
            text: s["text"].as_str().unwrap().into(),
            tokens: Vec::new(),
            words: s
                .get("words")
                .map(|ws| {
                    ws.as_array()
                        .unwrap()
                        .iter()
                        .map(|w| Word {
                            word: w["word"].as_str().unwrap().into(),
                            start: f(&w["start"]),
                            end: f(&w["end"]),
                            probability: 1.0,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            avg_logprob: 0.0,
            no_speech_prob: 0.0,
            compression_ratio: 1.0,
            temperature: 0.0,
        })
        .collect();
    Transcript {
        text: segments.iter().map(|s| s.text.as_str()).collect(),
        segments,
        language: None,
        language_probability: None,
        timings: Timings::default(),
    }
}

fn layout(options: &Value) -> SubtitleLayout {
    let n = |k: &str| options.get(k).map(|v| v.as_u64().unwrap() as usize);
    SubtitleLayout {
        max_line_width: n("max_line_width"),
        max_line_count: n("max_line_count"),
        max_words_per_line: n("max_words_per_line"),
        highlight_words: options.get("highlight_words") == Some(&Value::Bool(true)),
    }
}

#[test]
fn subtitles_match_openai_whispers_writers() {
    let g = golden();
    let cases = g["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let t = transcript(&g["inputs"][case["input"].as_str().unwrap()]);
        let layout = layout(&case["options"]);
        for (format, key) in [
            (TranscriptFormat::Srt, "srt"),
            (TranscriptFormat::Vtt, "vtt"),
        ] {
            assert_eq!(
                render_with(&t, format, true, &layout),
                case[key].as_str().unwrap(),
                "{key} with {}",
                case["options"]
            );
        }
    }
}

#[test]
fn wrapped_cues_respect_their_limits_and_keep_every_word() {
    let g = golden();
    let t = transcript(&g["inputs"]["words"]);
    let words: usize = t.segments.iter().map(|s| s.words.len()).sum();
    for (width, count) in [(1, 1), (7, 2), (20, 3), (42, 1)] {
        let layout = SubtitleLayout {
            max_line_width: Some(width),
            max_line_count: Some(count),
            ..SubtitleLayout::default()
        };
        let cues = cues(&t, &layout);
        let mut seen = 0;
        for c in &cues {
            assert!(c.start_ms <= c.end_ms, "{c:?}");
            let lines: Vec<&str> = c.text.split('\n').collect();
            assert!(lines.len() <= count, "{width}/{count}: {c:?}");
            for l in lines {
                // A single word longer than the width has a line of its own.
                assert!(
                    l.chars().count() <= width || !l.contains(' '),
                    "{width}/{count}: {l:?}"
                );
            }
            seen += c.text.split_whitespace().count();
        }
        assert_eq!(seen, words, "{width}/{count}");
        assert!(cues.windows(2).all(|w| w[0].end_ms <= w[1].start_ms + 1));
    }
}
