//! `POST /v1/audio/transcriptions` and `POST /v1/audio/translations`.

use std::time::Instant;

use axum::extract::{Multipart, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use emily_models::audio::{decode_bytes, prepare_samples};
use emily_models::tokenizer::Task;
use emily_models::whisper::render::{render, TranscriptFormat};
use emily_models::whisper::{TranscribeOptions, Transcript, WhisperError};

use super::error::ApiError;
use super::form::{AudioForm, ResponseFormat};
use crate::engine::TranscriptionJob;
use crate::state::AppState;

/// `POST /v1/audio/transcriptions`.
pub async fn transcriptions(
    State(state): State<AppState>,
    mp: Multipart,
) -> Result<Response, ApiError> {
    handle(state, mp, Task::Transcribe).await
}

/// `POST /v1/audio/translations` (into English).
pub async fn translations(
    State(state): State<AppState>,
    mp: Multipart,
) -> Result<Response, ApiError> {
    handle(state, mp, Task::Translate).await
}

/// Sets a job's cancel flag when the handler is dropped before its answer
/// (the client disconnected) or gives up (timeout).
struct CancelOnDrop(Option<emily_models::whisper::CancelFlag>);

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.cancel();
        }
    }
}

/// Decodes an uploaded file to 16 kHz mono (off the async threads).
pub async fn decode_upload(file: Vec<u8>, name: String) -> Result<Vec<f32>, ApiError> {
    let samples = tokio::task::spawn_blocking(move || {
        let d = decode_bytes(file, &name)?;
        prepare_samples(&d.samples, d.sample_rate, d.channels, &name)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::bad_field("file", e.to_string()))?;
    if samples.is_empty() {
        return Err(ApiError::bad_field("file", "the file contains no audio"));
    }
    Ok(samples)
}

/// Runs one transcription job through the engine: queue (429 when full),
/// wait (504 past the request timeout), cancel if the caller goes away.
pub async fn run_job(
    state: &AppState,
    samples: Vec<f32>,
    opts: TranscribeOptions,
    started: Instant,
) -> Result<Transcript, ApiError> {
    let engine = state.engine().ok_or_else(not_ready)?;
    let (job, rx, cancel) = TranscriptionJob::new(samples, opts);
    let mut guard = CancelOnDrop(Some(cancel));
    engine
        .submit(job)
        .map_err(|e| ApiError::refused(&e, engine.queue_depth()))?;
    let left = state.config().timeout.saturating_sub(started.elapsed());
    let result = match tokio::time::timeout(left, rx).await {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the request took longer than {} s and was stopped",
                    state.config().timeout.as_secs_f64()
                ),
            ))
        }
        Ok(Err(_)) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the worker stopped without an answer",
            ))
        }
        Ok(Ok(r)) => r,
    };
    guard.disarm();
    result.map_err(|e| match e {
        WhisperError::Tokenizer(e) => ApiError::bad_field("language", e.to_string()),
        e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })
}

/// 503 while the models load.
pub fn not_ready() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the models are still loading",
    )
    .retry_after(5)
}

async fn handle(state: AppState, mp: Multipart, task: Task) -> Result<Response, ApiError> {
    let started = Instant::now();
    let form = AudioForm::read(mp).await?;
    let engine = state.engine().ok_or_else(not_ready)?;
    let multilingual = engine.whisper().is_multilingual();
    if let Some(lang) = &form.language {
        if !multilingual && lang != "en" {
            return Err(ApiError::bad_field(
                "language",
                format!("the model is English-only; language `{lang}` needs a multilingual model"),
            ));
        }
    }
    if task == Task::Translate && !multilingual {
        return Err(ApiError::bad_field(
            "model",
            "the model is English-only; translation needs a multilingual model",
        ));
    }
    let read = started.elapsed();
    let samples = decode_upload(form.file, form.filename).await?;
    tracing::debug!(
        "upload: form read {:.1} ms, audio decoded {:.1} ms",
        read.as_secs_f64() * 1e3,
        (started.elapsed() - read).as_secs_f64() * 1e3
    );
    let duration = samples.len() as f64 / 16_000.0;
    let opts = TranscribeOptions {
        timestamps: form.response_format.has_timestamps(),
        language: form.language.clone(),
        task,
        initial_prompt: form.prompt.clone(),
        ..decoding_options(form.temperature, form.temperature_inc)
    };
    let t = run_job(&state, samples, opts, started).await?;
    Ok(respond(&t, form.response_format, task, duration))
}

/// Decoding options for the form's `temperature` and `temperature_inc`
/// (OpenAI's field and whisper.cpp's server's): the first pass at
/// `temperature` (0, the default: greedy, beam 1, so that requests decode
/// in one batch); a window whose text is too repetitive or improbable is
/// decoded again at `temperature + inc`, `+ 2·inc` … up to 1 (the
/// transcriber's fallback, best of 5 samples; `inc` 0.2 by default, 0 = no
/// fallback), and a window of no speech is skipped.
pub fn decoding_options(temperature: f32, inc: f32) -> TranscribeOptions {
    let mut temperatures = vec![temperature];
    if inc > 0.0 {
        // Steps counted, not summed, so 0.2 steps land on 1.0 exactly.
        temperatures.extend(
            (1..)
                .map(|i| temperature + i as f32 * inc)
                .take_while(|&t| t <= 1.0 + 1e-4)
                .map(|t| t.min(1.0)),
        );
    }
    TranscribeOptions {
        beam_size: 1,
        temperatures,
        ..TranscribeOptions::default()
    }
}

fn plain(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The answer in the requested format.
fn respond(t: &Transcript, format: ResponseFormat, task: Task, duration: f64) -> Response {
    match format {
        ResponseFormat::Json => Json(serde_json::json!({ "text": t.text.trim() })).into_response(),
        ResponseFormat::Text => plain(
            "text/plain; charset=utf-8",
            render(t, TranscriptFormat::Text, false),
        ),
        ResponseFormat::Srt => plain(
            "text/plain; charset=utf-8",
            render(t, TranscriptFormat::Srt, true),
        ),
        ResponseFormat::Vtt => plain(
            "text/vtt; charset=utf-8",
            render(t, TranscriptFormat::Vtt, true),
        ),
        ResponseFormat::VerboseJson => {
            let segments: Vec<serde_json::Value> = t
                .segments
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    serde_json::json!({
                        "id": i,
                        "seek": (s.start * 100.0).round() as u64,
                        "start": s.start,
                        "end": s.end,
                        "text": s.text,
                        "tokens": s.tokens,
                    })
                })
                .collect();
            Json(serde_json::json!({
                "task": match task { Task::Translate => "translate", _ => "transcribe" },
                "language": t.language.clone().unwrap_or_else(|| "en".into()),
                "duration": duration,
                "text": t.text.trim(),
                "segments": segments,
            }))
            .into_response()
        }
    }
}
