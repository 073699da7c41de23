//! Every route and response format of a real server on a loopback port, on
//! the JFK clip, and every error status a request can earn.

mod common;

use std::sync::OnceLock;

use common::{form, jfk_wav, metric, model_dir, start, Running, JFK};
use emily_models::whisper::render::{render, TranscriptFormat};
use emily_models::whisper::TranscribeOptions;
use emily_serve::ServeConfig;
use reqwest::StatusCode;

const KEY: &str = "test-key-0123456789";

fn server() -> &'static Running {
    static S: OnceLock<Running> = OnceLock::new();
    S.get_or_init(|| {
        let mut c = ServeConfig::new(model_dir());
        c.api_key = Some(KEY.into());
        c.max_body_bytes = 2 * 1024 * 1024;
        start(c)
    })
}

/// A client without connection reuse: the server answers some requests (401,
/// 413) before reading their bodies and then closes the connection, and a
/// pooled client may already have sent the next request on it (a race that
/// made `keys_bodies_and_routes` fail now and then).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a reqwest client")
}

async fn transcribe(path: &str, body: reqwest::multipart::Form) -> reqwest::Response {
    client()
        .post(server().url(path))
        .bearer_auth(KEY)
        .multipart(body)
        .send()
        .await
        .unwrap()
}

/// What the CLI prints for JFK in `format` (same model, same options).
fn cli_output(format: TranscriptFormat) -> String {
    let w = server().state.engine().unwrap().whisper().clone();
    // Greedy: the server decodes each window step by step.
    let opts = TranscribeOptions {
        timestamps: format.needs_timestamps(),
        ..TranscribeOptions::greedy()
    };
    let samples = emily_models::audio::load_audio(&common::root().join("samples/jfk.wav")).unwrap();
    render(&w.transcribe(&samples, &opts).unwrap(), format, false)
}

