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
//!
//! Backlog: audio that arrives while a transcription runs is coalesced into
//! the next run (the partials it would have had are skipped), and at most
//! 30 s (`MAX_BUFFER_SECONDS`) of uncommitted audio is kept (the oldest is
//! dropped), so a client that sends faster than real time costs one run at
//! a time and `stop` is answered after at most one more run.

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
            // No temperature fallback on live audio (each run is a partial;
            // repeated speech stays as said); the no-speech skip stays.
            ..super::audio::decoding_options(0.0, 0.0)
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

/// What one client message asks for.
enum Incoming {
    /// Audio was added (or nothing to do).
    Audio,
    /// `stop`: finish the stream.
    Stop,
    /// The client went away, or sent what cannot be used (the error has
    /// been sent).
    End,
}

impl Live {
    /// Takes one client message: audio joins the buffer (the oldest audio
    /// beyond [`MAX_BUFFER_SECONDS`] is dropped).
    async fn take(&mut self, socket: &mut WebSocket, msg: Message) -> Incoming {
        match msg {
            Message::Binary(bytes) => {
                if bytes.len() % 4 != 0 {
                    let _ = socket
                        .send(json(serde_json::json!({
                            "type": "error",
                            "message": format!("{} bytes are not whole f32 samples", bytes.len()),
                        })))
                        .await;
                    return Incoming::End;
                }
                self.buffer.extend(
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
                let over = self.buffer.len().saturating_sub(MAX_BUFFER_SECONDS * RATE);
                if over > 0 {
                    self.buffer.drain(..over);
                    self.start += over as f64 / RATE as f64;
                    self.last_run = self.last_run.saturating_sub(over);
                }
                Incoming::Audio
            }
            Message::Text(t) if t.as_str().trim() == "stop" => Incoming::Stop,
            Message::Close(_) => Incoming::End,
            _ => Incoming::Audio,
        }
    }

    /// Waits for the next message, then takes every message already
    /// waiting too: audio that arrived during a transcription is coalesced
    /// into the next one (one partial for all of it, not one per
    /// [`STEP`]), so a client that sends faster than the server transcribes
    /// builds no backlog, and `stop` waits for at most one more run.
    async fn take_waiting(&mut self, socket: &mut WebSocket) -> Incoming {
        let Some(Ok(msg)) = socket.recv().await else {
            return Incoming::End;
        };
        let mut got = self.take(socket, msg).await;
        while matches!(got, Incoming::Audio) {
            // A zero timeout polls once: a message already here, or none.
            match tokio::time::timeout(Duration::ZERO, socket.recv()).await {
                Err(_) => break,
                Ok(Some(Ok(msg))) => got = self.take(socket, msg).await,
                Ok(_) => return Incoming::End,
            }
        }
        got
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
        let finish = match live.take_waiting(&mut socket).await {
            Incoming::Audio => false,
            Incoming::Stop => true,
            Incoming::End => return,
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
                    close(socket).await;
                    return;
                }
            }
        }
        if finish {
            let _ = socket.send(json(serde_json::json!({"type": "done"}))).await;
            close(socket).await;
            return;
        }
    }
}

/// How long [`close`] waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Sends the close frame, then reads (and drops) what the client still
/// sends until its own close frame, for at most [`CLOSE_WAIT`]. A socket
/// dropped with unread audio in its receive buffer (a microphone's chunks
/// still in flight after `stop`) makes the kernel reset the connection, and
/// the client then loses the last messages — `final` and `done` — however
/// they were sent before.
async fn close(mut socket: WebSocket) {
    if socket.send(Message::Close(None)).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
