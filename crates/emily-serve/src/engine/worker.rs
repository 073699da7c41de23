//! A worker thread: takes jobs from the queue and transcribes them.

use std::sync::Arc;

use emily_models::whisper::{Whisper, WhisperError};

use super::{JobQueue, TranscriptionJob};
use crate::metrics::Metrics;

/// What a worker shares with the engine.
pub(crate) struct WorkerContext {
    pub whisper: Arc<Whisper>,
    pub queue: Arc<JobQueue<TranscriptionJob>>,
    pub metrics: Arc<Metrics>,
    pub max_batch: usize,
}

/// Runs jobs until the queue is closed and drained.
pub(crate) fn run(ctx: WorkerContext) {
    while let Some(job) = ctx.queue.pop() {
        ctx.metrics.queue_depth.set(ctx.queue.len() as i64);
        if job.is_cancelled() {
            ctx.metrics.cancelled.inc();
            let _ = job.reply.send(Err(WhisperError::Cancelled));
            continue;
        }
        ctx.metrics.in_flight.inc();
        let result = ctx.whisper.transcribe(&job.samples, &job.opts);
        ctx.metrics.in_flight.dec();
        match &result {
            Ok(t) => {
                ctx.metrics
                    .audio_seconds
                    .inc_by(job.samples.len() as f64 / 16_000.0);
                let tokens: usize = t.segments.iter().map(|s| s.tokens.len()).sum();
                ctx.metrics.add_tokens("whisper", tokens as u64);
            }
            Err(WhisperError::Cancelled) => {
                ctx.metrics.cancelled.inc();
            }
            Err(_) => {}
        }
        // The handler may have gone (client disconnected): nothing to do.
        let _ = job.reply.send(result);
    }
    let _ = ctx.max_batch;
}
