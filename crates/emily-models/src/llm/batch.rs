//! Several generations as one batch: the prompts left-padded to one width
//! and prefilled together, then one decode step per token for every row
//! still going (the weights read once per step for all of them), on a
//! [`RunningBatch`] (which rows may also join later). Each row has its own
//! options (token limit, sampling, stops); a row that finishes or whose
//! caller stops it leaves the batch (its cache rows dropped).

use super::generate::{GenerateOptions, Generation};
use super::model::LlmModel;
use super::running::RunningBatch;
use super::sequence::TokenEvent;
use super::LlmError;

/// One row of a batched generation.
#[derive(Clone, Debug)]
pub struct BatchRequest {
    /// The prompt's token ids (not empty).
    pub prompt: Vec<u32>,
    /// This row's options.
    pub opts: GenerateOptions,
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
        let mut batch = RunningBatch::new(self);
        let ids: Vec<(usize, &BatchRequest)> = requests.iter().enumerate().collect();
        batch.start(&ids)?;
        let mut out: Vec<Option<Generation>> = vec![None; requests.len()];
        while !batch.is_empty() {
            for f in batch.advance(&mut on_token)? {
                out[f.id] = Some(f.generation);
            }
        }
        Ok(out
            .into_iter()
            .map(|g| g.expect("every row leaves the batch once"))
            .collect())
    }
}