#[tokio::test]
async fn json_and_text_give_the_cli_text() {
    let r = transcribe(
        "/v1/audio/transcriptions",
        form(jfk_wav(), &[("model", "whisper-1")]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["text"], JFK);

    let r = transcribe(
        "/v1/audio/transcriptions",
        form(jfk_wav(), &[("response_format", "text")]),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert_eq!(text, format!("{JFK}\n"));
    assert_eq!(text, cli_output(TranscriptFormat::Text));
}

#[tokio::test]
async fn subtitles_match_the_cli_and_verbose_json_has_segments() {
    for (fmt, cli) in [
        ("srt", TranscriptFormat::Srt),
        ("vtt", TranscriptFormat::Vtt),
    ] {
        let r = transcribe(
            "/v1/audio/transcriptions",
            form(jfk_wav(), &[("response_format", fmt)]),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{fmt}");
        let body = r.text().await.unwrap();
        assert_eq!(body, cli_output(cli), "{fmt}");
    }
    let r = transcribe(
        "/v1/audio/transcriptions",
        form(
            jfk_wav(),
            &[
                ("response_format", "verbose_json"),
                ("timestamp_granularities[]", "segment"),
                ("language", "en"),
            ],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["task"], "transcribe");
    assert_eq!(v["language"], "en");
    assert_eq!(v["duration"], 11.0);
    let segs = v["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 2, "{v}");
    assert_eq!(segs[0]["start"], 0.0);
    assert!(segs[1]["end"].as_f64().unwrap() <= 11.0);
    assert!(v["text"]
        .as_str()
        .unwrap()
        .contains("ask not what your country"));
}

#[tokio::test]
async fn models_health_and_metrics() {
    let c = client();
    let v: serde_json::Value = c
        .get(server().url("/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "whisper-tiny.en");
    let h = c.get(server().url("/health")).send().await.unwrap();
    assert_eq!(h.status(), StatusCode::OK);
    let v: serde_json::Value = h.json().await.unwrap();
    assert_eq!(v["status"], "ok");

    // One transcription, then its counters are in the metrics.
    let r = transcribe("/v1/audio/transcriptions", form(jfk_wav(), &[])).await;
    assert_eq!(r.status(), StatusCode::OK);
    let m = c
        .get(server().url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ok = metric(
        &m,
        "emily_http_requests_total{route=\"/v1/audio/transcriptions\",status=\"200\"}",
    )
    .unwrap_or(0.0);
    assert!(ok >= 1.0, "{m}");
    assert!(
        metric(&m, "emily_audio_seconds_total").unwrap_or(0.0) >= 11.0,
        "{m}"
    );
    assert!(
        metric(&m, "emily_tokens_total{model=\"whisper\"}").unwrap_or(0.0) >= 20.0,
        "{m}"
    );
    assert!(
        m.contains("emily_http_request_duration_seconds_bucket"),
        "{m}"
    );
    assert!(m.contains("emily_queue_depth"), "{m}");
    let page = c.get(server().url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<html"));
}

async fn error_of(r: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(r.status(), status);
    let v: serde_json::Value = r.json().await.unwrap();
    v["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn bad_requests_are_400_naming_the_problem() {
    let corrupt = {
        let mut b = jfk_wav();
        b.truncate(30);
        b
    };
    let msg = error_of(
        transcribe("/v1/audio/transcriptions", form(corrupt, &[])).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(msg.starts_with("audio.wav:"), "{msg}");
    let msg = error_of(
        transcribe(
            "/v1/audio/transcriptions",
            form(b"this is not audio at all".to_vec(), &[]),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(msg.contains("not a recognised audio file"), "{msg}");
    let no_file = reqwest::multipart::Form::new().text("model", "whisper-1");
    let msg = error_of(
        transcribe("/v1/audio/transcriptions", no_file).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(msg.contains("`file`"), "{msg}");
    for (field, value, needle) in [
        ("response_format", "xml", "response_format"),
        ("temperature", "7", "temperature"),
        ("timestamp_granularities[]", "word", "word timestamps"),
        ("language", "de", "English-only"),
    ] {
        let mut fields = vec![(field, value)];
        if field.starts_with("timestamp") {
            fields.push(("response_format", "verbose_json"));
        }
        let msg = error_of(
            transcribe("/v1/audio/transcriptions", form(jfk_wav(), &fields)).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(msg.contains(needle), "{field}: {msg}");
    }
    let msg = error_of(
        transcribe("/v1/audio/translations", form(jfk_wav(), &[])).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        msg.contains("translation needs a multilingual model"),
        "{msg}"
    );
}

#[tokio::test]
async fn keys_bodies_and_routes() {
    let c = client();
    let no_key = c
        .post(server().url("/v1/audio/transcriptions"))
        .multipart(form(jfk_wav(), &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.headers()["www-authenticate"], "Bearer");
    error_of(no_key, StatusCode::UNAUTHORIZED).await;
    let wrong = c
        .get(server().url("/v1/models"))
        .bearer_auth("test-key-0123456788")
        .send()
        .await
        .unwrap();
    error_of(wrong, StatusCode::UNAUTHORIZED).await;
    // /health stays open for probes.
    let h = c.get(server().url("/health")).send().await.unwrap();
    assert_eq!(h.status(), StatusCode::OK);

    // The server answers 413 as soon as the limit is passed and may close the
    // connection while the client still sends: retry until the answer is read.
    let mut answered = None;
    for _ in 0..5 {
        let sent = client()
            .post(server().url("/v1/audio/transcriptions"))
            .bearer_auth(KEY)
            .multipart(form(vec![0u8; 3 * 1024 * 1024], &[]))
            .send()
            .await;
        if let Ok(r) = sent {
            answered = Some(r);
            break;
        }
    }
    error_of(
        answered.expect("a 413 answer"),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;

    let r = c
        .get(server().url("/v2/nothing"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    error_of(r, StatusCode::NOT_FOUND).await;
}
