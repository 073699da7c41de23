//! The window-by-window transcription session: driving it by hand gives what
//! `transcribe` gives; cancellation, the initial prompt and temperature
//! sampling do what they say.

mod common;

use std::sync::OnceLock;

use common::{jfk_samples_reference, model_dir};
use emily::Kernels;
use emily_models::whisper::{CancelFlag, Session, TranscribeOptions, Whisper, WhisperError};

fn model() -> &'static Whisper {
    static W: OnceLock<Whisper> = OnceLock::new();
    W.get_or_init(|| {
        Whisper::load(&model_dir("whisper-tiny.en"), Kernels::Fused)
            .expect("run `make models` first")
    })
}

#[test]
fn a_session_driven_by_hand_matches_transcribe() {
    let w = model();
    let audio = jfk_samples_reference();
    // Greedy: what a window decoded step by step does.
    let opts = TranscribeOptions {
        timestamps: true,
        ..TranscribeOptions::greedy()
    };
    let mut s = Session::from_samples(w, &audio, &opts).unwrap();
    let mut windows = 0;
    while let Some(mel) = s.next_window().unwrap() {
        let enc = w.encode(mel).unwrap();
        let prompt = s.prompt(w, &enc).unwrap();
        let mut picker = s.window_decoder(w, &prompt);
        let mut logits = w.prompt_logits(&enc, &prompt).unwrap();
        let mut fed = prompt.clone();
        while let Some(t) = picker.next_token(&mut logits).unwrap() {
            fed.push(t);
            logits = w.prompt_logits(&enc, &fed).unwrap();
        }
        let steps = picker.generated().len() + 1;
        s.finish_window(w, &picker, steps).unwrap();
        windows += 1;
    }
    assert_eq!(windows, 1);
    assert_eq!(s.progress(), (11.0, 11.0));
    let by_hand = s.finish();
    let t = w.transcribe(&audio, &opts).unwrap();
    // The search also measures the window (log-probability, no-speech
    // probability), which stepping by hand does not.
    let spans = |t: &emily_models::whisper::Transcript| -> Vec<(f64, f64, Vec<u32>, String)> {
        t.segments
            .iter()
            .map(|s| (s.start, s.end, s.tokens.clone(), s.text.clone()))
            .collect()
    };
    assert_eq!(spans(&by_hand), spans(&t));
    assert_eq!(by_hand.text, t.text);
}

#[test]
fn a_set_cancel_flag_stops_the_transcription() {
    let cancel = CancelFlag::new();
    cancel.cancel();
    let opts = TranscribeOptions {
        cancel: Some(cancel),
        ..Default::default()
    };
    let r = model().transcribe(&jfk_samples_reference(), &opts);
    assert!(matches!(r, Err(WhisperError::Cancelled)), "{r:?}");
}

#[test]
fn the_initial_prompt_precedes_the_first_window() {
    let w = model();
    let audio = jfk_samples_reference();
    let opts = TranscribeOptions {
        initial_prompt: Some("  Kennedy's inaugural address.  ".into()),
        ..Default::default()
    };
    let mut s = Session::from_samples(w, &audio, &opts).unwrap();
    let mel = s.next_window().unwrap().unwrap().to_vec();
    let enc = w.encode(&mel).unwrap();
    let prompt = s.prompt(w, &enc).unwrap();
    let sp = w.tokenizer().special();
    let text = w
        .tokenizer()
        .encode(" Kennedy's inaugural address.")
        .unwrap();
    assert_eq!(prompt[0], sp.sot_prev);
    assert_eq!(&prompt[1..1 + text.len()], &text[..]);
    assert_eq!(prompt[1 + text.len()], sp.sot);
    let t = w.transcribe(&audio, &opts).unwrap();
    assert!(t.text.contains("ask not what your country"), "{}", t.text);
}

#[test]
fn sampling_is_seeded_and_still_transcribes() {
    let w = model();
    let audio = jfk_samples_reference();
    let opts = |seed| TranscribeOptions {
        temperatures: vec![0.2],
        seed,
        ..Default::default()
    };
    let a = w.transcribe(&audio, &opts(7)).unwrap();
    let b = w.transcribe(&audio, &opts(7)).unwrap();
    assert_eq!(a.text, b.text, "same seed, same text");
    assert!(a.text.to_lowercase().contains("your country"), "{}", a.text);
}

/// A window's token picker applies the session's rules as the transcriber's
/// search does: its suppress list (here one extra token), and the control
/// tokens CTranslate2 never generates (`<|startoftranscript|>` here), and
/// its chosen tokens' log-probabilities are those of the filtered row.
#[test]
fn the_window_picker_applies_the_sessions_suppressions() {
    let w = model();
    let audio = jfk_samples_reference();
    let banned = 1000u32;
    let opts = TranscribeOptions {
        suppress_tokens: vec![-1, banned as i64],
        timestamps: false,
        ..TranscribeOptions::greedy()
    };
    let mut s = Session::from_samples(w, &audio, &opts).unwrap();
    let mel = s.next_window().unwrap().unwrap().to_vec();
    let enc = w.encode(&mel).unwrap();
    let prompt = s.prompt(w, &enc).unwrap();
    let sot = w.tokenizer().special().sot;
    for favourite in [banned, sot] {
        let mut picker = s.window_decoder(w, &prompt);
        let mut logits = w.prompt_logits(&enc, &prompt).unwrap();
        let natural = logits
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0 as u32;
        logits[favourite as usize] = 1e4;
        let next = picker.next_token(&mut logits).unwrap();
        assert_eq!(next, Some(natural), "token {favourite} is suppressed");
        assert!(picker.avg_logprob().is_finite() && picker.avg_logprob() <= 0.0);
    }
}
