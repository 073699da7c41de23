//! A worker thread: continuous batching of transcription jobs.
//!
//! Each loop turn the worker (1) takes new jobs while it has room (up to
//! `max_batch` sequences), (2) encodes the windows that need it (see
//! [`ENCODER_BATCH`]), (3) joins them all to the decoder batch in one call,
//! (4) runs one batched decoder step for every sequence, and (5)
//! finishes the windows whose sequences ended: a window whose text fails
//! the request's fallback checks (too repetitive or improbable) is decoded
//! again alone by the transcriber's search with temperature fallback; the
//! next window of a long file goes back to (2), a finished transcript is
//! sent to its handler.
//! Cancelled jobs leave at the next turn. The weights are shared; the
//! sessions, caches and cross keys/values are this worker's own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use emily::Tensor;
use emily_models::log_mel::CHUNK_FRAMES;
use emily_models::whisper::graph::{regroup_rows, BatchDecoderState, GraphError, Joiner};
use emily_models::whisper::{
    Session, TranscribeOptions, Transcript, Whisper, WhisperError, WindowDecoder,
};

use super::{JobQueue, TranscriptionJob};
use crate::metrics::Metrics;

/// Most windows encoded in one call. One: the encoder is compute-bound (its
/// matrix products have 1500 rows per window already), so `emily bench serve`
/// measures the same CPU time per window with 1 or 4 windows per call, while
/// 4 windows hold about 120 MB more activations and make the first of them
/// wait for the other three.
const ENCODER_BATCH: usize = 1;

/// What a worker shares with the engine.
pub(crate) struct WorkerContext {
    pub whisper: Arc<Whisper>,
    pub queue: Arc<JobQueue<TranscriptionJob>>,
    pub metrics: Arc<Metrics>,
    pub max_batch: usize,
    pub pool_cache_bytes: usize,
}

/// A job with its session.
struct Task {
    job: TranscriptionJob,
    session: Session<'static>,
    encoder: Duration,
    decoder: Duration,
    trace: Trace,
}

/// Where one request's time went, logged at `debug` when it is answered
/// (`emily -v serve`): the queue wait, its features (log-mel), its own
/// encoder and decoder work (its share of batched calls), and the rest of
/// its time in the worker — other requests' work it waited on and the
/// worker's bookkeeping (2.5–2.8 ms for JFK alone, tiny.en).
#[derive(Clone, Copy, Debug)]
struct Trace {
    /// When the worker took the job from the queue.
    admitted: Instant,
    features: Duration,
    encoder: Duration,
    decoder: Duration,
    steps: usize,
    /// Sum over its batched steps of the batch's rows.
    rows: usize,
}

impl Trace {
    /// A job taken from the queue at `admitted`, its features done now.
    fn new(admitted: Instant) -> Trace {
        Trace {
            admitted,
            features: admitted.elapsed(),
            encoder: Duration::ZERO,
            decoder: Duration::ZERO,
            steps: 0,
            rows: 0,
        }
    }

    fn log(&self, job: &TranscriptionJob) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let in_worker = self.admitted.elapsed();
        let own = self.features + self.encoder + self.decoder;
        tracing::debug!(
            "request: queue {:.1} ms, features {:.1} ms, encoder {:.1} ms, decoder {:.1} ms \
             ({} steps, {:.2} rows per step), other requests and bookkeeping {:.1} ms, total {:.1} ms",
            ms(self.admitted.saturating_duration_since(job.queued)),
            ms(self.features),
            ms(self.encoder),
            ms(self.decoder),
            self.steps,
            self.rows as f64 / self.steps.max(1) as f64,
            ms(in_worker.saturating_sub(own)),
            ms(job.queued.elapsed()),
        );
    }
}

impl Task {
    fn cancelled(&self) -> bool {
        self.job.is_cancelled()
    }
}

/// A task whose current window is encoded and waits to join the batch.
struct Ready {
    task: Task,
    enc: Tensor,
    prompt: Vec<u32>,
}

/// A task decoding in the batch.
struct Active {
    task: Task,
    /// The window's encoder output and prompt, kept for the fallback.
    enc: Tensor,
    prompt: Vec<u32>,
    picker: WindowDecoder,
    next: Option<u32>,
    /// Set when choosing the next token failed (the row then leaves).
    error: Option<WhisperError>,
    steps: usize,
}

struct Worker {
    ctx: WorkerContext,
    batch: BatchDecoderState,
    /// In batch row order.
    active: Vec<Active>,
    ready: Vec<Ready>,
    to_encode: Vec<Task>,
}

