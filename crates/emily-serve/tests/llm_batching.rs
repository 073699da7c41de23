//! Chat requests that arrive while another generates join its running batch
//! (continuous batching): streamed concurrently, each gives the library's
//! greedy text for it alone — up to
//! the first near tie (a step whose top-1/top-2 logit margin is below 0.5,
//! the rule of the LLM goldens: a batch's kernels add rows in another order,
//! and round-off may flip so close a choice) — and the metrics show a batch.

mod common;

use common::{llm_path, model_dir, start};
use emily_models::llm::{ChatMessage, GenerateOptions, LlmModel};
use emily_serve::ServeConfig;
use serde_json::{json, Value};

/// Starts a streamed greedy chat completion (the answer's head comes with
/// its first token: the worker is generating it).
async fn start_chat(url: &str, question: &str, max_tokens: usize) -> reqwest::Response {
    let r = reqwest::Client::new()
        .post(url)
        .json(&json!({"messages": [{"role": "user", "content": question}],
                      "temperature": 0, "max_tokens": max_tokens, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    r
}

/// A streamed chat completion's text (the deltas joined).
async fn streamed_chat(url: String, question: &str, max_tokens: usize) -> String {
    streamed_text(start_chat(&url, question, max_tokens).await).await
}

/// The deltas of a streamed answer, joined.
async fn streamed_text(r: reqwest::Response) -> String {
    let body = r.text().await.unwrap();
    let mut text = String::new();
    for data in body.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        assert!(v.get("error").is_none(), "{v}");
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    text
}

/// The `le="2.0"` and total counts of `emily_llm_batch_size` (batches of at
/// most 2 jobs, all batches).
fn batch_counts(metrics: &str) -> (u64, u64) {
    let value = |prefix: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or_else(|| panic!("no `{prefix}` in the metrics:\n{metrics}"))
    };
    (
        value("emily_llm_batch_size_bucket{le=\"2.0\"}"),
        value("emily_llm_batch_size_count"),
    )
}

/// Logit margin below which a greedy choice may flip by round-off.
const NEAR_TIE: f32 = 0.5;

/// The library's greedy reply to `question` alone (`max_tokens`), cut
/// before its first near tie, and how many tokens that keeps.
fn robust_reply(model: &LlmModel, question: &str, max_tokens: usize) -> (String, usize) {
    let messages = [ChatMessage::user(question)];
    let opts = GenerateOptions {
        max_tokens,
        ..GenerateOptions::default()
    };
    let alone = model.chat(&messages, &opts, |_| true).unwrap();
    let mut ids = model.chat_prompt(&messages).unwrap();
    let p = ids.len();
    ids.extend_from_slice(&alone.tokens);
    let logits = model.logits_all(&ids).unwrap();
    let v = model.config().vocab;
    let robust = (0..alone.tokens.len())
        .take_while(|&i| {
            let mut row = logits[(p - 1 + i) * v..(p + i) * v].to_vec();
            row.sort_by(|a, b| b.total_cmp(a));
            row[0] - row[1] >= NEAR_TIE
        })
        .count();
    let text = model
        .tokenizer()
        .decode(&alone.tokens[..robust], true)
        .unwrap();
    (text, robust)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streamed_chats_are_batched_and_match_one_at_a_time() {
    let mut c = ServeConfig::new(model_dir());
    c.llm = Some(llm_path());
    c.llm_context = 256;
    c.max_batch = 4;
    let mut s = start(c);
    let url = s.url("/v1/chat/completions");
    let questions = [
        "What is the capital of France?",
        "Name a colour.",
        "Write one word about the sea.",
    ];
    // A first request keeps the worker busy (its first token is out) while
    // the others queue up, so they are taken together.
    let busy = "Count from one to fifty.";
    let first = start_chat(&url, busy, 128).await;
    let others: Vec<_> = questions
        .iter()
        .map(|q| tokio::spawn(streamed_chat(url.clone(), q, 16)))
        .collect();
    let first = streamed_text(first).await;
    let mut answers = Vec::new();
    for o in others {
        answers.push(o.await.unwrap());
    }
    let model = s.state.llm().unwrap().model().clone();
    // The others joined the first's running batch: every reply, the first's
    // included, is the library's reply alone up to its first near tie.
    let mut compared = 0;
    let replies = std::iter::once((busy, &first, 128)).chain(
        questions
            .iter()
            .copied()
            .zip(&answers)
            .map(|(q, a)| (q, a, 16)),
    );
    for (q, a, max_tokens) in replies {
        let (robust, tokens) = robust_reply(&model, q, max_tokens);
        assert!(
            a.starts_with(&robust),
            "{q}: batched {a:?} does not start with the reply alone up to its first near tie, {robust:?}"
        );
        compared += tokens;
    }
    assert!(
        compared >= 6,
        "only {compared} tokens were before a near tie"
    );
    let metrics = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (small, all) = batch_counts(&metrics);
    assert!(
        all > small,
        "no batch of more than 2 jobs ({small} of {all} batches had at most 2)"
    );
    s.stop().unwrap();
}
