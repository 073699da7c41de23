//! `--api-key`: every `/v1` request must carry `Authorization: Bearer KEY`;
//! the key is compared in constant time.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::api::error::ApiError;
use crate::state::AppState;

/// Whether `presented` equals `key`, in time that does not depend on where
/// they differ (only on their lengths).
pub fn key_matches(presented: &[u8], key: &[u8]) -> bool {
    presented.ct_eq(key).into()
}

/// The bearer token of a request: from `Authorization: Bearer …`, or (for
/// browsers' WebSockets, which cannot set headers) the `api_key` query field.
fn presented_key(req: &Request) -> Option<Vec<u8>> {
    if let Some(h) = req.headers().get(header::AUTHORIZATION) {
        let v = h.as_bytes();
        let prefix = b"Bearer ";
        return (v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix))
            .then(|| v[prefix.len()..].to_vec());
    }
    req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("api_key="))
            .map(|v| v.as_bytes().to_vec())
    })
}

/// Middleware: 401 unless the configured key is presented.
pub async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(key) = &state.config().api_key else {
        return next.run(req).await;
    };
    match presented_key(&req) {
        Some(k) if key_matches(&k, key.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "incorrect API key").into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing API key: send `Authorization: Bearer KEY`",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_only_when_equal() {
        assert!(key_matches(b"secret", b"secret"));
        assert!(!key_matches(b"secreT", b"secret"));
        assert!(!key_matches(b"secre", b"secret"));
        assert!(!key_matches(b"", b"secret"));
    }
}