/// Runs jobs until the queue is closed and everything accepted is answered.
pub(crate) fn run(ctx: WorkerContext) {
    let mut w = Worker {
        batch: BatchDecoderState::with_max_rows(ctx.max_batch),
        ctx,
        active: Vec::new(),
        ready: Vec::new(),
        to_encode: Vec::new(),
    };
    while w.admit() {
        w.drop_cancelled();
        w.encode();
        w.join();
        w.step();
        super::bound_pool_cache(w.ctx.pool_cache_bytes);
    }
}

impl Worker {
    fn sequences(&self) -> usize {
        self.active.len() + self.ready.len() + self.to_encode.len()
    }

    /// Takes new jobs while there is room; blocks when idle. False once the
    /// queue is closed and nothing is left to do.
    fn admit(&mut self) -> bool {
        let room = self.ctx.max_batch.saturating_sub(self.sequences());
        let mut jobs = self.ctx.queue.take_waiting(room);
        if jobs.is_empty() && self.sequences() == 0 {
            match self.ctx.queue.pop() {
                Some(j) => jobs.push(j),
                None => return false,
            }
        }
        self.ctx
            .metrics
            .queue_depth
            .set(self.ctx.queue.len() as i64);
        for job in jobs {
            self.start(job);
        }
        true
    }

    /// Computes a job's features and queues its first window for encoding.
    fn start(&mut self, job: TranscriptionJob) {
        if job.is_cancelled() {
            self.ctx.metrics.cancelled.inc();
            let _ = job.reply.send(Err(WhisperError::Cancelled));
            return;
        }
        let admitted = Instant::now();
        match Session::from_samples(&self.ctx.whisper, &job.samples, &job.opts) {
            Ok(session) => {
                self.ctx.metrics.in_flight.inc();
                self.to_encode.push(Task {
                    job,
                    session,
                    encoder: Duration::ZERO,
                    decoder: Duration::ZERO,
                    trace: Trace::new(admitted),
                });
            }
            Err(e) => {
                let _ = job.reply.send(Err(e));
            }
        }
    }

    /// Answers a task and updates the counters.
    fn finish(&self, task: Task, result: Result<Transcript, WhisperError>) {
        let seconds = task.session.duration_seconds();
        task.trace.log(&task.job);
        self.answer(task.job, seconds, result);
    }

    /// Answers an admitted job of `seconds` of audio.
    fn answer(
        &self,
        job: TranscriptionJob,
        seconds: f64,
        result: Result<Transcript, WhisperError>,
    ) {
        self.ctx.metrics.in_flight.dec();
        match &result {
            Ok(t) => {
                self.ctx.metrics.audio_seconds.inc_by(seconds);
                let tokens: usize = t.segments.iter().map(|s| s.tokens.len()).sum();
                self.ctx.metrics.add_tokens("whisper", tokens as u64);
            }
            Err(WhisperError::Cancelled) => {
                self.ctx.metrics.cancelled.inc();
            }
            Err(_) => {}
        }
        // The handler may be gone (client disconnected): nothing to do.
        let _ = job.reply.send(result);
    }

    /// Removes cancelled tasks wherever they are.
    fn drop_cancelled(&mut self) {
        let (gone, keep): (Vec<Task>, Vec<Task>) = std::mem::take(&mut self.to_encode)
            .into_iter()
            .partition(Task::cancelled);
        self.to_encode = keep;
        for t in gone {
            self.finish(t, Err(WhisperError::Cancelled));
        }
        let (gone, keep): (Vec<Ready>, Vec<Ready>) = std::mem::take(&mut self.ready)
            .into_iter()
            .partition(|r| r.task.cancelled());
        self.ready = keep;
        for r in gone {
            self.finish(r.task, Err(WhisperError::Cancelled));
        }
        for a in self.remove_active(|a| a.task.cancelled()) {
            self.finish(a.task, Err(WhisperError::Cancelled));
        }
    }

