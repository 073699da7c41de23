//! Whisper tiny.en end to end against the reference outputs in `testdata/goldens`.

mod common;

use std::sync::OnceLock;

use common::{
    golden_ids, goldens, jfk_samples_reference, jfk_wav, max_abs_diff, model_dir, scratch,
};
use emily::Kernels;
use emily_models::npy::read_npy;
use emily_models::whisper::{TranscribeOptions, Whisper};

/// faster-whisper's greedy JFK text (`jfk_tokens.json`): windows are padded
/// with zeros after the log-mel as the references do, which drops the comma
/// of the transformers text (see `testdata/goldens/README.md`).
const JFK: &str = " And so my fellow Americans ask not what your country can do for you ask what you can do for your country.";

/// faster-whisper's greedy tokens for JFK (float32, no timestamps).
fn faster_whisper_greedy_ids() -> Vec<u32> {
    let text = std::fs::read_to_string(goldens().join("jfk_tokens.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["faster_whisper"]["float32"]["segments"][0]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn fused() -> &'static Whisper {
    static W: OnceLock<Whisper> = OnceLock::new();
    W.get_or_init(|| {
        Whisper::load(&model_dir("whisper-tiny.en"), Kernels::Fused)
            .expect("run `make models` first")
    })
}

#[test]
fn jfk_transcript_and_tokens_match_the_reference() {
    let t = fused()
        .transcribe(&jfk_samples_reference(), &TranscribeOptions::greedy())
        .unwrap();
    assert_eq!(t.text, JFK);
    assert_eq!(t.segments.len(), 1);
    assert_eq!(t.segments[0].tokens, faster_whisper_greedy_ids());
    // The transformers tokens differ only by the comma its padding gives.
    let mut with_comma = t.segments[0].tokens.clone();
    with_comma.insert(14, 11);
    assert_eq!(with_comma, golden_ids());
}

#[test]
fn composed_and_fused_servings_give_identical_text() {
    let base = Whisper::load(&model_dir("whisper-tiny.en"), Kernels::Composed).unwrap();
    // Each encoder layer runs two fused layer norms and one fused attention;
    // the composed graphs none.
    let layers = fused().dims().n_audio_layers;
    assert_eq!(fused().graph().encoder_fast_ops().unwrap(), 3 * layers + 1);
    assert_eq!(base.graph().encoder_fast_ops().unwrap(), 0);
    let opts = TranscribeOptions::greedy();
    let a = base.transcribe_file(&jfk_wav(), &opts).unwrap();
    let b = fused().transcribe_file(&jfk_wav(), &opts).unwrap();
    assert_eq!(a.text, b.text);
    assert_eq!(a.text, JFK);
}

#[test]
fn encoder_and_first_logits_match_goldens() {
    let mel = read_npy(&goldens().join("jfk_logmel.npy")).unwrap();
    let enc = fused().encode(&mel.data).unwrap();
    let want = read_npy(&goldens().join("jfk_encoder_out.npy")).unwrap();
    assert_eq!(enc.shape(), &[1, 1500, 384]);
    let got = enc.to_vec::<f32>().unwrap();
    let d = max_abs_diff(&got, &want.data);
    assert!(d <= 1e-3, "encoder max abs diff {d}");
    let logits = fused().prompt_logits(&enc, &[50257, 50362]).unwrap();
    let want = read_npy(&goldens().join("jfk_step0_logits.npy")).unwrap();
    let d = max_abs_diff(&logits, &want.data);
    assert!(d <= 1e-3, "step-0 logits max abs diff {d}");
    let argmax = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(argmax, 843);
}

#[test]
fn timestamps_split_jfk_into_two_segments() {
    let opts = TranscribeOptions {
        timestamps: true,
        ..Default::default()
    };
    let t = fused().transcribe(&jfk_samples_reference(), &opts).unwrap();
    assert_eq!(t.segments.len(), 2, "{:?}", t.segments);
    let split = t.segments[0].end;
    assert!((7.5..=8.2).contains(&split), "split at {split}");
    assert_eq!(t.segments[0].start, 0.0);
    assert!(t.segments[1].start >= split - 1e-9 && t.segments[1].end <= 11.0 + 1e-9);
    assert!(t.segments[0].text.contains("ask not what your country"));
    assert!(t.segments[1]
        .text
        .contains("ask what you can do for your country"));
}

#[test]
fn two_minutes_of_repeated_speech_transcribe_in_order() {
    let clip = jfk_samples_reference();
    let silence = vec![0f32; 16000 * 4];
    let mut audio = Vec::new();
    let mut reps = 0;
    while audio.len() + clip.len() <= 16000 * 120 {
        audio.extend_from_slice(&clip);
        audio.extend_from_slice(&silence);
        reps += 1;
    }
    let opts = TranscribeOptions {
        timestamps: true,
        ..Default::default()
    };
    let t = fused().transcribe(&audio, &opts).unwrap();
    let found = t.text.matches("your country can do for you").count();
    assert_eq!(found, reps, "every repetition transcribed: {}", t.text);
    let mut last = 0.0;
    for s in &t.segments {
        assert!(
            s.start >= last - 1e-9 && s.end >= s.start,
            "monotone: {:?}",
            t.segments
        );
        last = s.end;
    }
    assert!(last <= audio.len() as f64 / 16000.0 + 0.5);
}

#[test]
fn bad_inputs_fail_cleanly() {
    let w = fused();
    let opts = TranscribeOptions::default();
    let garbage = scratch("whisper_bad_inputs").join("garbage.wav");
    std::fs::write(&garbage, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk").unwrap();
    let e = w.transcribe_file(&garbage, &opts).unwrap_err().to_string();
    assert!(e.contains("garbage.wav"), "{e}");
    assert!(w.transcribe(&[], &opts).is_err());
    let missing = w
        .transcribe_file(std::path::Path::new("/nonexistent/a.wav"), &opts)
        .unwrap_err()
        .to_string();
    assert!(missing.contains("/nonexistent/a.wav"), "{missing}");
    assert!(Whisper::load(std::path::Path::new("/nonexistent-model"), Kernels::Fused).is_err());
}
