//! The language-model engine: one loaded GGUF model shared (`Arc`) by worker
//! threads that take generation jobs from a bounded queue. Each worker
//! decodes up to `max_batch` jobs as one [`RunningBatch`] (continuous
//! batching): one decode step per token for every row, the weights read
//! once per step, and a job that arrives while the batch runs joins it at
//! the next step boundary (its prompt prefilled alone) instead of waiting
//! for the batch to finish. Tokens stream back over each job's channel; a
//! receiver that goes away (the client disconnected, or the request timed
//! out) stops its row at the next token.

use std::collections::HashMap;
use std::sync::Arc;

use emily_models::llm::{
    BatchRequest, ChatMessage, GenerateOptions, Generation, LlmError, LlmModel, RunningBatch,
    TokenEvent,
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
    /// cached between batches. With `limits.warm_up`, the served path runs
    /// once first ([`emily_models::llm::warm_up`]; a failure there is logged, and the first
    /// request meets it again).
    pub fn start(
        model: Arc<LlmModel>,
        id: String,
        limits: super::Limits,
        metrics: Arc<Metrics>,
    ) -> LlmEngine {
        if limits.warm_up {
            super::warm_up("language-model", || {
                emily_models::llm::warm_up(&model, limits.max_batch)
            });
        }
        let pool = {
            let model = model.clone();
            WorkerPool::start(
                "emily-llm",
                limits.workers,
                limits.queue,
                move |queue: Arc<JobQueue<Box<GenerationJob>>>| {
                    BatchWorker::new(&model, &metrics, limits).run(&queue)
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

/// A job admitted by a worker: its request, decoding or waiting to join.
struct Admitted {
    job: GenerationJob,
    request: BatchRequest,
}

/// One worker's continuous batch and the jobs in it or waiting to join it.
struct BatchWorker<'m> {
    model: &'m LlmModel,
    metrics: &'m Metrics,
    limits: super::Limits,
    batch: RunningBatch<'m>,
    /// Jobs not yet answered, by batch id (ids are never reused: a batch
    /// that runs for ever under steady load keeps only its live jobs).
    jobs: HashMap<usize, Admitted>,
    /// The id the next admitted job gets.
    next_id: usize,
    /// Ids of admitted jobs that have not joined the batch yet, oldest first.
    waiting: Vec<usize>,
}

impl<'m> BatchWorker<'m> {
    fn new(model: &'m LlmModel, metrics: &'m Metrics, limits: super::Limits) -> BatchWorker<'m> {
        BatchWorker {
            model,
            metrics,
            limits,
            batch: RunningBatch::with_max_rows(model, limits.max_batch),
            jobs: HashMap::new(),
            next_id: 0,
            waiting: Vec::new(),
        }
    }

    /// Runs jobs until the queue is closed and every accepted job is answered.
    fn run(mut self, queue: &JobQueue<Box<GenerationJob>>) {
        loop {
            let busy = self.batch.len() + self.waiting.len();
            let mut taken = queue.take_waiting(self.limits.max_batch.saturating_sub(busy));
            if taken.is_empty() && busy == 0 {
                match queue.pop() {
                    Some(j) => taken.push(j),
                    None => return,
                }
            }
            for job in taken {
                self.admit(*job);
            }
            self.join_waiting();
            if self.batch.is_empty() {
                continue;
            }
            self.step();
            super::bound_pool_cache(self.limits.pool_cache_bytes);
        }
    }

    /// Checks a job and queues it to join; a bad prompt or option is
    /// answered at once.
    fn admit(&mut self, job: GenerationJob) {
        if job.events.is_closed() {
            self.metrics.cancelled.inc();
            return;
        }
        let request = prompt_ids(self.model, &job.prompt).and_then(|prompt| {
            let r = BatchRequest {
                prompt,
                opts: job.opts.clone(),
            };
            self.model.check_request(&r).map(|()| r)
        });
        match request {
            Ok(request) => {
                self.metrics.in_flight.inc();
                let id = self.next_id;
                self.next_id += 1;
                self.waiting.push(id);
                self.jobs.insert(id, Admitted { job, request });
            }
            Err(e) => {
                let _ = job.events.blocking_send(LlmEvent::Done(Err(e)));
            }
        }
    }

    /// Moves waiting jobs into the batch: all of them in one prefill when
    /// the batch is empty, else each that fits at this step boundary.
    fn join_waiting(&mut self) {
        let waiting = std::mem::take(&mut self.waiting);
        let mut still = Vec::new();
        let mut gone = Vec::new();
        for id in waiting {
            let Some(a) = self.jobs.get(&id) else {
                continue;
            };
            if a.job.events.is_closed() {
                gone.push(id);
            } else {
                still.push(id);
            }
        }
        for id in gone {
            self.answer(id, None);
        }
        if self.batch.is_empty() && !still.is_empty() {
            let rows: Vec<(usize, &BatchRequest)> = still
                .iter()
                .filter_map(|&id| Some((id, &self.jobs.get(&id)?.request)))
                .collect();
            if let Err(e) = self.batch.start(&rows) {
                self.fail(&still, &e);
            }
            return;
        }
        for id in still {
            let Some(a) = self.jobs.get(&id) else {
                continue;
            };
            if !self.batch.can_join(&a.request) {
                self.waiting.push(id);
                continue;
            }
            if let Err(e) = self.batch.join(id, &a.request) {
                self.answer(id, Some(Err(e)));
            }
        }
    }

    /// One decode step; answers the jobs that finished.
    fn step(&mut self) {
        self.metrics.llm_batch_size.observe(self.batch.len() as f64);
        let jobs = &self.jobs;
        let result = self.batch.advance(|id, ev| {
            jobs.get(&id).is_some_and(|a| {
                a.job
                    .events
                    .blocking_send(LlmEvent::Token(ev.clone()))
                    .is_ok()
            })
        });
        match result {
            Ok(finished) => {
                for f in finished {
                    self.answer(f.id, Some(Ok(f.generation)));
                }
            }
            Err(e) => {
                let ids: Vec<usize> = self
                    .jobs
                    .keys()
                    .copied()
                    .filter(|id| !self.waiting.contains(id))
                    .collect();
                self.fail(&ids, &e);
            }
        }
    }

    /// Gives each of `ids` the error `e` (errors do not clone: the message).
    fn fail(&mut self, ids: &[usize], e: &LlmError) {
        let msg = e.to_string();
        for &id in ids {
            let e = LlmError::Tensor(emily::Error::Invalid {
                op: "batched generation",
                msg: msg.clone(),
            });
            self.answer(id, Some(Err(e)));
        }
    }

    /// Ends job `id` with `result` (`None`: its client is gone).
    fn answer(&mut self, id: usize, result: Option<Result<Generation, LlmError>>) {
        let Some(a) = self.jobs.remove(&id) else {
            return;
        };
        self.metrics.in_flight.dec();
        if let Some(Ok(g)) = &result {
            self.metrics.add_tokens("llm", g.tokens.len() as u64);
        }
        // A client that went away stopped its row.
        if a.job.events.is_closed() || result.is_none() {
            self.metrics.cancelled.inc();
            return;
        }
        if let Some(result) = result {
            let _ = a.job.events.blocking_send(LlmEvent::Done(result));
        }
    }
}
