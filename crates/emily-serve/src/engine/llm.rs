//! The language-model engine: one loaded GGUF model shared (`Arc`) by worker
//! threads that take generation jobs from a bounded queue. A worker takes
//! the jobs waiting together (up to `max_batch`) and decodes them as one
//! batch ([`LlmModel::generate_each`]: one decode step per token for every
//! row, the weights read once per step); a job alone runs its own
//! [`emily_models::llm::Generator`]. Tokens stream back over each job's
//! channel; a receiver that goes away (the client disconnected, or the
//! request timed out) stops its row at the next token.

use std::sync::Arc;

use emily_models::llm::{
    BatchRequest, ChatMessage, GenerateOptions, Generation, LlmError, LlmModel, TokenEvent,
};
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
    /// `queue` waiting jobs; each worker decodes up to `max_batch` jobs
    /// together and keeps at most `pool_cache_bytes` of freed tensor buffers
    /// cached between batches.
    pub fn start(
        model: Arc<LlmModel>,
        id: String,
        limits: super::Limits,
        metrics: Arc<Metrics>,
    ) -> LlmEngine {
        let pool = {
            let model = model.clone();
            WorkerPool::start(
                "emily-llm",
                limits.workers,
                limits.queue,
                move |queue: Arc<JobQueue<Box<GenerationJob>>>| {
                    while let Some(first) = queue.pop() {
                        let mut jobs = vec![*first];
                        let more = queue.take_waiting(limits.max_batch.saturating_sub(1));
                        jobs.extend(more.into_iter().map(|j| *j));
                        run_jobs(&model, &metrics, jobs);
                        super::bound_pool_cache(limits.pool_cache_bytes);
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

/// Runs jobs taken together: those that can start decode in one batch (a
/// job alone on its own generator); a job whose prompt or options are bad
/// gets its error.
fn run_jobs(model: &LlmModel, metrics: &Metrics, jobs: Vec<GenerationJob>) {
    let mut batch: Vec<(GenerationJob, BatchRequest)> = Vec::with_capacity(jobs.len());
    for job in jobs {
        if job.events.is_closed() {
            metrics.cancelled.inc();
            continue;
        }
        let request = prompt_ids(model, &job.prompt).and_then(|prompt| {
            let r = BatchRequest {
                prompt,
                opts: job.opts.clone(),
            };
            model.check_request(&r).map(|()| r)
        });
        match request {
            Ok(r) => batch.push((job, r)),
            Err(e) => {
                let _ = job.events.blocking_send(LlmEvent::Done(Err(e)));
            }
        }
    }
    metrics.llm_batch_size.observe(batch.len() as f64);
    match batch.len() {
        0 => {}
        1 => {
            let (job, _) = batch.remove(0);
            run_job(model, metrics, job);
        }
        n => run_batch(model, metrics, batch, n),
    }
}

/// Decodes `n` jobs as one batch, streaming each row's tokens to its job.
fn run_batch(
    model: &LlmModel,
    metrics: &Metrics,
    batch: Vec<(GenerationJob, BatchRequest)>,
    n: usize,
) {
    metrics.in_flight.inc_by(n as i64);
    let (jobs, requests): (Vec<GenerationJob>, Vec<BatchRequest>) = batch.into_iter().unzip();
    let mut gone = vec![false; n];
    let result = model.generate_each(&requests, |b, ev| {
        gone[b] = jobs[b]
            .events
            .blocking_send(LlmEvent::Token(ev.clone()))
            .is_err();
        !gone[b]
    });
    metrics.in_flight.dec_by(n as i64);
    match result {
        Ok(generations) => {
            for ((job, g), gone) in jobs.into_iter().zip(generations).zip(gone) {
                metrics.add_tokens("llm", g.tokens.len() as u64);
                if gone {
                    metrics.cancelled.inc();
                } else {
                    let _ = job.events.blocking_send(LlmEvent::Done(Ok(g)));
                }
            }
        }
        Err(e) => {
            // Errors do not clone: each row gets the message.
            let msg = e.to_string();
            for job in jobs {
                let e = LlmError::Tensor(emily::Error::Invalid {
                    op: "batched generation",
                    msg: msg.clone(),
                });
                let _ = job.events.blocking_send(LlmEvent::Done(Err(e)));
            }
        }
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
