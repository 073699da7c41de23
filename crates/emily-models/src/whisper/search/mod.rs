//! Choosing a window's tokens: greedy, temperature sampling of several
//! candidates, or beam search, each over [`rows::Rows`] stepped as one batch,
//! with CTranslate2's scoring (the sum of the chosen tokens'
//! log-probabilities, end-of-text included, divided by `length^penalty`).

mod beam;
pub(crate) mod rows;
mod sample;

use rand::rngs::StdRng;

use super::decoding::LogitFilter;
use super::transcriber::WhisperError;
use rows::Rows;

/// A finished candidate.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Hypothesis {
    /// Generated tokens (no end-of-text).
    pub tokens: Vec<u32>,
    /// Sum of the chosen tokens' log-probabilities, the end-of-text's included.
    pub sum_logprob: f64,
}

impl Hypothesis {
    /// The ranking score: `sum_logprob / length^length_penalty`.
    pub fn score(&self, length_penalty: f32) -> f64 {
        self.sum_logprob / (self.tokens.len() as f64).powf(length_penalty as f64)
    }
}

/// How to choose tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Strategy {
    /// Beam search of `beam_size` beams (1 = greedy), stopping once
    /// `round(beam_size × patience)` candidates have finished.
    Beam {
        /// Beams.
        beam_size: usize,
        /// Patience factor.
        patience: f32,
    },
    /// `best_of` independent samples from `softmax(logits / temperature)`.
    Sample {
        /// Temperature (> 0).
        temperature: f32,
        /// Candidates drawn.
        best_of: usize,
    },
}

/// One window's search, ready to run.
pub(crate) struct Search<'a> {
    /// The rules applied to each row's logits.
    pub filter: &'a LogitFilter,
    /// The strategy.
    pub strategy: Strategy,
    /// Exponent of the length normalisation.
    pub length_penalty: f32,
    /// Decoder steps allowed (each yields one token, end-of-text included).
    pub max_steps: usize,
}

impl Search<'_> {
    /// Runs the search from the logits after the prompt (`rows` holds one
    /// row); returns the best candidate.
    pub fn run(
        &self,
        rows: &mut Rows<'_>,
        first: Vec<f32>,
        rng: &mut StdRng,
    ) -> Result<Hypothesis, WhisperError> {
        let mut candidates = match self.strategy {
            Strategy::Beam { beam_size, .. } if beam_size <= 1 => {
                sample::sample(self, rows, first, None, 1, rng)?
            }
            Strategy::Beam {
                beam_size,
                patience,
            } => beam::beam_search(self, rows, first, beam_size, patience)?,
            Strategy::Sample {
                temperature,
                best_of,
            } => sample::sample(self, rows, first, Some(temperature), best_of.max(1), rng)?,
        };
        let lp = self.length_penalty;
        // Stable: the first of equal scores wins, as CTranslate2's sort keeps it.
        candidates.sort_by(|a, b| b.score(lp).total_cmp(&a.score(lp)));
        Ok(candidates.swap_remove(0))
    }
}
