//! Spoken-language detection on multilingual models, as CTranslate2 and
//! faster-whisper do it: the decoder reads `<|startoftranscript|>` over the
//! first window's encoder output, and the softmax of the language tokens'
//! logits (the rest of the vocabulary left out) gives each language's
//! probability.

use emily::Tensor;

use super::transcriber::{Whisper, WhisperError};
use super::{Session, TranscribeOptions};

/// One language's probability.
#[derive(Clone, Debug, PartialEq)]
pub struct LanguageProbability {
    /// Language code (`en`, `de`, …).
    pub code: String,
    /// Probability among the model's languages (they sum to 1).
    pub probability: f32,
}

impl Whisper {
    /// The languages of 16 kHz mono `samples` by probability, most likely
    /// first, judged on their first 30-second window. An English-only model
    /// has no language tokens: an error.
    pub fn detect_language(
        &self,
        samples: &[f32],
    ) -> Result<Vec<LanguageProbability>, WhisperError> {
        if !self.is_multilingual() {
            return Err(WhisperError::Unsupported(
                "language detection needs a multilingual model".into(),
            ));
        }
        let opts = TranscribeOptions::default();
        let mut session = Session::from_samples(self, samples, &opts)?;
        let Some(window) = session.next_window()? else {
            return Err(WhisperError::Unsupported(
                "language detection needs some audio".into(),
            ));
        };
        let enc = self.encode(window)?;
        self.language_probabilities(&enc, "samples", 0.0)
    }

    /// The languages of the window whose encoder output is `enc`, most likely
    /// first. A non-finite logit is reported on `input`'s window at
    /// `window_start` s.
    pub(crate) fn language_probabilities(
        &self,
        enc: &Tensor,
        input: &str,
        window_start: f64,
    ) -> Result<Vec<LanguageProbability>, WhisperError> {
        let sp = self.tokenizer().special();
        let logits = self.logits_after(enc, &[sp.sot], input, window_start)?;
        let picked: Vec<(&str, f32)> = sp
            .languages
            .iter()
            .filter_map(|(code, id)| Some((code.as_str(), *logits.get(*id as usize)?)))
            .collect();
        if picked.is_empty() {
            return Err(WhisperError::Unsupported(
                "the tokenizer lists no language the model's vocabulary holds".into(),
            ));
        }
        let max = picked.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = picked.iter().map(|p| ((p.1 - max) as f64).exp()).sum();
        let mut out: Vec<LanguageProbability> = picked
            .into_iter()
            .map(|(code, l)| LanguageProbability {
                code: code.to_string(),
                probability: (((l - max) as f64).exp() / sum) as f32,
            })
            .collect();
        // Stable: equal probabilities keep the tokenizer's order.
        out.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        Ok(out)
    }
}
