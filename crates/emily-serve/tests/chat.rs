//! The chat and text completion routes on a real server with SmolLM2 loaded:
//! the text is exactly what the library generates in process (greedy), the
//! streamed deltas add up to it, bad requests are 400, a client that goes
//! away mid-stream stops the generation.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{llm_path, model_dir, start, Running, QUESTION};
use emily_models::llm::{ChatMessage, GenerateOptions, Generation};
use emily_serve::ServeConfig;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn server() -> &'static Running {
    static S: OnceLock<Running> = OnceLock::new();
    S.get_or_init(|| {
        let mut c = ServeConfig::new(model_dir());
        c.llm = Some(llm_path());
        c.llm_context = 256;
        // One generation at a time: the replies are compared with the library's
        // exactly (a batch may flip near ties; see llm_batching.rs).
        c.max_batch = 1;
        start(c)
    })
}

async fn post(path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(server().url(path))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// What the library generates for `messages` (greedy, `max_tokens`).
fn library_chat(messages: &[ChatMessage], max_tokens: usize) -> Generation {
    let m = server().state.llm().unwrap().model().clone();
    let opts = GenerateOptions {
        max_tokens,
        ..GenerateOptions::default()
    };
    m.chat(messages, &opts, |_| true).unwrap()
}

/// The `data:` payloads of a server-sent event body.
fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn chat_completion_is_the_library_reply_with_usage() {
    let expected = library_chat(&[ChatMessage::user(QUESTION)], 24);
    assert!(!expected.text.trim().is_empty());
    let r = post(
        "/v1/chat/completions",
        json!({"model": "any", "messages": [{"role": "user", "content": QUESTION}],
               "temperature": 0, "max_tokens": 24}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], expected.text);
    let reason = if expected.tokens.len() == 24 {
        "length"
    } else {
        "stop"
    };
    assert_eq!(v["choices"][0]["finish_reason"], reason);
    assert_eq!(
        v["usage"]["prompt_tokens"],
        expected.timings.prompt_tokens as u64
    );
    assert_eq!(
        v["usage"]["completion_tokens"],
        expected.tokens.len() as u64
    );
}

#[tokio::test]
async fn streamed_deltas_add_up_to_the_reply_and_end_in_done() {
    let expected = library_chat(&[ChatMessage::user(QUESTION)], 24);
    let r = post(
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": QUESTION}], "temperature": 0,
               "max_tokens": 24, "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let data = sse_data(&r.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, expected.text);
    // The last chunk with a choice carries the finish reason; then usage.
    let n = chunks.len();
    assert!(chunks[n - 2]["choices"][0]["finish_reason"].is_string());
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(
        chunks[n - 1]["usage"]["completion_tokens"],
        expected.tokens.len() as u64
    );
}

#[tokio::test]
async fn text_completion_and_stop_strings() {
    let m = server().state.llm().unwrap().model().clone();
    let prompt = "The three primary colors are";
    let opts = GenerateOptions {
        max_tokens: 12,
        ..GenerateOptions::default()
    };
    let expected = m.generate(prompt, &opts, |_| true).unwrap();
    let r = post(
        "/v1/completions",
        json!({"prompt": prompt, "max_tokens": 12, "temperature": 0}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], expected.text);
    // A stop string that occurs in the greedy text cuts it there.
    let words: Vec<&str> = expected.text.split_whitespace().collect();
    assert!(words.len() >= 3, "{:?}", expected.text);
    let stop = words[2];
    let r = post(
        "/v1/completions",
        json!({"prompt": prompt, "max_tokens": 12, "temperature": 0, "stop": [stop]}),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    let cut = &expected.text[..expected.text.find(stop).unwrap()];
    assert_eq!(v["choices"][0]["text"], cut);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn models_lists_both_and_bad_requests_are_400() {
    let r = reqwest::get(server().url("/v1/models")).await.unwrap();
    let v: Value = r.json().await.unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["whisper-tiny.en", "SmolLM2-135M-Instruct.Q4_1"]);
    let tasks: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["task"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["transcription", "chat"]);
    let long = "word ".repeat(400);
    for (path, body, param) in [
        ("/v1/chat/completions", json!({"messages": []}), "messages"),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "hi"}], "temperature": -1}),
            "temperature",
        ),
        // Longer than the 256-position context: refused by the model.
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": long}]}),
            "messages",
        ),
        ("/v1/completions", json!({"prompt": 3}), "prompt"),
    ] {
        let r = post(path, body.clone()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["param"], param, "{body}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_stops_the_generation() {
    let m = server().state.metrics().clone();
    let before = m.cancelled.get();
    let mut r = post(
        "/v1/completions",
        json!({"prompt": "1, 2, 3, 4, 5, 6,", "max_tokens": 200, "temperature": 0,
               "stream": true}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let first = r.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    drop(r);
    let t0 = Instant::now();
    while m.cancelled.get() == before {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the generation was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn without_a_language_model_chat_is_400_naming_the_model() {
    let mut s = start(ServeConfig::new(model_dir()));
    let r = reqwest::Client::new()
        .post(s.url("/v1/chat/completions"))
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "model");
    tokio::task::spawn_blocking(move || s.stop().unwrap())
        .await
        .unwrap();
}
