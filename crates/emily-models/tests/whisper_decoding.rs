//! Whisper decoding as faster-whisper does it (beam search, temperature
//! fallback, no-speech skipping, word timestamps) against the outputs of
//! faster-whisper itself in `testdata/goldens/faster_whisper_decoding.json`
//! (made by `scripts/goldens/faster_whisper_decoding.py`).

mod common;

use std::sync::OnceLock;

use common::{goldens, jfk_samples_reference, model_dir};
use emily::Kernels;
use emily_models::whisper::{Segment, TranscribeOptions, Transcript, Whisper};
use serde_json::Value;

fn whisper() -> &'static Whisper {
    static W: OnceLock<Whisper> = OnceLock::new();
    W.get_or_init(|| {
        Whisper::load(&model_dir("whisper-tiny.en"), Kernels::Fused)
            .expect("run `make models` first")
    })
}

fn case(name: &str) -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    let doc = DOC.get_or_init(|| {
        let path = goldens().join("faster_whisper_decoding.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    });
    &doc["cases"][name]
}

/// The noise of the goldens: xorshift64* uniform in [-0.5, 0.5).
fn noise(seconds: f64, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..(seconds * 16000.0) as usize)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let v = s.wrapping_mul(0x2545_F491_4F6C_DD1D);
            ((v >> 40) as f64 / (1u64 << 24) as f64 - 0.5) as f32
        })
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// The golden segments' text tokens (timestamps dropped) and times.
fn golden_segments(name: &str) -> Vec<(f64, f64, Vec<u32>)> {
    case(name)["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = ids(&s["tokens"])
                .into_iter()
                .filter(|&t| t < 50256)
                .collect();
            (f(&s["start"]), f(&s["end"]), text)
        })
        .collect()
}

fn ours(t: &Transcript) -> Vec<(f64, f64, Vec<u32>)> {
    t.segments
        .iter()
        .map(|s| (s.start, s.end, s.tokens.clone()))
        .collect()
}

fn assert_segments_match(t: &Transcript, name: &str) {
    let golden = golden_segments(name);
    let got = ours(t);
    assert_eq!(got.len(), golden.len(), "{name}: {got:?}");
    for (g, o) in golden.iter().zip(&got) {
        assert_eq!(o.2, g.2, "{name}: tokens");
        assert!(
            (o.0 - g.0).abs() < 0.015 && (o.1 - g.1).abs() < 0.015,
            "{name}: segment {o:?} vs {g:?}"
        );
    }
    assert_eq!(t.text, case(name)["text"].as_str().unwrap(), "{name}");
}

#[test]
fn beam_five_matches_faster_whisper_on_jfk() {
    let w = whisper();
    let audio = jfk_samples_reference();
    let t = w.transcribe(&audio, &TranscribeOptions::default()).unwrap();
    assert_segments_match(&t, "jfk_beam5");
    let golden = &case("jfk_beam5")["segments"][0];
    let s = &t.segments[0];
    assert!((s.avg_logprob - f(&golden["avg_logprob"])).abs() < 2e-3);
    assert!((s.no_speech_prob - f(&golden["no_speech_prob"])).abs() < 2e-3);
    assert!((s.compression_ratio - f(&golden["compression_ratio"])).abs() < 1e-9);
    assert_eq!(s.temperature, 0.0);
    // Greedy decodes a different text (no "you. Ask"): the search matters.
    let greedy = w.transcribe(&audio, &TranscribeOptions::greedy()).unwrap();
    assert_ne!(greedy.text, t.text);
    let timed = TranscribeOptions {
        timestamps: true,
        ..TranscribeOptions::default()
    };
    let t = w.transcribe(&audio, &timed).unwrap();
    assert_segments_match(&t, "jfk_beam5_timestamps");
}

#[test]
fn silence_and_noise_decode_as_faster_whisper_does() {
    let w = whisper();
    let silence = vec![0f32; 160_000];
    let noise = noise(10.0, 20261205);
    let raw = TranscribeOptions {
        timestamps: true,
        ..TranscribeOptions::greedy()
    };
    let timed = TranscribeOptions {
        timestamps: true,
        ..TranscribeOptions::default()
    };
    // Without the guards the model writes a lone full stop for both.
    assert_segments_match(
        &w.transcribe(&silence, &raw).unwrap(),
        "silence_10s_greedy_no_fallback",
    );
    assert_segments_match(
        &w.transcribe(&noise, &raw).unwrap(),
        "noise_10s_greedy_no_fallback",
    );
    // With them, noise is skipped as no speech; digital silence keeps the
    // reference's one probable word.
    let t = w.transcribe(&noise, &timed).unwrap();
    assert!(t.segments.is_empty(), "{:?}", t.segments);
    assert_segments_match(&t, "noise_10s");
    assert_segments_match(&w.transcribe(&silence, &timed).unwrap(), "silence_10s");
}

