//! Prometheus metrics (through `prometheus-client`): requests by route and
//! status, latency histograms, queue depth, batch sizes, audio seconds and
//! tokens processed. Each server has its own registry.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a finished HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route (`/v1/audio/transcriptions`), or `other`.
    pub route: String,
    /// The HTTP status code.
    pub status: u16,
}

/// Labels of a latency observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route.
    pub route: String,
}

/// Labels of processed tokens.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// `whisper` or `llm`.
    pub model: String,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Finished HTTP requests.
    pub requests: Family<RequestLabels, Counter>,
    /// Seconds from request to response head.
    pub latency: Family<RouteLabels, Histogram>,
    /// Jobs waiting for a worker.
    pub queue_depth: Gauge,
    /// Jobs being decoded.
    pub in_flight: Gauge,
    /// Requests in each decoder batch step.
    pub batch_size: Histogram,
    /// Generation jobs in each batched decode step.
    pub llm_batch_size: Histogram,
    /// Seconds of audio transcribed.
    pub audio_seconds: Counter<f64, AtomicU64>,
    /// Tokens generated.
    pub tokens: Family<TokenLabels, Counter>,
    /// Jobs stopped because their client went away or timed out.
    pub cancelled: Counter,
    /// Whisper windows decoded again by the search with temperature
    /// fallback (their batched greedy text failed the checks).
    pub fallbacks: Counter,
    /// Bytes of live tensor buffers (set when rendered).
    memory_active: Gauge,
    /// Bytes of freed tensor buffers the pool keeps for reuse (set when rendered).
    memory_cached: Gauge,
}

impl Metrics {
    /// Fresh metrics in a fresh registry (names prefixed `emily_`).
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("emily");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response, by route",
            latency.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Jobs waiting for a worker",
            queue_depth.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("jobs_in_flight", "Jobs being decoded", in_flight.clone());
        let batch_size = Histogram::new([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]);
        registry.register(
            "decoder_batch_size",
            "Sequences in each batched decoder step",
            batch_size.clone(),
        );
        let llm_batch_size = Histogram::new([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]);
        registry.register(
            "llm_batch_size",
            "Generation jobs in each batched decode step",
            llm_batch_size.clone(),
        );
        let audio_seconds = Counter::<f64, AtomicU64>::default();
        registry.register(
            "audio_seconds",
            "Seconds of audio transcribed",
            audio_seconds.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register("tokens", "Tokens generated, by model", tokens.clone());
        let cancelled = Counter::default();
        registry.register(
            "jobs_cancelled",
            "Jobs stopped because the client disconnected or timed out",
            cancelled.clone(),
        );
        let fallbacks = Counter::default();
        registry.register(
            "whisper_fallback_windows",
            "Windows decoded again with temperature fallback (too repetitive or improbable)",
            fallbacks.clone(),
        );
        let memory_active = Gauge::default();
        registry.register(
            "memory_active_bytes",
            "Bytes of live tensor buffers",
            memory_active.clone(),
        );
        let memory_cached = Gauge::default();
        registry.register(
            "memory_cached_bytes",
            "Bytes of freed tensor buffers kept for reuse (bounded by --pool-cache-mb)",
            memory_cached.clone(),
        );
        Metrics {
            registry,
            memory_active,
            memory_cached,
            requests,
            latency,
            queue_depth,
            in_flight,
            batch_size,
            llm_batch_size,
            audio_seconds,
            tokens,
            cancelled,
            fallbacks,
        }
    }

    /// Records a finished request.
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        let route = route.to_string();
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
    }

    /// Adds generated tokens of `model`.
    pub fn add_tokens(&self, model: &str, n: u64) {
        self.tokens
            .get_or_create(&TokenLabels {
                model: model.into(),
            })
            .inc_by(n);
    }

    /// The OpenMetrics text exposition (Prometheus reads it).
    pub fn render(&self) -> String {
        let m = emily::memory::stats();
        self.memory_active.set(m.active_bytes as i64);
        self.memory_cached.set(m.cached_bytes as i64);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}
