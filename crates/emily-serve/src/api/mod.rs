//! The HTTP routes and the router that joins them.

pub mod audio;
pub mod chat;
pub mod error;
pub mod form;
mod info;
pub mod live;
pub mod openai;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth;
use crate::state::AppState;
use error::ApiError;

/// The embedded web page.
const INDEX_HTML: &str = include_str!("../page/index.html");

/// Every route: `/v1/...` (behind `--api-key`), `/health`, `/metrics` and the
/// web page at `/`, with request metrics and the body limit.
pub fn router(state: AppState) -> Router {
    let limit = state.config().max_body_bytes;
    let v1 = Router::new()
        .route("/v1/audio/transcriptions", post(audio::transcriptions))
        .route("/v1/audio/translations", post(audio::translations))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(chat::completions))
        .route("/v1/models", get(info::models))
        .route("/v1/audio/live", get(live::live))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ));
    Router::new()
        .merge(v1)
        .route("/health", get(info::health))
        .route("/metrics", get(info::metrics))
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Middleware: counts every request by route and status and times it.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let t0 = Instant::now();
    let resp = next.run(req).await;
    state
        .metrics()
        .observe_request(&route, resp.status().as_u16(), t0.elapsed().as_secs_f64());
    resp.into_response()
}
