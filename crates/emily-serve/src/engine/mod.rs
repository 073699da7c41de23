//! The inference engine: one loaded Whisper model shared (`Arc`) by worker
//! threads that take transcription jobs from a bounded queue. Each worker
//! owns its per-request state (features, decoder caches); the weights and
//! compiled plans are shared.

mod queue;
mod worker;

pub use queue::{JobQueue, PushError};

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use emily_models::whisper::{CancelFlag, TranscribeOptions, Transcript, Whisper, WhisperError};
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// One transcription request, queued for a worker.
pub struct TranscriptionJob {
    /// 16 kHz mono samples.
    pub samples: Vec<f32>,
    /// Decoding options; `opts.cancel` is set when the client goes away.
    pub opts: TranscribeOptions,
    /// Where the worker sends the result.
    pub reply: oneshot::Sender<Result<Transcript, WhisperError>>,
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
                opts,
                reply,
            },
            rx,
            cancel,
        )
    }

    fn is_cancelled(&self) -> bool {
        self.opts.cancel.as_ref().is_some_and(|c| c.is_cancelled())
    }
}

/// The running workers and their queue.
pub struct Engine {
    whisper: Arc<Whisper>,
    queue: Arc<JobQueue<TranscriptionJob>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// Starts `workers` threads over `whisper` with a queue of `queue` waiting
    /// jobs; each worker decodes up to `max_batch` jobs together.
    pub fn start(
        whisper: Arc<Whisper>,
        workers: usize,
        queue: usize,
        max_batch: usize,
        metrics: Arc<Metrics>,
    ) -> Engine {
        let queue = Arc::new(JobQueue::new(queue));
        let workers = (0..workers)
            .map(|i| {
                let ctx = worker::WorkerContext {
                    whisper: whisper.clone(),
                    queue: queue.clone(),
                    metrics: metrics.clone(),
                    max_batch,
                };
                std::thread::Builder::new()
                    .name(format!("emily-worker-{i}"))
                    .spawn(move || worker::run(ctx))
                    .unwrap_or_else(|e| panic!("cannot start a worker thread: {e}"))
            })
            .collect();
        let workers = Mutex::new(workers);
        Engine {
            whisper,
            queue,
            workers,
            metrics,
        }
    }

    /// The shared model.
    pub fn whisper(&self) -> &Arc<Whisper> {
        &self.whisper
    }

    /// Queues a job; a full or closed queue hands it back.
    pub fn submit(&self, job: TranscriptionJob) -> Result<(), PushError<TranscriptionJob>> {
        self.queue.push(job)?;
        self.metrics.queue_depth.set(self.queue.len() as i64);
        Ok(())
    }

    /// Jobs waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.queue.len()
    }

    /// Refuses new jobs, lets the workers finish every accepted one, and
    /// waits for them.
    pub fn shutdown(&self) {
        self.queue.close();
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in workers {
            if w.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.queue.close();
    }
}
