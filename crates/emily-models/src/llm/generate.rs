//! Generation: prefill the prompt (right-padded to a bucket), then one
//! decode step per token on the compiled single-token plan, the KV caches
//! updated in place. [`Generator`] is an iterator of [`TokenEvent`]s;
//! [`LlmModel::generate`] drives it with a callback; [`LlmModel::generate_batch`]
//! runs several prompts as one left-padded batch (see [`super::batch`]).

use std::time::{Duration, Instant};

use emily_nn::State;

use super::batch::BatchRequest;
use super::model::LlmModel;
use super::sampling::SamplingOptions;
use super::sequence::{FinishReason, Sequence, TokenEvent};
use super::{ChatMessage, LlmError};

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Token choice.
    pub sampling: SamplingOptions,
    /// Strings that end generation (cut from the output).
    pub stop_strings: Vec<String>,
    /// Extra tokens that end generation.
    pub stop_tokens: Vec<u32>,
    /// Also stop at the model's end-of-generation tokens (EOS, end of turn).
    pub model_stop_tokens: bool,
}

impl Default for GenerateOptions {
    /// 256 greedy tokens, stopping at the model's end tokens.
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            sampling: SamplingOptions::default(),
            stop_strings: Vec::new(),
            stop_tokens: Vec::new(),
            model_stop_tokens: true,
        }
    }
}

/// Where the time went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Time to process the prompt (to the first logits).
    pub prefill: Duration,
    /// Decode steps run.
    pub decode_steps: usize,
    /// Time in decode steps.
    pub decode: Duration,
}

impl Timings {
    /// Prompt tokens per second.
    pub fn prefill_tokens_per_second(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill.as_secs_f64().max(1e-9)
    }

    /// Decode steps per second.
    pub fn decode_tokens_per_second(&self) -> f64 {
        self.decode_steps as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

/// A finished generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// Generated tokens (a stop token excluded).
    pub tokens: Vec<u32>,
    /// Their text (a stop string cut).
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
    /// Timings.
    pub timings: Timings,
}

/// A generation in progress: iterate to get one [`TokenEvent`] per token
/// (the last one has `finish` set). Holds its own KV caches.
pub struct Generator<'m> {
    model: &'m LlmModel,
    state: State,
    offset: usize,
    seq: Sequence<'m>,
    logits: Option<Vec<f32>>,
    feed: Option<u32>,
    timings: Timings,
}

impl<'m> Generator<'m> {
    /// Starts generating after `prompt` (prefills it now).
    pub fn new(
        model: &'m LlmModel,
        prompt: &[u32],
        opts: &GenerateOptions,
    ) -> Result<Generator<'m>, LlmError> {
        opts.sampling.validate().map_err(LlmError::Input)?;
        model.check_prompt(prompt.len())?;
        let vocab = model.config().vocab as u32;
        if let Some(&bad) = prompt.iter().find(|&&t| t >= vocab) {
            return Err(LlmError::Input(format!(
                "token {bad} is outside the {vocab}-token vocabulary"
            )));
        }
        let start = Instant::now();
        let mut state = State::new();
        let bucket = model.bucket(prompt.len());
        let mut padded = prompt.to_vec();
        padded.resize(bucket, 0);
        let logits = model.step(&padded, prompt.len(), 0, &mut state)?;
        let timings = Timings {
            prompt_tokens: prompt.len(),
            prefill: start.elapsed(),
            ..Timings::default()
        };
        Ok(Generator {
            model,
            state,
            offset: prompt.len(),
            seq: Sequence::new(model.tokenizer(), prompt, opts),
            logits: Some(logits),
            feed: None,
            timings,
        })
    }

    fn next_event(&mut self) -> Result<Option<TokenEvent>, LlmError> {
        if self.seq.finish.is_some() {
            return Ok(None);
        }
        if let Some(t) = self.feed.take() {
            if self.offset >= self.model.context() {
                return Ok(Some(self.seq.context_full(t)));
            }
            let start = Instant::now();
            let logits = self.model.step(&[t], 1, self.offset, &mut self.state)?;
            self.timings.decode += start.elapsed();
            self.timings.decode_steps += 1;
            self.offset += 1;
            self.logits = Some(logits);
        }
        let Some(logits) = self.logits.take() else {
            return Ok(None);
        };
        let ev = self.seq.accept(&logits)?;
        if ev.finish.is_none() {
            self.feed = Some(ev.id);
        }
        Ok(Some(ev))
    }

    /// Timings so far.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Runs to the end, calling `on_token` for every event; `on_token`
    /// returning `false` stops early (finish reason of the last event seen).
    pub fn run(
        mut self,
        mut on_token: impl FnMut(&TokenEvent) -> bool,
    ) -> Result<Generation, LlmError> {
        while let Some(ev) = self.next_event()? {
            if !on_token(&ev) {
                break;
            }
        }
        Ok(self.finish())
    }

    /// The result so far.
    pub fn finish(self) -> Generation {
        Generation {
            tokens: self.seq.generated.clone(),
            text: self.seq.text.clone(),
            finish: self.seq.finish.clone().unwrap_or(FinishReason::Length),
            timings: self.timings,
        }
    }
}

