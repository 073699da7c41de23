//! The inference engine: one loaded Whisper model shared (`Arc`) by worker
//! threads that take transcription jobs from a bounded queue. Each worker
//! owns its per-request state (features, decoder caches); the weights and
//! compiled plans are shared.

mod llm;
mod pool;
mod queue;
mod worker;

pub use llm::{GenerationJob, LlmEngine, LlmEvent, Prompt};
pub use queue::{JobQueue, PushError};

use std::sync::Arc;

use emily_models::whisper::{CancelFlag, TranscribeOptions, Transcript, Whisper, WhisperError};
use tokio::sync::oneshot;

use crate::metrics::Metrics;
use pool::WorkerPool;

/// One transcription request, queued for a worker.
pub struct TranscriptionJob {
    /// 16 kHz mono samples.
    pub samples: Vec<f32>,
    /// Decoding options; `opts.cancel` is set when the client goes away
    /// (boxed: a job is moved through the queue and handed back when full).
    pub opts: Box<TranscribeOptions>,
    /// Where the worker sends the result.
    pub reply: oneshot::Sender<Result<Transcript, WhisperError>>,
    /// When the job was made (queued), for the per-request trace.
    pub queued: std::time::Instant,
}

impl TranscriptionJob {
    /// A job for `samples` and the receiver of its result; the job's cancel
    /// flag is returned too (set it to stop the work).
    pub fn new(
        samples: Vec<f32>,
        mut opts: TranscribeOptions,
    ) -> (
        TranscriptionJob,
        oneshot::Receiver<Result<Transcript, WhisperError>>,
        CancelFlag,
    ) {
        let cancel = CancelFlag::new();
        opts.cancel = Some(cancel.clone());
        let (reply, rx) = oneshot::channel();
        (
            TranscriptionJob {
                samples,
                opts: Box::new(opts),
                reply,
                queued: std::time::Instant::now(),
            },
            rx,
            cancel,
        )
    }

    fn is_cancelled(&self) -> bool {
        self.opts.cancel.as_ref().is_some_and(|c| c.is_cancelled())
    }
}

/// How much work an engine takes on.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Worker threads.
    pub workers: usize,
    /// Jobs that may wait for a worker.
    pub queue: usize,
    /// Most jobs one worker decodes together.
    pub max_batch: usize,
    /// Most bytes of freed tensor buffers kept cached (see [`bound_pool_cache`]).
    pub pool_cache_bytes: usize,
    /// Run the served path once before the first request.
    pub warm_up: bool,
}

impl Limits {
    /// The limits `config` sets.
    pub fn of(config: &crate::ServeConfig) -> Limits {
        Limits {
            workers: config.workers,
            queue: config.queue,
            max_batch: config.max_batch,
            pool_cache_bytes: config.pool_cache_bytes,
            warm_up: config.warm_up,
        }
    }
}

/// The running workers and their queue.
pub struct Engine {
    whisper: Arc<Whisper>,
    pool: WorkerPool<TranscriptionJob>,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// Starts `limits.workers` threads over `whisper` with a queue of
    /// `limits.queue` waiting jobs; each worker decodes up to
    /// `limits.max_batch` jobs together. With `limits.warm_up`, the served
    /// path runs once on silence first (`worker::warm_up`; a failure there
    /// is logged, and the first request meets it again).
    pub fn start(whisper: Arc<Whisper>, limits: Limits, metrics: Arc<Metrics>) -> Engine {
        if limits.warm_up {
            warm_up("Whisper", || worker::warm_up(&whisper));
        }
        let pool = {
            let (whisper, metrics) = (whisper.clone(), metrics.clone());
            WorkerPool::start("emily-worker", limits.workers, limits.queue, move |queue| {
                worker::run(worker::WorkerContext {
                    whisper: whisper.clone(),
                    queue,
                    metrics: metrics.clone(),
                    max_batch: limits.max_batch,
                    pool_cache_bytes: limits.pool_cache_bytes,
                })
            })
        };
        Engine {
            whisper,
            pool,
            metrics,
        }
    }

    /// The shared model.
    pub fn whisper(&self) -> &Arc<Whisper> {
        &self.whisper
    }

    /// Queues a job; a full or closed queue hands it back.
    pub fn submit(&self, job: TranscriptionJob) -> Result<(), PushError<TranscriptionJob>> {
        self.pool.queue().push(job)?;
        self.metrics.queue_depth.set(self.pool.queue().len() as i64);
        Ok(())
    }

    /// Jobs waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.pool.queue().len()
    }

    /// Refuses new jobs, lets the workers finish every accepted one, and
    /// waits for them.
    pub fn shutdown(&self) {
        self.pool.shutdown();
    }
}

/// Runs a model's warm-up (`run`), logging its time or its failure.
fn warm_up<E: std::fmt::Display>(model: &str, run: impl FnOnce() -> Result<(), E>) {
    let t0 = std::time::Instant::now();
    match run() {
        Ok(()) => tracing::debug!(
            "{model} warm-up: {:.0} ms",
            t0.elapsed().as_secs_f64() * 1e3
        ),
        Err(e) => tracing::warn!("{model} warm-up failed: {e}"),
    }
}

/// Returns the tensor-buffer pool's cached buffers to the system when they
/// exceed `limit` bytes. The pool keeps freed buffers by size class so the
/// next call of the same shape reuses warm pages; batches of changing sizes
/// leave buffers of many sizes behind, which would otherwise only grow.
pub fn bound_pool_cache(limit: usize) {
    if emily::memory::stats().cached_bytes > limit {
        emily::memory::clear_cache();
    }
}
