//! Binding, loading the models, serving until told to stop, draining.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use emily::Kernels;
use emily_models::llm::{LlmError, LlmModel, LoadOptions};
use emily_models::whisper::{Whisper, WhisperError};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ServeConfig;
use crate::engine::{Engine, Limits, LlmEngine};
use crate::state::AppState;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A bad setting.
    #[error("invalid setting: {0}")]
    Config(String),
    /// Binding or serving the socket.
    #[error("{addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// Loading the language model.
    #[error("loading {path}: {source}")]
    LoadLlm {
        /// The GGUF file.
        path: String,
        /// The error.
        source: Box<LlmError>,
    },
    /// Loading the model.
    #[error("loading {path}: {source}")]
    Load {
        /// The model directory.
        path: String,
        /// The error.
        source: Box<WhisperError>,
    },
}

/// A bound server: the socket is open (`local_addr` is known) and `/health`
/// answers as soon as [`Server::run`] starts; the model loads in the
/// background and the server is ready when it is in.
pub struct Server {
    state: AppState,
    listener: TcpListener,
    addr: SocketAddr,
}

impl Server {
    /// Validates `config` and binds its address.
    pub async fn bind(config: ServeConfig) -> Result<Server, ServeError> {
        config.validate().map_err(ServeError::Config)?;
        let want = config.addr();
        let listener = TcpListener::bind(want)
            .await
            .map_err(|source| ServeError::Io { addr: want, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServeError::Io { addr: want, source })?;
        Ok(Server {
            state: AppState::new(config),
            listener,
            addr,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (metrics, engine once loaded).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Loads the model, serves until `shutdown` completes, then stops
    /// accepting, answers every accepted request and stops the workers.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            state, listener, ..
        } = self;
        let (failed_tx, mut failed_rx) = watch::channel(false);
        let loader = {
            let state = state.clone();
            tokio::task::spawn_blocking(move || -> Result<(), ServeError> {
                match load_models(&state) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        state.set_load_error(e.to_string());
                        let _ = failed_tx.send(true);
                        Err(e)
                    }
                }
            })
        };
        let stop = async move {
            tokio::select! {
                _ = shutdown => {}
                // The loader drops the sender once the model is in: only a
                // `true` (a failed load) stops the server.
                Ok(_) = failed_rx.wait_for(|f| *f) => {}
            }
        };
        let app = crate::api::router(state.clone());
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await;
        // Every connection is closed: stop the workers after the last job.
        let load = loader.await.unwrap_or(Ok(()));
        if let Some(engine) = state.engine() {
            let state = state.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(e) = state.engine() {
                    e.shutdown()
                }
                if let Some(e) = state.llm() {
                    e.shutdown()
                }
            })
            .await;
            let _ = engine;
        }
        load?;
        served.map_err(|source| ServeError::Io {
            addr: state.config().addr(),
            source,
        })
    }
}

/// Loads the language model (if any), then Whisper, and starts their
/// workers; the server is ready once Whisper's engine is installed.
fn load_models(state: &AppState) -> Result<(), ServeError> {
    let c = state.config();
    if let Some(path) = &c.llm {
        let opts = LoadOptions {
            context: Some(c.llm_context),
            fast_kernels: matches!(c.kernels, Kernels::Fused),
        };
        let model = LlmModel::load(path, opts).map_err(|source| ServeError::LoadLlm {
            path: path.display().to_string(),
            source: Box::new(source),
        })?;
        let id = c.llm_id().unwrap_or_default();
        let llm = LlmEngine::start(Arc::new(model), id, Limits::of(c), state.metrics().clone());
        state.set_llm(llm);
        tracing::info!("language model {} loaded", path.display());
    }
    let w = Whisper::load_with(&c.whisper, c.kernels, c.compute_type).map_err(|source| {
        ServeError::Load {
            path: c.whisper.display().to_string(),
            source: Box::new(source),
        }
    })?;
    let engine = Engine::start(Arc::new(w), Limits::of(c), state.metrics().clone());
    state.set_engine(engine);
    tracing::info!("model {} loaded; ready", c.whisper.display());
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: no new connections; finishing accepted requests");
}
