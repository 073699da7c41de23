//! One generated sequence: sampling, stop tokens and strings, the token
//! limit, and streaming text that never shows part of a stop string.

use super::sampling::Sampler;
use super::tokenizer::{LlmTokenizer, TextStream};
use super::{GenerateOptions, LlmError};

/// Why generation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token was sampled (not part of the output).
    StopToken(u32),
    /// A stop string appeared (cut from the output).
    StopString(String),
    /// `max_tokens` were generated.
    Length,
    /// The KV cache is full.
    ContextFull,
}

/// One step of a streamed generation.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenEvent {
    /// The sampled token (a stop token on the last event of a stop).
    pub id: u32,
    /// Text released by this step (held back while it could begin a stop
    /// string; never includes a stop string or a stop token's text).
    pub text: String,
    /// Set on the last event.
    pub finish: Option<FinishReason>,
}

/// The state of one sequence being generated.
pub(crate) struct Sequence<'t> {
    sampler: Sampler,
    stream: TextStream<'t>,
    stop_tokens: Vec<u32>,
    stop_strings: Vec<String>,
    max_tokens: usize,
    /// Prompt and generated tokens (for the repetition penalty).
    context: Vec<u32>,
    /// Generated tokens, stop token excluded.
    pub generated: Vec<u32>,
    /// Released text.
    pub text: String,
    /// Decoded but held back (could start a stop string).
    held: String,
    pub finish: Option<FinishReason>,
}

impl<'t> Sequence<'t> {
    pub fn new(tok: &'t LlmTokenizer, prompt: &[u32], o: &GenerateOptions) -> Sequence<'t> {
        let mut stop_tokens = o.stop_tokens.clone();
        if o.model_stop_tokens {
            stop_tokens.extend_from_slice(tok.stop_tokens());
        }
        Sequence {
            sampler: Sampler::new(o.sampling.clone()),
            stream: tok.stream(true),
            stop_tokens,
            stop_strings: o
                .stop_strings
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            max_tokens: o.max_tokens,
            context: prompt.to_vec(),
            generated: Vec::new(),
            text: String::new(),
            held: String::new(),
            finish: if o.max_tokens == 0 {
                Some(FinishReason::Length)
            } else {
                None
            },
        }
    }

    /// Samples from `logits` and returns the step's event; after an event
    /// with `finish` set the sequence takes no more steps.
    pub fn accept(&mut self, logits: &[f32]) -> Result<TokenEvent, LlmError> {
        let id = self.sampler.sample(logits, &self.context);
        if self.stop_tokens.contains(&id) {
            return Ok(self.finish_with(id, String::new(), FinishReason::StopToken(id)));
        }
        self.context.push(id);
        self.generated.push(id);
        self.held.push_str(&self.stream.push(id)?);
        if let Some((at, s)) = self.find_stop() {
            let before = self.held[..at].to_string();
            self.held.clear();
            return Ok(self.finish_with(id, before, FinishReason::StopString(s)));
        }
        if self.generated.len() >= self.max_tokens {
            return Ok(self.finish_with(id, String::new(), FinishReason::Length));
        }
        let keep = self.unsafe_suffix();
        let release = self.held[..self.held.len() - keep].to_string();
        self.held.drain(..release.len());
        self.text.push_str(&release);
        Ok(TokenEvent {
            id,
            text: release,
            finish: None,
        })
    }

    /// Ends the sequence because the cache is full.
    pub fn context_full(&mut self, last: u32) -> TokenEvent {
        self.finish_with(last, String::new(), FinishReason::ContextFull)
    }

    fn finish_with(&mut self, id: u32, cut: String, reason: FinishReason) -> TokenEvent {
        let text = if matches!(reason, FinishReason::StopString(_)) {
            cut
        } else {
            std::mem::take(&mut self.held)
        };
        self.text.push_str(&text);
        self.finish = Some(reason.clone());
        TokenEvent {
            id,
            text,
            finish: Some(reason),
        }
    }

    /// The earliest stop string in the held text.
    fn find_stop(&self) -> Option<(usize, String)> {
        self.stop_strings
            .iter()
            .filter_map(|s| self.held.find(s.as_str()).map(|at| (at, s.clone())))
            .min_by_key(|(at, _)| *at)
    }

    /// Bytes at the end of the held text that could begin a stop string.
    fn unsafe_suffix(&self) -> usize {
        let h = &self.held;
        let mut keep = 0;
        for s in &self.stop_strings {
            for (i, _) in h.char_indices() {
                let tail = &h[i..];
                if tail.len() <= keep {
                    break;
                }
                if s.starts_with(tail) {
                    keep = tail.len();
                    break;
                }
            }
        }
        keep
    }
}
