//! Backpressure, timeouts, cancellation and graceful shutdown, each on its
//! own real server.

mod common;

use std::time::{Duration, Instant};

use common::{form, jfk_wav, long_jfk_wav, metric, model_dir, start, JFK};
use emily_serve::ServeConfig;
use reqwest::StatusCode;

fn config(queue: usize) -> ServeConfig {
    let mut c = ServeConfig::new(model_dir());
    c.queue = queue;
    c
}

async fn post(url: String, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .multipart(form(body, &[]))
        .send()
        .await
        .unwrap()
}

async fn metrics(url: String) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// Polls until `f` holds (at most 60 s).
async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_with_retry_after() {
    let mut c = config(1);
    c.max_batch = 1;
    let mut s = start(c);
    let long = long_jfk_wav(60);
    // One request decoding, one waiting: the queue (1) is full.
    let busy = tokio::spawn(post(s.url("/v1/audio/transcriptions"), long.clone()));
    let engine = s.state.clone();
    wait_until("the worker takes the first job", || {
        engine.metrics().in_flight.get() == 1
    })
    .await;
    let waiting = tokio::spawn(post(s.url("/v1/audio/transcriptions"), jfk_wav()));
    wait_until("the second job waits", || {
        engine.engine().unwrap().queue_depth() == 1
    })
    .await;
    let r = post(s.url("/v1/audio/transcriptions"), jfk_wav()).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    // The accepted ones are answered.
    assert_eq!(busy.await.unwrap().status(), StatusCode::OK);
    let w = waiting.await.unwrap();
    assert_eq!(w.status(), StatusCode::OK);
    let v: serde_json::Value = w.json().await.unwrap();
    assert_eq!(v["text"], JFK);
    s.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_is_504_and_its_work_stops() {
    let mut c = config(4);
    c.timeout = Duration::from_millis(300);
    let mut s = start(c);
    let r = post(s.url("/v1/audio/transcriptions"), long_jfk_wav(120)).await;
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    let m = s.state.clone();
    // The worker sees the flag at its next decoder step, far before 120 s of
    // audio could be transcribed.
    let t0 = Instant::now();
    wait_until("the timed-out job is cancelled", || {
        m.metrics().cancelled.get() == 1 && m.metrics().in_flight.get() == 0
    })
    .await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    s.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_cancels_its_work() {
    let mut s = start(config(4));
    let url = s.url("/v1/audio/transcriptions");
    let req = tokio::spawn(post(url, long_jfk_wav(120)));
    let m = s.state.clone();
    wait_until("the job starts", || m.metrics().in_flight.get() == 1).await;
    req.abort(); // drops the connection
    let t0 = Instant::now();
    wait_until("the job is cancelled", || {
        m.metrics().cancelled.get() == 1 && m.metrics().in_flight.get() == 0
    })
    .await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    // The server still serves.
    let r = post(s.url("/v1/audio/transcriptions"), jfk_wav()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = metrics(s.url("/metrics")).await;
    assert_eq!(
        metric(&text, "emily_jobs_cancelled_total"),
        Some(1.0),
        "{text}"
    );
    s.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_every_accepted_request_then_exits() {
    let mut s = start(config(8));
    let url = s.url("/v1/audio/transcriptions");
    let reqs: Vec<_> = (0..3)
        .map(|_| tokio::spawn(post(url.clone(), jfk_wav())))
        .collect();
    let m = s.state.clone();
    wait_until("all three are accepted", || {
        m.metrics().in_flight.get() + m.engine().unwrap().queue_depth() as i64 == 3
    })
    .await;
    s.begin_stop();
    for r in reqs {
        let r = r.await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["text"], JFK);
    }
    s.join().unwrap();
    // Nothing listens any more.
    let after = reqwest::Client::new()
        .get(s.url("/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(after.is_err(), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_decode_in_one_batch_with_exact_text() {
    let mut s = start(config(16));
    let url = s.url("/v1/audio/transcriptions");
    let short: Vec<_> = (0..4)
        .map(|_| tokio::spawn(post(url.clone(), jfk_wav())))
        .collect();
    let long_wav = long_jfk_wav(45);
    let long = tokio::spawn(post(url.clone(), long_wav.clone()));
    for r in short {
        let r = r.await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["text"], JFK);
    }
    let r = long.await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    // Exactly what the model gives this file alone (windows decoded one by
    // one) with the server's options: greedy, and the transcriber's
    // fallback for windows that fail its checks (this one repeats itself).
    let d = emily_models::audio::decode_bytes(long_wav, "long.wav").unwrap();
    let samples =
        emily_models::audio::prepare_samples(&d.samples, d.sample_rate, d.channels, "long.wav")
            .unwrap();
    let w = s.state.engine().unwrap().whisper().clone();
    let opts = emily_serve::api::audio::decoding_options(0.0, 0.2);
    let alone = tokio::task::spawn_blocking(move || w.transcribe(&samples, &opts))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v["text"], alone.text.trim());
    let m = metrics(s.url("/metrics")).await;
    let sum = metric(&m, "emily_decoder_batch_size_sum").unwrap();
    let count = metric(&m, "emily_decoder_batch_size_count").unwrap();
    assert!(sum / count > 1.5, "mean batch {} in {m}", sum / count);
    s.stop().unwrap();
}