fn assert_words_match(segments: &[Segment], name: &str) -> f64 {
    let golden = case(name)["segments"].as_array().unwrap();
    assert_eq!(segments.len(), golden.len(), "{name}");
    let mut worst: f64 = 0.0;
    let mut previous_end = 0.0;
    for (s, g) in segments.iter().zip(golden) {
        let gw = g["words"].as_array().unwrap();
        let texts: Vec<&str> = s.words.iter().map(|w| w.word.as_str()).collect();
        let golden_texts: Vec<&str> = gw.iter().map(|w| w["word"].as_str().unwrap()).collect();
        assert_eq!(texts, golden_texts, "{name}");
        for (w, g) in s.words.iter().zip(gw) {
            assert!(w.start <= w.end && w.start >= previous_end - 1e-9, "{w:?}");
            assert!(
                w.start >= s.start - 1e-9 && w.end <= s.end + 1e-9,
                "{w:?} outside {s:?}"
            );
            previous_end = w.end;
            worst = worst
                .max((w.start - f(&g["start"])).abs())
                .max((w.end - f(&g["end"])).abs());
            assert!(
                (w.probability as f64 - f(&g["probability"])).abs() < 0.02,
                "{name}: {w:?} vs {g}"
            );
        }
        assert!((s.start - f(&g["start"])).abs() < 0.021 && (s.end - f(&g["end"])).abs() < 0.021);
    }
    // The same alignment as CTranslate2: equal to the 20 ms frame.
    assert!(worst <= 0.021, "{name}: a word boundary {worst:.2} s off");
    worst
}

#[test]
fn word_timestamps_match_faster_whisper_on_jfk() {
    let w = whisper();
    let audio = jfk_samples_reference();
    for (name, base) in [
        ("jfk_beam5_words", TranscribeOptions::default()),
        ("jfk_greedy_words", TranscribeOptions::greedy()),
    ] {
        let opts = TranscribeOptions {
            timestamps: true,
            word_timestamps: true,
            ..base
        };
        let t = w.transcribe(&audio, &opts).unwrap();
        let worst = assert_words_match(&t.segments, name);
        eprintln!("{name}: worst word boundary {worst:.3} s");
    }
}

#[test]
fn repetitive_greedy_text_falls_back_to_sampling() {
    let w = whisper();
    let quiet: Vec<f32> = noise(10.0, 1).iter().map(|x| x * 0.01).collect();
    // Greedy alone loops on " . . ." (as faster-whisper's greedy does, token
    // for token).
    let raw = TranscribeOptions {
        timestamps: true,
        ..TranscribeOptions::greedy()
    };
    let t = w.transcribe(&quiet, &raw).unwrap();
    assert_segments_match(&t, "quiet_noise_10s_greedy_no_fallback");
    assert!(t.segments.iter().all(|s| s.compression_ratio > 2.4));
    // With the compression-ratio check the window is decoded again by
    // sampling at higher temperatures (the sampler's draws differ from
    // CTranslate2's, so only the outcome's kind is compared).
    let fallback = TranscribeOptions {
        timestamps: true,
        no_speech_threshold: None,
        ..TranscribeOptions::default()
    };
    let t = w.transcribe(&quiet, &fallback).unwrap();
    assert!(!t.segments.is_empty());
    for s in &t.segments {
        assert!(s.temperature > 0.0, "{s:?}");
        assert!(s.compression_ratio <= 2.4, "{s:?}");
    }
    let golden = &case("quiet_noise_10s_fallback_no_skip")["segments"][0];
    assert!(f(&golden["temperature"]) > 0.0 && f(&golden["compression_ratio"]) <= 2.4);
    // With every default guard, the window is skipped as no speech.
    let t = w.transcribe(&quiet, &TranscribeOptions::default()).unwrap();
    assert_segments_match(&t, "quiet_noise_10s");
}

#[test]
fn long_form_segments_start_with_the_speech_and_never_span_silence() {
    // JFK, 20 s of quiet noise, JFK, a 2 s pause, JFK: speech starts at 0,
    // 31 and 44 s. faster-whisper on this clip: segments 0-8, 8-11, 31-39,
    // 39-44, 44-51, 51-55 (timestamps kept in the prompt).
    let w = whisper();
    let jfk = jfk_samples_reference();
    let quiet =
        |s: f64, seed: u64| -> Vec<f32> { noise(s, seed).iter().map(|x| x * 0.005).collect() };
    let mut audio = jfk.clone();
    audio.extend(quiet(20.0, 2));
    audio.extend_from_slice(&jfk);
    audio.extend(quiet(2.0, 3));
    audio.extend_from_slice(&jfk);
    for word_timestamps in [false, true] {
        let opts = TranscribeOptions {
            timestamps: true,
            word_timestamps,
            ..TranscribeOptions::default()
        };
        let t = w.transcribe(&audio, &opts).unwrap();
        assert_eq!(
            t.text.matches("ask not what your country").count(),
            3,
            "{:?}",
            t.segments
        );
        for speech in [0.0, 31.0, 44.0] {
            assert!(
                t.segments.iter().any(|s| (s.start - speech).abs() <= 0.5),
                "no segment starts near {speech} s: {:?}",
                ours(&t)
            );
        }
        let mut previous_end = 0.0;
        for s in &t.segments {
            assert!(s.start >= previous_end - 1e-9 && s.end > s.start, "{s:?}");
            assert!(
                s.end <= 12.0 || s.start >= 30.5,
                "segment spans the silence: {s:?}"
            );
            assert!(s.end <= audio.len() as f64 / 16000.0 + 0.5);
            previous_end = s.end;
        }
    }
}
