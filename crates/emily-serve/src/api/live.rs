//! `GET /v1/audio/live`: live transcription over a WebSocket, with a sliding
//! window as whisper.cpp's `stream` example does it.
//!
//! The client sends binary messages of 16 kHz mono f32 little-endian samples
//! and the text message `stop` at the end. Every [`STEP`] of new audio the
//! server transcribes the uncommitted audio and sends
//! `{"type": "partial", "text"}`. Once the uncommitted audio is longer than
//! [`LENGTH`], every segment but the last is final: the server sends
//! `{"type": "final", "segments": [{"start", "end", "text"}]}` (times from
//! the start of the stream) and drops their audio. After `stop` it finishes
//! the rest, sends its final segments and `{"type": "done"}`.

use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use emily_models::whisper::{Segment, TranscribeOptions};

use super::audio::run_job;
use crate::state::AppState;

/// New audio between two partial transcriptions.
pub const STEP: Duration = Duration::from_millis(1000);
/// Uncommitted audio beyond which the finished segments are committed.
pub const LENGTH: Duration = Duration::from_secs(10);
/// Most uncommitted audio kept (a client that sends faster than real time
/// cannot grow the buffer without bound).
const MAX_BUFFER_SECONDS: usize = 30;
const RATE: usize = 16_000;

/// Upgrades to the live-transcription WebSocket.
pub async fn live(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(4 * 1024 * 1024)
        .on_upgrade(move |socket| stream(state, socket))
}

struct Live {
    /// Audio not yet committed.
    buffer: Vec<f32>,
    /// Stream time of `buffer[0]`, seconds.
    start: f64,
    /// `buffer.len()` at the last transcription.
    last_run: usize,
}

fn json(v: serde_json::Value) -> Message {
    Message::Text(v.to_string().into())
}

fn segments_json(segs: &[Segment], start: f64) -> serde_json::Value {
    segs.iter()
        .map(|s| {
            serde_json::json!({
                "start": start + s.start,
                "end": start + s.end,
                "text": s.text.trim(),
            })
        })
        .collect()
}

impl Live {
    /// Transcribes the uncommitted audio; commits finished segments when the
    /// window is long or `finish` is set. Returns the messages to send.
    async fn run(&mut self, state: &AppState, finish: bool) -> Result<Vec<Message>, String> {
        self.last_run = self.buffer.len();
        if self.buffer.len() < RATE / 10 {
            self.buffer.clear();
            return Ok(Vec::new());
        }
        let opts = TranscribeOptions {
            timestamps: true,
            ..TranscribeOptions::default()
        };
        let t = run_job(state, self.buffer.clone(), opts, Instant::now())
            .await
            .map_err(|e| e.message)?;
        let long = self.buffer.len() >= LENGTH.as_secs() as usize * RATE;
        if finish {
            let msg = json(serde_json::json!({
                "type": "final",
                "segments": segments_json(&t.segments, self.start),
            }));
            self.start += self.buffer.len() as f64 / RATE as f64;
            self.buffer.clear();
            self.last_run = 0;
            return Ok(vec![msg]);
        }
        if long && t.segments.len() >= 2 {
            let keep_from = t.segments[t.segments.len() - 1].start;
            let done = &t.segments[..t.segments.len() - 1];
            let msg = json(serde_json::json!({
                "type": "final",
                "segments": segments_json(done, self.start),
            }));
            let cut = ((keep_from * RATE as f64) as usize).min(self.buffer.len());
            self.buffer.drain(..cut);
            self.start += cut as f64 / RATE as f64;
            self.last_run = self.buffer.len();
            let partial = t.segments[t.segments.len() - 1].text.trim().to_string();
            return Ok(vec![
                msg,
                json(serde_json::json!({"type": "partial", "text": partial})),
            ]);
        }
        Ok(vec![json(
            serde_json::json!({"type": "partial", "text": t.text.trim()}),
        )])
    }
}

async fn stream(state: AppState, mut socket: WebSocket) {
    let mut live = Live {
        buffer: Vec::new(),
        start: 0.0,
        last_run: 0,
    };
    let step = (STEP.as_millis() as usize) * RATE / 1000;
    loop {
        let Some(Ok(msg)) = socket.recv().await else {
            return; // the client went away
        };
        let finish = match msg {
            Message::Binary(bytes) => {
                if bytes.len() % 4 != 0 {
                    let _ = socket
                        .send(json(serde_json::json!({
                            "type": "error",
                            "message": format!("{} bytes are not whole f32 samples", bytes.len()),
                        })))
                        .await;
                    return;
                }
                live.buffer.extend(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .map(|s| {
                            if s.is_finite() {
                                s.clamp(-1.0, 1.0)
                            } else {
                                0.0
                            }
                        }),
                );
                let over = live.buffer.len().saturating_sub(MAX_BUFFER_SECONDS * RATE);
                if over > 0 {
                    live.buffer.drain(..over);
                    live.start += over as f64 / RATE as f64;
                    live.last_run = live.last_run.saturating_sub(over);
                }
                false
            }
            Message::Text(t) if t.as_str().trim() == "stop" => true,
            Message::Close(_) => return,
            _ => continue,
        };
        if !finish && live.buffer.len() < live.last_run + step {
            continue;
        }
        match live.run(&state, finish).await {
            Ok(msgs) => {
                for m in msgs {
                    if socket.send(m).await.is_err() {
                        return;
                    }
                }
            }
            Err(message) => {
                let _ = socket
                    .send(json(
                        serde_json::json!({"type": "error", "message": message}),
                    ))
                    .await;
                if finish {
                    return;
                }
            }
        }
        if finish {
            let _ = socket.send(json(serde_json::json!({"type": "done"}))).await;
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    }
}
