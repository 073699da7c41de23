//! The transcription routes decode as OpenAI's API describes `temperature`:
//! at 0 (the default) a window whose batched greedy text is too repetitive
//! or improbable is decoded again by the transcriber's search with
//! temperature fallback and the no-speech skip — noise, where greedy
//! decoding alone writes a lone full stop, comes back empty, exactly as the
//! library transcribes it with the same options — while clean speech keeps
//! its greedy text, repetitive speech falls back unless `temperature_inc` is
//! 0, and a temperature above 0 samples from that temperature up.

mod common;

use common::{form, jfk_wav, metric, model_dir, start, wav, JFK};
use emily_models::whisper::TranscribeOptions;
use emily_serve::api::audio::decoding_options;
use emily_serve::ServeConfig;
use reqwest::StatusCode;

/// 10 s of uniform noise in [-0.5, 0.5) (xorshift64*, the generator of the
/// decoding goldens' noise case), as 16-bit samples.
fn noise_pcm() -> Vec<i16> {
    let mut s: u64 = 20261205;
    (0..160_000)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let v = s.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let x = (v >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
            (x * 32767.0).round() as i16
        })
        .collect()
}

async fn transcribe(url: &str, bytes: Vec<u8>, fields: &[(&str, &str)]) -> serde_json::Value {
    let r = reqwest::Client::new()
        .post(url)
        .multipart(form(bytes, fields))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_falls_back_and_is_skipped_speech_keeps_its_greedy_text() {
    let mut s = start(ServeConfig::new(model_dir()));
    let url = s.url("/v1/audio/transcriptions");
    let fallbacks = |metrics: &str| metric(metrics, "emily_whisper_fallback_windows_total");
    let metrics = || async {
        reqwest::get(s.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };

    // Clean speech passes the checks: the greedy text, no fallback.
    let v = transcribe(&url, jfk_wav(), &[]).await;
    assert_eq!(v["text"], JFK);
    assert_eq!(fallbacks(&metrics().await), Some(0.0));

    // Noise: greedy alone writes something; the server's checks send the
    // window to the fallback, which skips it as no speech.
    let pcm = noise_pcm();
    let samples: Vec<f32> = pcm.iter().map(|&x| x as f32 / 32768.0).collect();
    let w = s.state.engine().unwrap().whisper().clone();
    let greedy = w
        .transcribe(&samples, &TranscribeOptions::greedy())
        .unwrap();
    assert!(!greedy.text.trim().is_empty(), "greedy alone: {greedy:?}");
    let library = w.transcribe(&samples, &decoding_options(0.0, 0.2)).unwrap();
    let v = transcribe(&url, wav(&pcm), &[("response_format", "verbose_json")]).await;
    assert_eq!(v["text"], library.text.trim(), "{v}");
    assert_eq!(v["text"], "", "{v}");
    assert_eq!(v["segments"].as_array().map(Vec::len), Some(0), "{v}");
    let after_noise = fallbacks(&metrics().await).unwrap();
    assert!(after_noise >= 1.0, "no window fell back");

    // `temperature` 0 given explicitly is the default.
    let v = transcribe(&url, wav(&pcm), &[("temperature", "0")]).await;
    assert_eq!(v["text"], "", "{v}");

    // Repetitive speech (JFK three times over) fails the compression-ratio
    // check and falls back, as the library decodes it; with
    // `temperature_inc` 0 it keeps its greedy text (no other temperature).
    let jfk = common::jfk_pcm();
    let looped: Vec<i16> = jfk.iter().copied().cycle().take(30 * 16_000).collect();
    let samples: Vec<f32> = looped.iter().map(|&x| x as f32 / 32768.0).collect();
    let before = fallbacks(&metrics().await).unwrap();
    let v = transcribe(&url, wav(&looped), &[]).await;
    let library = w.transcribe(&samples, &decoding_options(0.0, 0.2)).unwrap();
    assert_eq!(v["text"], library.text.trim(), "{v}");
    assert!(fallbacks(&metrics().await).unwrap() > before, "no fallback");
    let before = fallbacks(&metrics().await).unwrap();
    let v = transcribe(&url, wav(&looped), &[("temperature_inc", "0")]).await;
    let greedy = w
        .transcribe(&samples, &TranscribeOptions::greedy())
        .unwrap();
    assert_eq!(v["text"], greedy.text.trim(), "{v}");
    assert_eq!(fallbacks(&metrics().await), Some(before));

    // A temperature above 0 samples (seeded); speech stays speech.
    let v = transcribe(&url, jfk_wav(), &[("temperature", "0.4")]).await;
    let text = v["text"].as_str().unwrap().to_lowercase();
    assert!(text.contains("ask not what your country"), "{v}");
    s.stop().unwrap();
}
