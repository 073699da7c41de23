//! Spoken-language detection on the multilingual base model against
//! faster-whisper's own detection (`testdata/goldens/faster_whisper_language.json`,
//! made by `scripts/goldens/faster_whisper_language.py`): JFK and three
//! clips spoken by espeak-ng in German, French and Spanish
//! (`testdata/audio/espeak_{de,fr,es}.flac`, see `testdata/audio/README.md`).

mod common;

use std::sync::OnceLock;

use common::{goldens, model_dir, workspace_root};
use emily::Kernels;
use emily_models::audio::load_audio;
use emily_models::whisper::{TranscribeOptions, Whisper, WhisperError};
use serde_json::Value;

fn base() -> &'static Whisper {
    static W: OnceLock<Whisper> = OnceLock::new();
    W.get_or_init(|| Whisper::load(&model_dir("whisper-base"), Kernels::Fused).unwrap())
}

fn cases() -> &'static serde_json::Map<String, Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    let doc = DOC.get_or_init(|| {
        let path = goldens().join("faster_whisper_language.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    });
    doc["cases"].as_object().unwrap()
}

/// faster-whisper's probabilities and ours differ by the encoder's
/// arithmetic (CTranslate2 vs ours, f16 weights widened on both sides).
const PROBABILITY_TOLERANCE: f32 = 0.05;

#[test]
fn detected_languages_and_probabilities_match_faster_whisper() {
    assert_eq!(cases().len(), 4);
    for (name, case) in cases() {
        let audio = load_audio(&workspace_root().join(case["audio"].as_str().unwrap())).unwrap();
        let ours = base().detect_language(&audio).unwrap();
        let sum: f32 = ours.iter().map(|l| l.probability).sum();
        assert!(
            (sum - 1.0).abs() < 1e-4,
            "{name}: probabilities sum to {sum}"
        );
        assert!(ours
            .windows(2)
            .all(|w| w[0].probability >= w[1].probability));
        assert_eq!(
            ours[0].code,
            case["language"].as_str().unwrap(),
            "{name}: {:?}",
            &ours[..3]
        );
        // Each of faster-whisper's three most likely languages.
        for top in case["top3"].as_array().unwrap() {
            let (code, p) = (top[0].as_str().unwrap(), top[1].as_f64().unwrap() as f32);
            let mine = ours.iter().find(|l| l.code == code).unwrap().probability;
            assert!(
                (mine - p).abs() < PROBABILITY_TOLERANCE,
                "{name}: {code} has probability {mine}, faster-whisper {p}"
            );
        }
    }
}

#[test]
fn transcription_detects_the_language_when_none_is_given() {
    let case = &cases()["de"];
    let audio = load_audio(&workspace_root().join(case["audio"].as_str().unwrap())).unwrap();
    let t = base()
        .transcribe(&audio, &TranscribeOptions::greedy())
        .unwrap();
    assert_eq!(t.language.as_deref(), Some("de"));
    let p = t.language_probability.unwrap();
    let golden = case["probability"].as_f64().unwrap() as f32;
    assert!(
        (p - golden).abs() < PROBABILITY_TOLERANCE,
        "{p} vs {golden}"
    );
    assert!(t.text.contains("Morgen"), "{:?}", t.text);
    // A given language is used as is: nothing detected.
    let opts = TranscribeOptions {
        language: Some("de".into()),
        ..TranscribeOptions::greedy()
    };
    let t = base().transcribe(&audio, &opts).unwrap();
    assert_eq!(
        (t.language.as_deref(), t.language_probability),
        (Some("de"), None)
    );
}

#[test]
fn english_only_models_and_empty_audio_cannot_be_detected() {
    let tiny = Whisper::load(&model_dir("whisper-tiny.en"), Kernels::Fused).unwrap();
    let jfk = load_audio(&common::jfk_wav()).unwrap();
    assert!(matches!(
        tiny.detect_language(&jfk),
        Err(WhisperError::Unsupported(m)) if m.contains("multilingual")
    ));
    assert!(base().detect_language(&[]).is_err());
}
