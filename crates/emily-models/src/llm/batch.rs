//! Several generations as one batch: the prompts left-padded to one width
//! and prefilled together, then one decode step per token for every row
//! still going (the weights read once per step for all of them). Each row
//! has its own options (token limit, sampling, stops); a row that finishes
//! or whose caller stops it leaves the batch (its cache rows dropped).

use std::time::{Duration, Instant};

use emily::Tensor;
use emily_nn::State;

use super::generate::{GenerateOptions, Generation, Timings};
use super::model::LlmModel;
use super::sequence::{FinishReason, Sequence, TokenEvent};
use super::LlmError;

/// One row of a batched generation.
#[derive(Clone, Debug)]
pub struct BatchRequest {
    /// The prompt's token ids (not empty).
    pub prompt: Vec<u32>,
    /// This row's options.
    pub opts: GenerateOptions,
}

/// Keeps the rows of every cache whose `keep` flag is set.
fn retain_rows(state: &mut State, keep: &[bool]) -> Result<(), LlmError> {
    let idx: Vec<i64> = (0..keep.len())
        .filter(|&i| keep[i])
        .map(|i| i as i64)
        .collect();
    let idx = Tensor::from_slice(&idx, &[idx.len()])?;
    let entries = std::mem::take(state)
        .into_entries()
        .into_iter()
        .map(|(n, t)| Ok((n, t.index_select(&idx, 0)?.eval()?)))
        .collect::<Result<Vec<_>, LlmError>>()?;
    *state = State::from_entries(entries);
    Ok(())
}

impl LlmModel {
    /// Checks a row before it joins a batch: its options, a prompt that
    /// fits, tokens inside the vocabulary.
    pub fn check_request(&self, r: &BatchRequest) -> Result<(), LlmError> {
        r.opts.sampling.validate().map_err(LlmError::Input)?;
        self.check_prompt(r.prompt.len())?;
        let vocab = self.config().vocab as u32;
        if let Some(&bad) = r.prompt.iter().find(|&&t| t >= vocab) {
            return Err(LlmError::Input(format!(
                "token {bad} is outside the {vocab}-token vocabulary"
            )));
        }
        Ok(())
    }

    /// Generates after each request's prompt in one batch. `on_token(b,
    /// event)` sees row `b`'s events as they come; returning `false` stops
    /// that row (it leaves the batch; its [`Generation`] ends there).
    pub fn generate_each(
        &self,
        requests: &[BatchRequest],
        mut on_token: impl FnMut(usize, &TokenEvent) -> bool,
    ) -> Result<Vec<Generation>, LlmError> {
        for r in requests {
            self.check_request(r)?;
        }
        let Some(longest) = requests.iter().map(|r| r.prompt.len()).max() else {
            return Ok(Vec::new());
        };
        let width = self.bucket(longest);
        let mut pads: Vec<usize> = requests.iter().map(|r| width - r.prompt.len()).collect();
        let rows: Vec<Vec<u32>> = requests
            .iter()
            .map(|r| {
                let mut row = vec![0; width - r.prompt.len()];
                row.extend_from_slice(&r.prompt);
                row
            })
            .collect();
        let mut seqs: Vec<Sequence<'_>> = requests
            .iter()
            .map(|r| Sequence::new(self.tokenizer(), &r.prompt, &r.opts))
            .collect();
        let start = Instant::now();
        let mut state = State::new();
        let vocab = self.config().vocab;
        let mut logits = self.batch_step(&rows, &pads, 0, &mut state)?;
        let prefill = start.elapsed();
        let (mut offset, mut steps, mut decode) = (width, 0, Duration::ZERO);
        // The request of each batch row, and each request's last token.
        let mut live: Vec<usize> = (0..requests.len()).collect();
        let mut last = vec![0u32; requests.len()];
        loop {
            let mut keep = Vec::with_capacity(live.len());
            for (row, &b) in live.iter().enumerate() {
                let seq = &mut seqs[b];
                let go_on = if seq.finish.is_none() {
                    let ev = seq.accept(&logits[row * vocab..(row + 1) * vocab])?;
                    last[b] = ev.id;
                    on_token(b, &ev)
                } else {
                    false
                };
                keep.push(go_on && seq.finish.is_none());
            }
            if keep.iter().any(|&k| !k) {
                let mut flags = keep.iter();
                live.retain(|_| *flags.next().unwrap_or(&false));
                let mut flags = keep.iter();
                pads.retain(|_| *flags.next().unwrap_or(&false));
                if live.is_empty() {
                    break;
                }
                retain_rows(&mut state, &keep)?;
            }
            if offset >= self.context() {
                for &b in &live {
                    let ev = seqs[b].context_full(last[b]);
                    on_token(b, &ev);
                }
                break;
            }
            let t = Instant::now();
            let feed: Vec<Vec<u32>> = live.iter().map(|&b| vec![last[b]]).collect();
            logits = self.batch_step(&feed, &pads, offset, &mut state)?;
            decode += t.elapsed();
            steps += 1;
            offset += 1;
        }
        Ok(seqs
            .into_iter()
            .zip(requests)
            .map(|(s, r)| Generation {
                tokens: s.generated.clone(),
                text: s.text.clone(),
                finish: s.finish.clone().unwrap_or(FinishReason::Length),
                timings: Timings {
                    prompt_tokens: r.prompt.len(),
                    prefill,
                    decode_steps: steps,
                    decode,
                },
            })
            .collect())
    }
}
