//! The Whisper tokenizer on the real tiny.en (and base) tokenizer.json.

mod common;

use common::{goldens, model_dir};
use emily_models::tokenizer::{Task, WhisperTokenizer};

fn golden_tokens() -> serde_json::Value {
    let text = std::fs::read_to_string(goldens().join("jfk_tokens.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn tiny_tokenizer() -> WhisperTokenizer {
    WhisperTokenizer::from_file(&model_dir("whisper-tiny.en").join("tokenizer.json")).unwrap()
}

#[test]
fn decodes_the_reference_transcript() {
    let tok = tiny_tokenizer();
    let golden = golden_tokens();
    let expected = golden["transformers"]["text"].as_str().unwrap();
    assert_eq!(
        tok.decode(&ids(&golden["transformers"]["generated_ids"]))
            .unwrap(),
        expected
    );
    // Prompt and EOT are skipped.
    assert_eq!(
        tok.decode(&ids(&golden["transformers"]["full_sequence_ids"]))
            .unwrap(),
        expected
    );
    // Encoding the text gives the same ids back.
    assert_eq!(
        tok.encode(expected).unwrap(),
        ids(&golden["transformers"]["generated_ids"])
    );
    assert_eq!(tok.id_to_token(843).as_deref(), Some("ĠAnd"));
}

#[test]
fn renders_timestamps() {
    let tok = tiny_tokenizer();
    let golden = &golden_tokens()["transformers_timestamps"];
    let generated = ids(&golden["generated_ids"]);
    assert_eq!(
        tok.decode_with_timestamps(&generated).unwrap(),
        golden["text_with_timestamps"].as_str().unwrap()
    );
    let s = tok.special();
    assert_eq!(s.timestamp_seconds(50763), Some(8.0));
    assert_eq!(tok.id_to_token(50913).as_deref(), Some("<|11.00|>"));
}

#[test]
fn english_only_special_tokens_come_from_the_file() {
    let tok = tiny_tokenizer();
    let s = tok.special();
    assert_eq!(
        (s.eot, s.sot, s.translate, s.transcribe),
        (50256, 50257, 50357, 50358)
    );
    assert_eq!(
        (s.sot_lm, s.sot_prev, s.no_speech),
        (Some(50359), 50360, Some(50361))
    );
    assert_eq!((s.no_timestamps, s.timestamp_begin), (50362, 50363));
    assert_eq!(s.language("en"), Some(50258));
    assert_eq!(s.languages.len(), 99);
    let prompt = tok
        .sot_sequence(false, Some("en"), Task::Transcribe, false)
        .unwrap();
    assert_eq!(prompt, ids(&golden_tokens()["prompt_ids"]));
}

#[test]
fn multilingual_special_tokens_are_shifted() {
    let tok =
        WhisperTokenizer::from_file(&model_dir("whisper-base").join("tokenizer.json")).unwrap();
    let s = tok.special();
    assert_eq!(
        (s.eot, s.sot, s.no_timestamps, s.timestamp_begin),
        (50257, 50258, 50363, 50364)
    );
    assert_eq!(s.language("en"), Some(50259));
    assert_eq!(s.language("fr"), Some(50265));
    let prompt = tok
        .sot_sequence(true, Some("fr"), Task::Translate, true)
        .unwrap();
    assert_eq!(prompt, vec![50258, 50265, 50358]);
    assert!(tok
        .sot_sequence(true, Some("xx"), Task::Transcribe, true)
        .is_err());
    let text = " Bonjour tout le monde.";
    assert_eq!(tok.decode(&tok.encode(text).unwrap()).unwrap(), text);
}

#[test]
fn a_file_without_whisper_tokens_is_an_error() {
    let dir = common::scratch("bad-tokenizer");
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, "{\"added_tokens\": []}").unwrap();
    let msg = WhisperTokenizer::from_file(&path).unwrap_err().to_string();
    assert!(
        msg.contains("tokenizer.json") && msg.contains("startoftranscript"),
        "{msg}"
    );
    std::fs::write(&path, "not json").unwrap();
    assert!(WhisperTokenizer::from_file(&path).is_err());
}
