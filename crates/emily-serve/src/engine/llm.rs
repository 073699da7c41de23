//! The language-model engine: one loaded GGUF model shared (`Arc`) by worker
//! threads that take generation jobs from a bounded queue. Each job runs its
//! own [`emily_models::llm::Generator`] (KV caches, sampler) and streams its
//! tokens back over a channel; a receiver that goes away (the client
//! disconnected, or the request timed out) stops the generation at the next
//! token.

use std::sync::Arc;

use emily_models::llm::{ChatMessage, GenerateOptions, Generation, LlmError, LlmModel, TokenEvent};
use tokio::sync::mpsc;

use super::pool::WorkerPool;
use super::{JobQueue, PushError};
use crate::metrics::Metrics;

/// Tokens a stream may hold before the worker waits for the client.
const STREAM_BUFFER: usize = 64;

/// What to generate after.
#[derive(Clone, Debug)]
pub enum Prompt {
    /// Messages rendered through the model's chat template.
    Chat(Vec<ChatMessage>),
    /// Plain text (BOS added when the model wants it).
    Text(String),
}

/// What a worker sends back: tokens as they come, then the result.
#[derive(Debug)]
pub enum LlmEvent {
    /// One generated token and the text it released.
    Token(TokenEvent),
    /// The generation ended (or could not start: a bad prompt or options).
    Done(Result<Generation, LlmError>),
}

/// One generation request, queued for a worker.
pub struct GenerationJob {
    /// The prompt.
    pub prompt: Prompt,
    /// Token limit, sampling, stop strings.
    pub opts: GenerateOptions,
    events: mpsc::Sender<LlmEvent>,
}

impl GenerationJob {
    /// A job and the receiver of its events (drop it to cancel the job).
    pub fn new(prompt: Prompt, opts: GenerateOptions) -> (GenerationJob, mpsc::Receiver<LlmEvent>) {
        let (events, rx) = mpsc::channel(STREAM_BUFFER);
        (
            GenerationJob {
                prompt,
                opts,
                events,
            },
            rx,
        )
    }
}

/// The running language-model workers and their queue.
pub struct LlmEngine {
    model: Arc<LlmModel>,
    id: String,
    pool: WorkerPool<Box<GenerationJob>>,
}

impl LlmEngine {
    /// Starts `workers` threads over `model` (served as `id`) with a queue of
    /// `queue` waiting jobs, keeping at most `pool_cache_bytes` of freed
    /// tensor buffers cached between jobs.
    pub fn start(
        model: Arc<LlmModel>,
        id: String,
        workers: usize,
        queue: usize,
        pool_cache_bytes: usize,
        metrics: Arc<Metrics>,
    ) -> LlmEngine {
        let pool = {
            let model = model.clone();
            WorkerPool::start(
                "emily-llm",
                workers,
                queue,
                move |queue: Arc<JobQueue<Box<GenerationJob>>>| {
                    while let Some(job) = queue.pop() {
                        run_job(&model, &metrics, *job);
                        super::bound_pool_cache(pool_cache_bytes);
                    }
                },
            )
        };
        LlmEngine { model, id, pool }
    }

    /// The shared model.
    pub fn model(&self) -> &Arc<LlmModel> {
        &self.model
    }

    /// The model's id in `/v1/models` and in answers (the file's stem).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Queues a job; a full or closed queue hands it back.
    pub fn submit(&self, job: GenerationJob) -> Result<(), PushError<Box<GenerationJob>>> {
        self.pool.queue().push(Box::new(job))
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

/// The token ids of `prompt` for `model`.
fn prompt_ids(model: &LlmModel, prompt: &Prompt) -> Result<Vec<u32>, LlmError> {
    match prompt {
        Prompt::Chat(messages) => model.chat_prompt(messages),
        Prompt::Text(text) => Ok(model.tokenizer().encode(text, true)?),
    }
}

/// Runs one job, streaming its tokens; stops early when the receiver is gone.
fn run_job(model: &LlmModel, metrics: &Metrics, job: GenerationJob) {
    if job.events.is_closed() {
        metrics.cancelled.inc();
        return;
    }
    metrics.in_flight.inc();
    let events = &job.events;
    let mut gone = false;
    let result = prompt_ids(model, &job.prompt)
        .and_then(|ids| model.generator(&ids, &job.opts))
        .and_then(|g| {
            g.run(|ev| {
                gone = events.blocking_send(LlmEvent::Token(ev.clone())).is_err();
                !gone
            })
        });
    metrics.in_flight.dec();
    if let Ok(g) = &result {
        metrics.add_tokens("llm", g.tokens.len() as u64);
    }
    if gone {
        metrics.cancelled.inc();
        return;
    }
    // The receiver may be gone by now: nothing to do then.
    let _ = events.blocking_send(LlmEvent::Done(result));
}
