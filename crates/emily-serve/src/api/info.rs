//! `GET /v1/models`, `GET /health`, `GET /metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::state::AppState;

/// The served models, OpenAI's list shape; each also says what it serves
/// (`"task"`: `transcription` or `chat`), which the web page reads.
pub async fn models(State(state): State<AppState>) -> Response {
    let mut data = Vec::new();
    if state.engine().is_some() {
        let c = state.config();
        let tasks = std::iter::once((c.whisper_id(), "transcription"))
            .chain(c.llm_id().map(|id| (id, "chat")));
        for (id, task) in tasks {
            data.push(serde_json::json!({
                "id": id,
                "object": "model",
                "created": 0,
                "owned_by": "emily",
                "task": task,
            }));
        }
    }
    Json(serde_json::json!({ "object": "list", "data": data })).into_response()
}

/// 200 once the models are loaded; 503 while loading or after a failed load.
pub async fn health(State(state): State<AppState>) -> Response {
    if let Some(e) = state.load_error() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "failed", "error": e })),
        )
            .into_response();
    }
    match state.engine() {
        Some(engine) => Json(serde_json::json!({
            "status": "ok",
            "models": state.config().model_ids(),
            "queue_depth": engine.queue_depth(),
        }))
        .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "loading" })),
        )
            .into_response(),
    }
}

/// Prometheus metrics.
pub async fn metrics(State(state): State<AppState>) -> Response {
    if let Some(engine) = state.engine() {
        state.metrics().queue_depth.set(engine.queue_depth() as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics().render(),
    )
        .into_response()
}
