//! Emily's HTTP server: OpenAI-shaped routes over shared, loaded models.
//!
//! - `POST /v1/audio/transcriptions`, `POST /v1/audio/translations`
//!   (multipart, OpenAI's fields and response formats), `GET /v1/models`;
//! - `POST /v1/chat/completions`, `POST /v1/completions` when a GGUF
//!   language model is loaded (`"stream": true` as server-sent events);
//! - `GET /health` (200 once the models are loaded), `GET /metrics`
//!   (Prometheus), `GET /` (a web page that transcribes files and the
//!   microphone).
//!
//! One Whisper model (and optionally one language model) is loaded once and shared by the [`engine`]'s worker
//! threads; each worker owns its per-request state. A bounded queue answers
//! 429 with `Retry-After` when full; bodies above the limit are 413; bad
//! audio is 400 with the decoder's message; a request that outlives its
//! timeout is 504 and its work is cancelled, as is the work of a client that
//! disconnects. [`Server::run`] drains on shutdown: it stops accepting,
//! answers everything accepted, then stops the workers.

#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod config;
pub mod engine;
pub mod metrics;
pub mod server;
pub mod state;

pub use config::ServeConfig;
pub use server::{shutdown_signal, ServeError, Server};