impl Iterator for Generator<'_> {
    type Item = Result<TokenEvent, LlmError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

impl LlmModel {
    /// A [`Generator`] after `prompt` token ids.
    pub fn generator(
        &self,
        prompt: &[u32],
        opts: &GenerateOptions,
    ) -> Result<Generator<'_>, LlmError> {
        Generator::new(self, prompt, opts)
    }

    /// Encodes `prompt` (BOS added if the model wants it) and generates,
    /// streaming each event to `on_token` (return `false` to stop).
    pub fn generate(
        &self,
        prompt: &str,
        opts: &GenerateOptions,
        on_token: impl FnMut(&TokenEvent) -> bool,
    ) -> Result<Generation, LlmError> {
        let ids = self.tokenizer().encode(prompt, true)?;
        self.generator(&ids, opts)?.run(on_token)
    }

    /// The token ids of a chat: `messages` through the model's template,
    /// ending where the assistant's reply starts (BOS added unless the
    /// template wrote it).
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, LlmError> {
        let template = self.chat_template().ok_or_else(|| {
            LlmError::Input(format!(
                "{}: the model has no chat template",
                self.path().display()
            ))
        })?;
        let text = template.render(messages, true)?;
        let tok = self.tokenizer();
        let mut ids = tok.encode(&text, false)?;
        if tok.vocab().add_bos {
            if let Some(bos) = tok.bos() {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
        }
        Ok(ids)
    }

    /// The assistant's reply to `messages`, streamed to `on_token`.
    pub fn chat(
        &self,
        messages: &[ChatMessage],
        opts: &GenerateOptions,
        on_token: impl FnMut(&TokenEvent) -> bool,
    ) -> Result<Generation, LlmError> {
        let ids = self.chat_prompt(messages)?;
        self.generator(&ids, opts)?.run(on_token)
    }

    /// Generates after each of `prompts` at once: one left-padded batch
    /// (padded keys masked), one decode step per token for all rows; row `b`
    /// samples with seed `opts.sampling.seed + b`. `on_token(b, event)` sees
    /// every row's events.
    pub fn generate_batch(
        &self,
        prompts: &[Vec<u32>],
        opts: &GenerateOptions,
        mut on_token: impl FnMut(usize, &TokenEvent),
    ) -> Result<Vec<Generation>, LlmError> {
        let requests: Vec<BatchRequest> = prompts
            .iter()
            .enumerate()
            .map(|(b, p)| {
                let mut o = opts.clone();
                o.sampling.seed = o.sampling.seed.wrapping_add(b as u64);
                BatchRequest {
                    prompt: p.clone(),
                    opts: o,
                }
            })
            .collect();
        self.generate_each(&requests, |b, ev| {
            on_token(b, ev);
            true
        })
    }
}