    /// Encodes waiting windows, several per encoder call.
    fn encode(&mut self) {
        while !self.to_encode.is_empty() {
            let n = self.to_encode.len().min(ENCODER_BATCH);
            let t0 = Instant::now();
            let mut tasks = Vec::with_capacity(n);
            let mut mel = Vec::new();
            for mut task in self.to_encode.drain(..n).collect::<Vec<_>>() {
                match task.session.next_window() {
                    Ok(Some(window)) => {
                        mel.extend_from_slice(window);
                        tasks.push(task);
                    }
                    Ok(None) => {
                        let e = model_error("a finished session has no window");
                        self.finish(task, Err(WhisperError::Model(e)));
                    }
                    Err(e) => self.finish(task, Err(e)),
                }
            }
            if tasks.is_empty() {
                continue;
            }
            let encoded = encode_windows(&self.ctx.whisper, &mel, tasks.len());
            let per_task = t0.elapsed() / tasks.len() as u32;
            match encoded {
                Ok(encs) => {
                    for (mut task, enc) in tasks.into_iter().zip(encs) {
                        task.encoder += per_task;
                        task.trace.encoder += per_task;
                        match task.session.prompt(&self.ctx.whisper, &enc) {
                            Ok(prompt) => self.ready.push(Ready { task, enc, prompt }),
                            Err(e) => self.finish(task, Err(e)),
                        }
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for t in tasks {
                        self.finish(t, Err(WhisperError::Model(model_error(&msg))));
                    }
                }
            }
        }
    }

    /// Moves encoded windows into the decoder batch while it has room, all
    /// of them in one join (one cross-key/value call, one prefill per prompt
    /// length, one copy of the batch's caches).
    fn join(&mut self) {
        if self.ready.is_empty() {
            return;
        }
        let w = self.ctx.whisper.clone();
        let ready = std::mem::take(&mut self.ready);
        let pickers: Vec<WindowDecoder> = ready
            .iter()
            .map(|r| r.task.session.window_decoder(&w, &r.prompt))
            .collect();
        let joiners: Vec<Joiner<'_>> = ready
            .iter()
            .zip(&pickers)
            .map(|(r, p)| Joiner {
                enc: &r.enc,
                prompt: &r.prompt,
                max_new: p.max_tokens(),
            })
            .collect();
        let t0 = Instant::now();
        let joined = w.graph().batch_join_many(&mut self.batch, &joiners);
        drop(joiners);
        let n_joined = joined
            .as_ref()
            .map_or(1, |j| j.iter().filter(|l| l.is_some()).count().max(1));
        let share = t0.elapsed() / n_joined as u32;
        match joined {
            Ok(logits) => {
                for ((r, mut picker), logits) in ready.into_iter().zip(pickers).zip(logits) {
                    let Some(mut logits) = logits else {
                        self.ready.push(r);
                        continue;
                    };
                    let (next, error) = match picker.next_token(&mut logits) {
                        Ok(next) => (next, None),
                        Err(e) => (None, Some(e)),
                    };
                    let Ready {
                        mut task,
                        enc,
                        prompt,
                    } = r;
                    task.decoder += share;
                    task.trace.decoder += share;
                    self.active.push(Active {
                        task,
                        enc,
                        prompt,
                        picker,
                        next,
                        error,
                        steps: 1,
                    });
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for r in ready {
                    self.finish(r.task, Err(WhisperError::Model(model_error(&msg))));
                }
            }
        }
        self.retire_finished();
    }

    /// One batched decoder step for every active sequence.
    fn step(&mut self) {
        if self.active.is_empty() {
            return;
        }
        let tokens: Vec<u32> = self
            .active
            .iter()
            .map(|a| a.next.unwrap_or_default())
            .collect();
        self.ctx.metrics.batch_size.observe(tokens.len() as f64);
        let w = self.ctx.whisper.clone();
        let t0 = Instant::now();
        match w.graph().batch_step(&mut self.batch, &tokens) {
            Ok(mut rows) => {
                let share = t0.elapsed() / tokens.len() as u32;
                let picks = WindowDecoder::next_tokens(
                    self.active
                        .iter_mut()
                        .map(|a| &mut a.picker)
                        .zip(rows.iter_mut().map(|r| r.as_mut_slice()))
                        .collect(),
                );
                for (a, pick) in self.active.iter_mut().zip(picks) {
                    match pick {
                        Ok(next) => a.next = next,
                        Err(e) => {
                            a.next = None;
                            a.error = Some(e);
                        }
                    }
                    a.steps += 1;
                    a.task.decoder += share;
                    a.task.trace.decoder += share;
                    a.task.trace.steps += 1;
                    a.task.trace.rows += tokens.len();
                }
            }
            Err(e) => {
                self.fail_batch(e.into());
                return;
            }
        }
        self.retire_finished();
    }

    /// Finishes the windows whose sequences ended and drops their rows.
    fn retire_finished(&mut self) {
        let done = self.remove_active(|a| a.next.is_none());
        let w = self.ctx.whisper.clone();
        for a in done {
            let mut task = a.task;
            if let Some(e) = a.error {
                self.finish(task, Err(e));
                continue;
            }
            let finished = match task.session.needs_fallback(&w, &a.picker) {
                Ok(false) => task.session.finish_window(&w, &a.picker, a.steps),
                Ok(true) => {
                    // Too repetitive or improbable: decoded again, alone,
                    // as the transcriber does (the temperatures in turn, the
                    // no-speech skip).
                    self.ctx.metrics.fallbacks.inc();
                    let t0 = Instant::now();
                    let r = task
                        .session
                        .decode_window_with_fallback(&w, &a.enc, &a.prompt);
                    task.decoder += t0.elapsed();
                    task.trace.decoder += t0.elapsed();
                    r
                }
                Err(e) => Err(e),
            };
            task.session.add_timings(task.encoder, task.decoder);
            task.encoder = Duration::ZERO;
            task.decoder = Duration::ZERO;
            if let Err(e) = finished {
                self.finish(task, Err(e));
                continue;
            }
            if task.session.is_done() {
                let seconds = task.session.duration_seconds();
                task.trace.log(&task.job);
                self.answer(task.job, seconds, Ok(task.session.finish()));
            } else {
                self.to_encode.push(task);
            }
        }
    }

    /// Takes the active sequences that `leaves` picks out of the batch (their
    /// rows dropped); none if the batch failed (then every sequence got the error).
    fn remove_active(&mut self, leaves: impl Fn(&Active) -> bool) -> Vec<Active> {
        let keep: Vec<bool> = self.active.iter().map(|a| !leaves(a)).collect();
        if keep.iter().all(|&k| k) {
            return Vec::new();
        }
        let order = match self.batch.retain(&keep) {
            Ok(order) => order,
            Err(e) => {
                self.fail_batch(e.into());
                return Vec::new();
            }
        };
        // The batch filled the leavers' rows from its end: follow its order.
        let (stay, gone) = regroup_rows(std::mem::take(&mut self.active), &order);
        self.active = stay;
        gone
    }

    /// A batch-wide failure: every active sequence gets the error.
    fn fail_batch(&mut self, e: WhisperError) {
        let msg = e.to_string();
        self.batch = BatchDecoderState::with_max_rows(self.ctx.max_batch);
        for a in std::mem::take(&mut self.active) {
            self.finish(a.task, Err(WhisperError::Model(model_error(&msg))));
        }
    }
}

/// Runs the served path once — a second of silence encoded, joined to a
/// batch and stepped — before the first request: a path's first use faults
/// the memory pool's buffers in and compiles its plans (a fresh server's
/// first JFK request: 124–172 ms without this, 116–120 with it; ~85 steady).
pub(crate) fn warm_up(w: &Whisper) -> Result<(), WhisperError> {
    let silence = vec![0f32; 16_000];
    let opts = TranscribeOptions {
        beam_size: 1,
        ..TranscribeOptions::default()
    };
    let mut session = Session::from_samples(w, &silence, &opts)?;
    let Some(window) = session.next_window()? else {
        return Ok(());
    };
    let mel = window.to_vec();
    let enc = encode_windows(w, &mel, 1)?.remove(0);
    let prompt = session.prompt(w, &enc)?;
    let picker = session.window_decoder(w, &prompt);
    let mut batch = BatchDecoderState::new();
    let joiner = Joiner {
        enc: &enc,
        prompt: &prompt,
        max_new: picker.max_tokens(),
    };
    w.graph().batch_join_many(&mut batch, &[joiner])?;
    let last = prompt.last().copied().unwrap_or_default();
    for _ in 0..4 {
        w.graph().batch_step(&mut batch, &[last])?;
    }
    Ok(())
}

/// A model error carrying `msg` (errors do not clone; a batch-wide failure
/// is reported to each of its requests).
fn model_error(msg: &str) -> GraphError {
    GraphError::Input(msg.to_string())
}

/// Encodes `n` windows (`mel`: `n × n_mels × 3000` frames) in one encoder
/// call; returns each window's encoder output `(1, frames, d)`.
fn encode_windows(w: &Whisper, mel: &[f32], n: usize) -> Result<Vec<Tensor>, WhisperError> {
    let x = Tensor::from_slice(mel, &[n, w.dims().n_mels, CHUNK_FRAMES])?;
    let enc = w.graph().encode(&x)?.eval()?;
    (0..n).map(|i| Ok(enc.narrow(0, i, 1)?.eval()?)).collect()
}
