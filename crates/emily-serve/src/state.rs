//! What every handler shares: the settings, the metrics, and the engine once
//! the models are loaded.

use std::sync::{Arc, OnceLock};

use crate::config::ServeConfig;
use crate::engine::{Engine, LlmEngine};
use crate::metrics::Metrics;

/// The shared server state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: ServeConfig,
    metrics: Arc<Metrics>,
    engine: OnceLock<Engine>,
    llm: OnceLock<LlmEngine>,
    load_error: OnceLock<String>,
}

impl AppState {
    /// State for `config` with no model loaded yet.
    pub fn new(config: ServeConfig) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                config,
                metrics: Arc::new(Metrics::new()),
                engine: OnceLock::new(),
                llm: OnceLock::new(),
                load_error: OnceLock::new(),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ServeConfig {
        &self.inner.config
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The engine, once the models are loaded.
    pub fn engine(&self) -> Option<&Engine> {
        self.inner.engine.get()
    }

    /// The language-model engine, once loaded (`None` without `--llm`).
    pub fn llm(&self) -> Option<&LlmEngine> {
        self.inner.llm.get()
    }

    /// Installs the language-model engine (before [`AppState::set_engine`]).
    pub fn set_llm(&self, llm: LlmEngine) {
        if self.inner.llm.set(llm).is_err() {
            tracing::error!("the LLM engine was installed twice");
        }
    }

    /// Installs the engine (the server becomes ready: any language model is
    /// installed first).
    pub fn set_engine(&self, engine: Engine) {
        if self.inner.engine.set(engine).is_err() {
            tracing::error!("the engine was installed twice");
        }
    }

    /// Records why loading failed (reported by `/health`).
    pub fn set_load_error(&self, e: String) {
        let _ = self.inner.load_error.set(e);
    }

    /// Why loading failed, if it did.
    pub fn load_error(&self) -> Option<&str> {
        self.inner.load_error.get().map(String::as_str)
    }
}
