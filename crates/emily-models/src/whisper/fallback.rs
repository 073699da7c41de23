//! One window decoded as faster-whisper does it: at each temperature in
//! turn (0 = beam search or greedy, above 0 = the best of several samples)
//! until the text is neither repetitive (zlib compression ratio above the
//! threshold) nor improbable (average log-probability below the threshold),
//! unless the window looks like silence; if every temperature fails, the
//! most probable result that was not repetitive (else of all).

use std::io::Write as _;

use emily::Tensor;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::decoding::{log_normaliser, LogitFilter};
use super::search::rows::Rows;
use super::search::{Search, Strategy};
use super::transcriber::{Whisper, WhisperError};
use super::TranscribeOptions;

/// The decoded window and the measures the checks used.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct WindowResult {
    /// Generated tokens (no prompt, no end-of-text).
    pub tokens: Vec<u32>,
    /// Sum of the tokens' log-probabilities (end-of-text included) over `tokens.len() + 1`.
    pub avg_logprob: f64,
    /// Probability of `<|nospeech|>` at the start of the transcript.
    pub no_speech_prob: f64,
    /// The temperature of the result kept (the last one tried if all failed).
    pub temperature: f32,
    /// zlib compression ratio of the text.
    pub compression_ratio: f64,
}

/// `len(text) / len(zlib(text))` of the UTF-8 bytes (Whisper's repetition
/// measure; 0 for empty text).
pub fn compression_ratio(text: &str) -> f64 {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let compressed = z
        .write_all(bytes)
        .and_then(|_| z.finish())
        .map(|v| v.len())
        .unwrap_or(bytes.len());
    bytes.len() as f64 / compressed.max(1) as f64
}

/// Everything one window's decoding needs besides the audio.
pub(crate) struct FallbackDecoder<'a> {
    pub whisper: &'a Whisper,
    pub opts: &'a TranscribeOptions,
    pub filter: LogitFilter,
    /// Seeds the sampler (differs per window).
    pub seed: u64,
}

impl FallbackDecoder<'_> {
    /// Decodes the window whose encoder output is `enc` after `prompt`
    /// (`sot_index` = where `<|startoftranscript|>` is in it), with
    /// temperature fallback; returns the result and the decoder calls made.
    pub fn decode(
        &self,
        enc: &Tensor,
        prompt: &[u32],
        sot_index: usize,
    ) -> Result<(WindowResult, usize), WhisperError> {
        let o = self.opts;
        let n_ctx = self.whisper.dims().n_text_ctx;
        // CTranslate2: at most n_ctx / 2 steps, and none past the context.
        let max_steps = (n_ctx / 2)
            .min(n_ctx.saturating_sub(prompt.len().saturating_sub(1)))
            .min(o.max_tokens_per_window)
            .max(1);
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut steps = 0;
        let mut all: Vec<WindowResult> = Vec::new();
        let mut passing_ratio: Vec<WindowResult> = Vec::new();
        let temperatures = if o.temperatures.is_empty() {
            vec![0.0]
        } else {
            o.temperatures.clone()
        };
        let sp = self.whisper.tokenizer().special();
        for &t in &temperatures {
            let strategy = if t > 0.0 {
                Strategy::Sample {
                    temperature: t,
                    best_of: o.best_of,
                }
            } else {
                Strategy::Beam {
                    beam_size: o.beam_size,
                    patience: o.patience,
                }
            };
            let search = Search {
                filter: &self.filter,
                strategy,
                length_penalty: o.length_penalty,
                max_steps,
            };
            let mut rows = Rows::new(self.whisper, enc)?;
            let (first, at_sot) = rows.prompt(prompt, Some(sot_index))?;
            let no_speech_prob = match (sp.no_speech, at_sot) {
                (Some(id), Some(logits)) => softmax_at(&logits, id as usize),
                _ => 0.0,
            };
            let best = search.run(&mut rows, first, &mut rng)?;
            steps += rows.steps;
            let text = self.whisper.tokenizer().decode(&best.tokens)?;
            let result = WindowResult {
                avg_logprob: best.sum_logprob / (best.tokens.len() + 1) as f64,
                compression_ratio: compression_ratio(text.trim()),
                tokens: best.tokens,
                no_speech_prob,
                temperature: t,
            };
            let mut retry = false;
            if o.compression_ratio_threshold.is_some() {
                if too_repetitive(result.compression_ratio, o) {
                    retry = true;
                } else {
                    passing_ratio.push(result.clone());
                }
            }
            let improbable = improbable(result.avg_logprob, o);
            retry |= improbable;
            if improbable && o.no_speech_threshold.is_some_and(|ns| no_speech_prob > ns) {
                // Silence: the window will be skipped, no point in sampling.
                retry = false;
            }
            all.push(result);
            if !retry {
                return Ok((all.pop().expect("pushed"), steps));
            }
        }
        let last_t = *temperatures.last().expect("non-empty");
        let pool = if passing_ratio.is_empty() {
            all
        } else {
            passing_ratio
        };
        let mut best = pool
            .into_iter()
            .reduce(|a, b| if b.avg_logprob > a.avg_logprob { b } else { a })
            .expect("at least one temperature ran");
        best.temperature = last_t;
        Ok((best, steps))
    }
}

/// Whether text of this zlib compression ratio is too repetitive to keep
/// (above the options' threshold).
pub(crate) fn too_repetitive(compression_ratio: f64, o: &TranscribeOptions) -> bool {
    o.compression_ratio_threshold
        .is_some_and(|max| compression_ratio > max)
}

/// Whether a result of this average log-probability is too improbable to
/// keep (below the options' threshold).
pub(crate) fn improbable(avg_logprob: f64, o: &TranscribeOptions) -> bool {
    o.log_prob_threshold.is_some_and(|min| avg_logprob < min)
}

/// `ln softmax(logits)[id]` (-inf past the row), the row's normaliser from
/// the vectorised [`log_normaliser`]: a greedy step takes it over the whole
/// vocabulary for its token's log-probability, which as a scalar sum of
/// libm `exp`s cost ~0.25 ms a step (~6 ms of a JFK request).
pub(crate) fn log_softmax_at(logits: &[f32], id: usize) -> f64 {
    logits
        .get(id)
        .map_or(f64::NEG_INFINITY, |&v| v as f64 - log_normaliser(logits))
}

/// `softmax(logits)[id]` (0 past the row).
pub(crate) fn softmax_at(logits: &[f32], id: usize) -> f64 {
    log_softmax_at(logits, id).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetitive_text_compresses_well() {
        let plain = "And so my fellow Americans ask not what your country can do for you.";
        let looped = "I'm going to go to the next one. ".repeat(20);
        assert!(
            compression_ratio(plain) < 2.4,
            "{}",
            compression_ratio(plain)
        );
        assert!(
            compression_ratio(&looped) > 2.4,
            "{}",
            compression_ratio(&looped)
        );
        assert_eq!(compression_ratio(""), 0.0);
    }
}
