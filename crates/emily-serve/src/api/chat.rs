//! `POST /v1/chat/completions` and `POST /v1/completions` over the loaded
//! language model, shaped like OpenAI's: JSON answers with `usage`, or
//! (`"stream": true`) server-sent events of chunks ending in `data: [DONE]`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use emily_models::llm::{FinishReason, Generation, LlmError};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant as Deadline;

use super::error::ApiError;
use super::openai::{Kind, OpenAiRequest};
use crate::engine::{GenerationJob, LlmEvent};
use crate::state::AppState;

/// `POST /v1/chat/completions`.
pub async fn chat_completions(State(state): State<AppState>, body: Bytes) -> Response {
    handle(state, body, Kind::Chat)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /v1/completions`.
pub async fn completions(State(state): State<AppState>, body: Bytes) -> Response {
    handle(state, body, Kind::Text)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// A fresh answer id (`chatcmpl-…` / `cmpl-…`).
fn next_id(kind: Kind) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    match kind {
        Kind::Chat => format!("chatcmpl-emily-{n}"),
        Kind::Text => format!("cmpl-emily-{n}"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// OpenAI's `finish_reason`.
fn finish_reason(f: &FinishReason) -> &'static str {
    match f {
        FinishReason::StopToken(_) | FinishReason::StopString(_) => "stop",
        FinishReason::Length | FinishReason::ContextFull => "length",
    }
}

fn usage(g: &Generation) -> Value {
    let prompt = g.timings.prompt_tokens;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": g.tokens.len(),
        "total_tokens": prompt + g.tokens.len(),
    })
}

/// A failed generation as an answer: bad requests (prompt too long, bad
/// options, no chat template) are 400, the rest 500.
fn generation_error(e: LlmError) -> ApiError {
    match e {
        LlmError::Input(m) => ApiError::bad_field("messages", m),
        LlmError::Template(e) => ApiError::bad_field("messages", e.to_string()),
        e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// What identifies one answer's chunks.
struct Answer {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
}

impl Answer {
    /// One choice's payload: a chat `delta`/`message` or completion `text`.
    fn choice(&self, text: &str, finish: Option<&str>, streamed: bool, first: bool) -> Value {
        match (self.kind, streamed) {
            (Kind::Chat, true) => {
                let delta = match (first, finish) {
                    (true, _) => json!({ "role": "assistant", "content": text }),
                    (false, Some(_)) if text.is_empty() => json!({}),
                    _ => json!({ "content": text }),
                };
                json!({ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null })
            }
            (Kind::Chat, false) => json!({
                "index": 0,
                "message": { "role": "assistant", "content": text },
                "finish_reason": finish,
                "logprobs": null,
            }),
            (Kind::Text, _) => {
                json!({ "index": 0, "text": text, "finish_reason": finish, "logprobs": null })
            }
        }
    }

    fn object(&self, streamed: bool) -> &'static str {
        match (self.kind, streamed) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Text, _) => "text_completion",
        }
    }

    fn body(&self, choices: Vec<Value>, streamed: bool) -> Value {
        json!({
            "id": self.id,
            "object": self.object(streamed),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }
}

async fn handle(state: AppState, body: Bytes, kind: Kind) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request = OpenAiRequest::parse(&body, kind)?;
    let llm = state.llm().ok_or_else(|| {
        if state.engine().is_none() {
            super::audio::not_ready()
        } else {
            ApiError::bad_field(
                "model",
                "no language model is loaded (start the server with --llm FILE.gguf)",
            )
        }
    })?;
    let opts = request.options(llm.model().context());
    let (job, mut rx) = GenerationJob::new(request.prompt.clone(), opts);
    llm.submit(job)
        .map_err(|e| ApiError::refused(&e, llm.queue_depth()))?;
    let deadline = Deadline::from(started) + state.config().timeout;
    let answer = Answer {
        kind,
        id: next_id(kind),
        created: unix_now(),
        model: llm.id().to_string(),
    };
    // The first event comes after the prefill: a prompt the model refuses is
    // still an HTTP error, not an error inside a stream.
    let first = next_event(&mut rx, deadline).await?;
    if let LlmEvent::Done(Err(e)) = first {
        return Err(generation_error(e));
    }
    if request.stream {
        return Ok(stream(answer, first, rx, deadline, request.include_usage));
    }
    let mut event = first;
    loop {
        match event {
            LlmEvent::Token(_) => event = next_event(&mut rx, deadline).await?,
            LlmEvent::Done(Err(e)) => return Err(generation_error(e)),
            LlmEvent::Done(Ok(g)) => {
                let choice = answer.choice(&g.text, Some(finish_reason(&g.finish)), false, false);
                let mut body = answer.body(vec![choice], false);
                body["usage"] = usage(&g);
                return Ok(Json(body).into_response());
            }
        }
    }
}

/// The next event before `deadline` (504 after it; dropping the receiver
/// then stops the worker).
async fn next_event(
    rx: &mut mpsc::Receiver<LlmEvent>,
    deadline: Deadline,
) -> Result<LlmEvent, ApiError> {
    match tokio::time::timeout_at(deadline, rx.recv()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "the request took longer than the server's time limit and was stopped",
        )),
        Ok(None) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the worker stopped without an answer",
        )),
        Ok(Some(ev)) => Ok(ev),
    }
}

fn data(v: &Value) -> Event {
    Event::default().data(v.to_string())
}

/// The state of a streamed answer.
struct Streaming {
    answer: Answer,
    pending: Option<LlmEvent>,
    rx: mpsc::Receiver<LlmEvent>,
    deadline: Deadline,
    include_usage: bool,
    sent_first: bool,
    /// Events ready to send.
    out: VecDeque<Event>,
    /// Nothing more comes after `out`.
    over: bool,
}

impl Streaming {
    /// Turns one worker event into server-sent events.
    fn push(&mut self, ev: LlmEvent) {
        let first = !self.sent_first;
        self.sent_first = true;
        match ev {
            LlmEvent::Token(t) => {
                if first || !t.text.is_empty() {
                    let c = self.answer.choice(&t.text, None, true, first);
                    self.out.push_back(data(&self.answer.body(vec![c], true)));
                }
            }
            LlmEvent::Done(Ok(g)) => {
                let reason = finish_reason(&g.finish);
                let c = self.answer.choice("", Some(reason), true, first);
                self.out.push_back(data(&self.answer.body(vec![c], true)));
                if self.include_usage {
                    let mut u = self.answer.body(Vec::new(), true);
                    u["usage"] = usage(&g);
                    self.out.push_back(data(&u));
                }
                self.out.push_back(Event::default().data("[DONE]"));
                self.over = true;
            }
            LlmEvent::Done(Err(e)) => self.fail(e.to_string()),
        }
    }

    fn fail(&mut self, message: String) {
        self.out
            .push_back(data(&json!({ "error": { "message": message } })));
        self.over = true;
    }
}

/// The answer as server-sent events: a chunk per released piece of text, a
/// last chunk with `finish_reason` (and one with `usage` when asked), then
/// `data: [DONE]`. An error mid-stream is an `{"error": …}` event.
fn stream(
    answer: Answer,
    first: LlmEvent,
    rx: mpsc::Receiver<LlmEvent>,
    deadline: Deadline,
    include_usage: bool,
) -> Response {
    let s = Streaming {
        answer,
        pending: Some(first),
        rx,
        deadline,
        include_usage,
        sent_first: false,
        out: VecDeque::new(),
        over: false,
    };
    let events = futures_util::stream::unfold(s, |mut s| async move {
        loop {
            if let Some(e) = s.out.pop_front() {
                return Some((Ok::<Event, Infallible>(e), s));
            }
            if s.over {
                return None;
            }
            let ev = match s.pending.take() {
                Some(ev) => Ok(ev),
                None => next_event(&mut s.rx, s.deadline).await,
            };
            match ev {
                Ok(ev) => s.push(ev),
                Err(e) => s.fail(e.message),
            }
        }
    });
    Sse::new(events).into_response()
}
